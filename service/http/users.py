"""Data rights: GET /users/export and DELETE /users, tenant-bound and audited."""

from typing import Annotated, Any

from litestar import Request, Router, delete, get
from litestar.di import NamedDependency
from litestar.params import QueryParameter

from contracts import UserDeletion, UserExport
from contracts.limits import MAX_ID_CHARS
from service.data_rights import UserData
from service.http.audit import ACTOR_KEY, audited
from service.http.auth import admit, authenticate, caller_tenant
from service.http.errors import PUBLIC_ERRORS
from service.keys import UserKeys

TenantId = Annotated[str, QueryParameter(name="tenantId", min_length=1, max_length=MAX_ID_CHARS)]
UserId = Annotated[str, QueryParameter(name="userId", min_length=1, max_length=MAX_ID_CHARS)]


async def _admit(request: Request[Any, Any, Any], tenant_id: str) -> None:
    request.state[ACTOR_KEY] = f"tenant:{caller_tenant(request) or 'open-mode'}"
    await admit(request, tenant_id)


@get("/export", summary="Everything Synapse holds on one user, as JSON", responses=PUBLIC_ERRORS)
async def export_user(
    request: Request[Any, Any, Any],
    user_data: NamedDependency[UserData],
    tenant_id: TenantId,
    user_id: UserId,
) -> UserExport:
    """Buffered turns, summary, outbox transcripts and the user's graph (episodes, entities,
    facts)."""
    await _admit(request, tenant_id)
    return await user_data.export(UserKeys(tenant_id, user_id))


@delete("/", status_code=200, summary="Delete one user's data everywhere", responses=PUBLIC_ERRORS)
async def delete_user(
    request: Request[Any, Any, Any],
    user_data: NamedDependency[UserData],
    tenant_id: TenantId,
    user_id: UserId,
) -> UserDeletion:
    """Redis state, pending and dead outbox entries, and the user's Graphiti group. Idempotent:
    deleting again reports nothing left to delete."""
    await _admit(request, tenant_id)
    return await user_data.delete(UserKeys(tenant_id, user_id))


def users_router() -> Router:
    return Router(
        path="/users",
        route_handlers=[export_user, delete_user],
        guards=[authenticate],
        middleware=[audited],
    )
