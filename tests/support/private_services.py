"""Redis and Neo4j instances of a test's own, which it may kill -9, stop and restart."""

import os
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path

from tests.support.api import free_port
from tests.support.services import SERVICES_SCRIPT


class PrivateServices:
    def __init__(self) -> None:
        self.run_dir = Path(tempfile.mkdtemp(prefix="synapse-private-"))
        self.redis_port = free_port()
        self.neo4j_port = free_port()
        self.embeddings_port = free_port()

    @property
    def redis_url(self) -> str:
        return f"redis://127.0.0.1:{self.redis_port}/0"

    @property
    def neo4j_uri(self) -> str:
        return f"bolt://127.0.0.1:{self.neo4j_port}"

    script = SERVICES_SCRIPT

    def env(self) -> dict[str, str]:
        """services.sh's environment for these instances."""
        return {
            **os.environ,
            "SYNAPSE_RUN_DIR": str(self.run_dir),
            "REDIS_PORT": str(self.redis_port),
            "NEO4J_BOLT_PORT": str(self.neo4j_port),
            "EMBEDDINGS_PORT": str(self.embeddings_port),
            "NEO4J_PASSWORD": "",
            "NEO4J_HEAP": "512m",
        }

    def run(self, command: str) -> None:
        subprocess.run(
            [str(SERVICES_SCRIPT), command],
            env=self.env(),
            check=True,
            capture_output=True,
            timeout=300,
        )

    def kill_redis(self) -> None:
        """kill -9: no shutdown, no final fsync; only what the AOF already has survives."""
        pid = int((self.run_dir / "redis.pid").read_text().split()[0])
        os.kill(pid, signal.SIGKILL)
        deadline = time.monotonic() + 10
        while _listening(self.redis_port):
            if time.monotonic() > deadline:
                raise RuntimeError("redis still listening after kill -9")
            time.sleep(0.05)

    def stop(self) -> None:
        self.run("stop")


def _listening(port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(0.2)
        return sock.connect_ex(("127.0.0.1", port)) == 0
