"""GET /users/export and DELETE /users, and the audit log of them and of debug calls."""

import logging

import httpx
import pytest
from redis.asyncio import Redis

from service.memory.episodes import group_id
from service.store.layout import UserKeys
from tests.support.api import ApiFactory
from tests.support.builders import turn
from tests.support.graph_probe import GraphProbe
from tests.support.redis_state import index_members_of, user_keys
from tests.support.stack import INTERNAL_TOKEN, Stack, StackFactory
from tests.support.tenants import write_tenants_file
from tests.support.waiting import eventually


async def _flushed_conversation(
    stack: Stack, tenant: str, probe: GraphProbe, user: str = "user-1"
) -> None:
    await stack.client.ingest(turn(tenant, "I need to book the dentist", user=user, session="s1"))
    await stack.close(tenant, user, "s1")
    await eventually(
        lambda: probe.processed_episode_count(group_id(tenant, user)),
        lambda n: n == 1,
        what="the episode",
    )


async def test_export_holds_every_kind_of_data_about_the_user(
    stack_factory: StackFactory, tenant: str, graph_probe: GraphProbe
) -> None:
    stack = await stack_factory(SUMMARY_EVERY_TURNS="1")
    await _flushed_conversation(stack, tenant, graph_probe)
    await stack.client.ingest(turn(tenant, "Still open: call Ashley", session="s2"))
    await eventually(
        lambda: stack.debug("user", tenantId=tenant, userId="user-1"),
        lambda r: r.json()["rollingSummary"] is not None and r.json()["summaryBacklog"] == 0,
        what="the rolling summary",
    )

    response = await stack.http.get(
        "/users/export", params={"tenantId": tenant, "userId": "user-1"}
    )

    assert response.status_code == 200
    export = response.json()
    sessions = {s["sessionId"]: s for s in export["sessions"]}
    assert sessions["s2"]["state"] == "open"
    assert [t["text"] for t in sessions["s2"]["buffered"]] == ["Still open: call Ashley"]
    assert [t["text"] for t in sessions["s1"]["recent"]] == ["I need to book the dentist"]
    assert export["rollingSummary"]
    assert [e["content"] for e in export["episodes"]] == ["user: I need to book the dentist"]
    assert any("dentist" in f["text"].lower() for f in export["facts"])
    assert export["entities"]


async def test_delete_removes_the_user_everywhere_and_is_idempotent(
    stack_factory: StackFactory, tenant: str, graph_probe: GraphProbe, redis: Redis
) -> None:
    stack = await stack_factory()
    await _flushed_conversation(stack, tenant, graph_probe)
    await _flushed_conversation(stack, tenant, graph_probe, user="neighbour")
    # A second session waits in the outbox for a janitor that is not running.
    stack.janitor.stop()
    await stack.client.ingest(turn(tenant, "pending words", session="s3"))
    await stack.close(tenant, "user-1", "s3")
    await stack.client.ingest(turn(tenant, "open words", session="s4"))

    first = await stack.http.delete("/users", params={"tenantId": tenant, "userId": "user-1"})
    again = await stack.http.delete("/users", params={"tenantId": tenant, "userId": "user-1"})
    export = (
        await stack.http.get("/users/export", params={"tenantId": tenant, "userId": "user-1"})
    ).json()

    assert first.status_code == 200
    assert first.json()["deleted"] is True
    assert first.json()["redisKeys"] > 0
    assert first.json()["graphNodes"] > 0
    assert again.status_code == 200
    assert (again.json()["redisKeys"], again.json()["graphNodes"]) == (0, 0)
    # Only the deletion's tombstone remains: the last lease token, a number with an expiry.
    deleted = UserKeys(tenant, "user-1")
    assert await user_keys(redis, tenant, "user-1") == [deleted.fence]
    assert await redis.ttl(deleted.fence) > 0
    assert await index_members_of(redis, tenant, "user-1") == []
    # Nothing else anywhere names the user (a key the layout forgot to list would).
    assert [
        k for k in await redis.keys(f"*{deleted.ref.replace(' ', ':')}*") if k != deleted.fence
    ] == []
    assert await graph_probe.episode_count(group_id(tenant, "user-1")) == 0
    assert await graph_probe.entity_names(group_id(tenant, "user-1")) == []
    assert (export["sessions"], export["outbox"], export["episodes"], export["facts"]) == (
        [],
        [],
        [],
        [],
    )
    # The neighbour is untouched.
    assert await graph_probe.processed_episode_count(group_id(tenant, "neighbour")) == 1
    assert await user_keys(redis, tenant, "neighbour") != []


