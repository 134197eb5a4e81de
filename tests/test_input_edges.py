"""Input at the edges: timestamps near the calendar's ends or far in the future, semantic checks
before any quota is spent, and one id rule for bodies and query strings. Real API, real Redis."""

from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from redis.asyncio import Redis

from tests.support.api import ApiFactory, RunningApi
from tests.support.builders import ingest_body
from tests.support.tenants import write_tenants_file

# Both far ends of what RFC 3339 can spell, with an offset that pushes them past datetime's range
# once converted to UTC or to a user's zone, and the first instants outside the documented range.
LAST_SPELLABLE = "9999-12-31T23:59:59-23:59"
FIRST_SPELLABLE = "0001-01-01T00:00:00+01:00"
OUT_OF_RANGE = [
    pytest.param(LAST_SPELLABLE, id="year-9999-minus-offset"),
    pytest.param(FIRST_SPELLABLE, id="year-1-plus-offset"),
    pytest.param("2200-01-01T00:00:00Z", id="upper-bound-excluded"),
    pytest.param("1969-12-31T23:59:59Z", id="before-1970"),
    pytest.param("2199-12-31T23:59:59-00:01", id="upper-bound-via-offset"),
]
FAR_AHEAD = "2099-01-01T00:00:00Z"


def _iso(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")


def _transcript(tenant: str, *stamps: str, **extra: Any) -> dict[str, Any]:
    return {
        "tenantId": tenant,
        "userId": "user-1",
        "sessionId": "session-t",
        "messages": [
            {"role": "user" if n % 2 == 0 else "assistant", "text": f"m{n}", "timestamp": stamp}
            for n, stamp in enumerate(stamps)
        ],
        **extra,
    }


@pytest.fixture
async def http(api: RunningApi) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=api.base_url) as client:
        yield client


def _assert_refused(response: httpx.Response, field: str) -> None:
    assert response.status_code == 422, response.text
    body = response.json()
    assert body["error"] == "validation_error", body
    assert body["field"] == field, body
    assert field in body["message"], body


async def _assert_untouched(redis: Redis) -> None:
    assert await redis.dbsize() == 0, await redis.keys("*")


# 1. One documented range for every timestamp of every endpoint.


@pytest.mark.parametrize("stamp", OUT_OF_RANGE)
async def test_out_of_range_timestamps_are_a_422_on_every_endpoint(
    http: httpx.AsyncClient, redis: Redis, tenant: str, stamp: str
) -> None:
    ok = "2026-02-03T18:00:00Z"
    ids = {"tenantId": tenant, "userId": "user-1"}
    answers = {
        "timestamp": await http.post("/ingest", json=ingest_body(tenant, timestamp=stamp)),
        "now": await http.post("/brief", json={**ids, "now": stamp, "timezone": "Asia/Tokyo"}),
        "referenceTime": await http.post(
            "/memory/query", json={**ids, "query": "plans", "referenceTime": stamp}
        ),
        "messages[1].timestamp": await http.post(
            "/session/ingest", json=_transcript(tenant, ok, stamp)
        ),
        "startedAt": await http.post(
            "/session/ingest", json=_transcript(tenant, ok, startedAt=stamp)
        ),
        "endedAt": await http.post("/session/ingest", json=_transcript(tenant, ok, endedAt=stamp)),
    }
    query_now = await http.get("/session/brief", params={**ids, "now": stamp})

    for field, response in answers.items():
        _assert_refused(response, field)
    _assert_refused(query_now, "now")
    await _assert_untouched(redis)


@pytest.mark.parametrize("stamp", ["1970-01-01T00:00:00Z", "2199-12-31T23:59:59.999Z"])
async def test_the_ends_of_the_range_are_accepted_where_no_skew_applies(
    http: httpx.AsyncClient, tenant: str, stamp: str
) -> None:
    ids = {"tenantId": tenant, "userId": "user-1"}
    brief = await http.post("/brief", json={**ids, "now": stamp, "timezone": "Pacific/Kiritimati"})
    session_brief = await http.get("/session/brief", params={**ids, "now": stamp})

    assert brief.status_code == 200, brief.text
    assert session_brief.status_code == 200, session_brief.text


