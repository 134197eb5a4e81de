"""Semantic memory: POST /memory/query and GET /session/brief."""

from datetime import datetime
from typing import Annotated, Any

import msgspec
from litestar import Request, get, post
from litestar.di import NamedDependency
from litestar.params import JSONBody, QueryParameter

from contracts import MemoryQueryRequest, MemoryQueryResponse, SessionBriefResponse
from contracts.limits import MAX_ID_CHARS
from service import input_rules
from service.clock import utc_now
from service.errors import InvalidInput
from service.graph import GraphMemory
from service.http.auth import admit, authenticate
from service.http.errors import PUBLIC_ERRORS
from service.http.strict import strict_body
from service.memory import recall
from service.store.sessions import SessionStore


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
    input_rules.check_memory_query(body)
    await admit(request, body.tenant_id)
    return await recall.query_memory(graph, body, now=utc_now())


def _parse_now(value: str | None) -> datetime:
    if value is None:
        return utc_now()
    try:
        moment = msgspec.convert(value, datetime)
    except msgspec.ValidationError:
        raise InvalidInput(f"now is not an RFC 3339 timestamp: {value!r}", field="now") from None
    if moment.tzinfo is None:
        raise InvalidInput("now needs a zone offset, e.g. Z", field="now")
    input_rules.check_moment(moment, "now")
    return moment


# Documented in the schema only: input_rules.check_id enforces it (the body rule), so that an
# error names the field as the contract spells it (Litestar's own check would say `user_id`).
_ID_SCHEMA = {
    "description": f"1-{MAX_ID_CHARS} characters without control characters, as in a body.",
    "minLength": 1,
    "maxLength": MAX_ID_CHARS,
}


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
    tenant_id: Annotated[str, QueryParameter(name="tenantId", schema_extra=_ID_SCHEMA)],
    user_id: Annotated[str, QueryParameter(name="userId", schema_extra=_ID_SCHEMA)],
    now: Annotated[str | None, QueryParameter(name="now")] = None,
) -> SessionBriefResponse:
    """Mood, open loops, environment and recent episodes, built from MentalState, Tension and
    Environment entities."""
    # Every check before admission: a refused request spends nothing.
    input_rules.check_id(tenant_id, "tenantId")
    input_rules.check_id(user_id, "userId")
    moment = _parse_now(now)
    await admit(request, tenant_id)
    return await recall.session_brief(
        graph, store, tenant_id=tenant_id, user_id=user_id, now=moment
    )
