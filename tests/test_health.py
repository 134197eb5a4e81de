"""GET /health, GET /ready and the OpenAPI document."""

import httpx

from contracts import SynapseClient
from service.graph.vector_search import supports_filtered_vector_search
from tests.support.api import ApiFactory, RunningApi, free_port
from tests.support.graph_probe import neo4j_version
from tests.support.services import BackingServices


async def test_health_names_the_offline_fallback(client: SynapseClient) -> None:
    health = await client.health()

    assert health.status == "ok"
    assert health.llm_provider == "offline"
    assert health.offline_fallback is True


async def test_ready_when_redis_and_neo4j_answer(
    client: SynapseClient, backing_services: BackingServices
) -> None:
    ready = await client.ready()
    version = await neo4j_version(backing_services.neo4j_uri)

    assert ready.ready is True
    assert ready.degraded is False
    assert ready.redis.ok is True
    assert ready.neo4j.ok is True
    assert ready.llm_provider == "offline"
    assert ready.offline_fallback is True
    assert any("offline" in warning for warning in ready.warnings)
    # The API made its vector indexes at start-up: filtered by group wherever the server can.
    assert ready.graph_search == (
        "filtered" if supports_filtered_vector_search(version) else "index"
    )
    assert not any("predate filtered" in warning for warning in ready.warnings)
    assert (ready.redis_mode, ready.redis_wait_replicas) == ("standalone", 0)


async def test_without_neo4j_ready_but_degraded_and_ingest_still_works(
    api_factory: ApiFactory, tenant: str
) -> None:
    api = api_factory(NEO4J_URI=f"bolt://127.0.0.1:{free_port()}")
    async with httpx.AsyncClient(base_url=api.base_url) as http:
        ready = await http.get("/ready")
        ingest = await http.post(
            "/ingest",
            json={
                "tenantId": tenant,
                "userId": "u",
                "sessionId": "s",
                "role": "user",
                "text": "still here",
                "timestamp": "2026-02-03T18:34:12Z",
            },
        )

    assert ready.status_code == 200
    assert ready.json()["ready"] is True
    assert ready.json()["degraded"] is True
    assert ready.json()["neo4j"]["ok"] is False
    assert ready.json()["redis"]["ok"] is True
    assert ingest.status_code == 200


async def test_openapi_document_lists_the_public_endpoints(api: RunningApi) -> None:
    async with httpx.AsyncClient(base_url=api.base_url) as http:
        response = await http.get("/schema/openapi.json")

    assert response.status_code == 200
    paths = response.json()["paths"]
    assert {"/ingest", "/brief", "/health", "/ready"} <= set(paths)
