"""A Jepsen-style run: steady load on three tenants, a seeded schedule of faults (kill -9 and
SIGSTOP of janitors and the API, Redis kill -9, a Neo4j restart, model errors and stalls),
then heal, drain, and check what Redis and Neo4j really hold against what was acknowledged.

`make test` runs a short schedule with a fixed seed. `make chaos SEED=123 MINUTES=10` runs a
long one (CHAOS_SEED, CHAOS_MINUTES). Same seed, same fault schedule (the exact interleaving
with the load still depends on timing)."""

import asyncio
import os
import random
import time
from typing import Any

import httpx
import pytest
from neo4j import AsyncGraphDatabase
from redis.asyncio import Redis

from tests.chaos.checker import Violations, run_checks
from tests.chaos.cluster import INTERNAL_TOKEN, Cluster
from tests.chaos.faults import Nemesis
from tests.chaos.load import Load, Tenant, new_http
from tests.chaos.timeline import Timeline
from tests.support.redis_state import ANY_USER_KEY, bucket_index_total

DEFAULT_SEED = 20260203
SHORT_SCHEDULE_SECONDS = 55.0
SEED = int(os.environ.get("CHAOS_SEED") or DEFAULT_SEED)
MINUTES = os.environ.get("CHAOS_MINUTES")
SCHEDULE_SECONDS = float(MINUTES) * 60 if MINUTES else SHORT_SCHEDULE_SECONDS
DRAIN_SECONDS = 150 + SCHEDULE_SECONDS / 4
LLM_TIMEOUT_SECONDS = 3
CLIENTS = 6
DELETE_EVERY_SECONDS = 12.0

TENANTS = [
    Tenant("acme", "key-acme-0123456789", "tenantmarkacme"),
    Tenant("globex", "key-globex-0123456789", "tenantmarkglobex"),
    Tenant("initech", "key-initech-0123456789", "tenantmarkinitech"),
]


def replay_hint() -> str:
    minutes = MINUTES or f"{SHORT_SCHEDULE_SECONDS / 60:.3g}"
    return f"replay: make chaos SEED={SEED} MINUTES={minutes}"


async def _debug(http: httpx.AsyncClient, method: str, path: str, **params: str) -> Any:
    response = await http.request(
        method,
        f"/internal/debug/{path}",
        params=params,
        headers={"X-Internal-Token": INTERNAL_TOKEN},
    )
    response.raise_for_status()
    return response.json()


async def _busy(http: httpx.AsyncClient, redis: Redis) -> dict[str, Any]:
    """What is still in flight: empty when the outbox is drained and no janitor works."""
    busy: dict[str, Any] = {}
    for tenant in TENANTS:
        view = await _debug(http, "GET", "outbox", tenantId=tenant.tenant_id, limit="1000")
        if view["entries"] or any(view["counts"].values()):
            busy[f"outbox {tenant.tenant_id}"] = {
                "counts": view["counts"],
                "entries": [
                    (e["userId"], e["sessionId"], e["state"], e["attempts"], e["lastError"])
                    for e in view["entries"][:5]
                ],
            }
    leases = [k async for k in redis.scan_iter(match=f"{ANY_USER_KEY}:lease", count=1000)]
    # Rolling-summary jobs are not waited for: one whose janitor was killed -9 keeps arq's
    # in-progress key (and blocks its queued successor) until arq's job timeout (5 min). What
    # such a job may still write is checked anyway: a deleted user's summary is refused.
    counts = {
        "leases": len(leases),
        "due users": await bucket_index_total(redis, "outbox_due"),
        "open sessions": await bucket_index_total(redis, "idle"),
    }
    busy.update({name: n for name, n in counts.items() if n})
    return busy


async def _until(what: str, seconds: float, step: Any) -> tuple[bool, Any]:
    """Call `step` until it returns (True, ...) or `seconds` pass; errors are retried."""
    deadline = time.monotonic() + seconds
    last: Any = None
    while time.monotonic() < deadline:
        try:
            done, last = await step()
            if done:
                return True, last
        except (httpx.HTTPError, OSError, ConnectionError) as exc:
            last = f"{what}: {type(exc).__name__}: {exc}"
        await asyncio.sleep(1.0)
    return False, last


