"""A Redis written in the layout before buckets (2026-12-02) keeps everything it acknowledged
once `python -m service.store.migrate` has run: open sessions, queued and dead outbox entries,
usage. The old key names below are that historical format, written by hand on purpose."""

import json
import os
import subprocess
import sys
import time

from redis.asyncio import Redis

from service.store.client import Store
from service.store.layout import UserKeys
from tests.support.services import REPO, BackingServices

TURN = json.dumps(
    {"role": "user", "text": "my dog Rex is ill", "timestamp": "2026-11-30T10:00:00Z"}
)


async def _write_old_layout(redis: Redis, now_ms: int) -> None:
    user = "syn:u:acme:user%3A1"
    await redis.hset(f"{user}:profile", mapping={"timezone": "Europe/Paris", "summarySeq": "1"})
    await redis.zadd(f"{user}:sessions", {"open-1": now_ms, "closed-1": now_ms - 1000})
    await redis.hset(f"{user}:s:open-1", mapping={"state": "open", "generation": "1"})
    await redis.rpush(f"{user}:s:open-1:buf", TURN)
    await redis.rpush(f"{user}:s:open-1:recent", TURN)
    await redis.sadd(f"{user}:s:open-1:seen", "m:1")
    await redis.expire(f"{user}:s:open-1:seen", 3600)
    await redis.zadd("syn:idle", {"acme user%3A1 open-1": now_ms})
    queued, dead = "acme:user%3A1:closed-1:1", "acme:user%3A1:closed-0:1"
    await redis.hset(
        f"syn:ob:e:{queued}",
        mapping={
            "tenantId": "acme",
            "userId": "user:1",
            "sessionId": "closed-1",
            "generation": "1",
            "state": "pending",
            "turns": "1",
        },
    )
    await redis.rpush(f"syn:ob:e:{queued}:turns", TURN)
    await redis.hset(
        f"syn:ob:e:{dead}",
        mapping={
            "tenantId": "acme",
            "userId": "user:1",
            "sessionId": "closed-0",
            "generation": "1",
            "state": "dead",
        },
    )
    await redis.rpush(f"{user}:outbox", queued)
    await redis.zadd("syn:ob:due", {"acme user%3A1": now_ms})
    await redis.zadd("syn:ob:dead", {dead: now_ms})
    await redis.zadd("syn:ob:tenant:acme", {queued: now_ms, dead: now_ms - 5})
    await redis.hset("syn:usage:tenant:acme", mapping={"episodes": "3", "llmCalls": "15"})
    await redis.set("syn:quota:turns:acme:20422", "12")


def _migrate(url: str) -> str:
    done = subprocess.run(
        [sys.executable, "-m", "service.store.migrate"],
        env={**os.environ, "REDIS_URL": url},
        cwd=REPO,
        capture_output=True,
        text=True,
        check=True,
    )
    return done.stdout


async def test_the_migration_keeps_sessions_entries_and_usage_and_is_idempotent(
    redis: Redis, backing_services: BackingServices
) -> None:
    redis_url = backing_services.redis_url
    now_ms = int(time.time() * 1000)
    await _write_old_layout(redis, now_ms)

    first = _migrate(redis_url)
    second = _migrate(redis_url)

    assert "0 keys renamed, 0 index members moved" in second, second
    # Profile, sessions, outbox, 4 session keys, 2 queued entry keys, 1 dead, tenant usage.
    assert first.startswith("migrated: 11 keys renamed, 5 index members moved"), first
    assert [k for k in await redis.keys("syn:*") if k.startswith(("syn:u:", "syn:ob:"))] == []
    store = Store.connect(redis_url, retention_seconds=3600, audit_max_entries=100)
    try:
        user = UserKeys("acme", "user:1")
        brief = await store.sessions.read_brief(user, "open-1", turns=10)
        assert (brief.timezone, brief.buffer_size) == ("Europe/Paris", 1)
        assert [t.text for t in brief.recent_turns] == ["my dog Rex is ill"]
        assert await redis.ttl(user.session("open-1").seen) > 0
        idle = await store.sessions.idle_sessions(cutoff_ms=now_ms + 1, limit=10)
        assert idle == [user.session("open-1")]
        assert await store.outbox.due_users(now_ms=now_ms + 1, limit=10) == [user]
        head = await store.outbox.head(user)
        assert head is not None
        assert head.session_id == "closed-1"
        assert [t.text for t in await store.outbox.transcript(head)] == ["my dog Rex is ill"]
        assert [e.session_id for e in await store.outbox.dead_entries(limit=10)] == ["closed-0"]
        listed = await store.outbox.entries_for_tenant("acme", limit=10)
        assert [e.session_id for e in listed] == ["closed-0", "closed-1"]
        totals = await store.usage.tenant_totals("acme")
        assert (totals.episodes, totals.llm_calls) == (3, 15)
        # The user's session index moved with its sessions, newest first.
        assert [s.session_id for s, _ in await store.sessions.sessions_by_activity(user)] == [
            "open-1",
            "closed-1",
        ]
    finally:
        await store.close()
