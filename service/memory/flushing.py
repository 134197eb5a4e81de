"""Emit outbox entries to Graphiti: one user at a time under a lease, in order, exactly once.

Used by the janitor's pump and by the operators' "emit now" debug endpoints; both go through
`Flusher.flush_user`, so there is one way an episode gets written.
"""

import asyncio
import contextlib
import logging
import time
from dataclasses import dataclass
from datetime import datetime

import msgspec

from service.graph import GraphMemory, LlmRateLimited, StaleWriter
from service.memory.episodes import (
    TranscriptLine,
    chunk_transcript,
    episode_body,
    episode_uuid,
    group_id,
)
from service.memory.redaction import Redactor
from service.observability.metrics import JanitorMetrics
from service.store.errors import StoreError
from service.store.layout import UserKeys
from service.store.outbox import FailOutcome, Lease, Outbox, OutboxEntry
from service.store.usage import EpisodeCost, UsageLedger

logger = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class FlushPolicy:
    lease_ms: int
    max_attempts: int
    backoff_base_ms: int
    backoff_max_ms: int
    episode_timeout_seconds: float = 900.0


@dataclass(slots=True)
class FlushReport:
    acquired: bool = False
    acked: int = 0
    failed: int = 0
    dead: int = 0


def _now_ms() -> int:
    return int(time.time() * 1000)


def _describe(exc: BaseException) -> str:
    # The exception type and a bounded message: enough to diagnose, never a whole transcript.
    return f"{type(exc).__name__}: {str(exc)[:300]}"


class LeaseLost(Exception):
    """Another janitor (or a deletion) owns this user now; stop without touching the entry."""


# Renewal retries a failing Redis this often, for as long as the lease may still be valid.
_RENEW_RETRY_SECONDS = 0.2
# A lease is trusted locally only this long before its expiry: a write that could land after
# another janitor took over is not started (the token check in Neo4j is what makes it certain).
_LEASE_MARGIN_SECONDS = 0.5


class LeaseKeeper:
    """Keeps one lease alive while a user is being flushed, and knows when it is lost.

    Renewal survives a transient Redis error: it is retried until the lease would have expired.
    The lease is lost when a renewal is refused (someone else holds it now) or when no renewal
    succeeded before the expiry; `held()` turns false then, and `run()` returns."""

    def __init__(self, outbox: Outbox, lease: Lease, ttl_ms: int, acquired_at: float) -> None:
        self._outbox = outbox
        self._lease = lease
        self._ttl = ttl_ms / 1000
        self._valid_until = acquired_at + self._ttl - _LEASE_MARGIN_SECONDS
        self._lost = False

    def held(self) -> bool:
        return not self._lost and time.monotonic() < self._valid_until

    async def run(self) -> None:
        interval = self._ttl / 3
        while True:
            await asyncio.sleep(interval)
            if not await self._renew():
                self._lost = True
                return

    async def _renew(self) -> bool:
        while time.monotonic() < self._valid_until:
            attempt_at = time.monotonic()
            try:
                renewed = await self._outbox.renew(self._lease, ttl_ms=int(self._ttl * 1000))
            except StoreError as exc:
                logger.warning("lease renewal failed, retrying: %s", type(exc).__name__)
                await asyncio.sleep(_RENEW_RETRY_SECONDS)
                continue
            if not renewed:
                return False
            self._valid_until = attempt_at + self._ttl - _LEASE_MARGIN_SECONDS
            return True
        return False


