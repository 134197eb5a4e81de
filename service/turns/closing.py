"""POST /session/close and POST /session/ingest: sessions into the outbox."""

import asyncio
import time
from datetime import datetime

from contracts import (
    IngestResponse,
    SessionCloseRequest,
    SessionCloseResponse,
    SessionIngestRequest,
)
from service.errors import NotFound
from service.store.jobs import JobQueue
from service.store.layout import SessionKeys, UserKeys
from service.store.sessions import NewTurn, SessionStore

_POLL_SECONDS = 0.1


def _millis(moment: datetime) -> int:
    return int(moment.timestamp() * 1000)


async def close_session(
    store: SessionStore, jobs: JobQueue, request: SessionCloseRequest, *, now: datetime
) -> SessionCloseResponse:
    """Close the named session, or the user's most recent open one. An already-closed session
    answers closed=false; an unknown one is a 404."""
    user = UserKeys(request.tenant_id, request.user_id)
    session: SessionKeys | None
    if request.session_id is None:
        session = await store.most_recent_open_session(user)
        if session is None:
            raise NotFound("this user has no open session", field="sessionId")
    else:
        session = user.session(request.session_id)
    result = await store.close_session(session, now_ms=_millis(now))
    if result.status == "unknown":
        raise NotFound(f"session {session.session_id!r} not found", field="sessionId")
    closed = result.status in ("closed", "empty")
    if closed:
        await jobs.refresh_summary(user)
    return SessionCloseResponse(closed=closed, session_id=session.session_id)


async def ingest_transcript(
    store: SessionStore,
    jobs: JobQueue,
    request: SessionIngestRequest,
    *,
    now: datetime,
    wait_seconds: float,
) -> IngestResponse:
    """Store a whole transcript and close it into the outbox in one atomic step; the same
    transcript sent twice stores nothing the second time and yields the same episode.
    The caller has applied service.input_rules.check_transcript (time order, timestamp bounds,
    startedAt <= endedAt) before admitting the request, so that a refused one spends no quota."""
    user = UserKeys(request.tenant_id, request.user_id)
    session = user.session(request.session_id)
    turns = [NewTurn(role=m.role, text=m.text, timestamp=m.timestamp) for m in request.messages]
    result = await store.ingest_transcript(
        session, turns, persona_id=request.persona_id, now_ms=_millis(now)
    )
    if result.close.status == "closed":
        await jobs.refresh_summary(user)
    added = await _wait_until_flushed(store, session, result.close.generation, wait_seconds)
    return IngestResponse(status="ingested", session_id=request.session_id, graphiti_added=added)


async def _wait_until_flushed(
    store: SessionStore, session: SessionKeys, generation: int, wait_seconds: float
) -> bool:
    deadline = time.monotonic() + wait_seconds
    while True:
        if await store.flushed_generation(session) >= generation:
            return True
        if time.monotonic() >= deadline:
            return False
        await asyncio.sleep(_POLL_SECONDS)
