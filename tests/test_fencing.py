"""A janitor that loses its user's lease while it works (paused past it, or pre-empted by a
deletion) writes nothing afterwards: no second extraction, no deleted user brought back.

Pauses are real SIGSTOPs of real janitor processes; the LLM requests in flight are held by a
gated endpoint in front of the stand-in, so each test knows a flush is mid-extraction."""

import asyncio
import time
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest
from neo4j import AsyncDriver, AsyncGraphDatabase
from redis.asyncio import Redis

from service.graph import GraphMemory
from service.graph.fencing import FencedWrite, StaleWriter, check_fence
from service.memory.episodes import episode_uuid, group_id
from service.settings import Settings
from service.store.layout import UserKeys
from tests.standin.server import StandinServer
from tests.support.api import ApiFactory
from tests.support.builders import ingest_body, turn
from tests.support.gated_upstream import GatedUpstream
from tests.support.graph_probe import GraphProbe
from tests.support.janitor import JanitorFactory
from tests.support.redis_state import index_members_of, user_keys
from tests.support.services import BackingServices
from tests.support.stack import StackFactory
from tests.support.waiting import eventually

LEASE_SECONDS = 3


@pytest.fixture
async def neo4j(backing_services: BackingServices) -> Any:
    driver = AsyncGraphDatabase.driver(backing_services.neo4j_uri, auth=("neo4j", ""))
    yield driver
    await driver.close()


# What a single extraction of each episode never makes (no APOC: list distinctness by reduce).
_WRITTEN_TWICE = {
    "entity name repeated": "MATCH (n:Entity {group_id: $g}) WITH n.name AS what, count(*) AS c "
    "WHERE c > 1 RETURN what",
    "entity mentioned twice by one episode": "MATCH (e:Episodic {group_id: $g})-[m:MENTIONS]->(n) "
    "WITH n.name AS what, e, count(m) AS c WHERE c > 1 RETURN what",
    "fact listing an episode twice": "MATCH ()-[r:RELATES_TO {group_id: $g}]->() WHERE "
    "size(r.episodes) <> size(reduce(seen = [], x IN r.episodes | "
    "CASE WHEN x IN seen THEN seen ELSE seen + x END)) RETURN r.fact AS what",
    "fact repeated between the same entities": "MATCH (a)-[r:RELATES_TO {group_id: $g}]->(b) "
    "WITH a, b, r.fact AS what, count(*) AS c WHERE c > 1 RETURN what",
}


async def written_twice(driver: AsyncDriver, group: str) -> list[str]:
    problems: list[str] = []
    for problem, query in _WRITTEN_TWICE.items():
        records, _, _ = await driver.execute_query(query, g=group)
        problems += [f"{problem}: {record['what']}" for record in records]
    return problems


async def test_a_janitor_paused_past_its_lease_mid_extraction_writes_nothing_when_it_resumes(
    stack_factory: StackFactory,
    janitor_factory: JanitorFactory,
    llm_env: dict[str, str],
    standin_fresh: StandinServer,
    tenant: str,
    graph_probe: GraphProbe,
    neo4j: AsyncDriver,
) -> None:
    group = group_id(tenant, "user-1")
    with GatedUpstream(standin_fresh) as upstream:
        gated = {**llm_env, "OPENAI_BASE_URL": upstream.base_url}
        stack = await stack_factory(OPENAI_BASE_URL=upstream.base_url)
        paused = stack.janitor
        await stack.client.ingest(turn(tenant, "Ashley and I are planning the Lisbon trip"))
        await stack.close(tenant)
        # The first janitor is mid-extraction: its first model request is held at the gate.
        assert await asyncio.to_thread(upstream.arrived.wait, 30)
        paused.pause()
        await asyncio.sleep(LEASE_SECONDS + 1)
        upstream.gate.set()
        # A second janitor takes the user over once the lease has expired, and writes it.
        janitor_factory(**gated)
        await stack.outbox_when(tenant, lambda o: o["entries"] == [], "the episode acknowledged")
        assert await graph_probe.processed_episode_count(group) == 1
        before = (
            sorted(await graph_probe.entity_names(group)),
            sorted(await graph_probe.facts(group)),
        )

        # The paused janitor wakes with its model answers waiting and its lease long gone.
        paused.resume()
        await asyncio.sleep(LEASE_SECONDS * 2)
        metrics = (await stack.http.get("/metrics")).text

    after = (sorted(await graph_probe.entity_names(group)), sorted(await graph_probe.facts(group)))
    assert await written_twice(neo4j, group) == []
    assert await graph_probe.episode_count(group) == 1
    assert after == before
    fenced = [
        line
        for line in metrics.splitlines()
        if line.startswith(("synapse_janitor_leases_lost", "synapse_janitor_writes_fenced"))
    ]
    assert any(not line.endswith(" 0.0") for line in fenced), fenced


async def test_a_user_deleted_while_a_paused_janitor_holds_their_episode_never_comes_back(
    stack_factory: StackFactory,
    standin_fresh: StandinServer,
    tenant: str,
    graph_probe: GraphProbe,
    redis: Redis,
) -> None:
    group = group_id(tenant, "user-1")
    with GatedUpstream(standin_fresh) as upstream:
        stack = await stack_factory(OPENAI_BASE_URL=upstream.base_url)
        await stack.client.ingest(turn(tenant, "My sister Carla lives in Porto"))
        await stack.close(tenant)
        assert await asyncio.to_thread(upstream.arrived.wait, 30)
        stack.janitor.pause()
        await asyncio.sleep(LEASE_SECONDS + 1)
        deleted = await stack.http.delete("/users", params={"tenantId": tenant, "userId": "user-1"})
        upstream.gate.set()
        stack.janitor.resume()
        # Long enough for the resumed janitor to finish its extraction and try to write it.
        await asyncio.sleep(LEASE_SECONDS * 3)

    assert deleted.status_code == 200
    assert await graph_probe.episode_count(group) == 0
    assert await graph_probe.entity_names(group) == []
    assert await user_keys(redis, tenant, "user-1") == [UserKeys(tenant, "user-1").fence]
    assert await index_members_of(redis, tenant, "user-1") == []


