"""Turn endpoints: POST /ingest, POST /session/close, POST /session/ingest."""

from typing import Any

from litestar import Request, post
from litestar.di import NamedDependency
from litestar.handlers import HTTPRouteHandler
from litestar.params import JSONBody

from contracts import (
    IngestRequest,
    IngestResponse,
    SessionCloseRequest,
    SessionCloseResponse,
    SessionIngestRequest,
)
from service import input_rules
from service.clock import utc_now
from service.http.auth import admit, authenticate
from service.http.errors import PUBLIC_ERRORS
from service.http.strict import strict_body
from service.resources import Resources
from service.settings import Settings
from service.store.jobs import JobQueue
from service.store.sessions import SessionStore
from service.turns import closing
from service.turns.ingestion import ingest_turn


@post(
    "/ingest",
    status_code=200,
    summary="Buffer one user or assistant turn",
    guards=[authenticate],
    responses=PUBLIC_ERRORS,
)
async def ingest(
    request: Request[Any, Any, Any],
    data: JSONBody[IngestRequest],
    resources: NamedDependency[Resources],
) -> IngestResponse:
    """Append a turn to its session's buffer. Retrying the same turn stores it once."""
    # Well-formed, admitted requests are answered by service/http/hot_path.py before they reach
    # Litestar; this handler answers the rest (every error) and defines the OpenAPI entry.
    body = await strict_body(request, IngestRequest)
    validate_ingest(resources, body)
    await admit(request, body.tenant_id, turns=1)
    return await ingest_admitted(resources, body)


def validate_ingest(resources: Resources, body: IngestRequest) -> None:
    """The semantic rules, before admission: shared with the hot path."""
    input_rules.check_ingest(
        body, now=utc_now(), max_skew_seconds=resources.settings.timestamp_max_skew_seconds
    )


async def ingest_admitted(resources: Resources, body: IngestRequest) -> IngestResponse:
    """The work of /ingest once the caller is admitted: shared with the hot path."""
    return await ingest_turn(
        resources.store,
        resources.jobs,
        body,
        now=utc_now(),
        summary_every_turns=resources.settings.summary_every_turns,
    )


@post(
    "/session/close",
    status_code=200,
    summary="Close a session; its transcript goes to memory",
    guards=[authenticate],
    responses=PUBLIC_ERRORS,
)
async def close_session(
    request: Request[Any, Any, Any],
    data: JSONBody[SessionCloseRequest],
    store: NamedDependency[SessionStore],
    jobs: NamedDependency[JobQueue],
) -> SessionCloseResponse:
    """Moves the transcript into the durable outbox and answers at once; the janitor writes the
    episode. Without sessionId, the user's most recent open session is closed. An already
    closed session answers closed=false; an unknown one is a 404."""
    body = await strict_body(request, SessionCloseRequest)
    await admit(request, body.tenant_id)
    return await closing.close_session(store, jobs, body, now=utc_now())


def session_ingest_handler(max_body_bytes: int) -> HTTPRouteHandler:
    """Built per app, because a whole transcript may be much larger than one turn."""

    @post(
        "/session/ingest",
        status_code=200,
        summary="Send a whole transcript; it is closed into memory at once",
        request_max_body_size=max_body_bytes,
        guards=[authenticate],
        responses=PUBLIC_ERRORS,
    )
    async def session_ingest(
        request: Request[Any, Any, Any],
        data: JSONBody[SessionIngestRequest],
        store: NamedDependency[SessionStore],
        jobs: NamedDependency[JobQueue],
        settings: NamedDependency[Settings],
    ) -> IngestResponse:
        """graphitiAdded is true only if the episode is already in the graph when answering."""
        body = await strict_body(request, SessionIngestRequest)
        # Before admission: a transcript that will be refused spends no quota.
        input_rules.check_transcript(
            body, now=utc_now(), max_skew_seconds=settings.timestamp_max_skew_seconds
        )
        await admit(request, body.tenant_id, turns=len(body.messages))
        return await closing.ingest_transcript(
            store, jobs, body, now=utc_now(), wait_seconds=settings.session_ingest_wait_seconds
        )

    return session_ingest
