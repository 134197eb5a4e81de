"""GET /metrics as a Prometheus scraper sees it: the real API over loopback HTTP, real Redis, and
for the janitor's counters a real `python -m janitor` process talking to the stand-in."""

from collections.abc import AsyncIterator

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from contracts import SessionCloseRequest, SynapseClient
from service.memory.episodes import group_id
from tests.standin.server import StandinServer
from tests.support.api import ApiFactory, RunningApi
from tests.support.builders import brief, ingest_body, turn
from tests.support.graph_probe import GraphProbe
from tests.support.janitor import JanitorFactory
from tests.support.waiting import eventually

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


@pytest.fixture
async def http(api: RunningApi) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=api.base_url) as client:
        yield client


async def scrape(http: httpx.AsyncClient) -> Samples:
    response = await http.get("/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain; version=0.0.4")
    samples: Samples = {}
    for family in text_string_to_metric_families(response.text):
        for sample in family.samples:
            samples[(sample.name, frozenset(sample.labels.items()))] = sample.value
    return samples


def value(samples: Samples, name: str, **labels: str) -> float | None:
    return samples.get((name, frozenset(labels.items())))


async def test_each_route_has_a_latency_histogram_labelled_by_template_method_and_status(
    http: httpx.AsyncClient, tenant: str
) -> None:
    client = SynapseClient(str(http.base_url))
    try:
        for text in ("one", "two", "three"):
            await client.ingest(turn(tenant, text))
        await client.brief(brief(tenant))
    finally:
        await client.aclose()
    rejected = await http.post("/ingest", json=ingest_body(tenant, role="robot"))

    samples = await scrape(http)

    duration = "synapse_http_request_duration_seconds"
    ingest = {"route": "/ingest", "method": "POST", "status": "200"}
    assert rejected.status_code == 422
    assert value(samples, f"{duration}_count", **ingest) == 3
    assert value(samples, f"{duration}_bucket", **ingest, le="+Inf") == 3
    assert (value(samples, f"{duration}_sum", **ingest) or 0) > 0
    assert value(samples, f"{duration}_count", route="/brief", method="POST", status="200") == 1
    assert value(samples, f"{duration}_count", route="/ingest", method="POST", status="422") == 1
    # Only route templates become labels, never raw paths or ids.
    assert not any(tenant in str(labels) for _, labels in samples)
    assert (value(samples, "process_resident_memory_bytes") or 0) > 0


async def test_outbox_depth_by_state_after_a_close(http: httpx.AsyncClient, tenant: str) -> None:
    client = SynapseClient(str(http.base_url))
    try:
        before = await scrape(http)
        await client.ingest(turn(tenant, "I need to book the dentist", session="s-1"))
        await client.ingest(turn(tenant, "and call my sister", session="s-2"))
        await client.close_session(
            SessionCloseRequest(tenant_id=tenant, user_id="user-1", session_id="s-1")
        )
    finally:
        await client.aclose()

    after = await scrape(http)

    outbox = "synapse_outbox_entries"
    assert [value(before, outbox, state=s) for s in ("pending", "retrying", "dead")] == [0, 0, 0]
    assert [value(after, outbox, state=s) for s in ("pending", "retrying", "dead")] == [1, 0, 0]
    assert value(before, "synapse_open_sessions") == 0
    assert value(after, "synapse_open_sessions") == 1


@pytest.fixture
def janitor_env(standin_fresh: StandinServer) -> dict[str, str]:
    return {
        "LLM_PROVIDER": "openai",
        "OPENAI_API_KEY": "test-key",
        "OPENAI_BASE_URL": standin_fresh.base_url,
        "LLM_MODEL": "standin-large",
        "LLM_SMALL_MODEL": "standin-small",
        "EMBEDDING_DIM": str(standin_fresh.embedding_dim),
        "JANITOR_SWEEP_SECONDS": "1",
        "SESSION_IDLE_SECONDS": "3600",
        "JANITOR_BACKOFF_BASE_MS": "200",
        "JANITOR_BACKOFF_MAX_MS": "2000",
        "JANITOR_LEASE_SECONDS": "3",
        "LLM_MAX_RETRIES": "0",
    }


