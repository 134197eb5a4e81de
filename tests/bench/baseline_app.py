"""The baseline the benchmarks divide by: a bare ASGI app that does only the Redis work of
/ingest (the APPEND_TURN script call) and /brief (the READ_BRIEF script call), with the same
Redis client settings as the service, served by uvicorn exactly as `python -m service` serves the
API (service/__main__.py: uvicorn.run with the same host, port, log level and shutdown timeout).

Whatever the service costs above this (routing, validation, dependency injection, strict
decoding, response building, the summary job) is what the ratio in the benchmark table shows.
The request is decoded (untyped) only to build the same script arguments, so both write the same
bytes to the same keys.

Run: `python -m tests.bench.baseline_app` with REDIS_URL, SYNAPSE_HOST, SYNAPSE_PORT, LOG_LEVEL.
"""

import hashlib
import os
import time
from datetime import datetime
from typing import Any

import msgspec
import uvicorn
from redis.asyncio import Redis

from service import redis_scripts
from service.keys import UserKeys
from service.session_store import SUMMARY_BACKLOG_CAP
from service.settings import MAX_WORKING_MEMORY_TURNS, Settings

_decode = msgspec.json.Decoder(dict[str, Any]).decode
_encode = msgspec.json.Encoder().encode
_HEADERS = [(b"content-type", b"application/json")]
RETENTION_SECONDS = Settings().session_retention_seconds
WORKING_MEMORY_TURNS = Settings().working_memory_turns


def _millis(timestamp: str) -> int:
    return int(datetime.fromisoformat(timestamp).timestamp() * 1000)


def _now_ms() -> int:
    return int(time.time() * 1000)


class Baseline:
    def __init__(self, redis_url: str) -> None:
        self._redis: Redis = Redis.from_url(
            redis_url,
            decode_responses=True,
            socket_timeout=10.0,
            socket_connect_timeout=5.0,
            health_check_interval=30,
        )
        self._append = self._redis.register_script(redis_scripts.APPEND_TURN)
        self._read_brief = self._redis.register_script(redis_scripts.READ_BRIEF)

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "lifespan":
            while True:
                message = await receive()
                if message["type"] == "lifespan.startup":
                    await send({"type": "lifespan.startup.complete"})
                elif message["type"] == "lifespan.shutdown":
                    await self._redis.aclose()
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
        session = user.session(turn["sessionId"])
        message_id = turn.get("messageId")
        if message_id is not None:
            fingerprint = "m:" + message_id
        else:
            content = f"{turn['role']}\x1f{turn['timestamp']}\x1f{turn['text']}"
            fingerprint = "c:" + hashlib.sha256(content.encode()).hexdigest()
        stored = {"role": turn["role"], "text": turn["text"], "timestamp": turn["timestamp"]}
        if message_id is not None:
            stored["messageId"] = message_id
        await self._append(
            args=[
                user.prefix,
                session.member,
                session.idle_member,
                fingerprint,
                _encode(stored),
                _now_ms(),
                _millis(turn["timestamp"]),
                turn.get("personaId") or "",
                user.tenant_id,
                user.user_id,
                MAX_WORKING_MEMORY_TURNS,
                RETENTION_SECONDS,
                SUMMARY_BACKLOG_CAP,
            ]
        )
        return b'{"status":"ingested"}'

    async def brief(self, request: dict[str, Any]) -> bytes:
        user = UserKeys(request["tenantId"], request["userId"])
        session_id = request.get("sessionId")
        member = user.session(session_id).member if session_id is not None else ""
        profile, buffered, turns = await self._read_brief(
            args=[user.prefix, member, WORKING_MEMORY_TURNS]
        )
        return _encode({"profile": profile, "bufferSize": buffered, "workingMemory": turns})


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
