"""API keys bound to tenants, and per-tenant quotas, against the real API and Redis."""

import asyncio
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from redis.asyncio import Redis

from service.store.layout import UserKeys
from tests.support.api import ApiFactory, free_port
from tests.support.builders import ingest_body
from tests.support.redis_state import ANY_USER_KEY, user_key_pattern
from tests.support.services import REPO
from tests.support.tenants import write_tenants_file
from tests.support.waiting import eventually

KEY_A = "key-of-tenant-a"
KEY_A2 = "second-key-of-tenant-a"
KEY_B = "key-of-tenant-b"


@pytest.fixture
def tenants_file() -> Iterator[Path]:
    path = write_tenants_file(
        {
            "tenant-a": {"keys": [KEY_A, KEY_A2]},
            "tenant-b": {"keys": [KEY_B], "requestsPerSecond": 2, "turnsPerDay": 3},
        }
    )
    yield path
    path.unlink(missing_ok=True)


def _bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


async def test_public_endpoints_need_a_valid_key(
    api_factory: ApiFactory, tenants_file: Path, redis: Redis
) -> None:
    api = api_factory(SYNAPSE_TENANTS_FILE=str(tenants_file))
    async with httpx.AsyncClient(base_url=api.base_url) as http:
        missing = await http.post("/ingest", json=ingest_body("tenant-a"))
        wrong = await http.post("/ingest", json=ingest_body("tenant-a"), headers=_bearer("nope"))
        brief = await http.post("/brief", json={"tenantId": "tenant-a", "userId": "u"})
        narrative = await http.get("/session/brief", params={"tenantId": "tenant-a", "userId": "u"})
        health = await http.get("/health")
        ready = await http.get("/ready")

    assert missing.status_code == 401
    assert missing.json()["error"] == "unauthorized"
    assert missing.headers["WWW-Authenticate"] == "Bearer"
    assert wrong.status_code == 401
    assert brief.status_code == 401
    assert narrative.status_code == 401
    # Probes stay open for the kubelet.
    assert health.status_code == 200
    assert ready.status_code == 200
    assert await redis.dbsize() == 0


async def test_a_key_acts_only_for_its_own_tenant(
    api_factory: ApiFactory, tenants_file: Path, redis: Redis
) -> None:
    api = api_factory(SYNAPSE_TENANTS_FILE=str(tenants_file))
    async with httpx.AsyncClient(base_url=api.base_url) as http:
        other = await http.post("/ingest", json=ingest_body("tenant-b"), headers=_bearer(KEY_A))
        other_query = await http.post(
            "/memory/query",
            json={"tenantId": "tenant-b", "userId": "u", "query": "x"},
            headers=_bearer(KEY_A),
        )
        other_export = await http.get(
            "/users/export", params={"tenantId": "tenant-b", "userId": "u"}, headers=_bearer(KEY_A)
        )
        assert await redis.keys(ANY_USER_KEY) == []
        own = await http.post("/ingest", json=ingest_body("tenant-a"), headers=_bearer(KEY_A))
        rotated = await http.post(
            "/ingest",
            json=ingest_body("tenant-a", text="from the second key"),
            headers=_bearer(KEY_A2),
        )

    assert other.status_code == 403
    assert other.json()["field"] == "tenantId"
    assert other_query.status_code == 403
    assert other_export.status_code == 403
    assert own.status_code == 200
    assert rotated.status_code == 200
    assert await redis.keys(user_key_pattern("tenant-b")) == []


async def test_a_rotated_key_stops_working_without_a_restart(
    api_factory: ApiFactory, tenants_file: Path
) -> None:
    api = api_factory(SYNAPSE_TENANTS_FILE=str(tenants_file))
    write_tenants_file({"tenant-a": {"keys": [KEY_A2]}}, tenants_file)

    async def status_with_old_key() -> int:
        async with httpx.AsyncClient(base_url=api.base_url) as http:
            response = await http.post(
                "/brief", json={"tenantId": "tenant-a", "userId": "u"}, headers=_bearer(KEY_A)
            )
        return response.status_code

    assert (
        await eventually(status_with_old_key, lambda s: s == 401, within=15, what="old key refused")
        == 401
    )


