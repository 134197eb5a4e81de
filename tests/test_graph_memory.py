"""End to end: real API and janitor processes, real Redis and Neo4j, the real openai SDK talking
to the OpenAI-compatible stand-in over loopback HTTP."""

from typing import Any, cast

import httpx
import pytest
from redis.asyncio import Redis

from contracts import (
    MemoryQueryRequest,
    Message,
    SessionCloseRequest,
    SessionIngestRequest,
    SynapseClient,
    SynapseError,
)
from service.memory.episodes import TranscriptLine, chunk_transcript, episode_uuid, group_id
from tests.standin.server import StandinServer
from tests.support.api import ApiFactory, RunningApi
from tests.support.builders import at, brief, turn
from tests.support.graph_probe import GraphProbe
from tests.support.janitor import JanitorFactory
from tests.support.redis_state import user_key_pattern
from tests.support.services import BackingServices
from tests.support.stack import INTERNAL_TOKEN, StackFactory
from tests.support.waiting import eventually

DENTIST = "I need to book the dentist before Friday"


async def _episodes(probe: GraphProbe, tenant: str, user: str = "user-1") -> int:
    return await probe.processed_episode_count(group_id(tenant, user))


async def _wait_for_episodes(
    probe: GraphProbe, tenant: str, count: int, user: str = "user-1"
) -> None:
    await eventually(
        lambda: _episodes(probe, tenant, user),
        lambda n: n >= count,
        what=f"{count} processed episode(s) for {tenant}/{user}",
    )


async def _converse(
    client: SynapseClient,
    tenant: str,
    session: str = "session-1",
    user: str = "user-1",
    text: str = DENTIST,
) -> None:
    await client.ingest(
        turn(tenant, text, user=user, session=session, timestamp="2026-02-03T18:34:12Z")
    )
    await client.ingest(
        turn(
            tenant,
            "Got it, I will remind you.",
            user=user,
            session=session,
            role="assistant",
            timestamp="2026-02-03T18:34:18Z",
        )
    )


async def test_an_idle_session_becomes_one_episode_and_its_fact_is_found(
    stack_factory: StackFactory, tenant: str, graph_probe: GraphProbe
) -> None:
    stack = await stack_factory(SESSION_IDLE_SECONDS="1")
    await _converse(stack.client, tenant)

    await _wait_for_episodes(graph_probe, tenant, 1)
    answer = await stack.client.memory_query(
        MemoryQueryRequest(tenant_id=tenant, user_id="user-1", query="dentist", limit=5)
    )
    session = (
        await stack.debug("session", tenantId=tenant, userId="user-1", sessionId="session-1")
    ).json()

    assert any("dentist" in fact.text.lower() for fact in answer.facts)
    assert all(fact.source == "graphiti" and 0 <= fact.relevance <= 1 for fact in answer.facts)
    assert [f.relevance for f in answer.facts] == sorted(
        (f.relevance for f in answer.facts), reverse=True
    )
    assert answer.metadata.query == "dentist"
    assert answer.metadata.facts == len(answer.facts)
    assert answer.metadata.entities == len(answer.entities)
    assert len(answer.facts) <= 5
    assert session["state"] == "closed"
    assert session["outbox"] == []
    episodes = await graph_probe.episodes(group_id(tenant, "user-1"))
    assert [e["uuid"] for e in episodes] == [episode_uuid(tenant, "user-1", "session-1", 1, 0)]
    assert episodes[0]["content"] == f"user: {DENTIST}\nassistant: Got it, I will remind you."
    assert tenant in str(episodes[0]["source"])
    assert "persona-1" in str(episodes[0]["source"])


async def test_explicit_close_flushes_and_repeated_closes_change_nothing(
    stack_factory: StackFactory, tenant: str, graph_probe: GraphProbe
) -> None:
    stack = await stack_factory()
    await _converse(stack.client, tenant)

    first = await stack.close(tenant)
    await _wait_for_episodes(graph_probe, tenant, 1)
    again = await stack.close(tenant)
    # The same turn retried after the flush is a duplicate, not a new generation.
    await stack.client.ingest(turn(tenant, DENTIST, timestamp="2026-02-03T18:34:12Z"))
    with pytest.raises(SynapseError) as unknown:
        await stack.close(tenant, "user-1", "nope")
    with pytest.raises(SynapseError) as nothing_open:
        await stack.client.close_session(SessionCloseRequest(tenant_id=tenant, user_id="user-1"))

    assert (first.closed, first.session_id) == (True, "session-1")
    assert (again.closed, again.session_id) == (False, "session-1")
    assert unknown.value.status == 404
    assert unknown.value.body.field == "sessionId"
    assert nothing_open.value.status == 404
    assert await graph_probe.episode_count(group_id(tenant, "user-1")) == 1


