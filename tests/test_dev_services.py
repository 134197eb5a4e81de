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
from pathlib import Path

import pytest
from neo4j import GraphDatabase

from tests.support.private_services import PrivateServices
from tests.support.services import SERVICES_SCRIPT


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


def _script(
    env: dict[str, str], command: str, timeout: float = 300
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(SERVICES_SCRIPT), command],
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def _neo4j_version(port: int) -> str:
    with GraphDatabase.driver(f"bolt://127.0.0.1:{port}", auth=("neo4j", "")) as driver:
        records, _, _ = driver.execute_query("CALL dbms.components() YIELD name, versions")
    return next(str(r["versions"][0]) for r in records if r["name"] == "Neo4j Kernel")


@pytest.mark.parametrize(
    ("setting", "message"),
    [
        ({"NEO4J_VERSION": "4.4"}, "NEO4J_VERSION must be 2026.08.1 (the default) or 5.26"),
        (
            {"NEO4J_VERSION": "5.26", "NEO4J_DEFAULT_LANGUAGE": "CYPHER_25"},
            "NEO4J_DEFAULT_LANGUAGE needs Neo4j 2025.06 or later",
        ),
    ],
)
def test_a_neo4j_setting_it_cannot_serve_is_refused_before_anything_starts(
    tmp_path: Path, setting: dict[str, str], message: str
) -> None:
    env = {**os.environ, "SYNAPSE_RUN_DIR": str(tmp_path), **setting}

    refused = _script(env, "start-neo4j", timeout=30)

    assert refused.returncode == 1
    assert message in refused.stderr
    assert not (tmp_path / "neo4j.pid").exists()


@pytest.mark.timeout(400)
@pytest.mark.parametrize(("asked", "served"), [("2026.08.1", "2026.08.1"), ("5.26", "5.26.16")])
def test_the_neo4j_version_asked_for_is_the_one_served(asked: str, served: str) -> None:
    services = PrivateServices()
    env = {**services.env(), "NEO4J_VERSION": asked}
    try:
        started = _script(env, "start-neo4j")
        assert started.returncode == 0, started.stderr
        assert f"started Neo4j {served}" in started.stdout

        assert _neo4j_version(services.neo4j_port) == served
        # Our instance is not swapped for another version behind the caller's back.
        other = {**env, "NEO4J_VERSION": "5.26" if asked != "5.26" else "2026.08.1"}
        refused = _script(other, "start-neo4j")
        assert refused.returncode == 1
        assert f"runs Neo4j {served}, not" in refused.stderr
        if asked != "5.26":
            # The launcher was compiled once; later installs and starts reuse it.
            again = _script(env, "install")
            assert again.returncode == 0, again.stderr
            assert "compiling" not in again.stdout
    finally:
        services.stop()
