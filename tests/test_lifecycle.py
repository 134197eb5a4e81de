"""The processes as an orchestrator (Kubernetes, compose) runs them: real `python -m service` and
`python -m janitor` processes, real Redis and Neo4j, the real openai SDK talking to the stand-in.

- Graceful stop: on SIGTERM the API stops accepting, finishes what is in flight and closes its
  clients; the janitor finishes or abandons its flush and the outbox keeps what it abandoned.
- Observability: JSON log lines with request id and tenant and nothing else of the request,
  X-Request-ID on every response, and OpenTelemetry spans from Graphiti when tracing is on.
"""

import asyncio
import copy
import io
import json
import logging
import os
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import uuid
from collections.abc import AsyncIterator, Iterator, Mapping
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest
from graphiti_core import Graphiti
from graphiti_core.driver.neo4j_driver import Neo4jDriver
from graphiti_core.search.search_config_recipes import COMBINED_HYBRID_SEARCH_RRF
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

from contracts import SessionCloseRequest, SynapseClient
from service.graph import build_clients, tracing
from service.memory.episodes import group_id
from service.observability.logs import JsonFormatter, log_context
from service.settings import Settings
from tests.conftest import INTERNAL_TOKEN
from tests.standin.server import StandinServer
from tests.support.api import ApiFactory, base_env, free_port
from tests.support.builders import turn
from tests.support.gated_upstream import GatedUpstream
from tests.support.graph_probe import GraphProbe
from tests.support.janitor import JanitorFactory
from tests.support.services import REPO, BackingServices
from tests.support.waiting import eventually

SECRET_TEXT = "the-walrus-sings-at-midnight"