@pytest.mark.graph
async def test_a_flush_counts_the_episode_its_llm_calls_and_tokens_and_sweeps_are_timed(
    api_factory: ApiFactory,
    janitor_factory: JanitorFactory,
    janitor_env: dict[str, str],
    standin_fresh: StandinServer,
    graph_probe: GraphProbe,
    tenant: str,
) -> None:
    api = api_factory(**janitor_env)
    janitor_factory(**janitor_env)
    async with httpx.AsyncClient(base_url=api.base_url) as http:
        client = SynapseClient(api.base_url)
        try:
            await client.ingest(turn(tenant, "I need to book the dentist before Friday"))
            await client.close_session(
                SessionCloseRequest(tenant_id=tenant, user_id="user-1", session_id="session-1")
            )
        finally:
            await client.aclose()

        samples = await eventually(
            lambda: scrape(http),
            lambda s: (
                value(s, "synapse_episodes_emitted_total") == 1
                and value(s, "synapse_outbox_entries", state="pending") == 0
                and (value(s, "synapse_janitor_sweep_duration_seconds_count") or 0) >= 1
            ),
            what="one emitted episode, an empty outbox and a timed sweep",
        )

    assert await graph_probe.processed_episode_count(group_id(tenant, "user-1")) == 1
    calls = value(samples, "synapse_llm_calls_total") or 0
    assert calls >= 1
    assert calls <= sum(n for path, n in standin_fresh.calls.items() if path != "/v1/embeddings")
    assert (value(samples, "synapse_llm_tokens_total", direction="input") or 0) > 0
    assert (value(samples, "synapse_llm_tokens_total", direction="output") or 0) > 0
    assert value(samples, "synapse_outbox_failures_total", outcome="dead") == 0
    sweeps = value(samples, "synapse_janitor_sweep_duration_seconds_count")
    assert value(samples, "synapse_janitor_sweep_duration_seconds_bucket", le="+Inf") == sweeps


@pytest.mark.graph
async def test_failed_attempts_are_counted_and_a_dead_entry_shows_in_the_outbox_gauge(
    api_factory: ApiFactory,
    janitor_factory: JanitorFactory,
    janitor_env: dict[str, str],
    standin_fresh: StandinServer,
    tenant: str,
) -> None:
    standin_fresh.fail_forever(500, paths="/v1/responses")
    env = {**janitor_env, "JANITOR_MAX_ATTEMPTS": "2"}
    api = api_factory(**env)
    janitor_factory(**env)
    async with httpx.AsyncClient(base_url=api.base_url) as http:
        client = SynapseClient(api.base_url)
        try:
            await client.ingest(turn(tenant, "I need to book the dentist before Friday"))
            await client.close_session(
                SessionCloseRequest(tenant_id=tenant, user_id="user-1", session_id="session-1")
            )
        finally:
            await client.aclose()

        samples = await eventually(
            lambda: scrape(http),
            lambda s: value(s, "synapse_outbox_entries", state="dead") == 1,
            what="a dead-lettered entry in the outbox gauge",
        )

    assert value(samples, "synapse_outbox_entries", state="pending") == 0
    assert value(samples, "synapse_outbox_entries", state="retrying") == 0
    assert value(samples, "synapse_outbox_failures_total", outcome="retrying") == 1
    assert value(samples, "synapse_outbox_failures_total", outcome="dead") == 1
    assert value(samples, "synapse_episodes_emitted_total") == 0


@pytest.mark.graph
async def test_an_entry_waiting_for_its_retry_is_counted_as_retrying(
    api_factory: ApiFactory,
    janitor_factory: JanitorFactory,
    janitor_env: dict[str, str],
    standin_fresh: StandinServer,
    tenant: str,
) -> None:
    standin_fresh.fail_forever(500, paths="/v1/responses")
    env = {**janitor_env, "JANITOR_BACKOFF_BASE_MS": "600000", "JANITOR_BACKOFF_MAX_MS": "600000"}
    api = api_factory(**env)
    janitor_factory(**env)
    async with httpx.AsyncClient(base_url=api.base_url) as http:
        client = SynapseClient(api.base_url)
        try:
            for session in ("s-1", "s-2"):
                await client.ingest(turn(tenant, f"remember {session}", session=session))
                await client.close_session(
                    SessionCloseRequest(tenant_id=tenant, user_id="user-1", session_id=session)
                )
        finally:
            await client.aclose()

        samples = await eventually(
            lambda: scrape(http),
            lambda s: value(s, "synapse_outbox_entries", state="retrying") == 1,
            what="the head entry waiting for its retry",
        )

    # The second entry waits behind the first, in order: still pending.
    assert value(samples, "synapse_outbox_entries", state="pending") == 1
    assert value(samples, "synapse_outbox_entries", state="dead") == 0
    assert value(samples, "synapse_outbox_failures_total", outcome="retrying") == 1
