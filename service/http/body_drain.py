"""A 413 is sent only after the rest of the request body has been read (within bounds).

Why: the body limit is enforced as soon as it is known to be exceeded, by the Content-Length
header or part-way through a streamed body, so the 413 is ready while the client is still
sending. Clients that write the whole body before reading the answer (urllib, requests,
http.client) and ask for `Connection: close` (urllib always does) then lose it: uvicorn closes
the connection with the unread rest of the body in its buffers, the kernel answers with a
reset, and the client sees a broken pipe or "connection reset by peer" instead of the 413 that
tells it what is wrong.

How: `BodyDrain` wraps the application as plain ASGI and watches what it sends. When a 413
starts while the body has not ended, it first reads and discards the rest of the body, then
lets the answer go out. Draining is bounded: at most `max_bytes` and `max_seconds` (a client
trickling a huge body must not hold a connection open for ever); a Content-Length already
larger than the byte bound is not drained at all. When the bound cuts the drain short the
answer also says `Connection: close`, as the server will not read that connection further.
"""

import asyncio

from litestar.enums import ScopeType
from litestar.types import ASGIApp, Message, Receive, ReceiveMessage, Scope, Send

# Generous next to the body limits (256 KiB, 4 MiB): reading and discarding is cheap, and a
# client whose upload is that far over the limit is told either way, only less politely.
DRAIN_MAX_BYTES = 64 * 1024 * 1024
DRAIN_MAX_SECONDS = 10.0

_TOO_LARGE = 413
_CONTENT_LENGTH = b"content-length"
_CONNECTION_CLOSE = (b"connection", b"close")


def _declared_length(scope: Scope) -> int | None:
    for name, value in scope.get("headers", ()):
        if name.lower() == _CONTENT_LENGTH:
            return int(value) if value.isdigit() else None
    return None


class BodyDrain:
    """ASGI middleware: drain the unread request body, boundedly, before a 413 goes out."""

    def __init__(
        self,
        app: ASGIApp,
        *,
        max_bytes: int = DRAIN_MAX_BYTES,
        max_seconds: float = DRAIN_MAX_SECONDS,
    ) -> None:
        self._app = app
        self._max_bytes = max_bytes
        self._max_seconds = max_seconds

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != ScopeType.HTTP:
            await self._app(scope, receive, send)
            return
        body_ended = False

        async def tracking_receive() -> ReceiveMessage:
            nonlocal body_ended
            message = await receive()
            if message["type"] != "http.request" or not message.get("more_body", False):
                body_ended = True
            return message

        async def draining_send(message: Message) -> None:
            nonlocal body_ended
            if (
                message["type"] == "http.response.start"
                and message["status"] == _TOO_LARGE
                and not body_ended
            ):
                body_ended = True
                if not await self._drain(scope, receive):
                    headers = [*message.get("headers", ()), _CONNECTION_CLOSE]
                    message = {**message, "headers": headers}
            await send(message)

        await self._app(scope, tracking_receive, draining_send)

    async def _drain(self, scope: Scope, receive: Receive) -> bool:
        """Read and discard the rest of the body: True if it ended within the bounds."""
        declared = _declared_length(scope)
        if declared is not None and declared > self._max_bytes:
            return False
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self._max_seconds
        drained = 0
        while drained <= self._max_bytes:
            remaining = deadline - loop.time()
            if remaining <= 0:
                return False
            try:
                message = await asyncio.wait_for(receive(), remaining)
            except TimeoutError:
                return False
            if message["type"] != "http.request":
                return True  # the client went away: nothing left to read
            drained += len(message.get("body", b""))
            if not message.get("more_body", False):
                return True
        return False
