"""Shared fixtures: real Redis and Neo4j for the session, the real API over loopback HTTP."""

import os

os.environ["GRAPHITI_TELEMETRY_ENABLED"] = "false"

import uuid
from collections.abc import AsyncIterator, Iterator

import httpx
import pytest
from neo4j import AsyncGraphDatabase
from redis.asyncio import Redis

from contracts import SynapseClient
from tests.standin.server import StandinServer
from tests.support.api import ApiFactory, RunningApi, base_env
from tests.support.graph_probe import GraphProbe
from tests.support.janitor import JanitorFactory, JanitorProcess
from tests.support.redis_topology import (
    ClusterTopology,
    SentinelTopology,
    running_cluster,
    running_sentinel,
)
from tests.support.services import (
    BackingServices,
    start_backing_services,
    start_legacy_neo4j,
    stop_backing_services,
)
from tests.support.stack import INTERNAL_TOKEN, Stack, StackFactory

pytest_plugins = ["tests.standin.plugin"]


@pytest.fixture(scope="session")
def backing_services() -> Iterator[BackingServices]:
    services = start_backing_services()
    yield services
    stop_backing_services(services)


@pytest.fixture(scope="session")
def legacy_neo4j_uri() -> Iterator[str]:
    """Neo4j 5.26 LTS, started on first use (SYNAPSE_TEST_LEGACY_NEO4J_URI reuses one)."""
    legacy = start_legacy_neo4j()
    yield legacy.uri
    legacy.stop()


@pytest.fixture(scope="session")
def redis_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ClusterTopology]:
    """A real Redis Cluster on loopback (3 masters, 3 replicas), started on first use."""
    with running_cluster(tmp_path_factory.mktemp("redis-cluster")) as cluster:
        yield cluster


@pytest.fixture(scope="session")
def redis_sentinel(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SentinelTopology]:
    """A primary, a replica and three sentinels on loopback, started on first use."""
    with running_sentinel(tmp_path_factory.mktemp("redis-sentinel")) as sentinel:
        yield sentinel


@pytest.fixture(params=["neo4j-default", "neo4j-5.26"])
def graph_uri(request: pytest.FixtureRequest, backing_services: BackingServices) -> str:
    """The graph suites that must hold on every supported Neo4j run once on the session's
    (2026.08.1 unless NEO4J_VERSION says otherwise) and once on 5.26 LTS."""
    if request.param == "neo4j-default":
        return backing_services.neo4j_uri
    uri: str = request.getfixturevalue("legacy_neo4j_uri")
    return uri


@pytest.fixture
async def redis(backing_services: BackingServices) -> AsyncIterator[Redis]:
    """A raw client on the test Redis, emptied before each test (arq's convention)."""
    client: Redis = Redis.from_url(backing_services.redis_url, decode_responses=True)
    await client.flushdb()
    yield client
    await client.aclose()


@pytest.fixture
def api_factory(backing_services: BackingServices, redis: Redis) -> Iterator[ApiFactory]:
    """Start APIs with env overrides (e.g. WORKING_MEMORY_TURNS="2"); all stopped after."""
    started: list[RunningApi] = []

    def start(**overrides: str) -> RunningApi:
        env = base_env(backing_services.redis_url, backing_services.neo4j_uri, **overrides)
        api = RunningApi(env).start()
        started.append(api)
        return api

    yield start
    for api in started:
        api.stop()


@pytest.fixture
def api(api_factory: ApiFactory) -> RunningApi:
    return api_factory()


@pytest.fixture
async def client(api: RunningApi) -> AsyncIterator[SynapseClient]:
    async with SynapseClient(api.base_url) as synapse:
        yield synapse


@pytest.fixture
def tenant() -> str:
    """A tenant id no other test uses, so graph data never crosses tests."""
    return f"tenant-{uuid.uuid4().hex[:12]}"


# Fast clocks for the janitor in tests; individual tests override what they are about.
FAST_JANITOR = {
    "JANITOR_SWEEP_SECONDS": "1",
    "SESSION_IDLE_SECONDS": "3600",
    "JANITOR_BACKOFF_BASE_MS": "200",
    "JANITOR_BACKOFF_MAX_MS": "2000",
    "JANITOR_LEASE_SECONDS": "3",
    "LLM_MAX_RETRIES": "0",
    "INTERNAL_TOKEN": INTERNAL_TOKEN,
}


@pytest.fixture
def llm_env(standin_fresh: StandinServer) -> dict[str, str]:
    """Settings that send every LLM and embedding call to the stand-in through the real SDK."""
    return {
        "LLM_PROVIDER": "openai",
        "OPENAI_API_KEY": "test-key",
        "OPENAI_BASE_URL": standin_fresh.base_url,
        "LLM_MODEL": "standin-large",
        "LLM_SMALL_MODEL": "standin-small",
        "EMBEDDING_DIM": str(standin_fresh.embedding_dim),
        **FAST_JANITOR,
    }


@pytest.fixture
def janitor_factory(backing_services: BackingServices, redis: Redis) -> Iterator[JanitorFactory]:
    """Start `python -m janitor` processes with env overrides; all stopped after the test."""
    started: list[JanitorProcess] = []

    def start(**overrides: str) -> JanitorProcess:
        env = base_env(backing_services.redis_url, backing_services.neo4j_uri, **overrides)
        janitor = JanitorProcess(env).start()
        started.append(janitor)
        return janitor

    yield start
    for janitor in started:
        janitor.cleanup()


@pytest.fixture(scope="session")
async def graph_probe(backing_services: BackingServices) -> AsyncIterator[GraphProbe]:
    driver = AsyncGraphDatabase.driver(backing_services.neo4j_uri, auth=("neo4j", ""))
    yield GraphProbe(driver)
    await driver.close()


@pytest.fixture
async def stack_factory(
    api_factory: ApiFactory, janitor_factory: JanitorFactory, llm_env: dict[str, str]
) -> AsyncIterator[StackFactory]:
    """An API and a janitor process sharing one configuration, talking to the stand-in."""
    opened: list[Stack] = []

    async def start(**overrides: str) -> Stack:
        env = {**llm_env, **overrides}
        api = api_factory(**env)
        janitor = janitor_factory(**env)
        stack = Stack(
            api, janitor, SynapseClient(api.base_url), httpx.AsyncClient(base_url=api.base_url)
        )
        opened.append(stack)
        return stack

    yield start
    for stack in opened:
        await stack.client.aclose()
        await stack.http.aclose()
