"""Janitor scale-out: episodes per minute with 1, 2 and 4 janitor processes, each figure next to
the 1-janitor figure of the same run (tests/bench/run.py, phase `scaling`).

It measures how the pump's work spreads over processes, not the 2-core CPU ceiling:

- the OpenAI stand-in (tests/standin) answers every request after BENCH_SCALING_LATENCY_MS
  (default 300 ms). The delay is an asyncio.sleep per request inside the stand-in's event loop,
  so concurrent requests wait side by side, never in a queue: an episode's 5 LLM and 4
  embedding requests make it LLM-bound (about 2.3 s of LLM wait), the way a real provider does;
- before any janitor works, a fresh tenant gets enough users with one closed 10-turn session
  each (one outbox entry, one episode) that the run never runs out; the sessions are closed
  with SessionStore.close_session, so no rolling-summary job competes with the flushes;
- the largest number of janitor processes (`python -m janitor`, wrapped by
  tests/bench/janitor_probe.py for per-episode timing) is started while the due index is held
  aside (renamed); all but the first are then paused (SIGSTOP, before they have seen a user)
  and the due index is put back. Each step of BENCH_SCALING_JANITORS resumes (SIGCONT) more of
  them, waits BENCH_SCALING_WARMUP seconds for the newcomers' first episode, and counts the
  entries acknowledged in the next BENCH_SCALING_SECONDS; the first step first waits until
  every slot has landed an episode (cold Neo4j, first connections). A last step stops all but
  one (SIGTERM, they drain) and measures 1 janitor again: the drift check on a shared machine.
  Starting the processes once keeps the 1, 2 and 4 figures on the same warm Neo4j and the run
  short; a paused process holds no lease and no connection anyone waits for;
- an entry is acknowledged when its id leaves the tenant's entry index (ACK_ENTRY), which is
  after its episode is in Neo4j; episodes/min = acknowledged in the window / window.

JANITOR_MAX_JOBS is the per-process parallelism; each value in BENCH_SCALING_JOBS is a set of
rows. With 1, a janitor works one user at a time: N processes should flush N users at once,
which is what scale-out means, and it needs little CPU (a few hundred ms per episode), so the
ratio shows whether the processes share the work; those rows carry the targets (2 janitors
>= 1.8x, 4 >= 3x). With the default 8, one janitor already keeps 8 episodes in flight and 4
keep 32; on 2 cores that is bound by CPU (Neo4j's writes and index updates), so those rows are
reported without a target.

Knobs: BENCH_SCALING_JANITORS=1,2,4 BENCH_SCALING_JOBS=1,8 BENCH_SCALING_LATENCY_MS=300
BENCH_SCALING_WARMUP=8 BENCH_SCALING_SECONDS=30 BENCH_SCALING_RECHECK=1 (about 6 minutes).
"""

import asyncio
import json
import math
import os
import signal
import statistics
import tempfile
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from tests.bench.run import (
    API_PORT,
    DIM,
    JANITOR_TURNS,
    PY,
    REDIS_URL,
    RUN_DIR,
    Process,
    Table,
    env_int,
    env_list,
    flush_redis,
    log,
    service_env,
)
from tests.support.redis_topology import running_cluster

JANITORS = env_list("BENCH_SCALING_JANITORS", "1,2,4")
MAX_JOBS = env_list("BENCH_SCALING_JOBS", "1,8")
CLUSTER_MAX_JOBS = env_list("BENCH_SCALING_CLUSTER_JOBS", "1")
LATENCY_MS = env_int("BENCH_SCALING_LATENCY_MS", 300)
WARMUP_SECONDS = env_int("BENCH_SCALING_WARMUP", 8)
WINDOW_SECONDS = env_int("BENCH_SCALING_SECONDS", 30)
RECHECK = env_int("BENCH_SCALING_RECHECK", 1) == 1
# The first step waits for one episode per slot, at most this long.
FIRST_WARMUP_MAX_SECONDS = 90
HELD_DUE_SUFFIX = ":bench-held"
# An episode at 300 ms per LLM call takes about 2.5 s: a slot lands at most ~0.4 per second.
USERS_PER_SLOT_SECOND = 0.45
TARGETS = {2: 1.8, 4: 3.0}


