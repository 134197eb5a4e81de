"""POST /ingest and POST /brief for well-formed, admitted requests, without the framework.

Why: the orchestrator calls these two on every turn, so they are on its user's critical path.
Measured with `make bench` (tests/bench/RESULTS.md, 2026-11-22), Litestar's per-request
machinery (request object, guard, signature model, dependency injection, response object) cost
more than the work itself: /ingest served 0.41x and /brief 0.39x the requests per second of a
bare ASGI app making the same Redis call.

How: for exactly `POST /ingest` and `POST /brief` this layer reads the body (within the same
size limit), decodes it strictly, applies the semantic rules (service/input_rules.py) and
authenticates the key. A request that passes all of that goes to admission
(service/access/admission.py: the key's tenant must be the one named, and its quota must have room),
the very decision the Litestar handlers ask, and is answered with the very same domain call the
Litestar handler makes, encoded the same way. Anything else is handed on, body replayed
untouched, to the Litestar handler, which stays the one definition of the OpenAPI entry and of
every error before admission (malformed JSON, schema violations, semantic violations such as a
timestamp out of range, a missing or unknown key, an oversized body): a request refused before
admission spends no quota. Admission's refusals and later errors (Redis down) are answered
from the same error table (service/http/errors.py) as Litestar's exception handlers.
`HOT_PATH=off` sends every request through Litestar (tests/test_auth_and_quotas.py compares
the two entrances' answers).
"""

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import msgspec
from litestar.enums import ScopeType
from litestar.types import ASGIApp, Message, Receive, ReceiveMessage, Scope, Send

from contracts import BriefRequest, IngestRequest
from service.errors import InvalidInput, SynapseError, Unauthorized
from service.http.auth import caller_for
from service.http.brief import brief_admitted, validate_brief
from service.http.errors import (
    DEPENDENCY_ERRORS,
    ErrorReply,
    dependency_reply,
    domain_reply,
    unexpected_reply,
)
from service.http.turns import ingest_admitted, validate_ingest
from service.observability.logs import bind_tenant
from service.resources import Resources

_encode = msgspec.json.Encoder().encode
_CONTENT_TYPE = (b"content-type", b"application/json")
_AUTHORIZATION = b"authorization"
_CONTENT_LENGTH = b"content-length"


@dataclass(frozen=True, slots=True)
class _Route:
    decoder: msgspec.json.Decoder[Any]
    turns: int  # what one request spends of the tenant's daily turn quota
    validate: Callable[[Resources, Any], None]  # the semantic rules (service/input_rules.py)
    answer: Callable[[Resources, Any], Awaitable[msgspec.Struct]]


_ROUTES = {
    "/ingest": _Route(msgspec.json.Decoder(IngestRequest), 1, validate_ingest, ingest_admitted),
    "/brief": _Route(msgspec.json.Decoder(BriefRequest), 0, validate_brief, brief_admitted),
}


def _header(scope: Scope, name: bytes) -> bytes | None:
    for key, value in scope["headers"]:
        if key.lower() == name:
            return bytes(value)
    return None


def _replaying(consumed: list[ReceiveMessage], receive: Receive) -> Receive:
    """`receive` as if nothing had been read: the consumed messages first, then the rest."""
    pending = list(consumed)

    async def replay() -> ReceiveMessage:
        return pending.pop(0) if pending else await receive()

    return replay


async def _send_json(send: Send, status: int, body: bytes, extra: dict[str, str]) -> None:
    headers = [_CONTENT_TYPE, (_CONTENT_LENGTH, str(len(body)).encode())]
    headers.extend((name.lower().encode(), value.encode()) for name, value in extra.items())
    start: Message = {"type": "http.response.start", "status": status, "headers": headers}
    await send(start)
    await send({"type": "http.response.body", "body": body, "more_body": False})


class HotPath:
    """ASGI layer in front of the Litestar app; see the module docstring."""

    def __init__(
        self, app: ASGIApp, resources: Callable[[], Resources], max_body_bytes: int
    ) -> None:
        self._app = app
        self._resources = resources
        self._max_body_bytes = max_body_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        route = None
        if scope["type"] == ScopeType.HTTP and scope["method"] == "POST":
            route = _ROUTES.get(scope["path"])
        if route is None:
            await self._app(scope, receive, send)
            return
        declared = _header(scope, _CONTENT_LENGTH)
        if declared is not None and (
            not declared.isdigit() or int(declared) > self._max_body_bytes
        ):
            await self._app(scope, receive, send)
            return
        consumed: list[ReceiveMessage] = []
        body = await self._read_body(receive, consumed)
        if body is None or not await self._answer(scope, route, body, send):
            await self._app(scope, _replaying(consumed, receive), send)

    async def _read_body(self, receive: Receive, consumed: list[ReceiveMessage]) -> bytes | None:
        """The whole body, or None (a disconnect, or more than the limit) for Litestar to answer."""
        size = 0
        while True:
            message = await receive()
            consumed.append(message)
            if message["type"] != "http.request":
                return None
            size += len(message.get("body", b""))
            if size > self._max_body_bytes:
                return None
            if not message.get("more_body", False):
                return b"".join(part.get("body", b"") for part in consumed)  # type: ignore[misc]

    async def _answer(self, scope: Scope, route: _Route, body: bytes, send: Send) -> bool:
        """Answer an admissible request and return True; False leaves it untouched."""
        try:
            request = route.decoder.decode(body)
        # Malformed, schema-violating, not UTF-8 or nested too deeply: Litestar says which.
        except (msgspec.DecodeError, UnicodeDecodeError, RecursionError):
            return False
        resources = self._resources()
        try:
            route.validate(resources, request)
        except InvalidInput:  # a semantic violation, before admission: Litestar says which
            return False
        try:
            authorization = _header(scope, _AUTHORIZATION) or b""
            caller = caller_for(resources.tenants, authorization.decode("latin-1"))
        except Unauthorized:
            return False
        scope["path_template"] = scope["path"]
        bind_tenant(request.tenant_id)
        reply: ErrorReply
        try:
            await resources.admission.admit(caller, request.tenant_id, turns=route.turns)
            answer = await route.answer(resources, request)
        except SynapseError as exc:
            reply = domain_reply(exc)
        except DEPENDENCY_ERRORS as exc:
            reply = dependency_reply(exc)
        except Exception as exc:  # the same last resort as Litestar's handler: logged, a 500
            reply = unexpected_reply(exc)
        else:
            await _send_json(send, 200, _encode(answer), {})
            return True
        await _send_json(send, reply.status, _encode(reply.body), reply.headers)
        return True
