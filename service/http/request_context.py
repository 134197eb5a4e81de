"""Request ids and the request's tenant, for logs and for callers.

`RequestContextMiddleware` is plain ASGI and wraps the whole application (routing and error
handling included), so every HTTP response carries `X-Request-ID`, a 404 for an unknown path or
a 500 as much as a 200. A sane incoming `X-Request-ID` (1-128 of `A-Z a-z 0-9 . _ : -`) is kept,
so an orchestrator can follow one turn across services; anything else is replaced by a new one.

While the request runs, every log line carries the id and, once known, the tenant
(service/observability/logs.py). The tenant is the `tenantId` the request names, in its query
string or near the start of its JSON body; code that authenticates the caller can bind the
verified tenant with `service.observability.logs.bind_tenant`. When the response is done, an access
line may be logged: method, route template, status, duration; never the body, the query string
or headers.

Which requests get an access line is ACCESS_LOG's choice: `errors` (the default) logs every 4xx
and 5xx and every request slower than a second; `all` logs every request. Every request is
counted in /metrics either way (route, status, latency histogram). The default is deliberate:
the orchestrator calls /ingest and /brief on every turn, and a line per turn cost 8 % of the
API's CPU under load (py-spy, 2026-11-22) while repeating what the metrics already say.
"""

import logging
import re
import secrets
import time
from urllib.parse import parse_qsl

from litestar.enums import ScopeType
from litestar.types import ASGIApp, Message, Receive, ReceiveMessage, Scope, Send

from service.observability.logs import bind_tenant, current_tenant, log_context
from service.observability.metrics import RequestMetrics

REQUEST_ID_HEADER = "x-request-id"
_HEADER_BYTES = REQUEST_ID_HEADER.encode()
_SANE_REQUEST_ID = re.compile(r"[A-Za-z0-9._:-]{1,128}")
_SANE_TENANT = re.compile(r"[^\x00-\x1f\x7f]{1,128}")
# The body is scanned for "tenantId" only this far: the orchestrator's requests put it first.
_SNIFF_BYTES = 8 * 1024
_BODY_TENANT = re.compile(rb'"tenantId"\s*:\s*"([^"\\\x00-\x1f]{1,512})"')
# Probes and scrapes: logged at DEBUG, they would drown everything else.
_QUIET_ROUTES = frozenset({"/health", "/ready", "/metrics"})
UNMATCHED_ROUTE = "unmatched"
SLOW_REQUEST_SECONDS = 1.0

access_logger = logging.getLogger("synapse.access")


def new_request_id() -> str:
    return secrets.token_hex(16)


def _request_headers(scope: Scope) -> tuple[str | None, bool]:
    """The caller's request id if sane, and whether the body is JSON: one pass over headers."""
    request_id = None
    is_json = False
    for name, value in scope.get("headers", ()):
        name = name.lower()
        if name == _HEADER_BYTES:
            candidate = value.decode("latin-1")
            request_id = candidate if _SANE_REQUEST_ID.fullmatch(candidate) else None
        elif name == b"content-type":
            is_json = b"json" in value.lower()
    return request_id, is_json


def _sane_tenant(value: str) -> str | None:
    return value if _SANE_TENANT.fullmatch(value) else None


def _query_tenant(scope: Scope) -> str | None:
    raw = scope.get("query_string", b"")
    if b"tenantId" not in raw:
        return None
    for key, value in parse_qsl(raw.decode("latin-1"), keep_blank_values=True):
        if key == "tenantId":
            return _sane_tenant(value)
    return None


class _TenantSniffer:
    """Wraps `receive`: reads `tenantId` from the first bytes of a JSON body as the app reads
    them, binding it for the log lines that follow. The body itself is passed on untouched."""

    def __init__(self, receive: Receive) -> None:
        self._receive = receive
        self._seen = b""
        self._done = False

    async def __call__(self) -> ReceiveMessage:
        message = await self._receive()
        if not self._done and message["type"] == "http.request":
            self._seen += message.get("body", b"")[: _SNIFF_BYTES - len(self._seen)]
            match = _BODY_TENANT.search(self._seen)
            if match is not None:
                if current_tenant() is None:
                    bind_tenant(_sane_tenant(match.group(1).decode("utf-8", "replace")))
                self._done = True
            elif len(self._seen) >= _SNIFF_BYTES or not message.get("more_body", False):
                self._done = True
            if self._done:
                self._seen = b""
        return message


class RequestContextMiddleware:
    """Request id, log context, the access line and the request's latency observation: one
    wrapper measures each request once, for the logs and for /metrics alike."""

    def __init__(self, app: ASGIApp, metrics: RequestMetrics, *, log_every_request: bool) -> None:
        self._app = app
        self._metrics = metrics
        self._log_every_request = log_every_request

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != ScopeType.HTTP:
            await self._app(scope, receive, send)
            return
        method = scope["method"]
        incoming_id, is_json = _request_headers(scope)
        request_id = incoming_id or new_request_id()
        header_value = request_id.encode("latin-1")
        status = 500  # what the client sees if the app fails before answering
        started = time.perf_counter()

        async def send_with_id(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                headers = [
                    (name, value)
                    for name, value in message.get("headers", [])
                    if name.lower() != _HEADER_BYTES
                ]
                headers.append((_HEADER_BYTES, header_value))
                message = {**message, "headers": headers}
            await send(message)

        app_receive: Receive = _TenantSniffer(receive) if is_json else receive
        with log_context(request_id=request_id, tenant=_query_tenant(scope)):
            try:
                await self._app(scope, app_receive, send_with_id)
            finally:
                route = scope.get("path_template") or UNMATCHED_ROUTE
                seconds = time.perf_counter() - started
                self._metrics.observe(route, method, status, seconds)
                self._access_line(method, route, status, seconds)

    def _access_line(self, method: str, route: str, status: int, seconds: float) -> None:
        notable = status >= 400 or seconds >= SLOW_REQUEST_SECONDS or self._log_every_request
        level = logging.INFO if notable and route not in _QUIET_ROUTES else logging.DEBUG
        if access_logger.isEnabledFor(level):
            access_logger.log(
                level,
                "request",
                extra={
                    "method": method,
                    "route": route,
                    "status": status,
                    "duration_ms": round(seconds * 1000, 2),
                },
            )
