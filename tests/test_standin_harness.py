"""Proof that the test harness works: the offline extractor, the OpenAI stand-in, and Graphiti
running through both on the real Neo4j.

Run with ``-p tests.standin.plugin`` until the plugin is registered in ``tests/conftest.py``.
"""

from __future__ import annotations

import asyncio
import base64
import json
import math
import struct
import time
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

import httpx
import openai
import pytest
from graphiti_core.llm_client import LLMConfig, OpenAIClient
from graphiti_core.nodes import EpisodeType
from graphiti_core.prompts.dedupe_edges import EdgeDuplicate
from graphiti_core.prompts.dedupe_nodes import NodeResolutions
from graphiti_core.prompts.extract_edges import ExtractedEdges
from graphiti_core.prompts.extract_nodes import ExtractedEntities
from graphiti_core.prompts.lib import (
    BUILTIN_PROMPT_SPECS,
    default_chat_prompt_library,
    get_prompt_builder,
)
from graphiti_core.prompts.models import Message
from graphiti_core.search.search_config_recipes import (
    COMBINED_HYBRID_SEARCH_RRF,
    EDGE_HYBRID_SEARCH_CROSS_ENCODER,
    EDGE_HYBRID_SEARCH_RRF,
)
from pydantic import BaseModel, Field

from service.graph.narrative import (
    NARRATIVE_ENTITY_TYPES,
    NARRATIVE_EXTRACTION_INSTRUCTIONS,
    Environment,
    MentalState,
    Tension,
)
from service.graph.offline_llm import (
    detect_user_name,
    hashing_embedding,
    lexical_relevance,
    structured_response,
    summarize_transcript,
)
from tests.standin.plugin import (
    LARGE_MODEL,
    SMALL_MODEL,
    STANDIN_EMBEDDING_DIM,
    GraphitiHandle,
    MakeGraphiti,
)
from tests.standin.server import StandinServer

DENTIST_TURN = "user: I need to book the dentist before Friday\nassistant: Got it"
REFERENCE_TIME = datetime(2025, 3, 3, 9, 30, tzinfo=UTC)

# --------------------------------------------------------------------------------------------
# Prompt rendering: contexts shaped like the ones graphiti_core builds, rendered by graphiti's
# own prompt library, so the extractor is tested against the real prompt text.
# --------------------------------------------------------------------------------------------


def entity_types_context(entity_types: Mapping[str, type[BaseModel]]) -> list[dict[str, Any]]:
    """Same shape as graphiti_core/utils/maintenance/node_operations.py:165-194."""
    return [
        {
            "entity_type_id": 0,
            "entity_type_name": "Entity",
            "entity_type_description": "A specific, identifiable entity.",
        },
        *(
            {
                "entity_type_id": i + 1,
                "entity_type_name": name,
                "entity_type_description": model.__doc__,
            }
            for i, (name, model) in enumerate(entity_types.items())
        ),
    ]


def render(prompt_name: str, context: dict[str, Any]) -> list[dict[str, str]]:
    builder = get_prompt_builder(default_chat_prompt_library, prompt_name)
    return [{"role": m.role, "content": m.content} for m in builder(context).as_messages()]


def extraction_context(content: str, *, previous: list[str] | None = None) -> dict[str, Any]:
    return {
        "episode_content": content,
        "episode_timestamp": REFERENCE_TIME.isoformat(),
        "previous_episodes": [
            {"content": p, "timestamp": REFERENCE_TIME.isoformat()} for p in (previous or [])
        ],
        "custom_extraction_instructions": NARRATIVE_EXTRACTION_INSTRUCTIONS,
        "entity_types": entity_types_context(NARRATIVE_ENTITY_TYPES),
        "source_description": "chat",
    }


def extract(content: str) -> dict[str, str]:
    """name → entity type name, via the real extract_message prompt."""
    messages = render("extract_nodes.extract_message", extraction_context(content))
    result = ExtractedEntities.model_validate(structured_response("ExtractedEntities", messages))
    names = ["Entity", *NARRATIVE_ENTITY_TYPES]
    return {e.name: names[e.entity_type_id] for e in result.extracted_entities}


def extract_facts(content: str) -> list[tuple[str, str, str]]:
    entities = extract(content)
    context = {
        "episode_content": content,
        "nodes": [{"name": n, "entity_types": sorted({"Entity", t})} for n, t in entities.items()],
        "previous_episodes": [],
        "reference_time": REFERENCE_TIME,
        "edge_types": [],
        "strict_edge_types": False,
        "custom_extraction_instructions": NARRATIVE_EXTRACTION_INSTRUCTIONS,
    }
    messages = render("extract_edges.edge", context)
    edges = ExtractedEdges.model_validate(structured_response("ExtractedEdges", messages)).edges
    return [(e.source_entity_name, e.target_entity_name, e.fact) for e in edges]