async def test_close_without_session_id_closes_the_most_recent_open_session(
    stack_factory: StackFactory, tenant: str, graph_probe: GraphProbe
) -> None:
    stack = await stack_factory()
    await _converse(stack.client, tenant, session="older")
    await _converse(stack.client, tenant, session="newer", text="I need to call Ashley")

    closed = await stack.client.close_session(
        SessionCloseRequest(tenant_id=tenant, user_id="user-1")
    )
    older = (
        await stack.debug("session", tenantId=tenant, userId="user-1", sessionId="older")
    ).json()

    assert closed.session_id == "newer"
    assert older["state"] == "open"


async def test_session_ingest_yields_one_episode_however_often_it_is_sent(
    stack_factory: StackFactory, tenant: str, graph_probe: GraphProbe
) -> None:
    stack = await stack_factory(SESSION_INGEST_WAIT_SECONDS="30")
    transcript = SessionIngestRequest(
        tenant_id=tenant,
        user_id="user-1",
        session_id="s-full",
        persona_id="persona-1",
        started_at=at("2026-02-04T18:00:00Z"),
        ended_at=at("2026-02-04T18:45:00Z"),
        messages=[
            Message(
                role="user",
                text="My name is Mukesh and I need to renew my passport",
                timestamp=at("2026-02-04T18:00:01Z"),
            ),
            Message(
                role="assistant", text="Nice to meet you", timestamp=at("2026-02-04T18:00:05Z")
            ),
        ],
    )

    first = await stack.client.session_ingest(transcript)
    second = await stack.client.session_ingest(transcript)

    assert (first.status, first.session_id, first.graphiti_added) == ("ingested", "s-full", True)
    assert second.graphiti_added is True
    episodes = await graph_probe.episodes(group_id(tenant, "user-1"))
    assert [e["uuid"] for e in episodes] == [episode_uuid(tenant, "user-1", "s-full", 1, 0)]


async def test_session_ingest_rejects_out_of_order_messages_and_writes_nothing(
    stack_factory: StackFactory, tenant: str, redis: Redis
) -> None:
    stack = await stack_factory()
    response = await stack.http.post(
        "/session/ingest",
        json={
            "tenantId": tenant,
            "userId": "u",
            "sessionId": "s",
            "messages": [
                {"role": "user", "text": "second", "timestamp": "2026-02-04T18:00:05Z"},
                {"role": "user", "text": "first", "timestamp": "2026-02-04T18:00:01Z"},
            ],
        },
    )

    assert response.status_code == 422
    assert response.json()["field"] == "messages[1].timestamp"
    assert await redis.keys(user_key_pattern(tenant)) == []


async def test_a_long_transcript_becomes_several_chunk_episodes(
    stack_factory: StackFactory, tenant: str, graph_probe: GraphProbe
) -> None:
    stack = await stack_factory()
    messages = [
        Message(
            role="user" if n % 2 == 0 else "assistant",
            text=f"Turn {n}: " + "we talked about the garden and the weather " * 20,
            timestamp=at(f"2026-02-04T18:{n:02d}:00Z"),
        )
        for n in range(30)
    ]
    lines = [TranscriptLine(m.role, m.text, m.timestamp.isoformat()) for m in messages]
    expected_chunks = len(chunk_transcript(lines))

    await stack.client.session_ingest(
        SessionIngestRequest(
            tenant_id=tenant, user_id="user-1", session_id="long", messages=messages
        )
    )
    await _wait_for_episodes(graph_probe, tenant, expected_chunks)
    await eventually(
        lambda: stack.debug("user", tenantId=tenant, userId="user-1"),
        lambda r: r.json()["outbox"] == [],
        what="empty outbox",
    )

    episodes = await graph_probe.episodes(group_id(tenant, "user-1"))
    assert expected_chunks >= 2
    assert sorted(e["uuid"] for e in episodes) == sorted(
        episode_uuid(tenant, "user-1", "long", 1, chunk) for chunk in range(expected_chunks)
    )
    assert "".join(str(e["content"]) for e in episodes).count("Turn ") == 30


