"""Every store script and repository, on each Redis deployment Synapse supports: a standalone
primary, a real Redis Cluster (3 masters, 3 replicas) and a primary behind three sentinels,
with and without REDIS_WAIT_REPLICAS. One code path: the same calls, the same answers."""

import time
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime

import pytest

from service.store.client import Connection, Store
from service.store.errors import NotReplicated
from service.store.layout import UserKeys
from service.store.lua import Replication
from service.store.sessions import NewTurn
from service.store.usage import EpisodeCost
from tests.support.redis_topology import ClusterTopology, SentinelTopology
from tests.support.services import BackingServices

RETENTION = 60


def _connection(request: pytest.FixtureRequest, mode: str, replicas: int) -> Connection:
    replication = Replication(replicas=replicas, timeout_ms=2_000)
    if mode == "cluster":
        cluster: ClusterTopology = request.getfixturevalue("redis_cluster")
        return Connection(mode="cluster", url=cluster.seed_url, replication=replication)
    if mode == "sentinel":
        sentinel: SentinelTopology = request.getfixturevalue("redis_sentinel")
        return Connection(
            mode="sentinel",
            sentinels=tuple(sentinel.sentinels),
            sentinel_master=sentinel.master_name,
            replication=replication,
        )
    services: BackingServices = request.getfixturevalue("backing_services")
    return Connection(url=services.redis_url, replication=replication)


@pytest.fixture(
    params=[
        ("standalone", 0),
        ("cluster", 0),
        ("cluster", 1),
        ("sentinel", 0),
        ("sentinel", 1),
    ],
    ids=lambda p: f"{p[0]}-wait{p[1]}",
)
async def store(request: pytest.FixtureRequest) -> AsyncIterator[Store]:
    mode, replicas = request.param
    connected = Store.connect(
        _connection(request, mode, replicas), retention_seconds=RETENTION, audit_max_entries=100
    )
    yield connected
    await connected.close()


def _turn(text: str, at_ms: int, message_id: str | None = None) -> NewTurn:
    return NewTurn(
        role="user",
        text=text,
        timestamp=datetime.fromtimestamp(at_ms / 1000, tz=UTC),
        message_id=message_id,
    )


async def test_sessions_briefs_and_closes(store: Store) -> None:
    user = UserKeys(f"t-{uuid.uuid4().hex[:8]}", "user:{1}")
    now = int(time.time() * 1000)
    s1, s2 = user.session("s1"), user.session("s2")
    sessions = store.sessions

    first = await sessions.append_turn(
        s1, _turn("I adopted a puppy", now, "m1"), persona_id="p", now_ms=now
    )
    retried = await sessions.append_turn(
        s1, _turn("I adopted a puppy", now, "m1"), persona_id="p", now_ms=now
    )
    await sessions.remember_timezone(user, "Europe/Paris")
    brief = await sessions.read_brief(user, "s1", turns=5)
    newest = await sessions.read_brief(user, None, turns=5)
    idle = await sessions.idle_sessions(cutoff_ms=now + 1, limit=10)
    closed = await sessions.close_session(s1, now_ms=now + 10)
    again = await sessions.close_session(s1, now_ms=now + 20)
    # A new session has no turns yet: the brief continues from the most recent other one.
    fresh = await sessions.read_brief(user, "s2", turns=5)
    transcript = await sessions.ingest_transcript(
        s2, [_turn("the vet said Rex is fine", now + 30)], persona_id=None, now_ms=now + 40
    )

    assert (first.stored, retried.stored, first.buffer_size) == (True, False, 1)
    assert (brief.timezone, brief.buffer_size) == ("Europe/Paris", 1)
    assert [t.text for t in brief.recent_turns] == ["I adopted a puppy"]
    assert [t.text for t in newest.recent_turns] == ["I adopted a puppy"]
    assert s1 in idle
    assert (closed.status, again.status, again.generation) == ("closed", "already_closed", 1)
    assert [t.text for t in fresh.recent_turns] == ["I adopted a puppy"]
    assert (transcript.stored, transcript.close.status) == (1, "closed")
    assert await sessions.open_session_count() >= 0
    assert await sessions.flushed_generation(s1) == 0
    assert [s.session_id for s, _ in await sessions.sessions_by_activity(user)] == ["s2", "s1"]

    # Past the retention, a close forgets the user's old closed sessions from its index.
    later = now + (RETENTION + 5) * 1000
    await sessions.append_turn(
        user.session("s3"), _turn("new day", later), persona_id=None, now_ms=later
    )
    await sessions.close_session(user.session("s3"), now_ms=later)
    assert [s.session_id for s, _ in await sessions.sessions_by_activity(user)] == ["s3"]