@pytest.mark.parametrize(
    "emptied",
    [{"tenants": {}}, {"tenants": {"tenant-a": {"keys": []}, "tenant-b": {"keys": []}}}],
    ids=["no-tenants", "empty-key-lists"],
)
async def test_a_reload_that_would_leave_no_key_never_opens_the_api(
    api_factory: ApiFactory, tenants_file: Path, redis: Redis, emptied: dict[str, Any]
) -> None:
    api = api_factory(SYNAPSE_TENANTS_FILE=str(tenants_file))
    _rewrite(tenants_file, emptied)
    async with httpx.AsyncClient(base_url=api.base_url) as http:
        # The directory looks at the file at most every 5 s, when a request carries a key.
        await asyncio.sleep(6)
        await http.post(
            "/brief", json={"tenantId": "tenant-a", "userId": "u"}, headers=_bearer("x")
        )
        with_key = await http.post(
            "/brief", json={"tenantId": "tenant-a", "userId": "u"}, headers=_bearer(KEY_A)
        )
        anonymous = [
            await http.post("/brief", json={"tenantId": "tenant-a", "userId": "u"}),
            await http.get("/users/export", params={"tenantId": "tenant-a", "userId": "u"}),
            await http.delete("/users", params={"tenantId": "tenant-a", "userId": "u"}),
            await http.post("/ingest", json=ingest_body("tenant-a")),
        ]
        ready = (await http.get("/ready")).json()

    assert [r.status_code for r in anonymous] == [401, 401, 401, 401]
    # The last good keys stay in force.
    assert with_key.status_code == 200
    assert not any("open mode" in warning for warning in ready["warnings"])
    assert await redis.keys(ANY_USER_KEY) == []


def _rewrite(path: Path, body: dict[str, Any]) -> None:
    path.write_text(json.dumps(body))
    # Bump the mtime past the file system's resolution so the change is certainly seen.
    later = path.stat().st_mtime + 2
    os.utime(path, (later, later))


def test_a_tenants_file_with_no_key_stops_start_up() -> None:
    path = Path(write_tenants_file({"t": {"keys": []}}))
    result = _serve({"SYNAPSE_TENANTS_FILE": str(path)})
    path.unlink()

    assert result.returncode != 0
    assert "holds no API key" in result.stderr


async def test_request_rate_over_the_limit_is_a_429_and_writes_nothing(
    api_factory: ApiFactory, tenants_file: Path, redis: Redis
) -> None:
    # Two replicas share the bucket in Redis: tenant-b may make 2 requests per second in all.
    first = api_factory(SYNAPSE_TENANTS_FILE=str(tenants_file))
    second = api_factory(SYNAPSE_TENANTS_FILE=str(tenants_file))
    statuses = []
    async with httpx.AsyncClient() as http:
        for n, api in enumerate([first, second, first, second]):
            response = await http.post(
                f"{api.base_url}/brief",
                json={"tenantId": "tenant-b", "userId": f"u{n}"},
                headers=_bearer(KEY_B),
            )
            statuses.append(response.status_code)
            last = response

    assert statuses.count(429) >= 2, statuses
    assert last.status_code == 429
    assert last.json()["error"] == "rate_limited"
    assert int(last.headers["Retry-After"]) >= 1
    assert last.headers["X-RateLimit-Limit"] == "2"
    assert last.headers["X-RateLimit-Remaining"] == "0"
    assert "X-RateLimit-Reset" in last.headers


async def test_daily_turn_quota_over_the_limit_is_a_429_and_writes_nothing(
    api_factory: ApiFactory, redis: Redis
) -> None:
    path = write_tenants_file(
        {"tenant-q": {"keys": ["q-key"], "requestsPerSecond": 1000, "turnsPerDay": 3}}
    )
    api = api_factory(SYNAPSE_TENANTS_FILE=str(path))
    async with httpx.AsyncClient(base_url=api.base_url, headers=_bearer("q-key")) as http:
        accepted = [
            await http.post("/ingest", json=ingest_body("tenant-q", text=f"turn {n}"))
            for n in range(3)
        ]
        over = await http.post("/ingest", json=ingest_body("tenant-q", text="one too many"))
        transcript = await http.post(
            "/session/ingest",
            json={
                "tenantId": "tenant-q",
                "userId": "user-1",
                "sessionId": "other",
                "messages": [{"role": "user", "text": "x", "timestamp": "2026-02-03T18:00:00Z"}],
            },
        )
        seed = await http.post(
            "/brief", json={"tenantId": "tenant-q", "userId": "user-1", "sessionId": "session-1"}
        )
    path.unlink()

    assert [r.status_code for r in accepted] == [200, 200, 200]
    assert over.status_code == 429
    assert over.json()["message"].startswith("daily turn quota")
    assert over.headers["X-RateLimit-Limit"] == "3"
    assert int(over.headers["Retry-After"]) > 0
    assert transcript.status_code == 429
    # Reads are not turns: /brief still answers, and shows only the three accepted turns.
    assert seed.status_code == 200
    assert [t["text"] for t in seed.json()["workingMemory"]] == ["turn 0", "turn 1", "turn 2"]
    assert await redis.exists(UserKeys("tenant-q", "user-1").session("other").meta) == 0


async def test_open_mode_is_reported_by_ready(api_factory: ApiFactory) -> None:
    api = api_factory()
    async with httpx.AsyncClient(base_url=api.base_url) as http:
        ready = (await http.get("/ready")).json()

    assert any("open mode" in warning for warning in ready["warnings"])