async def test_a_janitor_killed_mid_flush_loses_nothing_and_duplicates_nothing(
    stack_factory: StackFactory,
    janitor_factory: JanitorFactory,
    llm_env: dict[str, str],
    standin_fresh: StandinServer,
    tenant: str,
    graph_probe: GraphProbe,
) -> None:
    stack = await stack_factory()
    standin_fresh.set_latency(1.0)
    await _converse(stack.client, tenant, text="I need to call Ashley about the Berlin trip")
    await stack.close(tenant)

    async def extraction_calls() -> int:
        return standin_fresh.calls.get("/v1/responses", 0)

    await eventually(extraction_calls, lambda n: n >= 1, what="the janitor inside add_episode")
    stack.janitor.kill()
    assert await _episodes(graph_probe, tenant) == 0
    standin_fresh.set_latency(0.0)
    janitor_factory(**llm_env)

    await _wait_for_episodes(graph_probe, tenant, 1)
    await eventually(
        lambda: stack.debug("user", tenantId=tenant, userId="user-1"),
        lambda r: r.json()["outbox"] == [],
        what="empty outbox",
    )
    names = await graph_probe.entity_names(group_id(tenant, "user-1"))
    assert await graph_probe.episode_count(group_id(tenant, "user-1")) == 1
    assert len(names) == len(set(names)), names
    assert "Ashley" in names


async def test_rate_limited_llm_is_retried_with_backoff_then_succeeds(
    stack_factory: StackFactory, standin_fresh: StandinServer, tenant: str, graph_probe: GraphProbe
) -> None:
    stack = await stack_factory()
    standin_fresh.inject_failures(429, count=2, retry_after=0.5, paths="/v1/responses")
    await _converse(stack.client, tenant)
    await stack.close(tenant)

    await _wait_for_episodes(graph_probe, tenant, 1)

    statuses = [r.status for r in standin_fresh.records if r.path == "/v1/responses"]
    assert statuses[:2] == [429, 429]
    assert 200 in statuses[2:]
    assert await graph_probe.episode_count(group_id(tenant, "user-1")) == 1


async def test_permanent_failure_is_dead_lettered_then_redriven_to_one_episode(
    stack_factory: StackFactory, standin_fresh: StandinServer, tenant: str, graph_probe: GraphProbe
) -> None:
    stack = await stack_factory(JANITOR_MAX_ATTEMPTS="2")
    standin_fresh.fail_forever(500, paths="/v1/responses")
    await _converse(stack.client, tenant)
    await stack.close(tenant)

    outbox = await stack.outbox_when(
        tenant, lambda o: o["counts"]["dead"] == 1, "a dead-lettered entry"
    )
    dead = outbox["entries"][0]
    assert (dead["state"], dead["attempts"], dead["sessionId"]) == ("dead", 2, "session-1")
    assert "InternalServerError" in dead["lastError"]
    assert await _episodes(graph_probe, tenant) == 0

    standin_fresh.clear_failures()
    emitted = (
        await stack.debug_post(
            "emit_raw_episode", tenantId=tenant, userId="user-1", sessionId="session-1"
        )
    ).json()

    assert emitted["redriven"] == [dead["entryId"]]
    assert emitted["outbox"] == []
    assert await _episodes(graph_probe, tenant) == 1
    assert await graph_probe.episode_count(group_id(tenant, "user-1")) == 1


async def test_users_flush_in_parallel_while_each_users_sessions_stay_in_order(
    stack_factory: StackFactory, standin_fresh: StandinServer, tenant: str, graph_probe: GraphProbe
) -> None:
    stack = await stack_factory()
    standin_fresh.set_latency(0.3)
    for session in ("a1", "a2", "a3"):
        await _converse(
            stack.client,
            tenant,
            user="alice",
            session=session,
            text=f"I need to finish chapter {session}",
        )
        await stack.close(tenant, "alice", session)
    await _converse(
        stack.client, tenant, user="bob", session="b1", text="I need to water the plants"
    )
    await stack.close(tenant, "bob", "b1")

    await _wait_for_episodes(graph_probe, tenant, 3, user="alice")
    await _wait_for_episodes(graph_probe, tenant, 1, user="bob")

    alice = await graph_probe.episodes(group_id(tenant, "alice"))
    bob = await graph_probe.episodes(group_id(tenant, "bob"))
    assert [e["name"] for e in alice] == ["session a1", "session a2", "session a3"]
    # Bob did not wait for Alice's queue: his episode landed before her last one.
    assert bob[0]["created_at"] < alice[-1]["created_at"]