async def test_the_outbox_leases_acknowledges_fails_and_redrives(store: Store) -> None:
    tenant = f"t-{uuid.uuid4().hex[:8]}"
    user = UserKeys(tenant, "u1")
    now = int(time.time() * 1000)
    sessions, outbox = store.sessions, store.outbox
    for name in ("a", "b"):
        session = user.session(name)
        await sessions.append_turn(session, _turn(f"turn {name}", now), persona_id=None, now_ms=now)
        await sessions.close_session(session, now_ms=now)

    due = await outbox.due_users(now_ms=now + 1, limit=1000)
    lease = await outbox.acquire(user, ttl_ms=30_000)
    assert lease is not None
    assert await outbox.acquire(user, ttl_ms=30_000) is None
    assert await outbox.renew(lease, ttl_ms=30_000)
    head = await outbox.head(user)
    assert head is not None
    assert [t.text for t in await outbox.transcript(head)] == ["turn a"]
    cost = EpisodeCost(
        episode_uuid="e-1",
        session_id="a",
        llm_calls=5,
        input_tokens=100,
        output_tokens=20,
        at_ms=now,
    )
    assert await outbox.chunk_done(lease, head, 1, "e-1", cost)
    await store.usage.record_for_tenant(tenant, cost)
    assert await outbox.ack(lease, head, now_ms=now)
    second = await outbox.head(user)
    assert second is not None
    failed = await outbox.fail(
        lease,
        second,
        error="model down",
        now_ms=now,
        max_attempts=1,
        base_backoff_ms=10,
        max_backoff_ms=10,
        retry_after_ms=None,
    )
    await outbox.settle_if_empty(user)
    dead = await outbox.dead_entries(limit=1000)
    depth = await outbox.depth()
    await outbox.schedule(lease, at_ms=now)
    await outbox.release(lease)
    redriven = await outbox.redrive(second.entry_id, now_ms=now)
    await outbox.expedite(user, now_ms=now)
    listed = await outbox.entries_for_tenant(tenant, limit=10)
    taken = await outbox.take_over(user, ttl_ms=30_000)
    again = await outbox.head(user)
    assert again is not None
    await outbox.fail(
        taken, again, error="x", now_ms=now, max_attempts=1, base_backoff_ms=1,
        max_backoff_ms=1, retry_after_ms=None,
    )  # fmt: skip
    purged = await outbox.purge_dead(died_before_ms=now + 1, limit=1000)

    assert user in due
    assert failed.state == "dead"
    assert second.entry_id in [e.entry_id for e in dead]
    assert depth.dead >= 1
    assert redriven == user
    assert [e.session_id for e in listed] == ["b"]
    assert taken.fence > lease.fence
    assert purged >= 1
    assert await outbox.user_entry_ids(user) == []
    assert await outbox.recent_episodes(user) == ["e-1"]
    totals = await store.usage.user_totals(user)
    assert (totals.episodes, totals.llm_calls) == (1, 5)
    assert (await store.usage.tenant_totals(tenant)).llm_calls == 5
    assert [c.episode_uuid for c in await store.usage.recent_costs(user)] == ["e-1"]


async def test_summaries_admission_audit_counters_and_deletion(store: Store) -> None:
    tenant = f"t-{uuid.uuid4().hex[:8]}"
    user = UserKeys(tenant, "u1")
    now = int(time.time() * 1000)
    for n in range(3):
        await store.sessions.append_turn(
            user.session("s"), _turn(f"turn {n}", now + n), persona_id=None, now_ms=now
        )
    pending = await store.summaries.read(user, batch=2)
    written = await store.summaries.write(user, pending, "likes dogs", "Ana")
    left = await store.summaries.read(user, batch=10)
    named = (await store.sessions.profile(user)).get("name")
    admitted = await store.admission.spend(
        tenant, requests_per_second=1, burst=1, turns=1, turns_per_day=10
    )
    refused = await store.admission.spend(
        tenant, requests_per_second=1, burst=1, turns=1, turns_per_day=10
    )
    await store.audit.record(actor="op", action="delete", target=tenant, outcome=200)
    await store.counters.add({"sweeps": 1}, {"sweepSecondsSum": 0.5})
    async with store.graph_prepare_lock():
        pass
    await store.sessions.close_session(user.session("s"), now_ms=now)
    removed = await store.footprints.delete(user)

    assert [t.text for t in pending.turns] == ["turn 0", "turn 1"]
    assert written
    assert [t.text for t in left.turns] == ["turn 2"]
    assert (left.previous, named) == ("likes dogs", "Ana")
    assert (admitted.allowed, refused.allowed, refused.refused_by) == (True, False, "rate")
    assert (await store.audit.latest(limit=1))[0].target == tenant
    assert int((await store.counters.read())["sweeps"]) >= 1
    assert removed > 0
    assert await store.sessions.sessions_by_activity(user) == []
    assert await store.outbox.user_entry_ids(user) == []
    assert await store.sessions.profile(user) == {}


async def test_a_write_no_replica_confirms_is_not_acknowledged(
    backing_services: BackingServices,
) -> None:
    """REDIS_WAIT_REPLICAS=1 on a primary without replicas: every write times out into
    NotReplicated (the API answers 503), never into an acknowledgement."""
    lonely = Store.connect(
        Connection(url=backing_services.redis_url, replication=Replication(1, timeout_ms=50)),
        retention_seconds=RETENTION,
        audit_max_entries=100,
    )
    user = UserKeys(f"t-{uuid.uuid4().hex[:8]}", "u1")
    now = int(time.time() * 1000)
    try:
        with pytest.raises(NotReplicated, match="0 of 1 replicas"):
            await lonely.sessions.append_turn(
                user.session("s"), _turn("hi", now), persona_id=None, now_ms=now
            )
        # The retry of the same turn is refused the same way: nothing confirms it either.
        with pytest.raises(NotReplicated):
            await lonely.sessions.append_turn(
                user.session("s"), _turn("hi", now), persona_id=None, now_ms=now
            )
        # Reads do not wait.
        brief = await lonely.sessions.read_brief(user, "s", turns=5)
        assert [t.text for t in brief.recent_turns] == ["hi"]
    finally:
        await lonely.close()
