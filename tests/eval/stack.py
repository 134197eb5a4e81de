"""Redis, Neo4j, the API and a janitor of the harness's own, as tests/bench/run.py starts them.

Redis, Neo4j (and, where deploy/dev/services.sh starts one, the local embeddings server) come
from services.sh in .run/eval on EVAL_REDIS_PORT (6396), EVAL_NEO4J_PORT (7696) and
EVAL_EMBEDDINGS_PORT (7796), unless EVAL_REDIS_URL and EVAL_NEO4J_URI point at running ones
(then EVAL_EMBEDDINGS_URL, if set, is the embeddings server). A fresh run wipes .run/eval's
Redis and Neo4j data first (the eval's data is throwaway, and EMBEDDING_DIM must not change
under a database). The API (`python -m service`, on EVAL_API_PORT or a free port) and the
janitor (`python -m janitor`) run with what `make run` (deploy/dev/run.sh) runs when no model
key is set: the offline extractor, plus the local embedding model when an embeddings server
answers. A model key in the environment is for the judge, not for the stack. Any
EVAL_STACK_<NAME>=value sets <NAME> for both (e.g. EVAL_STACK_LLM_PROVIDER=openai
EVAL_STACK_OPENAI_API_KEY=...).
"""

import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
RUN_DIR = REPO / ".run" / "eval"
SERVICES = REPO / "deploy" / "dev" / "services.sh"
# What deploy/dev/run.sh sets without a model key when the local embeddings server is there.
LOCAL_EMBEDDINGS = {
    "EMBEDDING_MODEL": "multilingual-e5-small-q4",
    "EMBEDDING_DIM": "384",
    "EMBEDDING_INPUT_TYPE": "on",
}


@dataclass(frozen=True)
class RunningStack:
    base_url: str
    internal_token: str
    description: str


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _services(command: str, redis_port: int, neo4j_port: int, embeddings_port: int) -> None:
    env = {
        **os.environ,
        "SYNAPSE_RUN_DIR": str(RUN_DIR),
        "REDIS_PORT": str(redis_port),
        "NEO4J_BOLT_PORT": str(neo4j_port),
        "EMBEDDINGS_PORT": str(embeddings_port),
        "NEO4J_PASSWORD": "",
    }
    subprocess.run([str(SERVICES), command], env=env, check=True)


class _Process:
    def __init__(self, name: str, args: list[str], env: dict[str, str]) -> None:
        self.name = name
        self.log_path = RUN_DIR / f"{name}.log"
        with self.log_path.open("ab") as out:
            self.offset = out.tell()
            self.popen = subprocess.Popen(
                args, cwd=REPO, env=env, stdout=out, stderr=subprocess.STDOUT
            )

    def wait_until(self, ready: Callable[[], bool], timeout: float = 120) -> None:
        deadline = time.monotonic() + timeout
        while not ready():
            if self.popen.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"{self.name} did not start; see {self.log_path}")
            time.sleep(0.1)

    def logged(self, text: str) -> bool:
        with self.log_path.open("rb") as log:
            log.seek(self.offset)
            return text.encode() in log.read()

    def stop(self) -> None:
        if self.popen.poll() is None:
            self.popen.send_signal(signal.SIGTERM)
            try:
                self.popen.wait(timeout=40)
            except subprocess.TimeoutExpired:
                self.popen.kill()
                self.popen.wait(timeout=10)


def _listening(port: int) -> bool:
    with socket.socket() as sock:
        return sock.connect_ex(("127.0.0.1", port)) == 0


@contextmanager
def own_stack(log: Callable[[str], None]) -> Iterator[RunningStack]:
    RUN_DIR.mkdir(parents=True, exist_ok=True)
    redis_url = os.environ.get("EVAL_REDIS_URL")
    neo4j_uri = os.environ.get("EVAL_NEO4J_URI")
    started_services = not (redis_url and neo4j_uri)
    redis_port = int(os.environ.get("EVAL_REDIS_PORT", "6396"))
    neo4j_port = int(os.environ.get("EVAL_NEO4J_PORT", "7696"))
    embeddings_port = int(os.environ.get("EVAL_EMBEDDINGS_PORT", "7796"))
    ports = (redis_port, neo4j_port, embeddings_port)
    embeddings_url = os.environ.get("EVAL_EMBEDDINGS_URL")
    if started_services:
        redis_url = f"redis://127.0.0.1:{redis_port}/0"
        neo4j_uri = f"bolt://127.0.0.1:{neo4j_port}"
        if not (_listening(redis_port) or _listening(neo4j_port)):
            for data in ("redis", "neo4j"):
                shutil.rmtree(RUN_DIR / data, ignore_errors=True)
        _services("start", *ports)
        if _listening(embeddings_port):
            embeddings_url = f"http://127.0.0.1:{embeddings_port}/v1"
    assert redis_url is not None
    assert neo4j_uri is not None
    api_port = int(os.environ.get("EVAL_API_PORT") or _free_port())
    token = secrets.token_hex(16)
    env = {
        "PATH": os.environ.get("PATH", ""),
        "HOME": os.environ.get("HOME", "/root"),
        "PYTHONPATH": str(REPO),
        "PYTHONUNBUFFERED": "1",
        "GRAPHITI_TELEMETRY_ENABLED": "false",
        "SYNAPSE_HOST": "127.0.0.1",
        "SYNAPSE_PORT": str(api_port),
        "REDIS_URL": redis_url,
        "NEO4J_URI": neo4j_uri,
        "NEO4J_USER": "neo4j",
        "NEO4J_PASSWORD": "",
        "INTERNAL_TOKEN": token,
        "LOG_LEVEL": "INFO",
    }
    if embeddings_url:
        env.update({"EMBEDDING_BASE_URL": embeddings_url, **LOCAL_EMBEDDINGS})
    env.update(
        {
            name.removeprefix("EVAL_STACK_"): value
            for name, value in os.environ.items()
            if name.startswith("EVAL_STACK_")
        }
    )
    processes: list[_Process] = []
    try:
        api = _Process("api", [sys.executable, "-m", "service"], env)
        processes.append(api)
        janitor = _Process("janitor", [sys.executable, "-m", "janitor"], env)
        processes.append(janitor)
        api.wait_until(lambda: _listening(api_port))
        janitor.wait_until(lambda: janitor.logged("janitor started"))
        provider = env.get("LLM_PROVIDER", "service default (offline without a key)")
        embedder = env.get("EMBEDDING_BASE_URL", "service default")
        log(f"API on :{api_port} and a janitor up (Redis {redis_url}, Neo4j {neo4j_uri})")
        yield RunningStack(
            f"http://127.0.0.1:{api_port}",
            token,
            f"own stack: API + 1 janitor, LLM_PROVIDER={provider}, embeddings {embedder} "
            f"{env.get('EMBEDDING_MODEL', '')}, logs in {RUN_DIR}",
        )
    finally:
        for process in reversed(processes):
            process.stop()
        if started_services:
            _services("stop", *ports)
