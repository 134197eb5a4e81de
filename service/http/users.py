"""Data rights: GET /users/export and DELETE /users, tenant-bound and audited."""

from typing import Annotated, Any, get_args

from litestar import Request, Router, delete, get
from litestar.connection import ASGIConnection
from litestar.di import NamedDependency
from litestar.handlers import BaseRouteHandler
from litestar.params import QueryParameter

from contracts import UserDeletion, UserExport
from contracts.limits import MAX_ID_CHARS, Id
from service.http.audit import ACTOR_KEY, CALLER_KEY, audited, valid_query_ids
from service.http.auth import admit, authenticate, caller_tenant
from service.http.errors import PUBLIC_ERRORS
from service.privacy.data_rights import UserData
from service.store.layout import UserKeys

# The OpenAPI document states the body ids' rule (contracts.limits.Id) for these too; the
# valid_query_ids guard enforces it first, answering a 422 that names the parameter.
_ID_PATTERN: str = get_args(Id)[1].pattern
_ID_DOC = f"1-{MAX_ID_CHARS} characters without control characters, as in a request body."


def _id_param(name: str) -> QueryParameter:
    return QueryParameter(
        name=name, min_length=1, max_length=MAX_ID_CHARS, pattern=_ID_PATTERN, description=_ID_DOC
    )


TenantId = Annotated[str, _id_param("tenantId")]
UserId = Annotated[str, _id_param("userId")]


def _actor(connection: ASGIConnection[Any, Any, Any, Any]) -> str:
    return f"tenant:{caller_tenant(connection) or 'open-mode'}"


async def _identify(connection: ASGIConnection[Any, Any, Any, Any], _: BaseRouteHandler) -> None:
    """Who the key says the caller is, for the audit entry of a call turned away later."""
    connection.state[CALLER_KEY] = _actor(connection)


async def _admit(request: Request[Any, Any, Any], tenant_id: str) -> None:
    """Admission first: only a call that passed it (right tenant, quota left) is audited as a
    real action; a forbidden or rate-limited one goes to the rejected stream."""
    await admit(request, tenant_id)
    request.state[ACTOR_KEY] = _actor(request)


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
        guards=[authenticate, _identify, valid_query_ids],
        middleware=[audited],
    )
