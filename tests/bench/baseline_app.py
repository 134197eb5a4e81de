"""The baseline the benchmarks divide by: a bare ASGI app that does only the Redis work of
/ingest (the store's append_turn) and /brief (the store's read_brief), with the same Redis client
as the service (service/store/client.py), served by uvicorn exactly as `python -m service` serves
the API (service/__main__.py: uvicorn.run with the same host, port, log level and shutdown
timeout).

Whatever the service costs above this (routing, validation, dependency injection, strict
decoding, response building, the summary job) is what the ratio in the benchmark table shows.
The request is decoded (untyped) only to build the same store call, so both write the same
bytes to the same keys.

Run: `python -m tests.bench.baseline_app` with REDIS_URL, SYNAPSE_HOST, SYNAPSE_PORT, LOG_LEVEL.
"""

import os
import time
from datetime import datetime
from typing import Any

import msgspec
import uvicorn

from service.settings import Settings
from service.store.client import Store
from service.store.layout import UserKeys
from service.store.sessions import NewTurn

_decode = msgspec.json.Decoder(dict[str, Any]).decode
_encode = msgspec.json.Encoder().encode
_HEADERS = [(b"content-type", b"application/json")]
RETENTION_SECONDS = Settings().session_retention_seconds
WORKING_MEMORY_TURNS = Settings().working_memory_turns


def _now_ms() -> int:
    return int(time.time() * 1000)


class Baseline:
    def __init__(self, redis_url: str) -> None:
        self._store = Store.connect(
            redis_url, retention_seconds=RETENTION_SECONDS, audit_max_entries=1000
        )

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "lifespan":
            while True:
                message = await receive()
                if message["type"] == "lifespan.startup":
                    await send({"type": "lifespan.startup.complete"})
                elif message["type"] == "lifespan.shutdown":
                    await self._store.close()
                    await send({"type": "lifespan.shutdown.complete"})
                    return
        body = b""
        while True:
            message = await receive()
            body += message.get("body", b"")
            if not message.get("more_body"):
                break
        path = scope["path"]
        if path == "/ingest":
            answer = await self.ingest(_decode(body))
        elif path == "/brief":
            answer = await self.brief(_decode(body))
        else:
            headers = [*_HEADERS, (b"content-length", b"2")]
            await send({"type": "http.response.start", "status": 404, "headers": headers})
            await send({"type": "http.response.body", "body": b"{}"})
            return
        headers = [*_HEADERS, (b"content-length", str(len(answer)).encode())]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body", "body": answer})

    async def ingest(self, turn: dict[str, Any]) -> bytes:
        user = UserKeys(turn["tenantId"], turn["userId"])
        new = NewTurn(
            role=turn["role"],
            text=turn["text"],
            timestamp=datetime.fromisoformat(turn["timestamp"]),
            message_id=turn.get("messageId"),
        )
        await self._store.sessions.append_turn(
            user.session(turn["sessionId"]),
            new,
            persona_id=turn.get("personaId"),
            now_ms=_now_ms(),
        )
        return b'{"status":"ingested"}'

    async def brief(self, request: dict[str, Any]) -> bytes:
        user = UserKeys(request["tenantId"], request["userId"])
        state = await self._store.sessions.read_brief(
            user, request.get("sessionId"), turns=WORKING_MEMORY_TURNS
        )
        return _encode(
            {
                "profile": [state.timezone, state.name, state.rolling_summary],
                "bufferSize": state.buffer_size,
                "workingMemory": [msgspec.to_builtins(t) for t in state.recent_turns],
            }
        )


def main() -> None:
    settings = Settings.from_env(os.environ)
    uvicorn.run(
        Baseline(settings.redis_url),
        host=settings.host,
        port=settings.port,
        log_level=settings.log_level.lower(),
        timeout_graceful_shutdown=20,
    )


if __name__ == "__main__":
    main()