@dataclass(frozen=True)
class Target:
    """Where the store's data lives for a session: the bench's standalone Redis, or a Redis
    Cluster (arq's queue and the probe's timings then stay on the standalone one)."""

    label: str  # "" for standalone, else what the rows say
    url: str
    cluster: bool = False

    def env(self) -> dict[str, str]:
        if not self.cluster:
            return {}
        return {
            "REDIS_MODE": "cluster",
            "REDIS_URL": self.url,
            "JOB_QUEUE_REDIS_URL": REDIS_URL,
            "BENCH_TIMINGS_REDIS_URL": REDIS_URL,
        }

    def client(self, *, decode: bool = True) -> Any:
        from redis.asyncio import Redis, RedisCluster

        if self.cluster:
            return RedisCluster.from_url(self.url, decode_responses=decode)
        return Redis.from_url(self.url, decode_responses=decode)

    def connection(self) -> Any:
        from service.store.client import Connection

        return Connection(mode="cluster" if self.cluster else "standalone", url=self.url)

    async def flush(self) -> None:
        await flush_redis()
        if self.cluster:
            from redis.asyncio import RedisCluster

            client = self.client()
            try:
                await client.flushall(target_nodes=RedisCluster.PRIMARIES)
            finally:
                await client.aclose()


STANDALONE = Target("", REDIS_URL)


@dataclass
class Step:
    janitors: int
    max_jobs: int
    label: str = ""
    landed: int = 0  # acknowledged in the window
    seconds: float = 0.0
    warmup_s: float = 0.0
    exhausted: bool = False
    cpu_busy: float | None = None  # share of the machine's cores busy in the window
    janitor_cpu_s: float = 0.0
    wall_ms: list[float] = field(default_factory=list)
    llm_ms: list[float] = field(default_factory=list)
    requests: int = 0  # stand-in requests in the window

    @property
    def per_min(self) -> float | None:
        return self.landed / self.seconds * 60 if self.seconds and self.landed else None


@dataclass
class Session:
    max_jobs: int
    seeded: int
    start_s: float = 0.0  # launching the processes to the last "janitor started"
    steps: list[Step] = field(default_factory=list)
    retrying: int = 0
    dead: int = 0
    leases_lost: int = 0


def _cpu_times() -> tuple[int, int]:
    fields = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    idle = fields[3] + fields[4]  # idle + iowait
    return sum(fields) - idle, sum(fields)


async def _seed(tenant: str, users: int, target: Target) -> int:
    """`users` users of `tenant`, each with one closed session of JANITOR_TURNS turns."""
    from service.store.client import Store
    from service.store.layout import UserKeys
    from service.store.sessions import NewTurn
    from tests.support.redis_state import tenant_entry_count

    redis = target.client()
    connected = Store.connect(target.connection(), retention_seconds=3600, audit_max_entries=1000)
    store = connected.sessions
    now_ms = int(time.time() * 1000)
    first_ms = now_ms - JANITOR_TURNS * 5000

    async def one(i: int) -> None:
        session = UserKeys(tenant, f"u-{i}").session("s-1")
        for t in range(JANITOR_TURNS):
            text = (
                "I need to book the dentist before Friday and I feel stressed about the report."
                if t % 2 == 0
                else "Understood. I will remind you about the dentist on Thursday evening."
            )
            turn = NewTurn(
                role="user" if t % 2 == 0 else "assistant",
                text=text,
                timestamp=datetime.fromtimestamp((first_ms + t * 5000) / 1000, tz=UTC),
            )
            await store.append_turn(session, turn, persona_id="persona-1", now_ms=now_ms)
        await store.close_session(session, now_ms=now_ms)

    try:
        for start in range(0, users, 200):
            await asyncio.gather(*(one(i) for i in range(start, min(users, start + 200))))
        seeded = await tenant_entry_count(redis, tenant)
    finally:
        await redis.aclose()
        await connected.close()
    return seeded