async def test_a_rolling_summary_begun_before_a_deletion_is_never_written_back(
    api_factory: ApiFactory,
    janitor_factory: JanitorFactory,
    llm_env: dict[str, str],
    standin_fresh: StandinServer,
    tenant: str,
    redis: Redis,
) -> None:
    with GatedUpstream(standin_fresh) as upstream:
        env = {**llm_env, "OPENAI_BASE_URL": upstream.base_url, "SUMMARY_EVERY_TURNS": "1"}
        api = api_factory(**env)
        janitor_factory(**env)
        async with httpx.AsyncClient(base_url=api.base_url) as http:
            stored = await http.post("/ingest", json=ingest_body(tenant, text="My name is Mukesh"))
            assert stored.status_code == 200
            # The summary job's model call is in flight.
            assert await asyncio.to_thread(upstream.arrived.wait, 30)
            deleted = await http.delete("/users", params={"tenantId": tenant, "userId": "user-1"})
            upstream.gate.set()
            await eventually(
                lambda: redis.exists(f"arq:in-progress:summary:{tenant} user-1"),
                lambda n: n == 0,
                what="the summary job to finish",
            )
            await asyncio.sleep(1)
            brief = await http.post("/brief", json={"tenantId": tenant, "userId": "user-1"})

    assert deleted.status_code == 200
    assert await user_keys(redis, tenant, "user-1") == [UserKeys(tenant, "user-1").fence]
    assert brief.json()["rollingSummary"] is None
    assert brief.json()["identity"]["name"] is None


async def test_an_episode_processed_without_entities_is_never_extracted_again(
    backing_services: BackingServices,
    standin_fresh: StandinServer,
    tenant: str,
    neo4j: AsyncDriver,
) -> None:
    memory = await GraphMemory.create(
        Settings(
            neo4j_uri=backing_services.neo4j_uri,
            llm_provider="openai",
            openai_api_key="test-key",
            openai_base_url=standin_fresh.base_url,
            llm_model="standin-large",
            llm_small_model="standin-small",
            embedding_dim=standin_fresh.embedding_dim,
            llm_max_retries=0,
        )
    )
    group = group_id(tenant, "user-1")
    episode = {
        "uuid": episode_uuid(tenant, "user-1", "s1", 1, 0),
        "group_id": group,
        "name": "session s1",
        "body": "user: ok.",
        "reference_time": datetime.now(UTC),
        "source_description": "test",
        "previous_episode_uuids": [],
        # A lease token as Redis hands it out: its clock in microseconds.
        "fence": int(time.time() * 1_000_000),
        "still_held": lambda: True,
    }
    try:
        first = await memory.add_transcript_episode(**episode)  # type: ignore[arg-type]
        # What a model that found nothing to remember leaves: the episode and no entity.
        await neo4j.execute_query("MATCH (n:Entity {group_id: $g}) DETACH DELETE n", g=group)
        calls = sum(standin_fresh.calls.values())
        again = await memory.add_transcript_episode(**episode)  # type: ignore[arg-type]
        calls_again = sum(standin_fresh.calls.values())
    finally:
        await memory.close()

    assert not first.skipped
    assert first.usage.calls > 0
    assert again.skipped
    assert calls_again == calls


async def test_a_writer_stalled_inside_its_transaction_does_not_block_a_deletion_for_long(
    api_factory: ApiFactory, backing_services: BackingServices, tenant: str, neo4j: AsyncDriver
) -> None:
    """A janitor paused inside a fenced transaction keeps its connection, and so the group's
    lock. The server ends fenced transactions at their time limit, so the user's deletion
    waits for that (and is tried again if it waited past its own), not for as long as the
    pause lasts (the embedded server's limit is 5 minutes; a production one has none)."""
    api = api_factory()
    group = group_id(tenant, "user-1")
    memory = await GraphMemory.create(
        Settings(neo4j_uri=backing_services.neo4j_uri, embedding_dim=256)
    )
    resume = asyncio.Event()
    stalled_writer = FencedWrite(
        group_id=group,
        episode_uuid="",
        fence=int(time.time() * 1_000_000),
        still_held=lambda: True,
        max_age_ms=3_600_000,
    )

    async def stall(tx: Any) -> None:
        await check_fence(tx, stalled_writer)  # the group's lock, held from here
        await resume.wait()

    try:
        writing = asyncio.create_task(memory._write(stall))
        await asyncio.sleep(2)
        async with httpx.AsyncClient(base_url=api.base_url, timeout=240) as http:
            deleted = await http.delete("/users", params={"tenantId": tenant, "userId": "user-1"})
        resume.set()
        # The stalled writer wakes to a transaction the server ended, and its retry is fenced.
        with pytest.raises(StaleWriter):
            await writing
    finally:
        resume.set()
        await memory.close()

    assert deleted.status_code == 200
    records, _, _ = await neo4j.execute_query(
        "MATCH (g:SynapseGroup {group_id: $g}) RETURN g.deleted_at IS NOT NULL AS deleted",
        g=group,
    )
    assert [r["deleted"] for r in records] == [True]
