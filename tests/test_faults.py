"""Fault tests: dependencies dying under load. Each asserts that nothing acknowledged is lost
and nothing is duplicated. All traffic stays on loopback; every loop is bounded."""

import asyncio
import contextlib
from collections.abc import AsyncIterator, Iterator

import httpx
import pytest
from redis.asyncio import Redis

from service.memory.episodes import episode_uuid, group_id
from service.store.layout import UserKeys
from tests.standin.server import StandinServer
from tests.support.api import ApiFactory
from tests.support.builders import ingest_body, turn
from tests.support.graph_probe import GraphProbe
from tests.support.janitor import JanitorFactory
from tests.support.private_services import PrivateServices
from tests.support.stack import StackFactory
from tests.support.waiting import eventually


@pytest.fixture
def private_redis() -> Iterator[PrivateServices]:
    services = PrivateServices()
    services.run("start-redis")
    yield services
    services.stop()


async def test_acknowledged_turns_survive_redis_kill_9_during_ingest(
    api_factory: ApiFactory, private_redis: PrivateServices, tenant: str
) -> None:
    api = api_factory(REDIS_URL=private_redis.redis_url)
    acknowledged: list[str] = []
    statuses: set[int] = set()

    async def send(http: httpx.AsyncClient, n: int) -> None:
        text = f"turn number {n}"
        try:
            response = await http.post(
                "/ingest",
                json=ingest_body(
                    tenant,
                    text=text,
                    timestamp=f"2026-02-03T18:00:{n % 60:02d}Z",
                    messageId=f"m{n}",
                ),
            )
        except httpx.TransportError:
            return
        statuses.add(response.status_code)
        if response.status_code == 200:
            acknowledged.append(text)

    async with httpx.AsyncClient(base_url=api.base_url, timeout=15) as http:
        for batch in range(12):
            await asyncio.gather(*(send(http, batch * 10 + i) for i in range(10)))
            if batch == 4:
                private_redis.kill_redis()
            if batch == 7:
                private_redis.run("start-redis")

    check = Redis.from_url(private_redis.redis_url, decode_responses=True)
    stored = await check.lrange(UserKeys(tenant, "user-1").session("session-1").buffer, 0, -1)
    await check.aclose()

    texts = [item.split('"text":"')[1].split('"')[0] for item in stored]
    assert len(acknowledged) >= 80  # load continued after the restart
    assert statuses <= {200, 503}, statuses
    assert set(acknowledged) <= set(texts)
    assert len(texts) == len(set(texts))


async def test_not_ready_while_redis_is_down_and_ready_again_after(
    api_factory: ApiFactory, private_redis: PrivateServices
) -> None:
    api = api_factory(REDIS_URL=private_redis.redis_url)
    async with httpx.AsyncClient(base_url=api.base_url) as http:
        private_redis.kill_redis()
        down = await http.get("/ready")
        private_redis.run("start-redis")
        up = await eventually(
            lambda: http.get("/ready"), lambda r: r.status_code == 200, what="ready"
        )

    assert down.status_code == 503
    assert down.json()["ready"] is False
    assert down.json()["redis"]["ok"] is False
    assert up.json()["redis"]["ok"] is True


@pytest.fixture
def private_neo4j() -> Iterator[PrivateServices]:
    services = PrivateServices()
    services.run("start-neo4j")
    yield services
    services.stop()


async def test_neo4j_outage_keeps_ingest_and_brief_up_and_every_episode_lands_after(
    stack_factory: StackFactory, private_neo4j: PrivateServices, tenant: str
) -> None:
    stack = await stack_factory(NEO4J_URI=private_neo4j.neo4j_uri, JANITOR_MAX_ATTEMPTS="100")
    private_neo4j.run("stop-neo4j")
    users = [f"user-{n}" for n in range(3)]
    for user in users:
        await stack.client.ingest(
            turn(tenant, f"I need to call {user.title()}", user=user, session="s1")
        )
        await stack.close(tenant, user, "s1")

    brief = await stack.http.post("/brief", json={"tenantId": tenant, "userId": users[0]})
    ingest = await stack.http.post(
        "/ingest", json=ingest_body(tenant, userId="late", text="still accepted")
    )
    # What matters is the answer (503), not its speed: a loaded machine may need a few seconds.
    query = await stack.http.post(
        "/memory/query",
        json={"tenantId": tenant, "userId": users[0], "query": "call"},
        timeout=60,
    )
    ready = await stack.http.get("/ready")

    assert brief.status_code == 200
    assert ingest.status_code == 200
    assert query.status_code == 503
    assert query.json()["error"] == "unavailable"
    assert "graph database" in query.json()["message"]
    assert ready.status_code == 200
    assert ready.json()["degraded"] is True

    private_neo4j.run("start-neo4j")
    driver_probe = _probe(private_neo4j)
    async with driver_probe as probe:
        for user in users:
            await eventually(
                lambda u=user: probe.processed_episode_count(group_id(tenant, u)),
                lambda n: n == 1,
                within=120,
                what=f"{user}'s episode after the outage",
            )
        for user in users:
            episodes = await probe.episodes(group_id(tenant, user))
            assert [e["uuid"] for e in episodes] == [episode_uuid(tenant, user, "s1", 1, 0)]


