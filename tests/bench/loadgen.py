"""A small HTTP/1.1 load generator for what wrk cannot do: a constant request rate (open loop).

Why not wrk: wrk is closed-loop (each connection waits for its answer before sending again), so
when the server stalls, wrk sends less and the stall never shows in its latencies (coordinated
omission). wrk2 fixes that with a constant rate, but it is not in Debian's archive, and this
project installs only what the OS packages or PyPI serve. So: requests are scheduled at fixed
intervals from the start, a free keep-alive connection takes the next one, and each latency is
measured from when the request was *due*, not from when a connection got round to sending it;
a server that falls behind shows the queueing in its p99, as with wrk2.

It also has a sequential mode (one connection, one request after another) for the per-query
latency of /memory/query. Raw asyncio streams on uvloop, no HTTP library: the client's own
cost per request stays in the tens of microseconds, on a machine it shares with the server.

Run as its own process: `python -m tests.bench.loadgen SPEC.json`; prints one JSON line.
Spec: {"url": "http://127.0.0.1:8000", "path": "/ingest", "bodies": {...}, "mode": "rate" |
"sequential", "rate": 1000, "seconds": 20, "connections": 64, "requests": 100}
"""

import asyncio
import json
import sys
import time
from collections.abc import Callable
from typing import Any
from urllib.parse import urlsplit

import uvloop

Body = Callable[[int], bytes]


def ingest_bodies(tenant: str, nonce: str) -> Body:
    texts = (
        "Let's plan tomorrow. I need to book the dentist before Friday and call my sister.",
        "Sure. I will remind you about the dentist and your sister tomorrow morning.",
    )

    def body(n: int) -> bytes:
        user = n // 10
        side = n % 2
        return json.dumps(
            {
                "tenantId": tenant,
                "userId": f"u{nonce}-{user}",
                "personaId": "persona-1",
                "sessionId": f"s-{user}",
                "role": ("user", "assistant")[side],
                "text": texts[side],
                "timestamp": f"2026-02-03T18:{n % 600 // 10:02d}:{n % 60:02d}Z",
                "messageId": f"m-{nonce}-{n}",
            }
        ).encode()

    return body


def brief_bodies(tenant: str, users: int) -> Body:
    def body(n: int) -> bytes:
        user = n % users
        return json.dumps(
            {
                "tenantId": tenant,
                "userId": f"u-{user}",
                "sessionId": f"s-{user}",
                "timezone": "Europe/Paris",
            }
        ).encode()

    return body


def query_bodies(tenant: str, user: str, queries: list[str], limit: int) -> Body:
    def body(n: int) -> bytes:
        return json.dumps(
            {
                "tenantId": tenant,
                "userId": user,
                "query": queries[n % len(queries)],
                "limit": limit,
            }
        ).encode()

    return body


def bodies_from(spec: dict[str, Any]) -> Body:
    kind = spec["kind"]
    if kind == "ingest":
        return ingest_bodies(spec["tenant"], spec["nonce"])
    if kind == "brief":
        return brief_bodies(spec["tenant"], spec["users"])
    return query_bodies(spec["tenant"], spec["user"], spec["queries"], spec.get("limit", 10))


class Connection:
    def __init__(self, host: str, port: int) -> None:
        self._host = host
        self._port = port
        self._reader: asyncio.StreamReader | None = None
        self._writer: asyncio.StreamWriter | None = None

    async def open(self) -> None:
        self._reader, self._writer = await asyncio.open_connection(self._host, self._port)

    async def post(self, path: str, body: bytes) -> int:
        if self._reader is None or self._writer is None:
            await self.open()
        assert self._reader is not None
        assert self._writer is not None
        head = (
            f"POST {path} HTTP/1.1\r\nHost: {self._host}:{self._port}\r\n"
            f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
        ).encode()
        self._writer.write(head + body)
        status_line = await self._reader.readline()
        if not status_line:
            raise ConnectionError("server closed the connection")
        status = int(status_line.split(b" ", 2)[1])
        length = 0
        chunked = False
        while True:
            line = await self._reader.readline()
            if line in (b"\r\n", b"\n", b""):
                break
            name, _, value = line.partition(b":")
            name = name.strip().lower()
            if name == b"content-length":
                length = int(value.strip())
            elif name == b"transfer-encoding" and b"chunked" in value.lower():
                chunked = True
        if chunked:
            while size := int((await self._reader.readline()).split(b";")[0], 16):
                await self._reader.readexactly(size + 2)
            await self._reader.readline()
        elif length:
            await self._reader.readexactly(length)
        return status

    def close(self) -> None:
        if self._writer is not None:
            self._writer.close()


