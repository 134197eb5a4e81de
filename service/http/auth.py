"""Who is calling: API keys bound to tenants, checked on every public endpoint.

The guard authenticates from the Authorization header alone (before the body is read); it is
async so Litestar does not hop to a worker thread for it on every request. The handler then
asks service/access/admission.py, with the body's tenantId, whether the caller gets in: the same
decision the hot path (service/http/hot_path.py) asks for /ingest and /brief. With no keys
configured (open mode, loopback only) everyone is trusted and no quota applies.
"""

from typing import Any

from litestar import Request
from litestar.connection import ASGIConnection
from litestar.handlers import BaseRouteHandler

from service.access.tenants import Tenant, TenantDirectory
from service.errors import Unauthorized
from service.http.deps import resources_from
from service.observability.logs import bind_tenant

_CALLER = "synapse_caller"
_BEARER = "bearer "


def caller_for(directory: TenantDirectory, authorization: str) -> Tenant | None:
    """The tenant whose key the Authorization header carries; None in open mode."""
    if directory.open_mode:
        return None
    if not authorization.lower().startswith(_BEARER) or not authorization[len(_BEARER) :].strip():
        raise Unauthorized("an API key is required: Authorization: Bearer <key>")
    tenant = directory.tenant_for(authorization[len(_BEARER) :].strip())
    if tenant is None:
        raise Unauthorized("the API key is not valid")
    return tenant


async def authenticate(connection: ASGIConnection[Any, Any, Any, Any], _: BaseRouteHandler) -> None:
    directory = resources_from(connection.app.state).tenants
    connection.state[_CALLER] = caller_for(directory, connection.headers.get("authorization", ""))


async def admit(request: Request[Any, Any, Any], tenant_id: str, *, turns: int = 0) -> None:
    """The caller may act for `tenant_id` and has quota left; otherwise nothing is done."""
    bind_tenant(tenant_id)
    caller: Tenant | None = request.state.get(_CALLER)
    await resources_from(request.app.state).admission.admit(caller, tenant_id, turns=turns)


def caller_tenant(connection: ASGIConnection[Any, Any, Any, Any]) -> str | None:
    caller: Tenant | None = connection.state.get(_CALLER)
    return caller.tenant_id if caller else None
