"""Bad input gets a clear 4xx naming the problem, and changes nothing in Redis."""

import asyncio
import json
import socket
from http.client import HTTPConnection
from typing import Any

import httpx
import pytest
from redis.asyncio import Redis

from contracts.limits import MAX_ID_CHARS, MAX_TEXT_CHARS
from tests.support.api import RunningApi
from tests.support.builders import ingest_body

MISSING = ...


@pytest.fixture
async def http(api: RunningApi) -> Any:
    async with httpx.AsyncClient(base_url=api.base_url) as client:
        yield client


async def _assert_untouched(redis: Redis) -> None:
    assert await redis.dbsize() == 0, await redis.keys("*")


async def test_malformed_json_is_a_400(http: httpx.AsyncClient, redis: Redis) -> None:
    response = await http.post(
        "/ingest", content=b'{"tenantId": "t", ', headers={"Content-Type": "application/json"}
    )

    assert response.status_code == 400
    assert response.json()["error"] == "malformed_body"
    assert response.json()["message"]
    await _assert_untouched(redis)


@pytest.mark.parametrize(
    ("overrides", "field"),
    [
        pytest.param({"tenantId": MISSING}, "tenantId", id="missing-tenant"),
        pytest.param({"userId": MISSING}, "userId", id="missing-user"),
        pytest.param({"sessionId": MISSING}, "sessionId", id="missing-session"),
        pytest.param({"role": MISSING}, "role", id="missing-role"),
        pytest.param({"text": MISSING}, "text", id="missing-text"),
        pytest.param({"timestamp": MISSING}, "timestamp", id="missing-timestamp"),
        pytest.param({"role": "system"}, "role", id="unknown-role"),
        pytest.param({"role": 1}, "role", id="role-not-a-string"),
        pytest.param({"text": 42}, "text", id="text-not-a-string"),
        pytest.param({"text": ""}, "text", id="empty-text"),
        pytest.param({"text": "x" * (MAX_TEXT_CHARS + 1)}, "text", id="text-too-long"),
        pytest.param({"timestamp": "yesterday"}, "timestamp", id="unparseable-timestamp"),
        pytest.param({"timestamp": "2026-02-30T10:00:00Z"}, "timestamp", id="impossible-date"),
        pytest.param({"timestamp": "2026-02-03T18:34:12"}, "timestamp", id="timestamp-no-zone"),
        pytest.param({"timestamp": 1770143652}, "timestamp", id="timestamp-a-number"),
        pytest.param({"tenantId": ""}, "tenantId", id="empty-tenant"),
        pytest.param({"userId": ""}, "userId", id="empty-user"),
        pytest.param({"sessionId": ""}, "sessionId", id="empty-session"),
        pytest.param({"personaId": ""}, "personaId", id="empty-persona"),
        pytest.param({"userId": "a\nb"}, "userId", id="control-char-in-id"),
        pytest.param({"sessionId": "s" * (MAX_ID_CHARS + 1)}, "sessionId", id="id-too-long"),
        pytest.param({"tenantId": None}, "tenantId", id="null-tenant"),
        pytest.param({"surprise": True}, "surprise", id="unknown-field"),
    ],
)
async def test_invalid_ingest_is_a_422_naming_the_field(
    http: httpx.AsyncClient, redis: Redis, tenant: str, overrides: dict[str, Any], field: str
) -> None:
    response = await http.post("/ingest", json=ingest_body(tenant, **overrides))

    assert response.status_code == 422, response.text
    body = response.json()
    assert body["error"] == "validation_error"
    assert body["field"] == field
    assert field in body["message"]
    await _assert_untouched(redis)


@pytest.mark.parametrize(
    "payload", [[], "text", 3, None], ids=["array", "string", "number", "null"]
)
async def test_a_body_that_is_not_an_object_is_rejected(
    http: httpx.AsyncClient, redis: Redis, payload: Any
) -> None:
    response = await http.post("/ingest", json=payload)

    assert response.status_code in (400, 422), response.text
    assert response.json()["error"] in ("malformed_body", "validation_error")
    await _assert_untouched(redis)


async def test_a_body_over_the_limit_is_a_413(api_factory: Any, redis: Redis, tenant: str) -> None:
    api: RunningApi = api_factory(MAX_BODY_BYTES="4096")
    async with httpx.AsyncClient(base_url=api.base_url) as http:
        response = await http.post("/ingest", json=ingest_body(tenant, text="x" * 5000))

    assert response.status_code == 413
    assert response.json()["error"] == "body_too_large"
    await _assert_untouched(redis)


def _streamed(body: bytes, piece: int = 7) -> Any:
    """The body in small pieces without a Content-Length: HTTP/1.1 chunked transfer."""

    async def pieces() -> Any:
        for start in range(0, len(body), piece):
            yield body[start : start + piece]

    return pieces()


async def test_a_streamed_turn_is_stored_and_briefed(http: httpx.AsyncClient, tenant: str) -> None:
    body = json.dumps(ingest_body(tenant, text="streamed in pieces")).encode()
    ingested = await http.post("/ingest", content=_streamed(body))
    brief = await http.post(
        "/brief", json={"tenantId": tenant, "userId": "user-1", "sessionId": "session-1"}
    )

    assert ingested.status_code == 200, ingested.text
    assert [turn["text"] for turn in brief.json()["workingMemory"]] == ["streamed in pieces"]