async def test_turns_near_the_start_of_the_range_are_accepted(
    http: httpx.AsyncClient, tenant: str
) -> None:
    first = await http.post("/ingest", json=ingest_body(tenant, timestamp="1970-01-01T00:00:00Z"))
    second = await http.post(
        "/ingest", json=ingest_body(tenant, text="later", timestamp="1970-01-01T00:00:01+00:00")
    )
    brief = await http.post(
        "/brief", json={"tenantId": tenant, "userId": "user-1", "now": "1970-01-01T00:10:01Z"}
    )

    assert first.status_code == 200, first.text
    assert second.status_code == 200, second.text
    assert brief.json()["temporalAuthority"]["timeSinceLastInteraction"] == "10 minutes ago"


# 2. Turn timestamps may not run ahead of the server clock by more than the skew.


async def test_turns_far_in_the_future_are_a_422_naming_the_field(
    http: httpx.AsyncClient, redis: Redis, tenant: str
) -> None:
    ok = _iso(datetime.now(UTC) - timedelta(minutes=5))
    answers = {
        "timestamp": await http.post("/ingest", json=ingest_body(tenant, timestamp=FAR_AHEAD)),
        "messages[2].timestamp": await http.post(
            "/session/ingest", json=_transcript(tenant, ok, ok, FAR_AHEAD)
        ),
        "startedAt": await http.post(
            "/session/ingest", json=_transcript(tenant, ok, startedAt=FAR_AHEAD)
        ),
        "endedAt": await http.post(
            "/session/ingest", json=_transcript(tenant, ok, endedAt=FAR_AHEAD)
        ),
    }

    for field, response in answers.items():
        _assert_refused(response, field)
        assert "ahead" in response.json()["message"]
    await _assert_untouched(redis)


async def test_a_future_turn_cannot_pin_the_last_interaction(
    http: httpx.AsyncClient, tenant: str
) -> None:
    start = datetime.now(UTC)
    # Within the default skew (300 s): accepted, but the last interaction is the server's now.
    ingested = await http.post(
        "/ingest", json=ingest_body(tenant, timestamp=_iso(start + timedelta(seconds=200)))
    )
    later = _iso(start + timedelta(hours=2, seconds=30))
    brief = await http.post("/brief", json={"tenantId": tenant, "userId": "user-1", "now": later})

    assert ingested.status_code == 200, ingested.text
    assert brief.json()["temporalAuthority"]["timeSinceLastInteraction"] == "2 hours ago"


async def test_the_skew_is_a_setting(api_factory: ApiFactory, tenant: str) -> None:
    api = api_factory(TIMESTAMP_MAX_SKEW_SECONDS="0")
    ahead = _iso(datetime.now(UTC) + timedelta(seconds=60))
    async with httpx.AsyncClient(base_url=api.base_url) as http:
        refused = await http.post("/ingest", json=ingest_body(tenant, timestamp=ahead))
        accepted = await http.post(
            "/ingest", json=ingest_body(tenant, timestamp=_iso(datetime.now(UTC)))
        )

    _assert_refused(refused, "timestamp")
    assert accepted.status_code == 200, accepted.text


# 3. Semantic checks run before admission: a refused request spends no quota.

QUOTA_KEY = "edges-key"


@pytest.fixture
def quota_file() -> Iterator[Path]:
    path = write_tenants_file(
        {"tenant-e": {"keys": [QUOTA_KEY], "requestsPerSecond": 1000, "turnsPerDay": 3}}
    )
    yield path
    path.unlink(missing_ok=True)


@pytest.fixture
async def metered(api_factory: ApiFactory, quota_file: Path) -> AsyncIterator[httpx.AsyncClient]:
    api = api_factory(SYNAPSE_TENANTS_FILE=str(quota_file))
    headers = {"Authorization": f"Bearer {QUOTA_KEY}"}
    async with httpx.AsyncClient(base_url=api.base_url, headers=headers) as client:
        yield client


