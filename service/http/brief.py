"""Start-of-session seed: POST /brief."""

from typing import Any

from litestar import Request, post
from litestar.di import NamedDependency
from litestar.params import JSONBody

from contracts import BriefRequest, BriefResponse
from service.briefing import build_brief
from service.clock import utc_now
from service.http.auth import admit, authenticate
from service.http.errors import PUBLIC_ERRORS
from service.http.strict import strict_body
from service.session_store import SessionStore
from service.settings import Settings


@post(
    "/brief",
    status_code=200,
    summary="Start-of-session seed from the session buffer",
    guards=[authenticate],
    responses=PUBLIC_ERRORS,
)
async def brief(
    request: Request[Any, Any, Any],
    data: JSONBody[BriefRequest],
    store: NamedDependency[SessionStore],
    settings: NamedDependency[Settings],
) -> BriefResponse:
    """Time context in the user's zone, recent working memory and the rolling summary.
    Reads Redis only; never calls the LLM."""
    body = await strict_body(request, BriefRequest)
    await admit(request, body.tenant_id)
    return await build_brief(
        store, body, working_memory_turns=settings.working_memory_turns, now=utc_now()
    )
