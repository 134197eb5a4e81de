"""Prometheus metrics: what a scraper of the API's /metrics sees.

Two kinds, kept apart on purpose:

- per-process: request latency per route, observed in memory by the API process that served the
  request (one uvicorn worker per process, so no multiprocess mode is needed), plus the
  process's own CPU and RSS;
- cluster-wide: the janitor runs as separate processes (any number of replicas), so its counters
  (episodes emitted and failed, LLM calls and tokens, sweep duration) are kept in one Redis hash
  with HINCRBY by whichever janitor did the work, and the outbox depth is read from the outbox's
  own keys. Both are read from Redis when /metrics is scraped, so every API replica reports the
  same cluster totals: aggregate them with `max`, not `sum`.

Nothing here knows about HTTP; service/http/metrics.py serves it.
"""

import logging
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from prometheus_client import CollectorRegistry, Histogram, generate_latest
from prometheus_client.metrics_core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.process_collector import ProcessCollector

from service.store.counters import JanitorCounters
from service.store.errors import StoreError
from service.store.outbox import Outbox, OutboxDepth
from service.store.sessions import SessionStore

logger = logging.getLogger(__name__)

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"

# Request latency buckets (seconds): the per-turn endpoints live in the low milliseconds, the
# graph reads in tens to hundreds.
LATENCY_BUCKETS = (
    0.0005,
    0.001,
    0.0025,
    0.005,
    0.0075,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1.0,
    2.5,
    5.0,
    10.0,
)
SWEEP_BUCKETS = (0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 5.0, 30.0, 120.0)


def _bucket_field(bound: float) -> str:
    return "sweepLe:+Inf" if math.isinf(bound) else f"sweepLe:{bound:g}"