async def _hold_due(hold: bool, target: Target) -> None:
    from service.store.layout import ALL_BUCKETS

    redis = target.client(decode=False)
    try:
        for bucket in ALL_BUCKETS:
            # The held copy shares the bucket's hash tag, so this works on a cluster too.
            held = f"{bucket.outbox_due}{HELD_DUE_SUFFIX}"
            source, target = (bucket.outbox_due, held) if hold else (held, bucket.outbox_due)
            if await redis.exists(source):
                await redis.rename(source, target)
    finally:
        await redis.aclose()


async def _wait_until(check: Callable[[], Awaitable[bool]], seconds: float) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if await check():
            return
        await asyncio.sleep(0.2)


def _signal(procs: list[Process], sig: signal.Signals) -> None:
    for p in procs:
        if p.popen.poll() is None:
            os.kill(p.pid, sig)


async def _drive(
    session: Session,
    tenant: str,
    procs: list[Process],
    standin: Any,
    slots_first: int,
    target: Target,
) -> None:
    """Resume more janitors step by step and count acknowledgements in each window."""
    from redis.asyncio import Redis

    from service.store.layout import JANITOR_COUNTERS as JANITOR_METRICS_KEY
    from tests.bench.janitor_probe import TIMINGS_KEY
    from tests.support.redis_state import tenant_entry_count

    redis = target.client()
    timings: Redis = Redis.from_url(REDIS_URL, decode_responses=True)

    async def acked() -> int:
        left = await tenant_entry_count(redis, tenant)
        return session.seeded - left

    async def window(step: Step, running: list[Process]) -> None:
        count0 = await acked()
        timings_from = await timings.llen(TIMINGS_KEY)
        requests0 = sum(standin.calls.values())
        busy0, total0 = _cpu_times()
        cpu0 = sum(p.cpu_seconds() for p in running)
        start = time.monotonic()
        end = start + WINDOW_SECONDS
        count = count0
        while time.monotonic() < end:
            await asyncio.sleep(min(0.2, max(0.0, end - time.monotonic())))
            count = await acked()
            if count >= session.seeded:
                step.exhausted = True
                break
        step.seconds = time.monotonic() - start
        step.landed = count - count0
        busy1, total1 = _cpu_times()
        step.cpu_busy = (busy1 - busy0) / max(1, total1 - total0)
        step.janitor_cpu_s = sum(p.cpu_seconds() for p in running) - cpu0
        step.requests = sum(standin.calls.values()) - requests0
        landed = [json.loads(raw) for raw in await timings.lrange(TIMINGS_KEY, timings_from, -1)]
        step.wall_ms = [t["wall"] * 1000 for t in landed]
        step.llm_ms = [t["llm"] * 1000 for t in landed]
        log(
            f"scaling: {step.janitors} janitor(s) x JANITOR_MAX_JOBS={step.max_jobs}{step.label}:"
            f" {step.landed} episodes in {step.seconds:.0f}s = {step.per_min} /min, "
            f"CPU busy {step.cpu_busy:.2f}, warm-up {step.warmup_s:.0f}s"
        )

    try:
        await _hold_due(False, target)
        running = 0
        for n in JANITORS:
            step = Step(n, session.max_jobs)
            resumed = procs[running:n]
            _signal(resumed, signal.SIGCONT)
            running = max(running, n)
            began = time.monotonic()
            await asyncio.sleep(WARMUP_SECONDS)
            if not session.steps:
                # Cold Neo4j and first connections: wait for one episode per slot.
                async def warm() -> bool:
                    return await acked() >= slots_first

                await _wait_until(warm, FIRST_WARMUP_MAX_SECONDS - (time.monotonic() - began))
            step.warmup_s = time.monotonic() - began
            await window(step, procs[:running])
            session.steps.append(step)
        if RECHECK and running > 1:
            step = Step(1, session.max_jobs, label=" again (drift check)")
            began = time.monotonic()
            _signal(procs[1:], signal.SIGTERM)

            async def exited() -> bool:
                return all(p.popen.poll() is not None for p in procs[1:])

            await _wait_until(exited, 40)
            await asyncio.sleep(WARMUP_SECONDS)
            step.warmup_s = time.monotonic() - began
            await window(step, procs[:1])
            session.steps.append(step)
        metrics = await redis.hgetall(JANITOR_METRICS_KEY)
        session.retrying = int(metrics.get("entriesRetrying", 0))
        session.dead = int(metrics.get("entriesDead", 0))
        session.leases_lost = int(metrics.get("leasesLost", 0))
    finally:
        await redis.aclose()
        await timings.aclose()


