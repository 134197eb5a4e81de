"""Shared fixtures: real Redis and Neo4j for the session, the real API over loopback HTTP."""

import os

os.environ["GRAPHITI_TELEMETRY_ENABLED"] = "false"

import uuid
from collections.abc import AsyncIterator, Iterator

import pytest
from redis.asyncio import Redis

from contracts import SynapseClient
from tests.support.api import ApiFactory, RunningApi, base_env
from tests.support.services import (
    BackingServices,
    start_backing_services,
    stop_backing_services,
)

pytest_plugins = ["tests.standin.plugin"]


@pytest.fixture(scope="session")
def backing_services() -> Iterator[BackingServices]:
    services = start_backing_services()
    yield services
    stop_backing_services(services)


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