@contextlib.asynccontextmanager
async def _probe(services: PrivateServices) -> AsyncIterator[GraphProbe]:
    from neo4j import AsyncGraphDatabase

    driver = AsyncGraphDatabase.driver(services.neo4j_uri, auth=("neo4j", ""))
    try:
        yield GraphProbe(driver)
    finally:
        await driver.close()


async def test_llm_timeouts_are_retried_until_the_model_answers(
    stack_factory: StackFactory, standin_fresh: StandinServer, tenant: str, graph_probe: GraphProbe
) -> None:
    stack = await stack_factory(LLM_TIMEOUT_SECONDS="1", JANITOR_MAX_ATTEMPTS="100")
    standin_fresh.set_latency(3.0)
    await stack.client.ingest(turn(tenant, "I need to renew my passport"))
    await stack.close(tenant)

    outbox = await stack.outbox_when(
        tenant, lambda o: o["entries"] and o["entries"][0]["attempts"] >= 2, "timed-out attempts"
    )
    assert "Timeout" in outbox["entries"][0]["lastError"]
    standin_fresh.set_latency(0.0)

    await eventually(
        lambda: graph_probe.processed_episode_count(group_id(tenant, "user-1")),
        lambda n: n == 1,
        what="the episode once the model answers",
    )
    assert await graph_probe.episode_count(group_id(tenant, "user-1")) == 1


async def test_janitors_killed_again_and_again_leave_exactly_the_episodes(
    stack_factory: StackFactory,
    janitor_factory: JanitorFactory,
    llm_env: dict[str, str],
    standin_fresh: StandinServer,
    tenant: str,
    graph_probe: GraphProbe,
) -> None:
    stack = await stack_factory()
    janitors = [stack.janitor, janitor_factory(**llm_env)]
    standin_fresh.set_latency(0.15)
    users = [f"user-{n}" for n in range(6)]
    for session in ("s1", "s2"):
        for user in users:
            await stack.client.ingest(
                turn(
                    tenant,
                    f"I need to finish {session} with {user.title()}",
                    user=user,
                    session=session,
                )
            )
            await stack.close(tenant, user, session)

    for round_number in range(4):
        await asyncio.sleep(1.5)
        victim = round_number % 2
        janitors[victim].kill()
        janitors[victim] = janitor_factory(**llm_env)

    for user in users:
        await eventually(
            lambda u=user: graph_probe.processed_episode_count(group_id(tenant, u)),
            lambda n: n == 2,
            within=120,
            what=f"both of {user}'s episodes",
        )
    for user in users:
        group = group_id(tenant, user)
        episodes = await graph_probe.episodes(group)
        names = await graph_probe.entity_names(group)
        assert sorted(e["uuid"] for e in episodes) == sorted(
            episode_uuid(tenant, user, session, 1, 0) for session in ("s1", "s2")
        )
        assert [e["name"] for e in episodes] == ["session s1", "session s2"]
        assert len(names) == len(set(names)), names


async def test_a_model_that_never_answers_does_not_hold_the_user_forever(
    stack_factory: StackFactory, standin_fresh: StandinServer, tenant: str, graph_probe: GraphProbe
) -> None:
    # The model's own timeout is far away (and retried); the episode's bound is what ends it.
    stack = await stack_factory(
        LLM_TIMEOUT_SECONDS="600", LLM_MAX_RETRIES="0", JANITOR_EPISODE_TIMEOUT_SECONDS="2"
    )
    standin_fresh.set_latency(300.0)
    await stack.client.ingest(turn(tenant, "I need to renew my passport"))
    await stack.close(tenant)

    outbox = await stack.outbox_when(
        tenant, lambda o: o["entries"] and o["entries"][0]["attempts"] >= 2, "abandoned attempts"
    )
    assert "TimeoutError" in outbox["entries"][0]["lastError"]
    standin_fresh.set_latency(0.0)

    await eventually(
        lambda: graph_probe.processed_episode_count(group_id(tenant, "user-1")),
        lambda n: n == 1,
        what="the episode once the model answers again",
    )
    assert await graph_probe.episode_count(group_id(tenant, "user-1")) == 1