class Flusher:
    def __init__(
        self,
        outbox: Outbox,
        graph: GraphMemory,
        ledger: UsageLedger,
        policy: FlushPolicy,
        redactor: Redactor,
        metrics: JanitorMetrics,
    ) -> None:
        self._outbox = outbox
        self._graph = graph
        self._ledger = ledger
        self._policy = policy
        self._redactor = redactor
        # Cluster-wide counters, kept in Redis (service/observability/metrics.py).
        self._metrics = metrics

    async def flush_user(self, user: UserKeys) -> FlushReport:
        """Work the user's queue until it is empty, blocked by a backoff, or the lease is lost.
        Returns at once when another process holds the user's lease. When the lease is lost
        mid-flush the work in flight is cancelled at once; whatever it had not acknowledged
        stays in the outbox for the new holder."""
        report = FlushReport()
        acquired_at = time.monotonic()
        lease = await self._outbox.acquire(user, ttl_ms=self._policy.lease_ms)
        if lease is None:
            return report
        report.acquired = True
        keeper = LeaseKeeper(self._outbox, lease, self._policy.lease_ms, acquired_at)
        keeping = asyncio.create_task(keeper.run(), name="lease keeper")
        working = asyncio.create_task(self._work(lease, keeper, report), name="flush")
        try:
            await asyncio.wait({keeping, working}, return_when=asyncio.FIRST_COMPLETED)
            if working.done():
                working.result()  # a Redis failure underneath propagates to the caller
            else:
                logger.warning("lease lost for a user's outbox; the flush in flight is cancelled")
                await self._metrics.lease_lost()
        finally:
            for task in (working, keeping):
                task.cancel()
            await asyncio.gather(working, keeping, return_exceptions=True)
            with contextlib.suppress(StoreError):
                await self._outbox.release(lease)
        return report

    async def _work(self, lease: Lease, keeper: LeaseKeeper, report: FlushReport) -> None:
        while True:
            entry = await self._outbox.head(lease.user)
            if entry is None:
                await self._outbox.settle_if_empty(lease.user)
                return
            if entry.next_attempt_ms > _now_ms():
                await self._outbox.schedule(lease, at_ms=entry.next_attempt_ms)
                return
            if not await self._emit_or_fail(lease, keeper, entry, report):
                return

    async def _emit_or_fail(
        self, lease: Lease, keeper: LeaseKeeper, entry: OutboxEntry, report: FlushReport
    ) -> bool:
        """True when the entry was acknowledged and the next one may follow."""
        try:
            await self._emit(lease, keeper, entry)
        except (LeaseLost, StaleWriter):
            await self._metrics.write_fenced()
            return False
        except Exception as exc:  # every failure is retried with backoff, then dead-lettered
            retry_after = exc.retry_after_seconds if isinstance(exc, LlmRateLimited) else None
            outcome = await self._fail(lease, entry, exc, retry_after)
            report.failed += 1
            report.dead += outcome.state == "dead"
            if outcome.state != "lost":
                await self._metrics.entry_failed(dead=outcome.state == "dead")
            logger.warning(
                "outbox entry failed (attempt %d, now %s): %s",
                outcome.attempts,
                outcome.state,
                type(exc).__name__,
            )
            # A dead entry left the queue, so the user's next entry may go now.
            return outcome.state == "dead"
        if not await self._outbox.ack(lease, entry, now_ms=_now_ms()):
            return False
        report.acked += 1
        return True

    async def _fail(
        self, lease: Lease, entry: OutboxEntry, exc: BaseException, retry_after: float | None
    ) -> FailOutcome:
        return await self._outbox.fail(
            lease,
            entry,
            error=_describe(exc),
            now_ms=_now_ms(),
            max_attempts=self._policy.max_attempts,
            base_backoff_ms=self._policy.backoff_base_ms,
            max_backoff_ms=self._policy.backoff_max_ms,
            retry_after_ms=int(retry_after * 1000) if retry_after is not None else None,
        )

    async def _emit(self, lease: Lease, keeper: LeaseKeeper, entry: OutboxEntry) -> None:
        user = lease.user
        chunks = chunk_transcript(
            [
                TranscriptLine(role=t.role, text=t.text, timestamp=t.timestamp)
                for t in await self._outbox.transcript(entry)
            ]
        )
        group = group_id(entry.tenant_id, entry.user_id)
        previous = await self._outbox.recent_episodes(user)
        persona = entry.persona_id or "unknown"
        for index in range(entry.chunks_done, len(chunks)):
            chunk = chunks[index]
            uuid = episode_uuid(
                entry.tenant_id, entry.user_id, entry.session_id, entry.generation, index
            )
            part = f" part {index + 1}/{len(chunks)}" if len(chunks) > 1 else ""
            # Bounded: see Settings.janitor_episode_timeout_seconds. A TimeoutError is a failure
            # like any other: retried with backoff, the lease released.
            outcome = await asyncio.wait_for(
                self._graph.add_transcript_episode(
                    uuid=uuid,
                    group_id=group,
                    name=f"session {entry.session_id}{part}",
                    body=self._redactor.redact(episode_body(chunk)),
                    reference_time=msgspec.convert(chunk[0].timestamp, datetime),
                    source_description=(
                        f"synapse session transcript; tenant {entry.tenant_id}; persona {persona}; "
                        f"session {entry.session_id}{part}"
                    ),
                    previous_episode_uuids=[p for p in previous if p != uuid],
                    fence=lease.fence,
                    still_held=keeper.held,
                ),
                self._policy.episode_timeout_seconds,
            )
            charge = None
            if not outcome.skipped:
                charge = EpisodeCost(
                    episode_uuid=uuid,
                    session_id=entry.session_id,
                    llm_calls=outcome.usage.calls,
                    input_tokens=outcome.usage.input_tokens,
                    output_tokens=outcome.usage.output_tokens,
                    at_ms=_now_ms(),
                )
            if not await self._outbox.chunk_done(lease, entry, index + 1, uuid, charge):
                raise LeaseLost
            if charge is not None:
                await self._ledger.record_for_tenant(entry.tenant_id, charge)
                await self._metrics.episode_emitted(
                    llm_calls=charge.llm_calls,
                    input_tokens=charge.input_tokens,
                    output_tokens=charge.output_tokens,
                )
            previous = [*previous, uuid][-Outbox.RECENT_EPISODES :]