async def test_session_brief_is_built_from_the_narrative_entities(
    stack_factory: StackFactory, tenant: str, graph_probe: GraphProbe
) -> None:
    stack = await stack_factory()
    text = "I'm at a noisy cafe. I feel frustrated. I need to fix the flaky tests."
    await _converse(stack.client, tenant, text=text)
    await stack.close(tenant)
    await _wait_for_episodes(graph_probe, tenant, 1)

    narrative = await stack.client.session_brief(
        tenant_id=tenant, user_id="user-1", now="2026-02-03T23:35:00Z"
    )

    assert narrative.time_gap_description == "5 hours since last spoke"
    assert (narrative.current_vibe.mood or "").lower() == "frustrated"
    assert (narrative.current_vibe.location_type or "").lower() == "cafe"
    assert any("flaky tests" in loop.description.lower() for loop in narrative.active_loops)
    assert all(loop.status == "unresolved" for loop in narrative.active_loops)
    assert len(narrative.narrative_summary) == 1
    assert narrative.narrative_summary[0].reference_time == "2026-02-03T18:34:12Z"
    assert narrative.narrative_summary[0].summary


async def test_session_brief_for_an_unknown_user_is_empty(
    stack_factory: StackFactory, tenant: str
) -> None:
    stack = await stack_factory()

    narrative = await stack.client.session_brief(tenant_id=tenant, user_id="nobody")

    assert narrative.time_gap_description is None
    assert narrative.narrative_summary == []
    assert narrative.active_loops == []
    assert narrative.current_vibe.mood is None
    assert narrative.current_vibe.location_type is None


async def test_one_tenant_or_user_never_sees_anothers_facts(
    stack_factory: StackFactory, tenant: str, graph_probe: GraphProbe
) -> None:
    stack = await stack_factory()
    other = f"{tenant}-other"
    await _converse(stack.client, tenant, text="I need to book the dentist")
    await _converse(stack.client, other, text="I need to buy a guitar")
    for who in (tenant, other):
        await stack.close(who)
    await _wait_for_episodes(graph_probe, tenant, 1)
    await _wait_for_episodes(graph_probe, other, 1)

    async def texts(who: str, query: str) -> str:
        answer = await stack.client.memory_query(
            MemoryQueryRequest(tenant_id=who, user_id="user-1", query=query)
        )
        return " ".join(
            [f.text for f in answer.facts] + [e.summary for e in answer.entities]
        ).lower()

    assert "dentist" in await texts(tenant, "dentist")
    assert "guitar" not in await texts(tenant, "guitar")
    assert "guitar" in await texts(other, "guitar")
    assert "dentist" not in await texts(other, "dentist")


async def test_rolling_summary_and_the_users_name_reach_brief(
    stack_factory: StackFactory, tenant: str
) -> None:
    stack = await stack_factory(SUMMARY_EVERY_TURNS="2")
    await stack.client.ingest(
        turn(
            tenant,
            "My name is Mukesh. I love hiking in the Alps.",
            timestamp="2026-02-03T18:00:00Z",
        )
    )
    await stack.client.ingest(
        turn(tenant, "Nice to meet you, Mukesh", role="assistant", timestamp="2026-02-03T18:00:05Z")
    )

    seed = await eventually(
        lambda: stack.client.brief(brief(tenant)),
        lambda b: b.rolling_summary is not None,
        what="a rolling summary",
    )

    assert seed.identity.name == "Mukesh"
    assert seed.identity.is_default is False
    assert seed.metadata.has_rolling_summary is True
    assert "hiking" in (seed.rolling_summary or "").lower()