def _stop_all(procs: list[Process], timeout: float = 40) -> None:
    """Resume whatever is paused, SIGTERM every janitor at once (each drains), then wait."""
    _signal(procs, signal.SIGCONT)
    _signal(procs, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    for p in procs:
        try:
            p.popen.wait(timeout=max(0.1, deadline - time.monotonic()))
        except Exception:
            p.popen.kill()
            p.popen.wait(timeout=10)


def scaling_session(
    env: dict[str, str], standin: Any, max_jobs: int, target: Target = STANDALONE
) -> Session:
    asyncio.run(target.flush())
    tenant = f"scale-{max_jobs}-{os.getpid()}-{int(time.time())}"
    per_step = WARMUP_SECONDS + WINDOW_SECONDS
    slot_seconds = sum(n * max_jobs * per_step for n in JANITORS) + max_jobs * (
        FIRST_WARMUP_MAX_SECONDS // 3 + (per_step if RECHECK else 0)
    )
    users = math.ceil(slot_seconds * USERS_PER_SLOT_SECOND) + 20
    started = time.monotonic()
    session = Session(max_jobs=max_jobs, seeded=asyncio.run(_seed(tenant, users, target)))
    log(f"scaling: {session.seeded} users queued in {time.monotonic() - started:.0f}s")
    asyncio.run(_hold_due(True, target))
    standin.set_latency(LATENCY_MS / 1000)
    procs: list[Process] = []
    try:
        launched = time.monotonic()
        for i in range(max(JANITORS)):
            name = f"janitor-scaling-{max_jobs}j-{i}"
            (RUN_DIR / f"{name}.log").unlink(missing_ok=True)
            procs.append(
                Process(
                    name,
                    [PY, "-m", "tests.bench.janitor_probe"],
                    {**env, **target.env(), "JANITOR_MAX_JOBS": str(max_jobs)},
                )
            )
        for p in procs:
            p.wait_for_log("janitor started")
        # Paused before they can see a user: the due index is still held aside.
        _signal(procs[JANITORS[0] :], signal.SIGSTOP)
        session.start_s = time.monotonic() - launched
        log(
            f"scaling: {len(procs)} janitors x JANITOR_MAX_JOBS={max_jobs} up in "
            f"{session.start_s:.0f}s; releasing the users to {JANITORS[0]}"
        )
        asyncio.run(_drive(session, tenant, procs, standin, JANITORS[0] * max_jobs, target))
    finally:
        _stop_all(procs)
        standin.set_latency(0)
    return session


def _describe(step: Step) -> str:
    wall = statistics.mean(step.wall_ms) if step.wall_ms else None
    llm = statistics.mean(step.llm_ms) if step.llm_ms else None
    n = max(1, step.landed)
    parts = [
        f"{step.landed} landed in {step.seconds:.0f}s",
        f"{wall:.0f} ms wall/episode of which {llm:.0f} ms LLM wait"
        if wall is not None and llm is not None
        else "",
        f"machine CPU {step.cpu_busy * 100:.0f} % busy" if step.cpu_busy is not None else "",
        f"janitor CPU {step.janitor_cpu_s / n * 1000:.0f} ms/episode",
        f"{step.requests / n:.1f} stand-in requests/episode",
        "RAN OUT of queued users" if step.exhausted else "",
    ]
    return ", ".join(p for p in parts if p)


def _rows(table: Table, session: Session, max_jobs: int, where: Target) -> None:
    base = next((s for s in session.steps if s.janitors == 1), None)
    base_rate = base.per_min if base else None
    for step in session.steps:
        gain = step.per_min / base_rate if step.per_min and base_rate else None
        target = TARGETS.get(step.janitors) if max_jobs == 1 and not step.label else None
        plural = "es" if step.janitors > 1 else ""
        table.add(
            f"janitor scale-out{where.label} @ {LATENCY_MS} ms/LLM call: episodes/min, "
            f"{step.janitors} janitor process{plural}{step.label}, "
            f"JANITOR_MAX_JOBS={max_jobs} each ({_describe(step)})",
            "n/a" if step.per_min is None else f"{step.per_min:.1f}",
            "n/a" if base_rate is None else f"{base_rate:.1f} (1 janitor)",
            "n/a" if gain is None else f"{gain:.2f}x",
            f">= {target:g}x" if target else "report",
            # As printed: a window a few ms over 30 s must not turn 3.00x into a miss.
            (gain is not None and round(gain, 2) >= target) if target else None,
        )
    if session.retrying or session.dead or session.leases_lost:
        table.notes.append(
            f"Janitor scale-out{where.label}, JANITOR_MAX_JOBS={max_jobs}: {session.retrying} "
            f"retries, {session.dead} dead entries, {session.leases_lost} leases lost."
        )


def scaling_phase(table: Table) -> None:
    from tests.standin.server import StandinServer

    env = service_env(
        API_PORT,
        LLM_PROVIDER="openai",
        OPENAI_API_KEY="bench-key",
        LLM_MODEL="standin-large",
        LLM_SMALL_MODEL="standin-small",
        SESSION_IDLE_SECONDS="86400",
        JANITOR_SWEEP_SECONDS="3600",
        LOG_LEVEL="INFO",
    )
    with StandinServer(embedding_dim=DIM) as standin:
        env["OPENAI_BASE_URL"] = standin.base_url
        for max_jobs in MAX_JOBS:
            _rows(table, scaling_session(env, standin, max_jobs), max_jobs, STANDALONE)
        if CLUSTER_MAX_JOBS:
            with (
                tempfile.TemporaryDirectory(prefix="bench-scaling-cluster-") as root,
                running_cluster(Path(root)) as cluster,
            ):
                target = Target(" on a 3-master Redis Cluster", cluster.seed_url, True)
                for max_jobs in CLUSTER_MAX_JOBS:
                    session = scaling_session(env, standin, max_jobs, target)
                    _rows(table, session, max_jobs, target)
    table.notes.append(
        f"Janitor scale-out: the stand-in delays every request {LATENCY_MS} ms (asyncio.sleep "
        "per request; concurrent requests overlap). Users queued before any janitor works; the "
        "janitor processes are started once, paused, and resumed 1, 2, then 4 "
        f"({WARMUP_SECONDS}s warm-up after each, {WINDOW_SECONDS}s window); the last "
        "1-janitor row is the drift check after stopping the others. JANITOR_MAX_JOBS=1 rows "
        "carry the targets (process scale-out below the CPU ceiling); JANITOR_MAX_JOBS=8 rows "
        "are bound by 2 cores and only reported."
    )
