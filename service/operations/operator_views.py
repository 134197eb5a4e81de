"""What the internal debug endpoints show and do: inspect state, force closes and emits.

No HTTP here: service/http/debug.py guards the routes and calls these.
"""

from datetime import UTC, datetime

from contracts import (
    DebugCloseResponse,
    DebugEmitResponse,
    DebugOutbox,
    DebugSession,
    DebugUser,
    EpisodeCostView,
    OutboxCounts,
    OutboxEntryView,
    SessionAction,
    SessionSummaryView,
    Turn,
    UsageTotals,
)
from service.clock import iso_utc
from service.memory.episodes import group_id
from service.memory.flushing import Flusher
from service.store.jobs import JobQueue
from service.store.layout import SessionKeys, UserKeys
from service.store.outbox import Outbox, OutboxEntry
from service.store.sessions import SessionStore
from service.store.usage import Totals, UsageLedger


def _at(ms: int | str | None) -> str | None:
    if ms is None or ms == "":
        return None
    return iso_utc(datetime.fromtimestamp(int(ms) / 1000, tz=UTC))


def entry_view(entry: OutboxEntry) -> OutboxEntryView:
    state = entry.state if entry.state in ("pending", "retrying", "dead") else "pending"
    return OutboxEntryView(
        entry_id=entry.entry_id,
        tenant_id=entry.tenant_id,
        user_id=entry.user_id,
        session_id=entry.session_id,
        generation=entry.generation,
        state=state,  # type: ignore[arg-type]
        attempts=entry.attempts,
        last_error=entry.last_error,
        created_at=_at(entry.created_at_ms) or "",
        next_attempt_at=_at(entry.next_attempt_ms) if state == "retrying" else None,
        turns=entry.turn_count,
        chunks_done=entry.chunks_done,
        episode_uuids=entry.episode_uuids,
    )


def _usage(totals: Totals) -> UsageTotals:
    return UsageTotals(
        episodes=totals.episodes,
        llm_calls=totals.llm_calls,
        input_tokens=totals.input_tokens,
        output_tokens=totals.output_tokens,
    )