def summary(latencies: list[float], errors: int, elapsed: float) -> dict[str, Any]:
    ordered = sorted(latencies)

    def pct(p: float) -> float | None:
        if not ordered:
            return None
        return ordered[min(len(ordered) - 1, round(p / 100 * len(ordered) + 0.5) - 1)] * 1000

    return {
        "requests": len(ordered),
        "errors": errors,
        "seconds": elapsed,
        "rate": len(ordered) / elapsed if elapsed else 0.0,
        "p50_ms": pct(50),
        "p90_ms": pct(90),
        "p95_ms": pct(95),
        "p99_ms": pct(99),
        "p999_ms": pct(99.9),
        "max_ms": ordered[-1] * 1000 if ordered else None,
    }


async def open_loop(spec: dict[str, Any]) -> dict[str, Any]:
    url = urlsplit(spec["url"])
    host, port = url.hostname or "127.0.0.1", url.port or 80
    path, body = spec["path"], bodies_from(spec)
    rate, seconds = float(spec["rate"]), float(spec["seconds"])
    total = int(rate * seconds)
    queue: asyncio.Queue[tuple[int, float] | None] = asyncio.Queue()
    latencies: list[float] = []
    errors = 0

    async def worker() -> None:
        nonlocal errors
        connection = Connection(host, port)
        try:
            while (item := await queue.get()) is not None:
                n, due = item
                try:
                    status = await connection.post(path, body(n))
                except (OSError, ConnectionError, asyncio.IncompleteReadError):
                    errors += 1
                    connection.close()
                    connection = Connection(host, port)
                    continue
                if status != 200:
                    errors += 1
                latencies.append(time.perf_counter() - due)
        finally:
            connection.close()

    workers = [asyncio.create_task(worker()) for _ in range(int(spec.get("connections", 64)))]
    await asyncio.sleep(0.2)  # connections open lazily; let the tasks start
    start = time.perf_counter()
    interval = 1.0 / rate
    for n in range(total):
        due = start + n * interval
        delay = due - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        queue.put_nowait((n, due))
    for _ in workers:
        queue.put_nowait(None)
    await asyncio.gather(*workers)
    return summary(latencies, errors, time.perf_counter() - start)


async def sequential(spec: dict[str, Any]) -> dict[str, Any]:
    url = urlsplit(spec["url"])
    connection = Connection(url.hostname or "127.0.0.1", url.port or 80)
    path, body = spec["path"], bodies_from(spec)
    for n in range(int(spec.get("warmup", 3))):
        await connection.post(path, body(n))
    latencies: list[float] = []
    errors = 0
    start = time.perf_counter()
    deadline = start + float(spec.get("max_seconds", 120))
    for n in range(int(spec["requests"])):
        sent = time.perf_counter()
        status = await connection.post(path, body(n))
        latencies.append(time.perf_counter() - sent)
        errors += status != 200
        if time.perf_counter() > deadline:
            break
    connection.close()
    return summary(latencies, errors, time.perf_counter() - start)


def main() -> None:
    spec = json.loads(sys.argv[1])
    run = open_loop if spec.get("mode", "rate") == "rate" else sequential
    result = uvloop.run(run(spec))
    print(json.dumps(result))


if __name__ == "__main__":
    main()
