"""ASGI middleware that records every call to an audited route: who, what, when, outcome."""

from urllib.parse import parse_qsl, urlencode

from litestar.enums import ScopeType
from litestar.types import ASGIApp, Message, Receive, Scope, Send

from service.http.deps import RESOURCES_KEY
from service.resources import Resources

# Only ids go into the audit target; any other parameter is dropped, never logged.
_TARGET_PARAMS = ("tenantId", "userId", "sessionId", "limit")
ACTOR_KEY = "synapse_actor"


def _target(scope: Scope) -> str:
    query = scope.get("query_string", b"").decode("latin-1")
    kept = [(k, v) for k, v in parse_qsl(query) if k in _TARGET_PARAMS]
    return urlencode(kept)


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
            actor = scope.get("state", {}).get(ACTOR_KEY, "anonymous")
            await resources.audit.record(
                actor=str(actor),
                action=f"{scope.get('method', '')} {scope['path']}",
                target=_target(scope),
                outcome=status,
            )

    return middleware