class Operator:
    def __init__(
        self,
        store: SessionStore,
        outbox: Outbox,
        ledger: UsageLedger,
        flusher: Flusher,
        jobs: JobQueue,
    ) -> None:
        self._store = store
        self._outbox = outbox
        self._ledger = ledger
        self._flusher = flusher
        self._jobs = jobs

    async def _user_entries(self, user: UserKeys) -> list[OutboxEntry]:
        """Queued entries and the user's dead ones, oldest first."""
        queued = await self._outbox.entries_for_user(user)
        queued_ids = {e.entry_id for e in queued}
        others = [i for i in await self._outbox.user_entry_ids(user) if i not in queued_ids]
        dead = [e for e in await self._outbox.load(others) if e.state == "dead"]
        return queued + dead

    async def session(self, session: SessionKeys) -> DebugSession:
        meta = await self._store.session_meta(session)
        buffer = await self._store.buffered_turns(session)
        entries = [
            e for e in await self._user_entries(session.user) if e.session_id == session.session_id
        ]
        state = meta.get("state", "unknown")
        return DebugSession(
            tenant_id=session.user.tenant_id,
            user_id=session.user.user_id,
            session_id=session.session_id,
            state=state if state in ("open", "closed") else "unknown",  # type: ignore[arg-type]
            generation=int(meta.get("generation", 0)),
            flushed_generation=int(meta.get("flushedGeneration", 0)),
            persona_id=meta.get("personaId"),
            buffered_turns=len(buffer),
            last_activity=_at(meta.get("lastActivityMs")),
            closed_at=_at(meta.get("closedAtMs")) if state == "closed" else None,
            buffer=[Turn(role=t.role, text=t.text, timestamp=t.timestamp) for t in buffer],
            outbox=[entry_view(e) for e in entries],
        )

    async def user(self, user: UserKeys) -> DebugUser:
        profile = await self._store.profile(user)
        sessions = await self._store.sessions_by_activity(user)
        sizes = await self._store.buffer_sizes([s for s, _ in sessions])
        views = []
        for (session, activity), size in zip(sessions, sizes, strict=True):
            state = (await self._store.session_meta(session)).get("state", "unknown")
            views.append(
                SessionSummaryView(
                    session_id=session.session_id,
                    state=state if state in ("open", "closed") else "unknown",  # type: ignore[arg-type]
                    last_activity=_at(activity),
                    buffered_turns=size,
                )
            )
        costs = await self._ledger.recent_costs(user)
        return DebugUser(
            tenant_id=user.tenant_id,
            user_id=user.user_id,
            group_id=group_id(user.tenant_id, user.user_id),
            name=profile.get("name"),
            timezone=profile.get("timezone"),
            rolling_summary=profile.get("summary"),
            summary_backlog=await self._store.summary_backlog(user),
            last_turn_at=_at(profile.get("lastTurnMs")),
            sessions=views,
            outbox=[entry_view(e) for e in await self._user_entries(user)],
            recent_episodes=await self._outbox.recent_episodes(user),
            usage=_usage(await self._ledger.user_totals(user)),
            recent_costs=[
                EpisodeCostView(
                    episode_uuid=c.episode_uuid,
                    session_id=c.session_id,
                    llm_calls=c.llm_calls,
                    input_tokens=c.input_tokens,
                    output_tokens=c.output_tokens,
                    at=_at(c.at_ms) or "",
                )
                for c in costs
            ],
        )

    async def outbox(self, tenant_id: str, *, limit: int) -> DebugOutbox:
        entries = await self._outbox.entries_for_tenant(tenant_id, limit=limit)
        views = [entry_view(e) for e in entries]
        return DebugOutbox(
            tenant_id=tenant_id,
            entries=views,
            counts=OutboxCounts(
                pending=sum(v.state == "pending" for v in views),
                retrying=sum(v.state == "retrying" for v in views),
                dead=sum(v.state == "dead" for v in views),
            ),
            usage=_usage(await self._ledger.tenant_totals(tenant_id)),
        )

    async def close(self, sessions: list[SessionKeys], *, now_ms: int) -> DebugCloseResponse:
        actions = []
        for session in sessions:
            result = await self._store.close_session(session, now_ms=now_ms)
            if result.status in ("closed", "empty"):
                await self._jobs.refresh_summary(session.user)
            actions.append(SessionAction(session_id=session.session_id, status=result.status))
        return DebugCloseResponse(sessions=actions)

    async def open_sessions(self, user: UserKeys, *, limit: int) -> list[SessionKeys]:
        return await self._store.open_sessions(user, limit=limit)

    async def emit(
        self, user: UserKeys, sessions: list[SessionKeys], *, now_ms: int, redrive_all: bool
    ) -> DebugEmitResponse:
        """Close the sessions, re-drive dead entries (theirs, or all the user's), and flush the
        user's queue now, in this process, whatever its backoff."""
        closed = await self.close(sessions, now_ms=now_ms)
        wanted = {s.session_id for s in sessions}
        redriven = []
        for entry in await self._user_entries(user):
            chosen = entry.state == "dead" and (redrive_all or entry.session_id in wanted)
            if chosen and await self._outbox.redrive(entry.entry_id, now_ms=now_ms):
                redriven.append(entry.entry_id)
        await self._outbox.expedite(user, now_ms=now_ms)
        report = await self._flusher.flush_user(user)
        return DebugEmitResponse(
            sessions=closed.sessions,
            redriven=redriven,
            flushed_here=report.acquired,
            acked=report.acked,
            failed=report.failed,
            dead=report.dead,
            outbox=[entry_view(e) for e in await self._user_entries(user)],
        )