async def heal_and_drain(
    cluster: Cluster, load: Load, redis: Redis, v: Violations
) -> dict[str, Any]:
    await cluster.heal()
    async with new_http(cluster.base_url) as http:
        # A delete that was not acknowledged is retried (it is idempotent), so every retired
        # user ends up deleted and checked.
        for user in [u for u in load.users if u.retired and not u.delete_acked]:

            async def delete_once(user: Any = user) -> tuple[bool, Any]:
                return await load.delete(http, user), user.delete_attempts[-1]

            ok, last = await _until("delete", 60, delete_once)
            if not ok:
                v.add("harness: delete never acknowledged", f"{user.user_id!r}: {last}")
        for user in load.active_users():

            async def close_all(user: Any = user) -> tuple[bool, Any]:
                await _debug(
                    http,
                    "POST",
                    "close_user_sessions",
                    tenantId=user.tenant.tenant_id,
                    userId=user.user_id,
                    limit="1000",
                )
                return True, None

            ok, last = await _until("close sessions", 60, close_all)
            if not ok:
                v.add("harness: could not close sessions", f"{user.user_id!r}: {last}")

        quiet_polls = 0

        async def drained() -> tuple[bool, Any]:
            nonlocal quiet_polls
            busy = await _busy(http, redis)
            quiet_polls = 0 if busy else quiet_polls + 1
            return quiet_polls >= 3, busy

        started = time.monotonic()
        ok, last = await _until("drain", DRAIN_SECONDS, drained)
        if not ok:
            v.add(
                "outbox never drained",
                f"still busy after {DRAIN_SECONDS:.0f}s of healthy running: {last}",
            )
        return {"drain seconds": round(time.monotonic() - started, 1)}


async def run_load(load: Load, base_url: str, stop: asyncio.Event) -> None:
    async with new_http(base_url) as http:
        tasks = [load.client(http, stop, pace=1.0) for _ in range(CLIENTS)]
        tasks.append(load.deleter(http, stop, every=DELETE_EVERY_SECONDS))
        await asyncio.gather(*tasks)


@pytest.mark.timeout(int(480 + 1.5 * SCHEDULE_SECONDS))
async def test_chaos_schedule_keeps_every_invariant(capsys: pytest.CaptureFixture[str]) -> None:
    began = time.monotonic()
    with capsys.disabled():
        print(f"\nchaos: seed {SEED}, {SCHEDULE_SECONDS:.0f}s of faults ({replay_hint()})")
    timeline = Timeline()
    cluster = Cluster({t.tenant_id: t.key for t in TENANTS}, llm_timeout=LLM_TIMEOUT_SECONDS)
    violations = Violations()
    stats: dict[str, Any] = {}
    load = Load(cluster.base_url, TENANTS, random.Random(f"{SEED}-load"))
    nemesis = Nemesis(cluster, timeline, random.Random(SEED))
    try:
        await cluster.start()
        stats["setup seconds"] = round(time.monotonic() - began, 1)
        timeline.origin = time.monotonic()
        stop = asyncio.Event()
        load_task = asyncio.create_task(run_load(load, cluster.base_url, stop))
        try:
            await nemesis.run(SCHEDULE_SECONDS)
        finally:
            stop.set()
            await asyncio.wait_for(load_task, timeout=60)
        stats["schedule seconds"] = round(time.monotonic() - timeline.origin, 1)

        redis: Redis = Redis.from_url(cluster.services.redis_url, decode_responses=True)
        driver = AsyncGraphDatabase.driver(cluster.services.neo4j_uri, auth=("neo4j", ""))
        try:
            stats.update(await heal_and_drain(cluster, load, redis, violations))
            stats.update(await run_checks(redis, driver, load, timeline, violations))
        finally:
            await redis.aclose()
            await driver.close()
        stats.update(_load_stats(load))
        stats["total seconds"] = round(time.monotonic() - began, 1)
        report = (
            f"seed {SEED}; {replay_hint()}\n"
            f"stats: {stats}\n"
            f"fault timeline (seconds since the load began):\n{timeline.render()}\n"
        )
        if nemesis.failures:  # the harness's own trouble (healed afterwards), not a violation
            notes = "\n".join(f"  {f}" for f in nemesis.failures)
            report += f"fault steps that failed (then healed):\n{notes}\n"
        with capsys.disabled():
            print(f"chaos: {report}")
        if violations:
            pytest.fail(
                f"chaos run found {len(violations.items)} violation(s); {report}"
                f"violations:\n{violations.render()}\n\n{cluster.logs()}\n\n"
                f"seed {SEED}; {replay_hint()}",
                pytrace=False,
            )
    finally:
        await cluster.shutdown()
        if not violations:
            cluster.discard_logs()


def _load_stats(load: Load) -> dict[str, Any]:
    by_kind: dict[str, int] = {}
    for op in load.ops:
        by_kind[op.kind] = by_kind.get(op.kind, 0) + 1
    return {
        "requests": by_kind,
        "turns acknowledged": sum(len(u.acked) for u in load.users),
        "turns sent": sum(len(u.sent) for u in load.users),
        "users": len(load.users),
        "users deleted": sum(1 for u in load.users if u.delete_acked),
    }
