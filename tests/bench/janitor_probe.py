"""`python -m tests.bench.janitor_probe`: the real janitor (janitor.worker.main), with timing
wrapped around two calls so the benchmark can split each episode's time into LLM waits and
everything else:

- every HTTP request the openai SDK sends (httpx2.AsyncClient.send, and httpx's for anything
  still on it: LLM and embedding calls to the stand-in) records its [start, end) interval on
  the episode being written;
- GraphMemory.add_transcript_episode records the episode's wall time, then the union of those
  intervals (Graphiti runs some calls concurrently, so their sum would overcount), and pushes
  {"wall": s, "llm": s, "neo4j": s, ...} onto a Redis list (TIMINGS_KEY); Neo4j calls
  (AsyncDriver.execute_query, AsyncSession.execute_write and run) are timed the same way.

Nothing else changes: same settings, same code path, same process layout as `python -m janitor`.
"""

import json
import os
import time
from collections.abc import Awaitable, Callable
from contextvars import ContextVar
from typing import Any

import httpx
import httpx2
import neo4j
from redis.asyncio import Redis

from janitor.worker import main as janitor_main
from service.graph import EpisodeOutcome, GraphMemory

TIMINGS_KEY = "bench:episode-timings"

_intervals: ContextVar[list[tuple[float, float]] | None] = ContextVar("bench_llm", default=None)
_graph_intervals: ContextVar[list[tuple[float, float]] | None] = ContextVar(
    "bench_neo4j", default=None
)


def _union(intervals: list[tuple[float, float]]) -> float:
    total, end = 0.0, float("-inf")
    for start, stop in sorted(intervals):
        if start > end:
            total += stop - start
            end = stop
        elif stop > end:
            total += stop - end
            end = stop
    return total


def _time_calls(owner: Any, name: str, into: ContextVar[list[tuple[float, float]] | None]) -> None:
    original: Callable[..., Awaitable[Any]] = getattr(owner, name)

    async def timed(self: Any, *args: Any, **kwargs: Any) -> Any:
        intervals = into.get()
        start = time.perf_counter()
        try:
            return await original(self, *args, **kwargs)
        finally:
            if intervals is not None:
                intervals.append((start, time.perf_counter()))

    setattr(owner, name, timed)


def install(redis_url: str) -> None:
    original_add = GraphMemory.add_transcript_episode
    redis: Redis = Redis.from_url(redis_url)
    _time_calls(httpx.AsyncClient, "send", _intervals)
    _time_calls(httpx2.AsyncClient, "send", _intervals)
    # Graphiti's reads go through execute_query, its bulk writes through sessions.
    _time_calls(neo4j.AsyncDriver, "execute_query", _graph_intervals)
    _time_calls(neo4j.AsyncSession, "execute_write", _graph_intervals)
    _time_calls(neo4j.AsyncSession, "run", _graph_intervals)

    async def timed_add(self: GraphMemory, **kwargs: Any) -> EpisodeOutcome:
        intervals: list[tuple[float, float]] = []
        graph: list[tuple[float, float]] = []
        token = _intervals.set(intervals)
        graph_token = _graph_intervals.set(graph)
        start = time.perf_counter()
        try:
            outcome = await original_add(self, **kwargs)
        finally:
            _intervals.reset(token)
            _graph_intervals.reset(graph_token)
        wall = time.perf_counter() - start
        if not outcome.skipped:
            record = {
                "wall": wall,
                "llm": _union(intervals),
                "neo4j": _union(graph),
                "requests": len(intervals),
                "queries": len(graph),
            }
            await redis.rpush(TIMINGS_KEY, json.dumps(record))
        return outcome

    GraphMemory.add_transcript_episode = timed_add  # type: ignore[method-assign]


if __name__ == "__main__":
    # On a cluster the timings go to a standalone Redis (the bench's own): one list, one node.
    install(os.environ.get("BENCH_TIMINGS_REDIS_URL") or os.environ["REDIS_URL"])
    janitor_main()
