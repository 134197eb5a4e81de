"""The audit log under hostile traffic: rejected calls can never evict the record of real ones.

Calls turned away (no or wrong key or token, another tenant's key, over quota, invalid ids) go
to their own capped stream and per-status counters, never to the stream of real actions.
"""

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from redis.asyncio import Redis

from service.store.io import resolved
from service.store.layout import REJECTED_COUNTS, REJECTED_STREAM
from tests.support.api import ApiFactory
from tests.support.stack import INTERNAL_TOKEN
from tests.support.tenants import write_tenants_file
from tests.support.waiting import eventually

KEY = "audit-bounds-key"
THROTTLED_KEY = "audit-bounds-throttled-key"
THROTTLED = "throttled-tenant"
# More than AUDIT_MAX_ENTRIES=100 of each kind: enough to flush a single shared stream twice.
FLOOD = 150
TOKEN = {"X-Internal-Token": INTERNAL_TOKEN}
REJECTED_KEYS = {REJECTED_STREAM, REJECTED_COUNTS}


def _bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


@pytest.fixture
def tenants_file(tenant: str) -> Iterator[Path]:
    path = write_tenants_file(
        {
            tenant: {"keys": [KEY]},
            # A burst of one request, then nothing for 100 s.
            THROTTLED: {"keys": [THROTTLED_KEY], "requestsPerSecond": 0.01},
        }
    )
    yield path
    path.unlink(missing_ok=True)


async def test_anonymous_and_rejected_calls_cannot_flush_real_actions(
    api_factory: ApiFactory, tenant: str, tenants_file: Path
) -> None:
    api = api_factory(
        SYNAPSE_TENANTS_FILE=str(tenants_file),
        INTERNAL_TOKEN=INTERNAL_TOKEN,
        AUDIT_MAX_ENTRIES="100",
    )
    ids = {"tenantId": tenant, "userId": "u"}
    async with httpx.AsyncClient(base_url=api.base_url) as http:
        export = await http.get("/users/export", params=ids, headers=_bearer(KEY))
        flood = []
        for _ in range(FLOOD):
            flood.append(await http.delete("/users", params=ids))
            flood.append(
                await http.get(
                    "/internal/debug/user", params=ids, headers={"X-Internal-Token": "guess"}
                )
            )
        # A valid key for another tenant, then one over its quota: rejected, not real actions.
        forbidden = await http.delete("/users", params=ids, headers=_bearer(THROTTLED_KEY))
        own = {"tenantId": THROTTLED, "userId": "u"}
        admitted = await http.get("/users/export", params=own, headers=_bearer(THROTTLED_KEY))
        limited = await http.delete("/users", params=own, headers=_bearer(THROTTLED_KEY))
        # The middleware records a call once its answer is sent: wait for the last ones.
        audit = await eventually(
            lambda: http.get("/internal/debug/audit", params={"limit": 1000}, headers=TOKEN),
            lambda r: r.json()["rejectedCounts"] == {"401": 2 * FLOOD, "403": 1, "429": 1},
            what="every rejected call counted",
        )
        rejected = await http.get(
            "/internal/debug/audit", params={"limit": 1000, "rejected": "true"}, headers=TOKEN
        )

    assert export.status_code == 200
    assert {r.status_code for r in flood} == {401}
    assert (forbidden.status_code, admitted.status_code, limited.status_code) == (403, 200, 429)
    # Only the two admitted exports are real actions; the export made before the flood is intact.
    entries = [e for e in audit.json()["entries"] if e["action"] != "GET /internal/debug/audit"]
    actions = [(e["actor"], e["action"], e["outcome"]) for e in entries]
    assert actions == [
        (f"tenant:{THROTTLED}", "GET /users/export", 200),
        (f"tenant:{tenant}", "GET /users/export", 200),
    ]
    assert entries[-1]["target"] == f"tenantId={tenant}&userId=u"
    # The operator sees that an attack happened, and how big it was (counted above), and who.
    turned_away = rejected.json()["entries"]
    assert len(turned_away) == 100
    assert [(e["actor"], e["action"], e["outcome"]) for e in turned_away[:3]] == [
        (f"tenant:{THROTTLED}", "DELETE /users", 429),
        (f"tenant:{THROTTLED}", "DELETE /users", 403),
        ("anonymous", "GET /internal/debug/user", 401),
    ]
    assert {e["outcome"] for e in turned_away} == {401, 403, 429}
    assert "guess" not in rejected.text
    assert THROTTLED_KEY not in rejected.text


@pytest.mark.parametrize(
    ("method", "path", "params", "field"),
    [
        ("GET", "/users/export", {"tenantId": "T", "userId": "u\x01"}, "userId"),
        ("DELETE", "/users", {"tenantId": "T\n", "userId": "u"}, "tenantId"),
        ("GET", "/users/export", {"tenantId": "T", "userId": "u" * 129}, "userId"),
        (
            "GET",
            "/internal/debug/session",
            {"tenantId": "T", "userId": "u", "sessionId": "s\x00"},
            "sessionId",
        ),
        (
            "POST",
            "/internal/debug/close_session",
            {"tenantId": "T", "userId": "u\x7f", "sessionId": "s"},
            "userId",
        ),
        ("GET", "/internal/debug/outbox", {"tenantId": "\x1b[2J"}, "tenantId"),
    ],
)
async def test_a_control_character_in_a_query_id_is_a_422_naming_it(
    api_factory: ApiFactory,
    tenant: str,
    tenants_file: Path,
    redis: Redis,
    method: str,
    path: str,
    params: dict[str, str],
    field: str,
) -> None:
    api = api_factory(SYNAPSE_TENANTS_FILE=str(tenants_file), INTERNAL_TOKEN=INTERNAL_TOKEN)
    query = {k: tenant if v == "T" else v for k, v in params.items()}
    async with httpx.AsyncClient(base_url=api.base_url) as http:
        response = await http.request(method, path, params=query, headers={**_bearer(KEY), **TOKEN})

    assert response.status_code == 422
    assert response.json()["error"] == "validation_error"
    assert response.json()["field"] == field
    # Nothing was read or written for the call (no quota spent, no state, no real action):
    # only the rejected calls' stream and count moved.
    await eventually(
        lambda: resolved(redis.hgetall(REJECTED_COUNTS)),
        lambda counts: counts == {"422": "1"},
        what="the rejected call counted",
    )
    assert set(await redis.keys("*")) == REJECTED_KEYS