class ApiProcess:
    """`python -m service` (or a given script) as its own process, output in a file."""

    def __init__(self, env: Mapping[str, str], argv: list[str] | None = None) -> None:
        self.port = free_port()
        self.env = {
            **env,
            "SYNAPSE_PORT": str(self.port),
            "PYTHONPATH": str(REPO),
            "PYTHONUNBUFFERED": "1",
            # Unclosed sockets, transports or files at exit are reported on stderr.
            "PYTHONWARNINGS": "always::ResourceWarning",
        }
        self.argv = argv or [sys.executable, "-m", "service"]
        self.log = Path(tempfile.mkstemp(prefix="api-", suffix=".log")[1])
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def _launch(self) -> None:
        with self.log.open("ab") as log:
            self.process = subprocess.Popen(
                self.argv, cwd=REPO, env=self.env, stdout=log, stderr=subprocess.STDOUT
            )

    async def start(self) -> "ApiProcess":
        await asyncio.to_thread(self._launch)

        async def healthy() -> bool:
            assert self.process is not None
            if self.process.poll() is not None:
                raise AssertionError(f"the API exited:\n{self.output()}")
            try:
                async with httpx.AsyncClient(base_url=self.base_url) as http:
                    return (await http.get("/health")).status_code == 200
            except httpx.TransportError:
                return False

        await eventually(healthy, bool, within=60, interval=0.1, what="the API answering")
        return self

    def terminate(self) -> None:
        assert self.process is not None
        self.process.send_signal(signal.SIGTERM)

    def wait(self, timeout: float = 40) -> int:
        assert self.process is not None
        return self.process.wait(timeout=timeout)

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def cleanup(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait(timeout=10)
        print(f"--- API process output ---\n{self.output()[-6000:]}")
        self.log.unlink(missing_ok=True)


@pytest.fixture
async def api_process(
    backing_services: BackingServices, redis: object
) -> AsyncIterator[list[ApiProcess]]:
    started: list[ApiProcess] = []
    yield started
    for api in started:
        api.cleanup()


def accepts_connections(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1):
            return True
    except OSError:
        return False


# --- graceful stop -----------------------------------------------------------------------------


async def test_api_on_sigterm_stops_accepting_finishes_in_flight_requests_and_closes_clients(
    backing_services: BackingServices,
    api_process: list[ApiProcess],
    standin_fresh: StandinServer,
    tenant: str,
) -> None:
    with GatedUpstream(standin_fresh) as upstream:
        env = base_env(
            backing_services.redis_url,
            backing_services.neo4j_uri,
            LLM_PROVIDER="openai",
            OPENAI_API_KEY="test-key",
            OPENAI_BASE_URL=upstream.base_url,
            EMBEDDING_DIM=str(standin_fresh.embedding_dim),
            LLM_MAX_RETRIES="0",
            LOG_LEVEL="INFO",
        )
        api = await ApiProcess(env).start()
        api_process.append(api)

        async with httpx.AsyncClient(base_url=api.base_url, timeout=60) as http:
            # The query's embedding waits at the gate: the request is in flight at SIGTERM.
            in_flight = asyncio.create_task(
                http.post(
                    "/memory/query",
                    json={"tenantId": tenant, "userId": "user-1", "query": "dentist appointment"},
                )
            )
            assert await asyncio.to_thread(upstream.arrived.wait, 30)
            api.terminate()

            async def refusing() -> bool:
                return not await asyncio.to_thread(accepts_connections, api.port)

            await eventually(refusing, bool, within=20, interval=0.05, what="connections refused")
            still_in_flight = not in_flight.done()
            upstream.gate.set()
            response = await in_flight

        returncode = await asyncio.to_thread(api.wait)
    output = api.output()

    assert still_in_flight
    assert response.status_code == 200, response.text
    assert response.json()["metadata"]["query"] == "dentist appointment"
    # The entry point turns the drained SIGTERM into a clean exit (service/__main__.py).
    assert returncode == 0, output
    assert "Application shutdown complete" in output
    assert "ResourceWarning" not in output
    assert "Unclosed" not in output


async def test_janitor_on_sigterm_mid_flush_leaves_exactly_one_episode_after_a_restart(
    api_factory: ApiFactory,
    janitor_factory: JanitorFactory,
    llm_env: dict[str, str],
    standin_fresh: StandinServer,
    tenant: str,
    graph_probe: GraphProbe,
) -> None:
    api = api_factory(**llm_env)
    janitor = janitor_factory(**llm_env)
    group = group_id(tenant, "user-1")
    standin_fresh.set_latency(0.5)
    async with (
        SynapseClient(api.base_url) as client,
        httpx.AsyncClient(base_url=api.base_url) as http,
    ):

        async def outbox() -> list[Any]:
            response = await http.get(
                "/internal/debug/user",
                params={"tenantId": tenant, "userId": "user-1"},
                headers={"X-Internal-Token": INTERNAL_TOKEN},
            )
            entries: list[Any] = response.json()["outbox"]
            return entries

        await client.ingest(turn(tenant, "I need to call Ashley about the Berlin trip"))
        await client.ingest(turn(tenant, "Noted.", role="assistant"))
        await client.close_session(
            SessionCloseRequest(tenant_id=tenant, user_id="user-1", session_id="session-1")
        )

        async def extraction_calls() -> int:
            return standin_fresh.calls.get("/v1/responses", 0)

        await eventually(extraction_calls, lambda n: n >= 1, what="the janitor inside add_episode")
        returncode = await asyncio.to_thread(janitor.stop, 60)
        after_stop = (await graph_probe.processed_episode_count(group), len(await outbox()))

        standin_fresh.set_latency(0.0)
        janitor_factory(**llm_env)
        await eventually(
            lambda: graph_probe.processed_episode_count(group),
            lambda n: n >= 1,
            what="the episode after the restart",
        )
        await eventually(outbox, lambda entries: entries == [], what="an empty outbox")
        names = await graph_probe.entity_names(group)

    assert returncode == 0, janitor.log_tail()
    assert "janitor stopped" in janitor.log_tail()
    # Finished within the drain budget (episode written, entry acknowledged), or abandoned with
    # the entry still in the outbox (even after the episode was written: the next janitor then
    # only acknowledges it). Never neither, never more than one of either.
    processed, kept = after_stop
    assert processed + kept >= 1, after_stop
    assert processed <= 1, after_stop
    assert kept <= 1, after_stop
    assert await graph_probe.episode_count(group) == 1
    assert len(names) == len(set(names)), names
    assert "Ashley" in names


async def test_the_janitor_liveness_probe_fails_without_a_janitor_and_passes_with_one(
    backing_services: BackingServices, janitor_factory: JanitorFactory
) -> None:
    """The exact command of the Kubernetes liveness probe and the compose healthcheck."""
    env = {
        "PATH": os.environ.get("PATH", ""),
        "PYTHONPATH": str(REPO),
        "REDIS_URL": backing_services.redis_url,
    }
    probe = [str(Path(sys.executable).parent / "arq"), "--check", "janitor.worker.WorkerSettings"]

    def check() -> int:
        return subprocess.run(probe, cwd=REPO, env=env, capture_output=True, check=False).returncode

    before = await asyncio.to_thread(check)
    janitor_factory()

    async def probe_result() -> int:
        return await asyncio.to_thread(check)

    await eventually(probe_result, lambda code: code == 0, what="arq --check passing")

    assert before == 1


# --- observability -----------------------------------------------------------------------------


# `python -m service` as service/app.py and service/__main__.py wire it once the observability
# lines are in (see deploy/README.md, "Logs and traces"): the request-context middleware around
# the whole app, uvicorn's own logging handed to service/observability/logs.py, no uvicorn
# access log.
def json_lines(output: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in output.splitlines() if line.strip()]


async def test_logs_are_json_lines_with_request_id_and_tenant_and_no_message_text(
    backing_services: BackingServices, api_process: list[ApiProcess], tenant: str
) -> None:
    env = base_env(
        backing_services.redis_url,
        backing_services.neo4j_uri,
        LOG_LEVEL="INFO",
        ACCESS_LOG="all",
        INTERNAL_TOKEN=INTERNAL_TOKEN,
    )
    api = await ApiProcess(env, [sys.executable, "-m", "service"]).start()
    api_process.append(api)

    async with httpx.AsyncClient(base_url=api.base_url) as http:
        kept = await http.get("/health", headers={"X-Request-ID": "orchestrator-turn-42"})
        replaced = await http.get("/health", headers={"X-Request-ID": "no spaces allowed"})
        not_found = await http.get("/no/such/route")
        ingested = await http.post(
            "/ingest",
            json={
                "tenantId": tenant,
                "userId": "user-1",
                "sessionId": "session-1",
                "role": "user",
                "text": SECRET_TEXT,
                "timestamp": "2026-02-03T18:34:12Z",
            },
        )
        invalid = await http.post("/ingest", json={"tenantId": tenant, "text": SECRET_TEXT})
        debug = await http.get(
            "/internal/debug/user",
            params={"tenantId": tenant, "userId": "user-1"},
            headers={"X-Internal-Token": INTERNAL_TOKEN},
        )
    api.terminate()
    await asyncio.to_thread(api.wait)
    output = api.output()
    lines = json_lines(output)
    access = {line["request_id"]: line for line in lines if line["logger"] == "synapse.access"}
    ingest_id = ingested.headers["x-request-id"]

    assert kept.headers["x-request-id"] == "orchestrator-turn-42"
    for response in (replaced, not_found, ingested, invalid, debug):
        assert len(response.headers["x-request-id"]) == 32
    assert len({r.headers["x-request-id"] for r in (replaced, not_found, ingested)}) == 3
    assert (not_found.status_code, invalid.status_code, debug.status_code) == (404, 422, 200)
    assert ingested.status_code < 300
    assert all({"time", "level", "logger", "message"} <= set(line) for line in lines)
    assert access[ingest_id]["tenant"] == tenant
    assert access[ingest_id]["route"] == "/ingest"
    assert access[ingest_id]["status"] == ingested.status_code
    assert access[invalid.headers["x-request-id"]]["tenant"] == tenant
    assert access[debug.headers["x-request-id"]]["tenant"] == tenant
    assert access[not_found.headers["x-request-id"]]["status"] == 404
    assert any(line["logger"].startswith("uvicorn") for line in lines)
    assert SECRET_TEXT not in output
    assert INTERNAL_TOKEN not in output


async def test_by_default_only_failed_requests_get_an_access_line(
    backing_services: BackingServices, api_process: list[ApiProcess], tenant: str
) -> None:
    env = base_env(backing_services.redis_url, backing_services.neo4j_uri, LOG_LEVEL="INFO")
    api = await ApiProcess(env, [sys.executable, "-m", "service"]).start()
    api_process.append(api)
    turn = {
        "tenantId": tenant,
        "userId": "user-1",
        "sessionId": "session-1",
        "role": "user",
        "text": "hello",
        "timestamp": "2026-02-03T18:34:12Z",
    }
    async with httpx.AsyncClient(base_url=api.base_url) as http:
        ingested = await http.post("/ingest", json=turn)
        invalid = await http.post("/ingest", json={**turn, "role": "narrator"})
        unknown = await http.post("/session/close", json={**turn_ids(turn), "sessionId": "nope"})
    api.terminate()
    await asyncio.to_thread(api.wait)
    lines = json_lines(api.output())
    logged = {line["request_id"] for line in lines if line["logger"] == "synapse.access"}

    assert (ingested.status_code, invalid.status_code, unknown.status_code) == (200, 422, 404)
    assert ingested.headers["x-request-id"] not in logged
    assert invalid.headers["x-request-id"] in logged
    assert unknown.headers["x-request-id"] in logged


def turn_ids(turn: dict[str, str]) -> dict[str, str]:
    return {key: turn[key] for key in ("tenantId", "userId")}


def test_a_log_line_masks_secrets_and_keeps_only_the_first_line_of_an_error() -> None:
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter())
    logger = logging.getLogger(f"synapse.test.{uuid.uuid4().hex}")
    logger.addHandler(handler)
    logger.propagate = False
    logger.setLevel(logging.INFO)

    with log_context(request_id="req-1", tenant="tenant-a"):
        logger.info(
            "calling %s with Bearer abc.def-123 at redis://:hunter2hunter2@redis:6379/0",
            "sk-proj-abcdefghijklmnop1234",
            extra={"user": "user-1", "attempt": 2},
        )
        try:
            raise ValueError(f"bad output\ninput_value='{SECRET_TEXT}'")
        except ValueError:
            logger.exception("extraction failed")
    logger.info("outside any request")
    first, second, third = json_lines(stream.getvalue())

    assert first["request_id"] == "req-1"
    assert first["tenant"] == "tenant-a"
    assert (first["user"], first["attempt"]) == ("user-1", 2)
    assert "sk-proj" not in first["message"]
    assert "abc.def-123" not in first["message"]
    assert "hunter2" not in first["message"]
    assert first["time"].endswith("Z")
    assert second["error"]["type"] == "builtins.ValueError"
    assert second["error"]["message"] == "bad output"
    assert second["error"]["frames"]
    assert SECRET_TEXT not in stream.getvalue()
    assert "request_id" not in third
    assert "tenant" not in third


