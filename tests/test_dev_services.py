"""deploy/dev/services.sh, which `make run` and `make test` start everything with.

`make run` once failed with "neo4j: exited during startup" right after "NEO4J READY" when it
was started seconds after a stop. The cause: a stop interrupted after its SIGTERM (a second
Ctrl-C) left our JVM shutting down, bolt already closed; the next start took it for a JVM
still starting, accepted the READY line its earlier start had logged, and failed when it
exited, without ever launching a new one."""

import os
import signal
import socket
import subprocess
import time
from collections.abc import Iterator

import pytest

from tests.support.private_services import PrivateServices


@pytest.fixture
def neo4j_service() -> Iterator[PrivateServices]:
    services = PrivateServices()
    services.run("start-neo4j")
    yield services
    services.stop()


def _pid(services: PrivateServices) -> int:
    return int((services.run_dir / "neo4j.pid").read_text().split()[0])


def _answers(port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(1)
        return sock.connect_ex(("127.0.0.1", port)) == 0


@pytest.mark.timeout(400)
def test_a_start_right_after_an_interrupted_stop_launches_a_fresh_neo4j(
    neo4j_service: PrivateServices,
) -> None:
    old = _pid(neo4j_service)
    # What a stop interrupted after its SIGTERM leaves: our JVM shutting down.
    os.kill(old, signal.SIGTERM)
    deadline = time.monotonic() + 30
    while _answers(neo4j_service.neo4j_port) and time.monotonic() < deadline:
        time.sleep(0.05)

    started = subprocess.run(
        [str(neo4j_service.script), "start-neo4j"],
        env=neo4j_service.env(),
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )

    assert started.returncode == 0, started.stderr
    new = _pid(neo4j_service)
    assert new != old
    assert _answers(neo4j_service.neo4j_port)
    log = (neo4j_service.run_dir / "neo4j.log").read_text()
    assert f"NEO4J READY bolt://127.0.0.1:{neo4j_service.neo4j_port} pid {new}" in log