def attributes(model: type[BaseModel], name: str, content: str, **existing: Any) -> dict[str, Any]:
    context = {
        "node": {"name": name, "entity_types": ["Entity", model.__name__], "attributes": existing},
        "episode_content": content,
        "previous_episodes": [],
    }
    messages = render("extract_nodes.extract_attributes", context)
    result = structured_response(model.__name__, messages, model.model_json_schema())
    model.model_validate(result)
    return result


# --------------------------------------------------------------------------------------------
# (d) offline extractor: cues, dedupe, every response model, embedding similarity
# --------------------------------------------------------------------------------------------


def test_need_cue_becomes_unresolved_tension_with_natural_fact() -> None:
    assert extract(DENTIST_TURN) == {"User": "Entity", "Book the dentist": "Tension"}
    assert extract_facts(DENTIST_TURN) == [
        ("User", "Book the dentist", "User needs to book the dentist before Friday")
    ]
    assert attributes(Tension, "Book the dentist", DENTIST_TURN) == {
        "description": "Book the dentist",
        "status": "unresolved",
    }


@pytest.mark.parametrize(
    ("content", "name", "fact"),
    [
        (
            "user: I have to renew my passport",
            "Renew User's passport",
            "User has to renew User's passport",
        ),
        ("user: I'm worried about the rent", "Rent", "User is worried about the rent"),
        ("user: still waiting on the landlord", "Landlord", "User is waiting on the landlord"),
        (
            "user: ugh, gotta finish the slides by 3pm",
            "Finish the slides",
            "User has to finish the slides by 3pm",
        ),
        (
            "user: can you remind me to water the plants?",
            "Water the plants",
            "User wants to be reminded to water the plants",
        ),
    ],
)
def test_other_open_loop_cues(content: str, name: str, fact: str) -> None:
    assert extract(content) == {"User": "Entity", name: "Tension"}
    assert extract_facts(content) == [("User", name, fact)]


def test_completion_cue_resolves_the_same_tension_name() -> None:
    content = "user: I finally booked the dentist!"
    assert extract(content) == {"User": "Entity", "Book the dentist": "Tension"}
    assert ("User", "Book the dentist", "User booked the dentist") in extract_facts(content)
    existing = {"description": "Book the dentist", "status": "unresolved"}
    assert attributes(Tension, "Book the dentist", content, **existing)["status"] == "resolved"


def test_mood_cue_becomes_mental_state() -> None:
    content = "user: Honestly I'm so exhausted after the gym"
    assert extract(content) == {"User": "Entity", "Exhausted": "MentalState"}
    assert extract_facts(content) == [("User", "Exhausted", "User feels exhausted after the gym")]
    assert attributes(MentalState, "Exhausted", content) == {
        "mood": "Exhausted",
        "energy_level": "Low",
    }
    assert extract("user: I feel frustrated")["Frustrated"] == "MentalState"
    assert "Tired" not in extract("user: I'm not tired at all")


def test_place_cue_becomes_environment() -> None:
    content = "user: I'm at a noisy cafe right now"
    assert extract(content) == {"User": "Entity", "Cafe": "Environment"}
    assert extract_facts(content) == [("User", "Cafe", "User is at a noisy cafe")]
    assert attributes(Environment, "Cafe", content) == {"location_type": "Cafe", "vibe": "Noisy"}
    assert "Love" not in extract("user: I'm in love with this song")


def test_capitalised_names_are_entities_and_facts_keep_the_words() -> None:
    content = "user: Thanks! I met Ashley at the gym. Ashley moved to Berlin."
    entities = extract(content)
    assert entities == {"User": "Entity", "Ashley": "Entity", "Berlin": "Entity"}
    facts = extract_facts(content)
    assert ("User", "Ashley", "User met Ashley at the gym") in facts
    assert ("Ashley", "Berlin", "Ashley moved to Berlin") in facts
    for source, target, _ in facts:
        assert source in entities
        assert target in entities


def test_narrative_cues_need_their_types() -> None:
    context = extraction_context("user: I'm exhausted and I need to call Ashley")
    context["entity_types"] = entity_types_context({})
    messages = render("extract_nodes.extract_message", context)
    result = ExtractedEntities.model_validate(structured_response("ExtractedEntities", messages))
    assert [e.name for e in result.extracted_entities] == ["User", "Ashley"]


