"""The janitor's two loops, run inside the arq worker process:

- the sweep closes sessions idle for SESSION_IDLE_SECONDS (a range query on the idle index,
  never a key scan) every JANITOR_SWEEP_SECONDS;
- the pump polls the outbox's due index and flushes users in parallel, at most
  JANITOR_MAX_JOBS at once here; each user's lease keeps their entries serial across every
  janitor process, and moves the user out of the others' way while it is held;
- retention deletes dead letters and deletion tombstones past their retention, as often as
  the sweep runs.

Every janitor runs both loops. Two sweeps closing the same session is harmless (the close is
atomic and checks the session is still idle); two pumps wanting the same user is settled by the
lease.
"""

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable

from service.graph import GraphMemory
from service.memory.flushing import Flusher
from service.observability.metrics import JanitorMetrics
from service.store.jobs import JobQueue
from service.store.layout import UserKeys
from service.store.outbox import Outbox
from service.store.sessions import SessionStore

logger = logging.getLogger(__name__)

StepFn = Callable[[], Awaitable[object]]

# How often the pump looks for due users. Low, because closes should flush promptly and the
# query is one ZRANGEBYSCORE.
PUMP_POLL_SECONDS = 0.25
SWEEP_BATCH = 1000


def _now_ms() -> int:
    return int(time.time() * 1000)


class Sweeper:
    def __init__(
        self,
        store: SessionStore,
        jobs: JobQueue,
        *,
        idle_seconds: int,
        metrics: JanitorMetrics,
    ) -> None:
        self._store = store
        self._jobs = jobs
        self._idle_ms = idle_seconds * 1000
        # Cluster-wide counters in Redis (service/observability/metrics.py).
        self._metrics = metrics

    async def sweep_once(self) -> int:
        """Close every session idle past the cutoff; returns how many were closed."""
        started = time.perf_counter()
        closed = await self._sweep()
        await self._metrics.sweep(seconds=time.perf_counter() - started, closed=closed)
        return closed

    async def _sweep(self) -> int:
        closed = 0
        now = _now_ms()
        cutoff = now - self._idle_ms
        while True:
            sessions = await self._store.idle_sessions(cutoff_ms=cutoff, limit=SWEEP_BATCH)
            if not sessions:
                return closed
            for session in sessions:
                result = await self._store.close_session(session, now_ms=now, idle_cutoff_ms=cutoff)
                if result.status in ("closed", "empty"):
                    closed += 1
                    await self._jobs.refresh_summary(session.user)
            if len(sessions) < SWEEP_BATCH:
                return closed


class Retention:
    """Ends what has a retention: dead letters (DEAD_LETTER_RETENTION_SECONDS) and the graph's
    deletion tombstones (DELETION_TOMBSTONE_SECONDS). Bounded work per pass."""

    BATCH = 500

    def __init__(
        self,
        outbox: Outbox,
        graph: GraphMemory,
        *,
        dead_letter_seconds: int,
        metrics: JanitorMetrics,
    ) -> None:
        self._outbox = outbox
        self._graph = graph
        self._dead_letter_ms = dead_letter_seconds * 1000
        self._metrics = metrics

    async def purge_once(self) -> int:
        dead = await self._outbox.purge_dead(
            died_before_ms=_now_ms() - self._dead_letter_ms, limit=self.BATCH
        )
        tombstones = await self._graph.purge_tombstones()
        if dead or tombstones:
            await self._metrics.retention(dead_letters=dead, tombstones=tombstones)
        return dead + tombstones


class Pump:
    def __init__(self, outbox: Outbox, flusher: Flusher, *, max_parallel: int) -> None:
        self._outbox = outbox
        self._flusher = flusher
        self._max_parallel = max_parallel
        self._active: dict[str, asyncio.Task[None]] = {}

    async def pump_once(self) -> None:
        free = self._max_parallel - len(self._active)
        if free <= 0:
            return
        due = await self._outbox.due_users(now_ms=_now_ms(), limit=free + len(self._active))
        for user in due:
            if user.ref in self._active or len(self._active) >= self._max_parallel:
                continue
            task = asyncio.create_task(self._flush(user), name=f"flush {user.ref}")
            self._active[user.ref] = task

    async def _flush(self, user: UserKeys) -> None:
        try:
            await self._flusher.flush_user(user)
        except Exception:
            # Redis or the lease failed underneath; the entry stays queued for the next pass.
            logger.exception("flushing a user's outbox failed")
        finally:
            self._active.pop(user.ref, None)

    async def drain(self, seconds: float) -> None:
        """Let in-flight flushes finish; past the timeout they are cancelled, and the outbox
        keeps their entries for whichever janitor takes the user next."""
        tasks = list(self._active.values())
        if not tasks:
            return
        _, pending = await asyncio.wait(tasks, timeout=seconds)
        for task in pending:
            task.cancel()
        for task in pending:
            with contextlib.suppress(asyncio.CancelledError):
                await task


class JanitorLoops:
    def __init__(
        self, sweeper: Sweeper, pump: Pump, retention: Retention, *, sweep_seconds: int
    ) -> None:
        self._sweeper = sweeper
        self._pump = pump
        self._retention = retention
        self._sweep_seconds = sweep_seconds
        self._tasks: list[asyncio.Task[None]] = []
        self._stopping = asyncio.Event()

    def start(self) -> None:
        self._tasks = [
            asyncio.create_task(self._every(self._sweep_seconds, self._sweeper.sweep_once)),
            asyncio.create_task(self._every(PUMP_POLL_SECONDS, self._pump.pump_once)),
            asyncio.create_task(self._every(self._sweep_seconds, self._retention.purge_once)),
        ]

    async def _every(self, seconds: float, step: StepFn) -> None:
        while not self._stopping.is_set():
            try:
                await step()
            except Exception:
                logger.exception("janitor loop step failed; retrying next period")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stopping.wait(), timeout=seconds)

    async def stop(self, drain_seconds: float) -> None:
        self._stopping.set()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        await self._pump.drain(drain_seconds)
