"""POST /ingest: record one turn in the session buffer, idempotently."""

from datetime import datetime

from contracts import IngestRequest, IngestResponse
from service.store.jobs import JobQueue
from service.store.layout import UserKeys
from service.store.sessions import SUMMARY_BACKLOG_CAP, NewTurn, SessionStore


async def ingest_turn(
    store: SessionStore,
    jobs: JobQueue,
    request: IngestRequest,
    *,
    now: datetime,
    summary_every_turns: int,
) -> IngestResponse:
    user = UserKeys(request.tenant_id, request.user_id)
    turn = NewTurn(
        role=request.role,
        text=request.text,
        timestamp=request.timestamp,
        message_id=request.message_id,
    )
    result = await store.append_turn(
        user.session(request.session_id),
        turn,
        persona_id=request.persona_id,
        now_ms=int(now.timestamp() * 1000),
    )
    # Once every `summary_every_turns` new turns (not on every turn past it: an enqueue costs
    # several Redis round trips); a job folds in the whole backlog, and every close enqueues one.
    backlog = result.summary_backlog
    if result.stored and (backlog % summary_every_turns == 0 or backlog > SUMMARY_BACKLOG_CAP):
        await jobs.refresh_summary(user)
    return IngestResponse(status="ingested", session_id=request.session_id, graphiti_added=False)
