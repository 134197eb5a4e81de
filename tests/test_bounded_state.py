"""State is bounded: a closed and flushed session leaves nothing per-session in Redis after
SESSION_RETENTION_SECONDS, dead letters go after DEAD_LETTER_RETENTION_SECONDS, and the rolling
summary's backlog drops exactly the turns it folded in."""

import asyncio
from datetime import UTC, datetime, timedelta

import httpx
from redis.asyncio import Redis

from service.memory.episodes import group_id
from service.store.layout import UserKeys
from tests.standin.server import StandinServer
from tests.support.api import ApiFactory
from tests.support.builders import ingest_body, turn
from tests.support.gated_upstream import GatedUpstream
from tests.support.graph_probe import GraphProbe
from tests.support.janitor import JanitorFactory
from tests.support.redis_state import bucket_index_total, user_keys
from tests.support.stack import StackFactory
from tests.support.waiting import eventually


async def test_a_closed_and_flushed_session_leaves_nothing_per_session_after_the_retention(
    stack_factory: StackFactory, tenant: str, graph_probe: GraphProbe, redis: Redis
) -> None:
    stack = await stack_factory(SESSION_RETENTION_SECONDS="5")
    for text in ("I need to call the bank", "and renew my passport"):
        await stack.client.ingest(turn(tenant, text))
    await stack.close(tenant)
    assert await redis.exists(UserKeys(tenant, "user-1").session("session-1").meta) == 1
    await stack.outbox_when(tenant, lambda o: o["entries"] == [], "the episode acknowledged")
    assert await graph_probe.processed_episode_count(group_id(tenant, "user-1")) == 1

    remaining = await eventually(
        lambda: user_keys(redis, tenant, "user-1"),
        lambda keys: not any(":s:" in key or key.endswith(":sessions") for key in keys),
        within=30,
        what="the session's keys to expire",
    )

    # What stays is per user, a fixed set: profile, recent episode ids, usage, costs, summary
    # backlog, lease token.
    suffixes = {key.rsplit(":", 1)[1] for key in remaining}
    assert suffixes <= {"profile", "episodes", "usage", "costs", "summary_pending", "fence"}
    brief = await stack.http.post("/brief", json={"tenantId": tenant, "userId": "user-1"})
    assert brief.status_code == 200


async def test_dead_letters_are_deleted_after_their_retention(
    stack_factory: StackFactory, standin_fresh: StandinServer, tenant: str, redis: Redis
) -> None:
    standin_fresh.fail_forever(500, paths=["responses", "chat"])
    stack = await stack_factory(JANITOR_MAX_ATTEMPTS="1", DEAD_LETTER_RETENTION_SECONDS="2")
    await stack.client.ingest(turn(tenant, "I need to water the plants"))
    await stack.close(tenant)
    await stack.outbox_when(tenant, lambda o: o["counts"]["dead"] == 1, "the entry dead-lettered")

    await stack.outbox_when(tenant, lambda o: o["entries"] == [], "the dead letter purged")

    assert await bucket_index_total(redis, "outbox_dead") == 0
    assert [k for k in await user_keys(redis, tenant, "user-1") if ":e:" in k] == []
    metrics = (await stack.http.get("/metrics")).text
    assert "synapse_dead_letters_purged_total 1.0" in metrics


async def test_the_rolling_summary_drops_exactly_the_turns_it_folded_in(
    api_factory: ApiFactory,
    janitor_factory: JanitorFactory,
    llm_env: dict[str, str],
    standin_fresh: StandinServer,
    tenant: str,
    redis: Redis,
) -> None:
    # The summariser folds in 200 turns per model call; the backlog is capped at 500 turns.
    with GatedUpstream(standin_fresh, holds=lambda body: b"running summary" in body) as gate:
        env = {**llm_env, "OPENAI_BASE_URL": gate.base_url, "SUMMARY_EVERY_TURNS": "1000"}
        api = api_factory(**env)
        janitor_factory(**env)
        start = datetime.now(UTC) - timedelta(hours=2)
        messages = [
            {
                "role": "user",
                "text": f"turn {n}",
                "timestamp": (start + timedelta(seconds=n)).isoformat(),
            }
            for n in range(500)
        ]
        async with httpx.AsyncClient(base_url=api.base_url, timeout=30) as http:
            sent = await http.post(
                "/session/ingest",
                json={
                    "tenantId": tenant,
                    "userId": "user-1",
                    "sessionId": "s1",
                    "messages": messages,
                },
            )
            assert sent.status_code == 200
            # The close queued a summary of turns 0-199; its model call is in flight...
            assert await asyncio.to_thread(gate.arrived.wait, 30)
            # ...while ten more turns push the backlog over its cap (turns 0-9 leave it).
            for n in range(500, 510):
                more = ingest_body(tenant, sessionId="s2", text=f"turn {n}", messageId=f"m{n}")
                assert (await http.post("/ingest", json=more)).status_code == 200
            gate.gate.set()
            pending = UserKeys(tenant, "user-1").summary_pending
            await eventually(
                lambda: redis.llen(pending), lambda n: n < 500, what="the summary written"
            )

    first = await redis.lindex(UserKeys(tenant, "user-1").summary_pending, 0)
    assert first is not None
    # Turns 200-209 were never summarised: they must still be waiting.
    assert '"text":"turn 200"' in first
    assert await redis.llen(UserKeys(tenant, "user-1").summary_pending) == 310