def test_speaker_lines_and_assistant_turns() -> None:
    content = "user: I'm at home\nassistant: Say hi to Bob for me\nuser: Will do"
    assert extract(content) == {"User": "Entity", "Home": "Environment"}


def test_node_dedupe_only_resolves_exact_names() -> None:
    context = {
        "extracted_nodes": [
            {"id": 0, "name": "ashley", "entity_type": ["Entity"], "entity_type_description": ""},
            {"id": 1, "name": "Ash", "entity_type": ["Entity"], "entity_type_description": ""},
        ],
        "existing_nodes": [
            {"candidate_id": 0, "name": "Berlin", "entity_types": ["Entity"], "summary": ""},
            {"candidate_id": 1, "name": "Ashley", "entity_types": ["Entity"], "summary": ""},
        ],
        "episode_content": "user: ashley and Ash",
        "previous_episodes": [],
    }
    result = NodeResolutions.model_validate(
        structured_response("NodeResolutions", render("dedupe_nodes.nodes", context))
    )
    assert [(r.id, r.duplicate_candidate_id) for r in result.entity_resolutions] == [
        (0, 1),
        (1, -1),
    ]


def test_edge_dedupe_is_verbatim_and_completion_closes_the_open_loop() -> None:
    context = {
        "existing_edges": [
            {"idx": 0, "fact": "User needs to book the dentist before Friday"},
            {"idx": 1, "fact": "User feels tired"},
        ],
        "edge_invalidation_candidates": [{"idx": 2, "fact": "User is at a cafe"}],
        "new_edge": "user needs to book the dentist before Friday.",
    }
    result = EdgeDuplicate.model_validate(
        structured_response("EdgeDuplicate", render("dedupe_edges.resolve_edge", context))
    )
    assert result.duplicate_facts == [0]
    assert result.contradicted_facts == []
    context["new_edge"] = "User needs to book the dentist soon"
    result = EdgeDuplicate.model_validate(
        structured_response("EdgeDuplicate", render("dedupe_edges.resolve_edge", context))
    )
    assert result.duplicate_facts == []
    context["new_edge"] = "User booked the dentist"
    result = EdgeDuplicate.model_validate(
        structured_response("EdgeDuplicate", render("dedupe_edges.resolve_edge", context))
    )
    assert result.contradicted_facts == [0]


class WorksAt(BaseModel):
    """A person works at an organisation."""

    role: str | None = Field(default=None, description="Job title")
    since_year: int | None = Field(default=None, description="Year they started")


