"""Semantic memory: POST /memory/query and GET /session/brief."""

from datetime import datetime
from typing import Annotated, Any

import msgspec
from litestar import Request, get, post
from litestar.di import NamedDependency
from litestar.params import JSONBody, QueryParameter

from contracts import MemoryQueryRequest, MemoryQueryResponse, SessionBriefResponse
from contracts.limits import MAX_ID_CHARS
from service import recall
from service.clock import utc_now
from service.errors import InvalidInput
from service.graph import GraphMemory
from service.http.auth import admit, authenticate
from service.http.errors import PUBLIC_ERRORS
from service.http.strict import strict_body
from service.session_store import SessionStore


@post(
    "/memory/query",
    status_code=200,
    summary="Semantic memory lookup in the user's graph",
    guards=[authenticate],
    responses=PUBLIC_ERRORS,
)
async def memory_query(
    request: Request[Any, Any, Any],
    data: JSONBody[MemoryQueryRequest],
    graph: NamedDependency[GraphMemory],
) -> MemoryQueryResponse:
    """Facts valid at referenceTime (default now) and entities, from this user's group only."""
    body = await strict_body(request, MemoryQueryRequest)
    await admit(request, body.tenant_id)
    return await recall.query_memory(graph, body, now=utc_now())


def _check_id(value: str, field: str) -> str:
    if not value.isprintable():
        raise InvalidInput(f"{field} must be printable characters", field=field)
    return value


def _parse_now(value: str | None) -> datetime:
    if value is None:
        return utc_now()
    try:
        moment = msgspec.convert(value, datetime)
    except msgspec.ValidationError:
        raise InvalidInput(f"now is not an RFC 3339 timestamp: {value!r}", field="now") from None
    if moment.tzinfo is None:
        raise InvalidInput("now needs a zone offset, e.g. Z", field="now")
    return moment


@get(
    "/session/brief",
    summary="Narrative start brief from the user's graph",
    guards=[authenticate],
    responses=PUBLIC_ERRORS,
)
async def session_brief(
    request: Request[Any, Any, Any],
    graph: NamedDependency[GraphMemory],
    store: NamedDependency[SessionStore],
    tenant_id: Annotated[
        str, QueryParameter(name="tenantId", min_length=1, max_length=MAX_ID_CHARS)
    ],
    user_id: Annotated[str, QueryParameter(name="userId", min_length=1, max_length=MAX_ID_CHARS)],
    now: Annotated[str | None, QueryParameter(name="now")] = None,
) -> SessionBriefResponse:
    """Mood, open loops, environment and recent episodes, built from MentalState, Tension and
    Environment entities."""
    await admit(request, tenant_id)
    return await recall.session_brief(
        graph,
        store,
        tenant_id=_check_id(tenant_id, "tenantId"),
        user_id=_check_id(user_id, "userId"),
        now=_parse_now(now),
    )
