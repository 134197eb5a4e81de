"""The real API, served by uvicorn on a loopback port in a background thread."""

import os
import socket
import threading
import time
from collections.abc import Callable, Mapping

import uvicorn

from service.app import create_app
from service.settings import Settings


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


class RunningApi:
    """One API process-equivalent: its own settings, lifespan, clients and port."""

    def __init__(self, env: Mapping[str, str]) -> None:
        self.port = free_port()
        self.settings = Settings.from_env({**env, "SYNAPSE_PORT": str(self.port)})
        config = uvicorn.Config(
            create_app(self.settings),
            host="127.0.0.1",
            port=self.port,
            log_level="warning",
            lifespan="on",
        )
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(target=self._server.run, name="api", daemon=True)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> "RunningApi":
        self._thread.start()
        deadline = time.monotonic() + 30
        while not self._server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("the API did not start")
            time.sleep(0.02)
        return self

    def stop(self) -> None:
        self._server.should_exit = True
        self._thread.join(timeout=30)


def base_env(redis_url: str, neo4j_uri: str, **overrides: str) -> dict[str, str]:
    env = {
        "PATH": os.environ.get("PATH", ""),
        "REDIS_URL": redis_url,
        "NEO4J_URI": neo4j_uri,
        "NEO4J_USER": "neo4j",
        "NEO4J_PASSWORD": "",
        "LLM_PROVIDER": "offline",
        "LOG_LEVEL": "WARNING",
        # One dimension for every test group: the stand-in's (tests/standin/plugin.py).
        "EMBEDDING_DIM": "256",
    }
    env.update(overrides)
    return env


ApiFactory = Callable[..., RunningApi]