async def test_data_rights_and_debug_calls_are_audited_without_secrets_or_text(
    api_factory: ApiFactory, tenant: str
) -> None:
    path = write_tenants_file({tenant: {"keys": ["the-api-key"]}})
    api = api_factory(SYNAPSE_TENANTS_FILE=str(path), INTERNAL_TOKEN=INTERNAL_TOKEN)
    headers = {"Authorization": "Bearer the-api-key"}
    async with httpx.AsyncClient(base_url=api.base_url) as http:
        await http.post(
            "/ingest",
            headers=headers,
            json={
                "tenantId": tenant,
                "userId": "u",
                "sessionId": "s",
                "role": "user",
                "text": "my secret diary entry",
                "timestamp": "2026-02-03T18:00:00Z",
            },
        )
        await http.get("/users/export", params={"tenantId": tenant, "userId": "u"}, headers=headers)
        await http.delete("/users", params={"tenantId": tenant, "userId": "u"}, headers=headers)
        await http.get("/internal/debug/user", params={"tenantId": tenant, "userId": "u"})
        await http.get(
            "/internal/debug/outbox",
            params={"tenantId": tenant},
            headers={"X-Internal-Token": INTERNAL_TOKEN},
        )
        audit = await http.get(
            "/internal/debug/audit", headers={"X-Internal-Token": INTERNAL_TOKEN}
        )
        rejected = await http.get(
            "/internal/debug/audit",
            params={"rejected": "true"},
            headers={"X-Internal-Token": INTERNAL_TOKEN},
        )
    path.unlink()

    entries = audit.json()["entries"]
    actions = [(e["actor"], e["action"], e["outcome"]) for e in entries]
    assert (f"tenant:{tenant}", "GET /users/export", 200) in actions
    assert (f"tenant:{tenant}", "DELETE /users", 200) in actions
    assert ("internal-token", "GET /internal/debug/outbox", 200) in actions
    # A call without the token is no real action: it is counted and kept apart.
    assert not any(outcome == 401 for _, _, outcome in actions)
    turned_away = [(e["actor"], e["action"], e["outcome"]) for e in rejected.json()["entries"]]
    assert turned_away == [("anonymous", "GET /internal/debug/user", 401)]
    assert audit.json()["rejectedCounts"] == {"401": 1}
    assert all(e["at"].endswith("Z") for e in entries)
    assert f"tenantId={tenant}" in entries[-1]["target"]
    # The ingest itself is not an audited call, and nothing secret is recorded.
    dump = audit.text + rejected.text
    assert "secret diary" not in dump
    assert "the-api-key" not in dump
    assert INTERNAL_TOKEN not in dump


async def test_the_audit_log_keeps_a_bounded_number_of_entries(api_factory: ApiFactory) -> None:
    api = api_factory(INTERNAL_TOKEN=INTERNAL_TOKEN, AUDIT_MAX_ENTRIES="100")
    async with httpx.AsyncClient(
        base_url=api.base_url, headers={"X-Internal-Token": INTERNAL_TOKEN}
    ) as http:
        for _ in range(130):
            await http.get("/internal/debug/outbox", params={"tenantId": "t"})
        audit = await http.get("/internal/debug/audit", params={"limit": 1000})

    assert len(audit.json()["entries"]) == 100


async def test_logs_never_contain_message_text_or_keys(
    api_factory: ApiFactory, tenant: str, caplog: pytest.LogCaptureFixture
) -> None:
    path = write_tenants_file({tenant: {"keys": ["log-test-key"]}})
    api = api_factory(SYNAPSE_TENANTS_FILE=str(path), LOG_LEVEL="DEBUG")
    secret_text = "the confidential turn text 7d1f"
    caplog.set_level(logging.DEBUG)
    async with httpx.AsyncClient(base_url=api.base_url) as http:
        body = {
            "tenantId": tenant,
            "userId": "u",
            "sessionId": "s",
            "role": "user",
            "text": secret_text,
            "timestamp": "2026-02-03T18:00:00Z",
        }
        await http.post("/ingest", json=body, headers={"Authorization": "Bearer log-test-key"})
        await http.post(
            "/ingest",
            json={**body, "role": "robot"},
            headers={"Authorization": "Bearer log-test-key"},
        )
        await http.post("/ingest", json=body, headers={"Authorization": "Bearer wrong-key-9x"})
        await http.post(
            "/memory/query", json={"tenantId": tenant, "userId": "u", "query": secret_text}
        )
    path.unlink()

    logged = "\n".join(record.getMessage() for record in caplog.records)
    assert caplog.records
    assert secret_text not in logged
    assert "log-test-key" not in logged
    assert "wrong-key-9x" not in logged