async def test_llm_calls_and_tokens_are_counted_per_episode_user_and_tenant(
    stack_factory: StackFactory, tenant: str, graph_probe: GraphProbe, standin_fresh: StandinServer
) -> None:
    stack = await stack_factory()
    await _converse(stack.client, tenant)
    await stack.close(tenant)
    await _wait_for_episodes(graph_probe, tenant, 1)

    # The episode is visible in Neo4j a moment before the janitor acks it and books its cost.
    async def user_view() -> dict[str, Any]:
        return cast(
            dict[str, Any], (await stack.debug("user", tenantId=tenant, userId="user-1")).json()
        )

    # The view reads its parts one after another, not as one snapshot: wait for both.
    user = await eventually(
        user_view,
        lambda view: view["usage"]["episodes"] > 0 and bool(view["recentCosts"]),
        what="the episode's cost booked",
    )
    outbox = (await stack.debug("outbox", tenantId=tenant)).json()

    llm_calls = sum(
        1 for r in standin_fresh.records if r.path == "/v1/responses" and r.status == 200
    )
    assert user["usage"]["episodes"] == 1
    assert user["usage"]["llmCalls"] >= 1
    assert user["usage"]["inputTokens"] > 0
    assert user["usage"]["outputTokens"] > 0
    assert user["recentCosts"][0]["episodeUuid"] == episode_uuid(
        tenant, "user-1", "session-1", 1, 0
    )
    assert outbox["usage"] == user["usage"]
    # Every call the stand-in served for extraction was counted (summaries are not episodes).
    summary_calls = sum(1 for r in standin_fresh.records if r.schema_name == "RollingSummary")
    assert user["usage"]["llmCalls"] == llm_calls - summary_calls


@pytest.mark.parametrize(
    "path",
    [
        "session?tenantId=t&userId=u&sessionId=s",
        "user?tenantId=t&userId=u",
        "outbox?tenantId=t",
    ],
)
async def test_debug_endpoints_need_the_internal_token(api_factory: ApiFactory, path: str) -> None:
    closed = api_factory()
    guarded = api_factory(INTERNAL_TOKEN=INTERNAL_TOKEN)
    async with httpx.AsyncClient() as http:
        hidden = await http.get(
            f"{closed.base_url}/internal/debug/{path}", headers={"X-Internal-Token": "anything"}
        )
        missing = await http.get(f"{guarded.base_url}/internal/debug/{path}")
        wrong = await http.get(
            f"{guarded.base_url}/internal/debug/{path}", headers={"X-Internal-Token": "nope"}
        )
        right = await http.get(
            f"{guarded.base_url}/internal/debug/{path}",
            headers={"X-Internal-Token": INTERNAL_TOKEN},
        )

    assert hidden.status_code == 404
    assert missing.status_code == 401
    assert missing.json()["error"] == "unauthorized"
    assert wrong.status_code == 401
    assert right.status_code == 200


@pytest.mark.parametrize(
    "path",
    [
        "close_session?tenantId=t&userId=u&sessionId=s",
        "close_user_sessions?tenantId=t&userId=u",
        "emit_raw_episode?tenantId=t&userId=u&sessionId=s",
        "emit_raw_user_sessions?tenantId=t&userId=u",
    ],
)
async def test_debug_actions_need_the_internal_token(api_factory: ApiFactory, path: str) -> None:
    closed = api_factory()
    guarded = api_factory(INTERNAL_TOKEN=INTERNAL_TOKEN)
    async with httpx.AsyncClient() as http:
        hidden = await http.post(f"{closed.base_url}/internal/debug/{path}")
        missing = await http.post(f"{guarded.base_url}/internal/debug/{path}")

    assert hidden.status_code == 404
    assert missing.status_code == 401


async def test_debug_close_user_sessions_closes_every_open_session(
    stack_factory: StackFactory, tenant: str, graph_probe: GraphProbe
) -> None:
    stack = await stack_factory()
    await _converse(stack.client, tenant, session="s1")
    await _converse(stack.client, tenant, session="s2", text="I need to call Ashley")

    closed = (
        await stack.debug_post("close_user_sessions", tenantId=tenant, userId="user-1")
    ).json()
    await _wait_for_episodes(graph_probe, tenant, 2)

    assert sorted((s["sessionId"], s["status"]) for s in closed["sessions"]) == [
        ("s1", "closed"),
        ("s2", "closed"),
    ]