class RequestMetrics:
    """Request latency per route, in this process. Each instance has its own registry, so
    several apps in one process (tests) never share or collide."""

    def __init__(self, *, process_metrics: bool = True) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self._latency = Histogram(
            "synapse_http_request_duration_seconds",
            "Time from routing to the last byte of the response, per route template.",
            ["route", "method", "status"],
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        # labels() costs a lock and a tuple build per call: children are cached per label set
        # (bounded: route templates x methods x status codes).
        self._children: dict[tuple[str, str, int], Histogram] = {}
        if process_metrics:
            ProcessCollector(registry=self.registry)

    def observe(self, route: str, method: str, status: int, seconds: float) -> None:
        key = (route, method, status)
        child = self._children.get(key)
        if child is None:
            child = self._children[key] = self._latency.labels(route, method, str(status))
        child.observe(seconds)


class JanitorMetrics:
    """The janitors' counters, incremented in Redis so every replica adds to one total.

    A failure to record is logged and swallowed: metrics never change a flush's outcome."""

    def __init__(self, counters: JanitorCounters) -> None:
        self._counters = counters

    async def _increment(self, counts: dict[str, int], floats: dict[str, float]) -> None:
        try:
            await self._counters.add(counts, floats)
        except StoreError as exc:
            logger.warning("janitor metrics not recorded: %s", type(exc).__name__)

    async def episode_emitted(
        self, *, llm_calls: int, input_tokens: int, output_tokens: int
    ) -> None:
        await self._increment(
            {
                "episodesEmitted": 1,
                "llmCalls": llm_calls,
                "llmInputTokens": input_tokens,
                "llmOutputTokens": output_tokens,
            },
            {},
        )

    async def lease_lost(self) -> None:
        """A janitor found its user's lease taken over mid-flush and cancelled its work."""
        await self._increment({"leasesLost": 1}, {})

    async def write_fenced(self) -> None:
        """A write under a lost lease was refused (Redis lease check or graph fencing token)."""
        await self._increment({"writesFenced": 1}, {})

    async def retention(self, *, dead_letters: int, tombstones: int) -> None:
        """Dead letters and deletion tombstones removed at the end of their retention."""
        await self._increment(
            {"deadLettersPurged": dead_letters, "tombstonesPurged": tombstones}, {}
        )

    async def entry_failed(self, *, dead: bool) -> None:
        await self._increment({"entriesDead" if dead else "entriesRetrying": 1}, {})

    async def sweep(self, *, seconds: float, closed: int) -> None:
        bound = next((b for b in SWEEP_BUCKETS if seconds <= b), math.inf)
        await self._increment(
            {"sweeps": 1, _bucket_field(bound): 1, "sweepClosedSessions": closed},
            {"sweepSecondsSum": seconds},
        )


@dataclass(frozen=True, slots=True)
class ClusterSnapshot:
    """What Redis says about the whole deployment at scrape time."""

    outbox: OutboxDepth
    open_sessions: int
    janitor: dict[str, str] = field(default_factory=dict)


class ClusterReader:
    def __init__(self, sessions: SessionStore, outbox: Outbox, counters: JanitorCounters) -> None:
        self._sessions = sessions
        self._outbox = outbox
        self._counters = counters

    async def snapshot(self) -> ClusterSnapshot:
        return ClusterSnapshot(
            outbox=await self._outbox.depth(),
            open_sessions=await self._sessions.open_session_count(),
            janitor=await self._counters.read(),
        )


def _number(fields: dict[str, str], name: str) -> float:
    return float(fields.get(name, 0))


def _sweep_buckets(fields: dict[str, str]) -> Sequence[tuple[str, float]]:
    cumulative = 0.0
    buckets: list[tuple[str, float]] = []
    for bound in (*SWEEP_BUCKETS, math.inf):
        cumulative += _number(fields, _bucket_field(bound))
        buckets.append(("+Inf" if math.isinf(bound) else f"{bound:g}", cumulative))
    return buckets


class _SnapshotCollector:
    def __init__(self, snapshot: ClusterSnapshot) -> None:
        self._snapshot = snapshot

    def collect(self) -> Iterable[Metric]:
        snapshot, janitor = self._snapshot, self._snapshot.janitor
        depth = GaugeMetricFamily(
            "synapse_outbox_entries",
            "Outbox entries by state, cluster-wide (pending, retrying, dead).",
            labels=["state"],
        )
        depth.add_metric(["pending"], snapshot.outbox.pending)
        depth.add_metric(["retrying"], snapshot.outbox.retrying)
        depth.add_metric(["dead"], snapshot.outbox.dead)
        yield depth
        yield GaugeMetricFamily(
            "synapse_open_sessions",
            "Open sessions in the idle index, cluster-wide.",
            value=snapshot.open_sessions,
        )
        yield CounterMetricFamily(
            "synapse_episodes_emitted",
            "Episodes written to Graphiti by the janitors (and the operators' emit endpoints).",
            value=_number(janitor, "episodesEmitted"),
        )
        failed = CounterMetricFamily(
            "synapse_outbox_failures",
            "Failed outbox attempts, by what became of the entry (retrying or dead).",
            labels=["outcome"],
        )
        failed.add_metric(["retrying"], _number(janitor, "entriesRetrying"))
        failed.add_metric(["dead"], _number(janitor, "entriesDead"))
        yield failed
        yield CounterMetricFamily(
            "synapse_llm_calls",
            "LLM calls made while extracting episodes.",
            value=_number(janitor, "llmCalls"),
        )
        tokens = CounterMetricFamily(
            "synapse_llm_tokens",
            "LLM tokens spent extracting episodes, by direction.",
            labels=["direction"],
        )
        tokens.add_metric(["input"], _number(janitor, "llmInputTokens"))
        tokens.add_metric(["output"], _number(janitor, "llmOutputTokens"))
        yield tokens
        yield HistogramMetricFamily(
            "synapse_janitor_sweep_duration_seconds",
            "Duration of the janitors' idle-session sweeps.",
            buckets=_sweep_buckets(janitor),
            sum_value=_number(janitor, "sweepSecondsSum"),
        )
        yield CounterMetricFamily(
            "synapse_dead_letters_purged",
            "Dead-lettered outbox entries deleted at the end of DEAD_LETTER_RETENTION_SECONDS.",
            value=_number(janitor, "deadLettersPurged"),
        )
        yield CounterMetricFamily(
            "synapse_janitor_leases_lost",
            "Flushes cancelled because another janitor or a deletion took the user's lease.",
            value=_number(janitor, "leasesLost"),
        )
        yield CounterMetricFamily(
            "synapse_janitor_writes_fenced",
            "Writes refused because their janitor no longer held the user's lease.",
            value=_number(janitor, "writesFenced"),
        )
        yield CounterMetricFamily(
            "synapse_janitor_sweep_closed_sessions",
            "Sessions closed by the idle sweep.",
            value=_number(janitor, "sweepClosedSessions"),
        )


def render(requests: RequestMetrics, snapshot: ClusterSnapshot) -> bytes:
    """The whole exposition: this process's metrics, then the cluster's."""
    cluster = CollectorRegistry(auto_describe=False)
    cluster.register(_SnapshotCollector(snapshot))
    return generate_latest(requests.registry) + generate_latest(cluster)
