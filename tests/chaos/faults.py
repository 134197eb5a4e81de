"""The nemesis: a fault schedule drawn from random.Random(seed), run against the cluster while
the load runs. One fault at a time, except a Neo4j restart (slow), which runs in the
background while the others go on. Every fault heals itself before its step ends."""

import asyncio
import random
import time
from collections.abc import Awaitable, Callable

from tests.chaos.cluster import Cluster
from tests.chaos.timeline import (
    API_KILL,
    API_STOP,
    JANITOR_KILL,
    JANITOR_STOP,
    MODEL_ERRORS,
    MODEL_STALL,
    NEO4J_STOP,
    REDIS_KILL,
    Timeline,
)

# Kind -> weight (Neo4j restarts are planned separately, see run).
# The lease is 3 s, so a SIGSTOP of 4-7 s outlives it.
WEIGHTS = {
    JANITOR_KILL: 4,
    JANITOR_STOP: 5,
    API_KILL: 2,
    API_STOP: 2,
    REDIS_KILL: 2,
    MODEL_ERRORS: 3,
    MODEL_STALL: 2,
}
# A Neo4j restart takes 20-40 s on two cores: at most one per this many seconds of schedule.
NEO4J_EVERY_SECONDS = 300.0


class Nemesis:
    def __init__(self, cluster: Cluster, timeline: Timeline, rng: random.Random) -> None:
        self.cluster = cluster
        self.timeline = timeline
        self.rng = rng
        self.background: list[asyncio.Task[None]] = []
        self.failures: list[str] = []  # a fault that could not be injected or healed

    async def _windowed(self, kind: str, detail: str, action: Awaitable[None]) -> None:
        window = self.timeline.open(kind, detail)
        try:
            await action
        except Exception as exc:  # keep the schedule going; the report says what broke
            self.failures.append(f"{kind} ({detail}) raised {type(exc).__name__}: {exc}")
        finally:
            self.timeline.close(window)

    def _plan(self, kind: str) -> tuple[str, Callable[[], Awaitable[None]]]:
        rng, cluster = self.rng, self.cluster
        if kind == JANITOR_KILL:
            index, pause = rng.randrange(2), round(rng.uniform(0.5, 3.0), 2)
            return f"janitor #{index}, restart after {pause}s", lambda: cluster.kill_janitor(
                index, pause
            )
        if kind == JANITOR_STOP:
            index, seconds = rng.randrange(2), round(rng.uniform(4.0, 7.0), 2)
            return f"janitor #{index} for {seconds}s (lease 3s)", lambda: cluster.stop_janitor(
                index, seconds
            )
        if kind == API_KILL:
            pause = round(rng.uniform(0.2, 2.0), 2)
            return f"restart after {pause}s", lambda: cluster.kill_api(pause)
        if kind == API_STOP:
            seconds = round(rng.uniform(1.0, 2.0), 2)
            return f"for {seconds}s", lambda: cluster.stop_api(seconds)
        if kind == REDIS_KILL:
            pause = round(rng.uniform(0.5, 3.0), 2)
            return f"restart after {pause}s", lambda: cluster.kill_redis(pause)
        if kind == NEO4J_STOP:
            pause = round(rng.uniform(1.0, 5.0), 2)
            return f"start again after {pause}s", lambda: cluster.restart_neo4j(pause)
        if kind == MODEL_ERRORS:
            status, seconds = rng.choice((429, 500, 503)), round(rng.uniform(2.0, 6.0), 2)
            return f"HTTP {status} for {seconds}s", lambda: cluster.model_errors(status, seconds)
        if kind == MODEL_STALL:
            latency = round(rng.uniform(1.0, 2.5) * cluster.llm_timeout, 2)
            seconds = round(rng.uniform(3.0, 8.0), 2)
            return (
                f"latency {latency}s for {seconds}s (timeout {cluster.llm_timeout}s)",
                lambda: cluster.model_stall(latency, seconds),
            )
        raise ValueError(kind)

    async def run(self, seconds: float) -> None:
        """Inject faults for `seconds`, then wait for the background ones to finish.

        Neo4j restarts are planned, not drawn: one at a seeded moment in each
        NEO4J_EVERY_SECONDS of schedule (so a short run has exactly one)."""
        start = time.monotonic()
        deadline = start + seconds
        slots = max(1, int(seconds // NEO4J_EVERY_SECONDS))
        slot = seconds / slots
        neo4j_at = [start + i * slot + self.rng.uniform(0.1, 0.5) * slot for i in range(slots)]
        others = [k for k in WEIGHTS if k != NEO4J_STOP]
        # Every kind once first, in a seeded order, so even the short run of `make test`
        # meets each fault (a janitor paused past its lease, the fault that fencing is about,
        # always first); then weighted draws.
        rest = [k for k in others if k != JANITOR_STOP]
        tour = [JANITOR_STOP, *self.rng.sample(rest, len(rest))]
        await asyncio.sleep(self.rng.uniform(2.0, 4.0))
        while time.monotonic() < deadline - 3:
            if neo4j_at and time.monotonic() >= neo4j_at[0]:
                neo4j_at.pop(0)
                detail, action = self._plan(NEO4J_STOP)
                task = asyncio.create_task(self._windowed(NEO4J_STOP, detail, action()))
                self.background.append(task)
            else:
                kind = (
                    tour.pop(0)
                    if tour
                    else self.rng.choices(others, [WEIGHTS[k] for k in others])[0]
                )
                detail, action = self._plan(kind)
                await self._windowed(kind, detail, action())
            self.cluster.standin.reset_log()  # the stand-in's request log would only grow
            await asyncio.sleep(self.rng.uniform(1.0, 3.0) if tour else self.rng.uniform(1.0, 4.0))
        if self.background:
            await asyncio.wait_for(asyncio.gather(*self.background), timeout=240)