def _serve(env_overrides: dict[str, str]) -> subprocess.CompletedProcess[str]:
    env = {
        "PATH": os.environ.get("PATH", ""),
        "PYTHONPATH": str(REPO),
        "SYNAPSE_PORT": str(free_port()),
        "REDIS_URL": "redis://127.0.0.1:1/0",
        "NEO4J_URI": "bolt://127.0.0.1:1",
        **env_overrides,
    }
    return subprocess.run(
        [sys.executable, "-m", "service"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_without_keys_the_api_refuses_to_serve_beyond_loopback() -> None:
    result = _serve({"SYNAPSE_HOST": "0.0.0.0"})

    assert result.returncode != 0
    assert "refusing to serve on 0.0.0.0 without API keys" in result.stderr


def test_a_tenants_file_of_the_wrong_shape_stops_start_up() -> None:
    path = Path(write_tenants_file({}))
    path.write_text('{"tenants": {"t": {"keys": ["plain-text-key"]}}}')
    result = _serve({"SYNAPSE_HOST": "0.0.0.0", "SYNAPSE_TENANTS_FILE": str(path)})
    path.unlink()

    assert result.returncode != 0
    assert "SYNAPSE_TENANTS_FILE" in result.stderr


_ADMISSION_HEADERS = ("x-ratelimit-limit", "x-ratelimit-remaining", "www-authenticate")


def _admission_script_tenants() -> dict[str, dict[str, Any]]:
    return {
        "tenant-a": {"keys": [KEY_A]},
        # Two turns a day, no practical rate limit.
        "tenant-q": {"keys": ["q-key"], "requestsPerSecond": 1000, "turnsPerDay": 2},
        # One request, then none for 1,000 s.
        "tenant-r": {"keys": ["r-key"], "requestsPerSecond": 0.001},
    }


async def _admission_script(base_url: str) -> list[tuple[str, int, Any]]:
    """The same requests, in the same order: what each step answered (status, body without
    the per-request id, and the rate-limit headers, Retry-After left out as it ticks)."""
    brief_q = {"tenantId": "tenant-q", "userId": "user-1", "sessionId": "session-1"}
    steps: list[tuple[str, str, dict[str, Any], dict[str, str]]] = [
        ("no key", "/ingest", ingest_body("tenant-a"), {}),
        ("unknown key", "/brief", {"tenantId": "tenant-a", "userId": "u"}, _bearer("nope")),
        ("another tenant's key", "/ingest", ingest_body("tenant-q"), _bearer(KEY_A)),
        ("another tenant's key", "/brief", brief_q, _bearer(KEY_A)),
        ("own key", "/ingest", ingest_body("tenant-q", text="turn 0"), _bearer("q-key")),
        ("own key", "/ingest", ingest_body("tenant-q", text="turn 1"), _bearer("q-key")),
        ("turns used up", "/ingest", ingest_body("tenant-q", text="turn 2"), _bearer("q-key")),
        ("reads are not turns", "/brief", brief_q, _bearer("q-key")),
        ("first request", "/brief", {"tenantId": "tenant-r", "userId": "u"}, _bearer("r-key")),
        ("rate used up", "/ingest", ingest_body("tenant-r"), _bearer("r-key")),
        ("rate used up", "/brief", {"tenantId": "tenant-r", "userId": "u"}, _bearer("r-key")),
    ]
    answers: list[tuple[str, int, Any]] = []
    async with httpx.AsyncClient(base_url=base_url) as http:
        for what, path, body, headers in steps:
            response = await http.post(path, json=body, headers=headers)
            payload = response.json()
            if isinstance(payload, dict):
                payload.pop("requestId", None)
                if "workingMemory" in payload:  # a seed: its turns, not its clock
                    payload = [turn["text"] for turn in payload["workingMemory"]]
            limits = {
                name: value
                for name, value in response.headers.items()
                if name.lower() in _ADMISSION_HEADERS
            }
            answers.append((f"{what}: {path}", response.status_code, (payload, limits)))
    return answers


async def test_the_hot_path_and_the_framework_admit_alike(
    api_factory: ApiFactory, redis: Redis
) -> None:
    """/ingest and /brief are answered by the hot path when well-formed, and by Litestar with
    HOT_PATH=off: admission is one decision (service/access/admission.py), so every step of the same
    script gets the same answer either way, and leaves the same turns behind."""
    path = write_tenants_file(_admission_script_tenants())
    answers: dict[str, list[tuple[str, int, Any]]] = {}
    stored: dict[str, list[bytes]] = {}
    for hot_path in ("on", "off"):
        await redis.flushdb()
        api = api_factory(SYNAPSE_TENANTS_FILE=str(path), HOT_PATH=hot_path)
        answers[hot_path] = await _admission_script(api.base_url)
        stored[hot_path] = sorted(await redis.keys(ANY_USER_KEY))
        api.stop()
    path.unlink()

    assert answers["on"] == answers["off"]
    statuses = [status for _, status, _ in answers["on"]]
    assert statuses == [401, 401, 403, 403, 200, 200, 429, 200, 200, 429, 429]
    assert answers["on"][7][2][0] == ["turn 0", "turn 1"]
    assert stored["on"] == stored["off"] != []