def _prompt_contexts() -> dict[str, tuple[dict[str, Any], type[BaseModel] | None]]:
    """A realistic context for every prompt with a response model (dynamic ones get a type)."""
    previous = [{"content": "user: hi", "timestamp": REFERENCE_TIME.isoformat()}]
    extraction = extraction_context(DENTIST_TURN, previous=["user: hi"])
    entities = [
        {"name": "User", "summary": "", "entity_types": ["Entity"], "attributes": {}},
        {
            "name": "Book the dentist",
            "summary": "",
            "entity_types": ["Entity", "Tension"],
            "attributes": {"status": "unresolved"},
        },
    ]
    return {
        "extract_nodes.extract_message": (extraction, None),
        "extract_nodes.extract_text": (
            {**extraction, "episode_content": "I need to call Ashley in Berlin."},
            None,
        ),
        "extract_nodes.extract_json": (
            {**extraction, "episode_content": json.dumps({"user": "Jordan Lee", "city": "Denver"})},
            None,
        ),
        "extract_nodes.extract_attributes": (
            {
                "node": {
                    "name": "Book the dentist",
                    "entity_types": ["Entity", "Tension"],
                    "attributes": {},
                },
                "episode_content": DENTIST_TURN,
                "previous_episodes": previous,
            },
            Tension,
        ),
        "extract_nodes.extract_summaries_batch": (
            {
                "entities": entities,
                "episode_content": DENTIST_TURN,
                "previous_episodes": previous,
                "entity_type_descriptions": {"Tension": "An open loop."},
            },
            None,
        ),
        "extract_nodes.extract_entity_summaries_from_episodes": (
            {"entities": entities, "episode_content": DENTIST_TURN, "previous_episodes": previous},
            None,
        ),
        "dedupe_nodes.node": (
            {
                "extracted_node": {"id": 0, "name": "User", "entity_types": ["Entity"]},
                "entity_type_description": "Default Entity Type",
                "existing_nodes": [{"candidate_id": 0, "name": "user", "entity_types": ["Entity"]}],
                "episode_content": DENTIST_TURN,
                "previous_episodes": previous,
            },
            None,
        ),
        "dedupe_nodes.nodes": (
            {
                "extracted_nodes": [
                    {
                        "id": 0,
                        "name": "User",
                        "entity_type": ["Entity"],
                        "entity_type_description": "Default Entity Type",
                    }
                ],
                "existing_nodes": [],
                "episode_content": DENTIST_TURN,
                "previous_episodes": previous,
            },
            None,
        ),
        "extract_edges.edge": (
            {
                "episode_content": DENTIST_TURN,
                "nodes": [
                    {"name": "User", "entity_types": ["Entity"]},
                    {"name": "Book the dentist", "entity_types": ["Entity", "Tension"]},
                ],
                "previous_episodes": previous,
                "reference_time": REFERENCE_TIME,
                "edge_types": [
                    {
                        "fact_type_name": "WORKS_AT",
                        "fact_type_signatures": [],
                        "fact_type_description": WorksAt.__doc__,
                    }
                ],
                "strict_edge_types": False,
                "custom_extraction_instructions": "",
            },
            None,
        ),
        "extract_edges.extract_attributes": (
            {
                "fact": "Ashley works at Acme as an engineer",
                "reference_time": REFERENCE_TIME,
                "existing_attributes": {"role": "engineer"},
            },
            WorksAt,
        ),
        "extract_edges.extract_timestamps": (
            {"fact": "User met Ashley yesterday", "reference_time": REFERENCE_TIME.isoformat()},
            None,
        ),
        "extract_edges.extract_timestamps_batch": (
            {
                "facts": [
                    {
                        "fact": "User no longer works at Acme",
                        "reference_time": REFERENCE_TIME.isoformat(),
                    },
                    {"fact": "User is at a cafe", "reference_time": "unknown"},
                ]
            },
            None,
        ),
        "extract_nodes_and_edges.extract_message": (
            {
                **extraction,
                "episode_content": f"[Episode 0] (timestamp: {REFERENCE_TIME.isoformat()})\n"
                f"{DENTIST_TURN}\n\n[Episode 1] (timestamp: {REFERENCE_TIME.isoformat()})\n"
                "user: I'm so tired",
                "edge_types": [],
                "strict_edge_types": False,
            },
            None,
        ),
        "dedupe_edges.resolve_edge": (
            {
                "existing_edges": [{"idx": 0, "fact": "User feels tired"}],
                "edge_invalidation_candidates": [],
                "new_edge": "User feels tired",
            },
            None,
        ),
        "summarize_nodes.summarize_pair": (
            {"node_summaries": [{"summary": "User feels tired."}, {"summary": "User is at home."}]},
            None,
        ),
        "summarize_nodes.summarize_context": (
            {
                "episode_content": DENTIST_TURN,
                "previous_episodes": previous,
                "node_name": "User",
                "node_summary": "",
                "attributes": [],
            },
            None,
        ),
        "summarize_nodes.summary_description": (
            {"summary": "User needs to book the dentist before Friday. User feels tired."},
            None,
        ),
        "summarize_sagas.summarize_saga": (
            {
                "saga_name": "week",
                "existing_summary": "User likes tea.",
                "episodes": [DENTIST_TURN, "user: I'm at a cafe"],
            },
            None,
        ),
        "eval.query_expansion": ({"query": "What do I need to do?"}, None),
        "eval.qa_prompt": (
            {
                "entity_summaries": [],
                "facts": ["User needs to book the dentist"],
                "query": "What about the dentist?",
            },
            None,
        ),
        "eval.eval_prompt": (
            {"query": "q", "answer": "book the dentist", "response": "User must book the dentist"},
            None,
        ),
        "eval.eval_add_episode_results": (
            {"previous_messages": [], "message": DENTIST_TURN, "baseline": "a", "candidate": "b"},
            None,
        ),
    }


def test_every_graphiti_response_model_validates() -> None:
    contexts = _prompt_contexts()
    for prompt_name, spec in BUILTIN_PROMPT_SPECS.items():
        if spec.response_model is None and not spec.dynamic_schema:
            continue  # free-form prompts (classify_nodes, node_list, extract_summary)
        context, dynamic_model = contexts[prompt_name]
        model = spec.response_model or dynamic_model
        assert model is not None, prompt_name
        messages = render(prompt_name, context)
        result = structured_response(model.__name__, messages, model.model_json_schema())
        model.model_validate(result)
        json.dumps(result)  # JSON-ready, as the server sends it