async def test_facts_are_only_those_valid_at_the_reference_time(
    stack_factory: StackFactory, tenant: str, graph_probe: GraphProbe
) -> None:
    stack = await stack_factory()
    await _converse(stack.client, tenant)
    await stack.close(tenant)
    await _wait_for_episodes(graph_probe, tenant, 1)

    async def facts_at(moment: str) -> list[str]:
        answer = await stack.client.memory_query(
            MemoryQueryRequest(
                tenant_id=tenant, user_id="user-1", query="dentist", reference_time=at(moment)
            )
        )
        return [fact.text for fact in answer.facts]

    # The conversation happened on 2026-02-03: a month earlier nothing of it was true yet.
    assert await facts_at("2026-01-01T00:00:00Z") == []
    assert any("dentist" in text.lower() for text in await facts_at("2026-02-04T00:00:00Z"))


@pytest.mark.parametrize(
    ("body", "field"),
    [
        pytest.param({"limit": 0}, "limit", id="limit-zero"),
        pytest.param({"limit": 51}, "limit", id="limit-over-max"),
        pytest.param({"limit": "10"}, "limit", id="limit-a-string"),
        pytest.param({"query": ""}, "query", id="empty-query"),
        pytest.param({"referenceTime": "soon"}, "referenceTime", id="bad-reference-time"),
        pytest.param({"sessionId": "s"}, "sessionId", id="unknown-field"),
    ],
)
async def test_invalid_memory_query_is_a_422_naming_the_field(
    api: RunningApi, tenant: str, body: dict[str, object], field: str
) -> None:
    async with httpx.AsyncClient(base_url=api.base_url) as http:
        response = await http.post(
            "/memory/query", json={"tenantId": tenant, "userId": "u", "query": "x", **body}
        )

    assert response.status_code == 422, response.text
    assert response.json()["field"] == field


async def test_retry_after_from_the_llm_delays_the_next_attempt(
    stack_factory: StackFactory, standin_fresh: StandinServer, tenant: str, graph_probe: GraphProbe
) -> None:
    stack = await stack_factory()
    # Two: the close also queues the rolling summary, whose model call may come first.
    standin_fresh.inject_failures(429, count=2, retry_after=30, paths="/v1/responses")
    await _converse(stack.client, tenant)
    await stack.close(tenant)

    outbox = await stack.outbox_when(
        tenant, lambda o: o["counts"]["retrying"] == 1, "an entry waiting to retry"
    )
    entry = outbox["entries"][0]
    waited = at(entry["nextAttemptAt"]) - at(entry["createdAt"])
    # Backoff alone would be 200 ms here; the server asked for 30 s.
    assert waited.total_seconds() >= 30
    assert "RateLimit" in entry["lastError"]
    assert await _episodes(graph_probe, tenant) == 0

    # Operators can still force it: emit now ignores the schedule.
    emitted = await stack.debug_post(
        "emit_raw_episode", tenantId=tenant, userId="user-1", sessionId="session-1"
    )
    assert emitted.json()["acked"] == 1
    assert await _episodes(graph_probe, tenant) == 1


async def test_a_routing_uri_serves_every_read_and_write(
    stack_factory: StackFactory,
    tenant: str,
    graph_probe: GraphProbe,
    backing_services: BackingServices,
) -> None:
    """`neo4j://` (what a Neo4j cluster or Aura needs: the driver routes reads to followers and
    writes to the leader) works end to end against a single server: flush, query, narrative
    brief, export, deletion."""
    routing = backing_services.neo4j_uri.replace("bolt://", "neo4j://", 1)
    stack = await stack_factory(NEO4J_URI=routing)
    text = "I'm at a noisy cafe. I feel frustrated. I need to fix the flaky tests."
    await _converse(stack.client, tenant, text=text)
    await stack.close(tenant)
    await _wait_for_episodes(graph_probe, tenant, 1)

    found = await stack.client.memory_query(
        MemoryQueryRequest(tenant_id=tenant, user_id="user-1", query="flaky tests")
    )
    narrative = await stack.client.session_brief(
        tenant_id=tenant, user_id="user-1", now="2026-02-03T23:35:00Z"
    )
    export = await stack.http.get("/users/export", params={"tenantId": tenant, "userId": "user-1"})
    deleted = await stack.http.delete("/users", params={"tenantId": tenant, "userId": "user-1"})

    assert routing.startswith("neo4j://")
    assert any("flaky tests" in fact.text.lower() for fact in found.facts)
    assert any("flaky tests" in loop.description.lower() for loop in narrative.active_loops)
    assert len(export.json()["episodes"]) == 1
    assert deleted.json()["graphNodes"] > 0
    assert await graph_probe.episode_count(group_id(tenant, "user-1")) == 0
