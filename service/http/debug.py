"""Internal debug endpoints, exactly the contract's list, all behind X-Internal-Token.

With INTERNAL_TOKEN unset every one of them answers 404, as if it did not exist; with it set, a
missing or wrong token is a 401. The comparison is constant-time. They are left out of the
OpenAPI document and must never be routed from outside the cluster (see deploy/).
"""

import hmac
from datetime import UTC, datetime
from typing import Annotated

from litestar import Router, get, post
from litestar.connection import ASGIConnection
from litestar.di import NamedDependency
from litestar.exceptions import NotAuthorizedException, NotFoundException
from litestar.handlers import BaseRouteHandler
from litestar.params import QueryParameter

from contracts import (
    AuditEntry,
    AuditLogView,
    DebugCloseResponse,
    DebugEmitResponse,
    DebugOutbox,
    DebugSession,
    DebugUser,
)
from contracts.limits import MAX_ID_CHARS
from service.clock import iso_utc, utc_now
from service.http.audit import ACTOR_KEY, audited, valid_query_ids
from service.http.deps import resources_from
from service.operations.operator_views import Operator
from service.store.audit import AuditLog
from service.store.layout import UserKeys

TOKEN_HEADER = "X-Internal-Token"  # noqa: S105  # a header name, not a secret
MAX_DEBUG_LIMIT = 1000

TenantId = Annotated[str, QueryParameter(name="tenantId", min_length=1, max_length=MAX_ID_CHARS)]
UserId = Annotated[str, QueryParameter(name="userId", min_length=1, max_length=MAX_ID_CHARS)]
SessionId = Annotated[str, QueryParameter(name="sessionId", min_length=1, max_length=MAX_ID_CHARS)]


Limit = Annotated[int, QueryParameter(name="limit", ge=1, le=MAX_DEBUG_LIMIT)]


def require_internal_token(connection: ASGIConnection, _: BaseRouteHandler) -> None:  # type: ignore[type-arg]
    expected = resources_from(connection.app.state).settings.internal_token
    if expected is None:
        raise NotFoundException("Not Found")
    offered = connection.headers.get(TOKEN_HEADER, "")
    if not hmac.compare_digest(offered.encode(), expected.encode()):
        raise NotAuthorizedException(f"missing or wrong {TOKEN_HEADER}")
    connection.state[ACTOR_KEY] = "internal-token"


def _now_ms() -> int:
    return int(utc_now().timestamp() * 1000)


@get("/session")
async def debug_session(
    operator: NamedDependency[Operator], tenant_id: TenantId, user_id: UserId, session_id: SessionId
) -> DebugSession:
    return await operator.session(UserKeys(tenant_id, user_id).session(session_id))


@get("/user")
async def debug_user(
    operator: NamedDependency[Operator], tenant_id: TenantId, user_id: UserId
) -> DebugUser:
    return await operator.user(UserKeys(tenant_id, user_id))


@get("/outbox")
async def debug_outbox(
    operator: NamedDependency[Operator], tenant_id: TenantId, limit: Limit = 50
) -> DebugOutbox:
    return await operator.outbox(tenant_id, limit=limit)


@post("/close_session", status_code=200)
async def debug_close_session(
    operator: NamedDependency[Operator], tenant_id: TenantId, user_id: UserId, session_id: SessionId
) -> DebugCloseResponse:
    session = UserKeys(tenant_id, user_id).session(session_id)
    return await operator.close([session], now_ms=_now_ms())


@post("/close_user_sessions", status_code=200)
async def debug_close_user_sessions(
    operator: NamedDependency[Operator], tenant_id: TenantId, user_id: UserId, limit: Limit = 20
) -> DebugCloseResponse:
    sessions = await operator.open_sessions(UserKeys(tenant_id, user_id), limit=limit)
    return await operator.close(sessions, now_ms=_now_ms())


@post("/emit_raw_episode", status_code=200)
async def debug_emit_raw_episode(
    operator: NamedDependency[Operator], tenant_id: TenantId, user_id: UserId, session_id: SessionId
) -> DebugEmitResponse:
    user = UserKeys(tenant_id, user_id)
    return await operator.emit(
        user, [user.session(session_id)], now_ms=_now_ms(), redrive_all=False
    )


@post("/emit_raw_user_sessions", status_code=200)
async def debug_emit_raw_user_sessions(
    operator: NamedDependency[Operator], tenant_id: TenantId, user_id: UserId, limit: Limit = 20
) -> DebugEmitResponse:
    user = UserKeys(tenant_id, user_id)
    sessions = await operator.open_sessions(user, limit=limit)
    return await operator.emit(user, sessions, now_ms=_now_ms(), redrive_all=True)


@get("/audit")
async def debug_audit(
    audit: NamedDependency[AuditLog],
    limit: Limit = 100,
    rejected: Annotated[bool, QueryParameter(name="rejected")] = False,
) -> AuditLogView:
    """The latest real actions, newest first, or with rejected=true the latest calls turned away;
    either way with the per-status counts of every call turned away."""
    records = await audit.latest(limit=limit, rejected=rejected)
    counts = await audit.rejected_counts()
    return AuditLogView(
        entries=[
            AuditEntry(
                at=iso_utc(datetime.fromtimestamp(r.at_ms / 1000, tz=UTC)),
                actor=r.actor,
                action=r.action,
                target=r.target,
                outcome=r.outcome,
            )
            for r in records
        ],
        rejected_counts={str(status): n for status, n in counts.items()},
    )


def debug_router() -> Router:
    return Router(
        path="/internal/debug",
        route_handlers=[
            debug_session,
            debug_user,
            debug_outbox,
            debug_close_session,
            debug_close_user_sessions,
            debug_emit_raw_episode,
            debug_emit_raw_user_sessions,
            debug_audit,
        ],
        guards=[require_internal_token, valid_query_ids],
        middleware=[audited],
        include_in_schema=False,
    )