def test_response_details_for_summaries_timestamps_and_combined() -> None:
    contexts = _prompt_contexts()

    def answer(prompt_name: str, model_name: str) -> dict[str, Any]:
        return structured_response(model_name, render(prompt_name, contexts[prompt_name][0]))

    from_json = answer("extract_nodes.extract_json", "ExtractedEntities")["extracted_entities"]
    assert [e["name"] for e in from_json] == ["Jordan Lee", "Denver"]
    from_text = answer("extract_nodes.extract_text", "ExtractedEntities")["extracted_entities"]
    assert [e["name"] for e in from_text] == ["User", "Call Ashley in Berlin", "Ashley", "Berlin"]
    batch = answer("extract_nodes.extract_summaries_batch", "SummarizedEntities")["summaries"]
    assert {
        "name": "Book the dentist",
        "summary": "User needs to book the dentist before Friday.",
    } in batch
    stamps = answer("extract_edges.extract_timestamps", "EdgeTimestamps")
    assert stamps == {"valid_at": "2025-03-02T09:30:00Z", "invalid_at": None}
    batch_stamps = answer("extract_edges.extract_timestamps_batch", "BatchEdgeTimestamps")
    assert batch_stamps["timestamps"] == [
        {"valid_at": "2025-03-03T09:30:00Z", "invalid_at": "2025-03-03T09:30:00Z"},
        {"valid_at": None, "invalid_at": None},
    ]
    combined = answer("extract_nodes_and_edges.extract_message", "CombinedExtraction")
    assert [e["name"] for e in combined["extracted_entities"]] == [
        "User",
        "Book the dentist",
        "Tired",
    ]
    assert [(e["fact"], e["episode_indices"]) for e in combined["edges"]] == [
        ("User needs to book the dentist before Friday", [0]),
        ("User feels tired", [1]),
    ]
    saga = answer("summarize_sagas.summarize_saga", "SagaSummary")["summary"]
    assert saga.startswith("User likes tea.")
    assert "User is at a cafe." in saga
    pair = answer("summarize_nodes.summarize_pair", "Summary")["summary"]
    assert pair == "User feels tired. User is at home."


def test_custom_type_without_heuristics_gets_nulls_and_strict_defaults() -> None:
    messages = render(
        "extract_edges.extract_attributes",
        _prompt_contexts()["extract_edges.extract_attributes"][0],
    )
    assert structured_response("WorksAt", messages, WorksAt.model_json_schema()) == {
        "role": "engineer",  # the existing value is preserved
        "since_year": None,
    }
    strict = {
        "type": "object",
        "properties": {
            "flag": {"type": "boolean"},
            "count": {"type": "integer"},
            "tags": {"type": "array", "items": {"type": "string"}},
        },
        "required": ["flag", "count", "tags"],
        "additionalProperties": False,
    }
    assert structured_response("Unknown", messages, strict) == {
        "flag": False,
        "count": 0,
        "tags": [],
    }
    assert structured_response("Unknown", messages, None) == {}


def test_hashing_embedding_similarity_ordering() -> None:
    def cos(a: str, b: str) -> float:
        va, vb = hashing_embedding(a, 1024), hashing_embedding(b, 1024)
        return sum(x * y for x, y in zip(va, vb, strict=True))

    fact = "User needs to book the dentist before Friday"
    assert cos("dentist", "User needs to book the dentist") > 0.6  # Graphiti's cosine cut-off
    assert cos("dentist", fact) > 0.6
    assert cos("book the dentist", fact) > cos("dentist", fact) > cos("dentist", "User feels tired")
    assert cos("dentists", fact) > 0.5  # plural folding
    assert cos("booking", "book") > 0.2 > cos("cafe", "dentist")  # trigram partial credit
    assert abs(cos("dentist", "User feels tired")) < 0.15
    vector = hashing_embedding(fact, 64)
    assert len(vector) == 64
    assert math.isclose(sum(v * v for v in vector), 1.0)
    assert vector == hashing_embedding(fact, 64)  # deterministic across calls
    assert math.isclose(sum(v * v for v in hashing_embedding("", 8)), 1.0)
    assert lexical_relevance("dentist", fact) > lexical_relevance("dentist", "User is at a cafe")


