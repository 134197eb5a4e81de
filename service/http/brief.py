"""Start-of-session seed: POST /brief."""

from typing import Any

from litestar import Request, post
from litestar.di import NamedDependency
from litestar.params import JSONBody

from contracts import BriefRequest, BriefResponse
from service import input_rules
from service.clock import utc_now
from service.http.auth import admit, authenticate
from service.http.errors import PUBLIC_ERRORS
from service.http.strict import strict_body
from service.resources import Resources
from service.turns.briefing import build_brief


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
    resources: NamedDependency[Resources],
) -> BriefResponse:
    """Time context in the user's zone, recent working memory and the rolling summary.
    Reads Redis only; never calls the LLM."""
    # Well-formed, admitted requests are answered by service/http/hot_path.py before they reach
    # Litestar; this handler answers the rest (every error) and defines the OpenAPI entry.
    body = await strict_body(request, BriefRequest)
    validate_brief(resources, body)
    await admit(request, body.tenant_id)
    return await brief_admitted(resources, body)


def validate_brief(resources: Resources, body: BriefRequest) -> None:
    """The semantic rules, before admission: shared with the hot path."""
    input_rules.check_brief(body)


async def brief_admitted(resources: Resources, body: BriefRequest) -> BriefResponse:
    """The work of /brief once the caller is admitted: shared with the hot path."""
    return await build_brief(
        resources.store,
        body,
        working_memory_turns=resources.settings.working_memory_turns,
        now=utc_now(),
    )
