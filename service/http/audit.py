"""ASGI middleware that records every call to an audited route: who, what, when, outcome.

A call is a real action, recorded in the main audit stream, only when it passed authentication
and admission (the guard or handler set ACTOR_KEY once the caller was let through) and was not
turned away afterwards. Everything else (no or wrong credentials, another tenant's key, over
quota, invalid input) goes to the rejected stream and its per-status counters, under the actor
the credentials claimed (CALLER_KEY) or "anonymous": rejected traffic, however much of it, can
never evict the record of a real export or delete.
"""

from typing import Any
from urllib.parse import parse_qsl, urlencode

from litestar.connection import ASGIConnection
from litestar.enums import ScopeType
from litestar.handlers import BaseRouteHandler
from litestar.types import ASGIApp, Message, Receive, Scope, Send

from service.http.deps import RESOURCES_KEY
from service.input_rules import check_id
from service.resources import Resources

# Only ids go into the audit target; any other parameter is dropped, never logged.
_ID_PARAMS = ("tenantId", "userId", "sessionId")
_TARGET_PARAMS = (*_ID_PARAMS, "limit")
# Who was let through: set only after authentication and admission succeeded.
ACTOR_KEY = "synapse_actor"
# Who the credentials say the caller is, before admission: named on a rejected call's entry.
CALLER_KEY = "synapse_audit_caller"
# Answers that turn a request away without acting on it.
REJECTED_STATUSES = frozenset({400, 401, 403, 413, 422, 429})


def _target(scope: Scope) -> str:
    query = scope.get("query_string", b"").decode("latin-1")
    kept = [(k, v) for k, v in parse_qsl(query) if k in _TARGET_PARAMS]
    return urlencode(kept)


async def valid_query_ids(
    connection: ASGIConnection[Any, Any, Any, Any], _: BaseRouteHandler
) -> None:
    """The API's one id rule (contracts.limits.is_valid_id, as for ids in bodies) for the ids the
    audited routes take in their query string; every value of a repeated parameter is checked.
    A guard, so it runs after authentication and before the handler reads or writes anything."""
    for name in _ID_PARAMS:
        for value in connection.query_params.getall(name, []):
            check_id(value, name)


def audited(app: ASGIApp) -> ASGIApp:
    async def middleware(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != ScopeType.HTTP:
            await app(scope, receive, send)
            return
        status = 500

        async def capture(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await app(scope, receive, capture)
        finally:
            resources: Resources = scope["app"].state[RESOURCES_KEY]
            state = scope.get("state", {})
            actor = state.get(ACTOR_KEY)
            action = f"{scope.get('method', '')} {scope['path']}"
            if actor is not None and status not in REJECTED_STATUSES:
                await resources.audit.record(
                    actor=str(actor), action=action, target=_target(scope), outcome=status
                )
            else:
                await resources.audit.record_rejected(
                    actor=str(actor or state.get(CALLER_KEY) or "anonymous"),
                    action=action,
                    target=_target(scope),
                    outcome=status,
                )

    return middleware