def test_summarize_transcript_rolls_and_pins_the_name() -> None:
    lines = [
        "user: Hi! My name is Sam",
        "assistant: Hello Sam",
        DENTIST_TURN.split("\n")[0],
        "user: I'm so tired",
        "user: ok",
    ]
    summary = summarize_transcript("User likes tea.", lines, 500)
    assert summary == (
        "User's name is Sam. User likes tea. User needs to book the dentist before Friday. "
        "User is so tired."
    )
    short = summarize_transcript(summary, ["user: I'm at a noisy cafe"], 60)
    assert short.startswith("User's name is Sam.")
    assert short.endswith("User is at a noisy cafe.")
    assert len(short) <= 60
    assert summarize_transcript(None, ["user: hello"], 100) == ""
    assert len(summarize_transcript(None, ["user: " + "word " * 100], 40)) <= 40


@pytest.mark.parametrize(
    ("text", "name"),
    [
        ("My name is Sam", "Sam"),
        ("my name is priya patel", "Priya"),
        ("Hi, I'm Priya Patel!", "Priya Patel"),
        ("just call me Jo", "Jo"),
        ("I'm Exhausted", None),
        ("I'm going home", None),
        ("call me later", None),
        ("I'm at a cafe", None),
    ],
)
def test_detect_user_name(text: str, name: str | None) -> None:
    assert detect_user_name(text) == name


# --------------------------------------------------------------------------------------------
# The stand-in server through the real openai SDK
# --------------------------------------------------------------------------------------------


def sdk(standin: StandinServer, **kwargs: Any) -> openai.AsyncOpenAI:
    return openai.AsyncOpenAI(api_key="test", base_url=standin.base_url, **kwargs)


async def test_embeddings_float_base64_and_dimensions(standin_fresh: StandinServer) -> None:
    client = sdk(standin_fresh)
    try:
        default = await client.embeddings.create(input=["dentist", "cafe"], model="e")  # base64
        floats = await client.embeddings.create(input="dentist", model="e", encoding_format="float")
        small = await client.embeddings.create(input="dentist", model="e", dimensions=32)
    finally:
        await client.close()
    expected = hashing_embedding("dentist", STANDIN_EMBEDDING_DIM)
    assert len(default.data) == 2
    # base64 carries float32, so compare at float32 precision
    assert default.data[0].embedding == pytest.approx(expected, abs=1e-6)
    assert floats.data[0].embedding == pytest.approx(expected, abs=1e-12)
    assert small.data[0].embedding == pytest.approx(hashing_embedding("dentist", 32), abs=1e-6)
    assert [r.kind for r in standin_fresh.records] == ["embeddings"] * 3
    assert standin_fresh.calls == {"/v1/embeddings": 3}

    # The wire format of base64 itself: little-endian float32.
    async with httpx.AsyncClient() as raw:
        response = await raw.post(
            f"{standin_fresh.base_url}/embeddings",
            json={"input": "dentist", "model": "e", "encoding_format": "base64", "dimensions": 4},
        )
    packed = base64.b64decode(response.json()["data"][0]["embedding"])
    assert list(struct.unpack("<4f", packed)) == pytest.approx(hashing_embedding("dentist", 4))


async def test_models_plain_text_and_json_object_without_schema(
    standin_fresh: StandinServer,
) -> None:
    client = sdk(standin_fresh)
    try:
        models = await client.models.list()
        plain = await client.chat.completions.create(
            model="m", messages=[{"role": "user", "content": "I need to call Ashley"}]
        )
        as_json = await client.chat.completions.create(
            model="m",
            messages=[{"role": "user", "content": "anything"}],
            response_format={"type": "json_object"},
        )
    finally:
        await client.close()
    assert "standin-large" in [m.id for m in models.data]
    assert plain.choices[0].message.content == "User needs to call Ashley."
    assert plain.usage is not None
    assert plain.usage.prompt_tokens > 0
    assert json.loads(as_json.choices[0].message.content or "") == {}
    assert [r.kind for r in standin_fresh.records] == ["models", "text", "json_object"]


async def test_reranker_form_answers_with_logprobs(standin_fresh: StandinServer) -> None:
    from graphiti_core.cross_encoder.openai_reranker_client import OpenAIRerankerClient

    reranker = OpenAIRerankerClient(
        config=LLMConfig(api_key="test", base_url=standin_fresh.base_url, model="rerank")
    )
    try:
        ranked = await reranker.rank(
            "dentist", ["User is at a cafe", "User needs to book the dentist"]
        )
    finally:
        await reranker.client.close()
    assert ranked[0][0] == "User needs to book the dentist"
    assert ranked[0][1] == pytest.approx(lexical_relevance("dentist", ranked[0][0]), abs=1e-6)
    assert 0.0 <= ranked[1][1] < 0.5
    assert [r.kind for r in standin_fresh.records] == ["rerank", "rerank"]