async def test_a_refused_transcript_spends_no_quota(metered: httpx.AsyncClient) -> None:
    early, late = "2026-02-03T18:00:00Z", "2026-02-03T18:05:00Z"
    refused = [
        await metered.post("/session/ingest", json=_transcript("tenant-e", late, early, late)),
        await metered.post(
            "/session/ingest",
            json=_transcript("tenant-e", early, late, early),
        ),
        await metered.post("/session/ingest", json=_transcript("tenant-e", early, FAR_AHEAD)),
        await metered.post("/session/ingest", json=_transcript("tenant-e", early, FIRST_SPELLABLE)),
    ]
    accepted = await metered.post(
        "/session/ingest", json=_transcript("tenant-e", early, late, late)
    )

    _assert_refused(refused[0], "messages[1].timestamp")
    _assert_refused(refused[1], "messages[2].timestamp")
    _assert_refused(refused[2], "messages[1].timestamp")
    _assert_refused(refused[3], "messages[1].timestamp")
    assert accepted.status_code == 200, accepted.text


async def test_started_after_ended_spends_no_quota(metered: httpx.AsyncClient) -> None:
    early, late = "2026-02-03T18:00:00Z", "2026-02-03T18:05:00Z"
    refused = await metered.post(
        "/session/ingest",
        json=_transcript("tenant-e", early, late, late, startedAt=late, endedAt=early),
    )
    accepted = await metered.post(
        "/session/ingest",
        json=_transcript("tenant-e", early, late, late, startedAt=early, endedAt=late),
    )

    _assert_refused(refused, "startedAt")
    assert accepted.status_code == 200, accepted.text


async def test_a_refused_turn_on_the_hot_path_spends_no_quota(metered: httpx.AsyncClient) -> None:
    refused = [
        await metered.post(
            "/ingest", json=ingest_body("tenant-e", timestamp=FAR_AHEAD, text=f"{n}")
        )
        for n in range(3)
    ] + [await metered.post("/ingest", json=ingest_body("tenant-e", timestamp=FIRST_SPELLABLE))]
    accepted = [
        await metered.post("/ingest", json=ingest_body("tenant-e", text=f"turn {n}"))
        for n in range(3)
    ]
    brief = await metered.post(
        "/brief", json={"tenantId": "tenant-e", "userId": "user-1", "now": LAST_SPELLABLE}
    )

    for response in refused:
        _assert_refused(response, "timestamp")
    assert [r.status_code for r in accepted] == [200, 200, 200]
    _assert_refused(brief, "now")


# 4. One id rule, in a body or in a query string.


@pytest.mark.parametrize("field", ["tenantId", "userId"])
@pytest.mark.parametrize(
    "suffix", [pytest.param("\u00a0two", id="nbsp"), pytest.param("-\U0001f600", id="emoji")]
)
async def test_an_id_accepted_by_ingest_is_accepted_by_session_brief(
    http: httpx.AsyncClient, tenant: str, field: str, suffix: str
) -> None:
    ids = {"tenantId": tenant, "userId": "user-1"}
    ids[field] += suffix
    ingested = await http.post("/ingest", json=ingest_body(tenant, **ids))
    session_brief = await http.get("/session/brief", params=ids)

    assert ingested.status_code == 200, ingested.text
    assert session_brief.status_code == 200, session_brief.text


@pytest.mark.parametrize("field", ["tenantId", "userId"])
@pytest.mark.parametrize("bad", ["a\x01b", "a\x7fb", "id\n", "x" * 129])
async def test_an_id_refused_by_ingest_is_refused_by_session_brief(
    http: httpx.AsyncClient, redis: Redis, tenant: str, field: str, bad: str
) -> None:
    ids = {"tenantId": tenant, "userId": "user-1", field: bad}
    ingested = await http.post("/ingest", json=ingest_body(tenant, **ids))
    session_brief = await http.get("/session/brief", params=ids)

    _assert_refused(ingested, field)
    assert session_brief.status_code == 422, session_brief.text
    assert session_brief.json()["error"] == "validation_error"
    assert session_brief.json()["field"] == field
    await _assert_untouched(redis)
