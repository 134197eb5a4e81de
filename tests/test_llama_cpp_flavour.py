"""The openai-compatible provider against llama.cpp's server behaviour, as the stand-in mimics it
(StandinServer.set_flavour("llama.cpp"); the real server is tests/model, `make test-model`):

- response_format json_schema is rejected with a 500 (a validation error, not a 4xx): with the
  default LLM_STRUCTURED_OUTPUT=json_schema the episode is retried with backoff and then
  dead-lettered, visible and re-drivable, never dropped as permanent;
- with LLM_STRUCTURED_OUTPUT=json_object the schema goes in the prompt and in response_format's
  own "schema" key, the episode lands, and its tokens are the server's `usage`.
"""

from typing import Any, cast

import openai
import pytest

from service.memory.episodes import group_id
from tests.standin.server import StandinServer
from tests.support.builders import turn
from tests.support.graph_probe import GraphProbe
from tests.support.stack import Stack, StackFactory
from tests.support.waiting import eventually

SCHEMA: dict[str, Any] = {
    "title": "Person",
    "type": "object",
    "properties": {"name": {"type": "string"}},
    "required": ["name"],
}
CHAT = "/v1/chat/completions"
# Not OpenAI's types: llama.cpp's extension of json_object.
JSON_OBJECT_WITH_SCHEMA: Any = {"type": "json_object", "schema": SCHEMA}
PROMPT: Any = [{"role": "user", "content": "Carla"}]


async def test_the_llama_cpp_flavour_rejects_json_schema_with_a_500(
    standin_fresh: StandinServer,
) -> None:
    standin_fresh.set_flavour("llama.cpp")
    async with openai.AsyncOpenAI(
        api_key="none", base_url=standin_fresh.base_url, max_retries=0
    ) as sdk:
        with pytest.raises(openai.InternalServerError) as rejected:
            await sdk.chat.completions.create(
                model="m",
                messages=PROMPT,
                response_format={
                    "type": "json_schema",
                    "json_schema": {"name": "Person", "schema": SCHEMA},
                },
            )
        assert "Input should be 'text' or 'json_object'" in str(rejected.value)
        answer = await sdk.chat.completions.create(
            model="m",
            messages=PROMPT,
            response_format=JSON_OBJECT_WITH_SCHEMA,
        )
    assert answer.usage is not None
    assert answer.usage.prompt_tokens > 0
    assert [(r.status, r.kind, r.schema_name) for r in standin_fresh.records] == [
        (500, "failure", None),
        (200, "json_object", "Person"),
    ]


def _llama_cpp_env(standin: StandinServer, **overrides: str) -> dict[str, str]:
    standin.set_flavour("llama.cpp")
    return {"LLM_PROVIDER": "openai-compatible", "SUMMARY_EVERY_TURNS": "1000", **overrides}


async def _converse_and_close(stack: Stack, tenant: str) -> None:
    await stack.client.ingest(turn(tenant, "I need to book the dentist before Friday"))
    await stack.client.ingest(
        turn(tenant, "I will remind you.", role="assistant", timestamp="2026-02-03T18:34:20Z")
    )
    await stack.close(tenant)


async def test_json_object_mode_lands_the_episode_with_the_servers_usage(
    stack_factory: StackFactory, standin_fresh: StandinServer, tenant: str, graph_probe: GraphProbe
) -> None:
    stack = await stack_factory(
        **_llama_cpp_env(standin_fresh, LLM_STRUCTURED_OUTPUT="json_object")
    )
    await _converse_and_close(stack, tenant)
    await stack.outbox_when(tenant, lambda o: o["entries"] == [], "the episode acknowledged")

    user = await eventually(
        lambda: stack.debug("user", tenantId=tenant, userId="user-1"),
        lambda r: r.json()["usage"]["episodes"] == 1,
        what="the episode's cost booked",
    )
    usage = cast(dict[str, Any], user.json()["usage"])
    assert await graph_probe.processed_episode_count(group_id(tenant, "user-1")) == 1
    chat = [r for r in standin_fresh.records if r.path == CHAT]
    assert chat, "no chat completion reached the stand-in"
    # Nothing was rejected: every request was json_object, with the schema for llama.cpp.
    assert {(r.status, r.kind) for r in chat} == {(200, "json_object")}
    assert all(r.schema_name for r in chat)
    # The tokens booked are the server's `usage`, not an estimate (summaries are not episodes).
    extraction = [r for r in chat if r.schema_name != "RollingSummary"]
    assert usage["llmCalls"] == len(extraction)
    assert usage["inputTokens"] == sum(r.input_tokens for r in extraction)
    assert usage["outputTokens"] == sum(r.output_tokens for r in extraction)


async def test_json_schema_against_llama_cpp_is_retried_then_dead_lettered(
    stack_factory: StackFactory, standin_fresh: StandinServer, tenant: str
) -> None:
    stack = await stack_factory(
        **_llama_cpp_env(standin_fresh, JANITOR_MAX_ATTEMPTS="2", LLM_MAX_RETRIES="1")
    )
    await _converse_and_close(stack, tenant)

    outbox = await stack.outbox_when(
        tenant, lambda o: o["counts"]["dead"] == 1, "the entry dead-lettered"
    )

    (entry,) = outbox["entries"]
    assert entry["state"] == "dead"
    assert entry["attempts"] == 2  # retried with backoff by the outbox, not dropped at once
    assert "InternalServerError" in (entry["lastError"] or "")
    rejected = [r for r in standin_fresh.records if r.path == CHAT and r.status == 500]
    # The SDK retried each 500 once (LLM_MAX_RETRIES=1) within each of the two attempts.
    assert {r.retry_count for r in rejected} == {0, 1}
    assert len(rejected) >= 4
    assert outbox["usage"]["episodes"] == 0

    # Re-driven under the server's own structured-output mode, the same entry lands.
    stack.janitor.stop()
    fixed = await stack_factory(
        **_llama_cpp_env(standin_fresh, LLM_STRUCTURED_OUTPUT="json_object")
    )
    redriven = await fixed.debug_post("emit_raw_user_sessions", tenantId=tenant, userId="user-1")
    assert redriven.status_code == 200, redriven.text
    await fixed.outbox_when(tenant, lambda o: o["entries"] == [], "the re-driven episode landed")