async def test_latency_does_not_block_the_event_loop(standin_fresh: StandinServer) -> None:
    standin_fresh.set_latency(0.3)
    client = sdk(standin_fresh)
    try:
        started = time.monotonic()
        await asyncio.gather(*(client.models.list() for _ in range(5)))
        elapsed = time.monotonic() - started
    finally:
        await client.close()
    assert 0.3 <= elapsed < 1.0  # five overlapping sleeps, not 1.5 s in series
    assert standin_fresh.calls == {"/v1/models": 5}


async def test_injected_429_with_retry_after_is_retried_by_the_sdk(
    standin_fresh: StandinServer,
) -> None:
    standin_fresh.inject_failures(429, count=2, retry_after=0.2, paths="embeddings")
    client = sdk(standin_fresh, max_retries=2)
    try:
        started = time.monotonic()
        result = await client.embeddings.create(input="dentist", model="e")
        elapsed = time.monotonic() - started
    finally:
        await client.close()
    assert len(result.data[0].embedding) == STANDIN_EMBEDDING_DIM
    assert elapsed >= 0.4  # two Retry-After waits were honoured
    records = standin_fresh.records
    assert [(r.status, r.retry_count) for r in records] == [(429, 0), (429, 1), (200, 2)]
    # The filter kept the other endpoints healthy.
    standin_fresh.inject_failures(503, count=1, paths=["/v1/responses"])
    client = sdk(standin_fresh, max_retries=0)
    try:
        await client.embeddings.create(input="x", model="e")
    finally:
        await client.close()
    assert standin_fresh.records[-1].status == 200


async def test_graphiti_llm_client_recovers_from_a_rate_limit(standin_fresh: StandinServer) -> None:
    llm = OpenAIClient(
        config=LLMConfig(api_key="test", base_url=standin_fresh.base_url, model=LARGE_MODEL)
    )
    standin_fresh.inject_failures(429, count=1, retry_after=0.05, paths="responses")
    messages = render("extract_nodes.extract_message", extraction_context(DENTIST_TURN))
    try:
        result = await llm.generate_response(
            [Message(**m) for m in messages], response_model=ExtractedEntities
        )
    finally:
        await llm.client.close()
    assert [e["name"] for e in result["extracted_entities"]] == ["User", "Book the dentist"]
    assert [r.status for r in standin_fresh.records] == [429, 200]
    usage = llm.token_tracker.get_total_usage()
    assert usage.input_tokens == standin_fresh.records[-1].input_tokens > 0


async def test_persistent_500_surfaces_as_an_error(standin_fresh: StandinServer) -> None:
    standin_fresh.fail_forever(500, retry_after=0.05)
    llm = OpenAIClient(
        config=LLMConfig(api_key="test", base_url=standin_fresh.base_url, model=LARGE_MODEL)
    )
    messages = render("extract_nodes.extract_message", extraction_context(DENTIST_TURN))
    try:
        with pytest.raises(openai.InternalServerError):
            await llm.generate_response(
                [Message(**m) for m in messages], response_model=ExtractedEntities
            )
    finally:
        await llm.client.close()
    # One attempt plus the SDK's two retries; Graphiti leaves 5xx retries to the SDK.
    assert standin_fresh.calls == {"/v1/responses": 3}
    assert {r.kind for r in standin_fresh.records} == {"failure"}
    standin_fresh.clear_failures()
    client = sdk(standin_fresh)
    try:
        await client.models.list()
    finally:
        await client.close()
    assert standin_fresh.records[-1].status == 200


# --------------------------------------------------------------------------------------------
# (a)/(b) Graphiti end to end on the real Neo4j
# --------------------------------------------------------------------------------------------


async def add_dentist_episode(handle: GraphitiHandle, body: str = DENTIST_TURN) -> None:
    await handle.graphiti.add_episode(
        name="turn",
        episode_body=body,
        source_description="chat",
        reference_time=datetime.now(UTC),
        source=EpisodeType.message,
        group_id=handle.group_id,
        entity_types=NARRATIVE_ENTITY_TYPES,
        custom_extraction_instructions=NARRATIVE_EXTRACTION_INSTRUCTIONS,
    )