async def test_streamed_malformed_or_oversized_bodies_are_refused(
    api_factory: Any, redis: Redis, tenant: str
) -> None:
    api: RunningApi = api_factory(MAX_BODY_BYTES="4096")
    oversized = json.dumps(ingest_body(tenant, text="x" * 5000)).encode()
    async with httpx.AsyncClient(base_url=api.base_url) as http:
        malformed = await http.post("/ingest", content=_streamed(b'{"tenantId": "t", "user'))
        too_large = await http.post("/ingest", content=_streamed(oversized, piece=1000))

    assert (malformed.status_code, malformed.json()["error"]) == (400, "malformed_body")
    assert (too_large.status_code, too_large.json()["error"]) == (413, "body_too_large")
    await _assert_untouched(redis)


async def test_an_unknown_timezone_is_a_422_and_is_not_remembered(
    http: httpx.AsyncClient, redis: Redis, tenant: str
) -> None:
    response = await http.post(
        "/brief", json={"tenantId": tenant, "userId": "u", "timezone": "Mars/Olympus_Mons"}
    )

    assert response.status_code == 422
    assert response.json()["field"] == "timezone"
    assert "Mars/Olympus_Mons" in response.json()["message"]
    await _assert_untouched(redis)


@pytest.mark.parametrize(
    ("body", "field"),
    [
        pytest.param({"userId": "u"}, "tenantId", id="missing-tenant"),
        pytest.param({"tenantId": "t", "userId": "u", "now": "soon"}, "now", id="bad-now"),
        pytest.param({"tenantId": "t", "userId": "u", "sessionId": ""}, "sessionId", id="empty"),
        pytest.param({"tenantId": "t", "userId": "u", "timezone": ""}, "timezone", id="empty-tz"),
    ],
)
async def test_invalid_brief_is_a_422_naming_the_field(
    http: httpx.AsyncClient, redis: Redis, body: dict[str, Any], field: str
) -> None:
    response = await http.post("/brief", json=body)

    assert response.status_code == 422, response.text
    assert response.json()["field"] == field
    await _assert_untouched(redis)


async def test_unknown_route_and_wrong_method_are_4xx_with_the_error_body(
    http: httpx.AsyncClient,
) -> None:
    missing = await http.get("/nope")
    wrong_method = await http.get("/ingest")

    assert missing.status_code == 404
    assert missing.json()["error"] == "not_found"
    assert wrong_method.status_code == 405
    assert wrong_method.json()["message"]


def _send_whole_body_then_read(port: int, path: str, body: bytes, *, chunked: bool) -> Any:
    """What urllib does: write the whole body (asking for Connection: close), then read."""
    connection = HTTPConnection("127.0.0.1", port, timeout=60)
    try:
        connection.connect()
        # A small send buffer: the client is surely still writing when the limit is hit,
        # however large the kernel's loopback buffers (which could otherwise hide the bug).
        assert connection.sock is not None
        connection.sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 16 * 1024)
        headers = {"Content-Type": "application/json", "Connection": "close"}
        if chunked:
            pieces = (body[start : start + 65_536] for start in range(0, len(body), 65_536))
            connection.request("POST", path, body=pieces, headers=headers, encode_chunked=True)
        else:
            connection.request("POST", path, body=body, headers=headers)
        response = connection.getresponse()
        return response.status, json.loads(response.read())
    finally:
        connection.close()


def _oversized_transcript(tenant: str, size: int) -> dict[str, Any]:
    text = "x" * MAX_TEXT_CHARS
    count = size // MAX_TEXT_CHARS + 1
    return {
        "tenantId": tenant,
        "userId": "user-1",
        "sessionId": "session-1",
        "messages": [
            {"role": "user", "text": text, "timestamp": f"2026-02-03T18:{n // 60:02}:{n % 60:02}Z"}
            for n in range(count)
        ],
    }


@pytest.mark.parametrize("chunked", [False, True], ids=["content-length", "chunked"])
@pytest.mark.parametrize(
    ("path", "size"),
    [("/ingest", 1024 * 1024), ("/session/ingest", 5 * 1024 * 1024)],
    ids=["ingest-1MiB", "session-ingest-5MiB"],
)
async def test_a_client_writing_an_oversized_body_whole_reads_the_413(
    api: RunningApi, redis: Redis, tenant: str, path: str, size: int, chunked: bool
) -> None:
    # Over the limits (256 KiB, 4 MiB): the 413 is known long before the body is all sent.
    if path == "/ingest":
        payload = ingest_body(tenant, text="x" * size)
    else:
        payload = _oversized_transcript(tenant, size)
    body = json.dumps(payload).encode()

    status, answer = await asyncio.to_thread(
        _send_whole_body_then_read, api.port, path, body, chunked=chunked
    )

    assert len(body) > size
    assert status == 413
    assert answer == {
        "error": "body_too_large",
        "message": "request body is larger than allowed",
        "field": None,
    }
    await _assert_untouched(redis)