class _OtlpReceiver(BaseHTTPRequestHandler):
    received: list[bytes]

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["Content-Length"]))
        self.server.received.append(body)  # type: ignore[attr-defined]
        self.send_response(200)
        self.send_header("Content-Type", "application/x-protobuf")
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture
def otlp_collector() -> Iterator[tuple[str, list[bytes]]]:
    """A minimal OTLP/HTTP trace receiver on loopback: it keeps the request bodies."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), _OtlpReceiver)
    received: list[bytes] = []
    server.received = received  # type: ignore[attr-defined]
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}", received
    server.shutdown()
    server.server_close()
    thread.join(timeout=10)


def test_tracing_is_off_unless_configured() -> None:
    assert tracing.create_tracer({}, default_service_name="synapse-test") is None
    assert (
        tracing.create_tracer(
            {"OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:1", "OTEL_SDK_DISABLED": "true"},
            default_service_name="synapse-test",
        )
        is None
    )
    with pytest.raises(tracing.TracingConfigError):
        tracing.create_tracer({"OTEL_TRACES_EXPORTER": "otlp"}, default_service_name="x")
    with pytest.raises(tracing.TracingConfigError):
        tracing.create_tracer({"OTEL_TRACES_EXPORTER": "zipkin"}, default_service_name="x")


async def test_graphiti_spans_reach_the_otlp_collector(
    backing_services: BackingServices, otlp_collector: tuple[str, list[bytes]]
) -> None:
    endpoint, received = otlp_collector
    service_name = f"synapse-test-{uuid.uuid4().hex[:8]}"
    tracer = tracing.create_tracer(
        {"OTEL_EXPORTER_OTLP_ENDPOINT": endpoint, "OTEL_SERVICE_NAME": service_name},
        default_service_name="synapse-api",
    )
    assert tracer is not None
    clients = build_clients(Settings(embedding_dim=256))
    driver = Neo4jDriver(backing_services.neo4j_uri, "neo4j", "", database="neo4j")
    init_task = getattr(driver, "_init_task", None)
    if init_task is not None:
        await init_task
    graphiti = Graphiti(
        graph_driver=driver,
        llm_client=clients.llm,
        embedder=clients.embedder,
        cross_encoder=clients.cross_encoder,
        # A raw OpenTelemetry tracer: Graphiti wraps it itself (graphiti_core.tracer), whatever
        # its constructor's annotation says.
        tracer=tracer,  # type: ignore[arg-type]
    )
    try:
        await graphiti.search_(
            "dentist appointment",
            config=copy.deepcopy(COMBINED_HYBRID_SEARCH_RRF),
            group_ids=[f"tracing_{uuid.uuid4().hex[:12]}"],
        )
    finally:
        await graphiti.close()  # type: ignore[no-untyped-call]

    assert await asyncio.to_thread(tracing.flush_traces)
    spans: list[str] = []
    for body in received:
        request = ExportTraceServiceRequest.FromString(body)
        for resource_spans in request.resource_spans:
            attributes = {a.key: a.value.string_value for a in resource_spans.resource.attributes}
            if attributes.get("service.name") != service_name:
                continue
            for scope_spans in resource_spans.scope_spans:
                spans.extend(span.name for span in scope_spans.spans)

    assert spans
    assert all(name.startswith("graphiti.") for name in spans)
    assert any("search" in name for name in spans)