async def tensions(handle: GraphitiHandle) -> list[tuple[str, str | None]]:
    result = await handle.graphiti.driver.execute_query(
        "MATCH (n:Entity:Tension {group_id: $group_id}) RETURN n.name AS name, n.status AS status",
        group_id=handle.group_id,
    )
    return [(r["name"], r["status"]) for r in result.records]


@pytest.mark.graph
async def test_graphiti_over_the_responses_api(
    standin_fresh: StandinServer, make_graphiti: MakeGraphiti
) -> None:
    handle = await make_graphiti("responses")
    standin_fresh.reset_log()
    await add_dentist_episode(handle)

    results = await handle.graphiti.search_(
        "dentist", config=EDGE_HYBRID_SEARCH_RRF.model_copy(deep=True), group_ids=[handle.group_id]
    )
    facts = [edge.fact for edge in results.edges]
    assert "User needs to book the dentist before Friday" in facts
    assert await tensions(handle) == [("Book the dentist", "unresolved")]

    calls = standin_fresh.calls
    assert calls.get("/v1/responses", 0) >= 2
    assert calls.get("/v1/embeddings", 0) >= 1
    assert "/v1/chat/completions" not in calls
    schemas = standin_fresh.schema_calls
    assert {"ExtractedEntities", "ExtractedEdges", "Tension"} <= set(schemas)
    models = {r.schema_name: r.model for r in standin_fresh.records if r.schema_name}
    assert models["ExtractedEntities"] == LARGE_MODEL
    assert models["Tension"] == SMALL_MODEL  # attribute extraction is a "small" prompt
    # Graphiti's own token accounting matches what the stand-in reported.
    usage = handle.llm_client.token_tracker.get_total_usage()
    served = [r for r in standin_fresh.records if r.path == "/v1/responses"]
    assert usage.input_tokens == sum(r.input_tokens for r in served)
    assert usage.output_tokens == sum(r.output_tokens for r in served)

    # The cross-encoder recipe goes through the reranker's logprob form.
    reranked = await handle.graphiti.search_(
        "book the dentist",
        config=EDGE_HYBRID_SEARCH_CROSS_ENCODER.model_copy(deep=True),
        group_ids=[handle.group_id],
    )
    assert reranked.edges
    assert "dentist" in reranked.edges[0].fact
    assert all(0.0 <= s <= 1.0 for s in reranked.edge_reranker_scores)
    assert any(r.kind == "rerank" for r in standin_fresh.records)


@pytest.mark.graph
async def test_a_later_episode_resolves_the_tension(
    standin_fresh: StandinServer, make_graphiti: MakeGraphiti
) -> None:
    handle = await make_graphiti("responses")
    await add_dentist_episode(handle)
    await add_dentist_episode(handle, "user: I finally booked the dentist!\nassistant: Nice")
    assert await tensions(handle) == [("Book the dentist", "resolved")]
    results = await handle.graphiti.search_(
        "dentist",
        config=COMBINED_HYBRID_SEARCH_RRF.model_copy(deep=True),
        group_ids=[handle.group_id],
    )
    facts = {edge.fact: edge for edge in results.edges}
    assert "User booked the dentist" in facts
    assert facts["User needs to book the dentist before Friday"].invalid_at is not None


@pytest.mark.graph
@pytest.mark.parametrize("mode", ["json_schema", "json_object"])
async def test_graphiti_over_chat_completions(
    standin_fresh: StandinServer, make_graphiti: MakeGraphiti, mode: str
) -> None:
    handle = await make_graphiti("chat", structured_output_mode=mode)
    standin_fresh.reset_log()
    await add_dentist_episode(handle)

    results = await handle.graphiti.search_(
        "dentist",
        config=COMBINED_HYBRID_SEARCH_RRF.model_copy(deep=True),
        group_ids=[handle.group_id],
    )
    assert any("dentist" in edge.fact for edge in results.edges)
    assert await tensions(handle) == [("Book the dentist", "unresolved")]
    calls = standin_fresh.calls
    assert calls.get("/v1/chat/completions", 0) >= 2
    assert calls.get("/v1/embeddings", 0) >= 1
    assert "/v1/responses" not in calls
    kinds = {r.kind for r in standin_fresh.records if r.path == "/v1/chat/completions"}
    assert kinds == {"structured" if mode == "json_schema" else "json_object"}
    assert {"ExtractedEntities", "ExtractedEdges", "Tension"} <= set(standin_fresh.schema_calls)
