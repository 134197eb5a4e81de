"""Raw words are never lost: POST /memory/query also returns dated passages of the user's own
turns (source "episode") for what the extractor did not turn into a fact. Real API and janitor
processes, real Redis and Neo4j, the OpenAI-compatible stand-in; plus the pure window and merge
rules."""

from collections.abc import AsyncIterator
from datetime import UTC, datetime

import pytest
from neo4j import AsyncDriver, AsyncGraphDatabase

from contracts import Fact, MemoryQueryRequest, Message, SessionIngestRequest
from service.graph.passages import WINDOW_CHARS, Passage, RankedFact, merge, window
from service.memory.episodes import group_id
from tests.support.builders import at
from tests.support.graph_probe import GraphProbe
from tests.support.services import BackingServices
from tests.support.stack import Stack, StackFactory
from tests.support.waiting import eventually

WEEK = [
    ("user", "let me tell you about my week so far"),
    ("assistant", "sure, go ahead and tell me everything"),
    ("user", "monday was mostly spreadsheets and meetings"),
    ("assistant", "that sounds long"),
    ("user", "the old copper kettle whistles like a steam train every dawn"),
    ("assistant", "ha, that must wake the whole house"),
    ("user", "tuesday was quieter, just emails"),
    ("assistant", "glad it calmed down"),
    ("user", "wednesday we finally cleaned the attic"),
    ("assistant", "well done"),
]


@pytest.fixture
async def neo4j(backing_services: BackingServices) -> AsyncIterator[AsyncDriver]:
    driver = AsyncGraphDatabase.driver(backing_services.neo4j_uri, auth=("neo4j", ""))
    yield driver
    await driver.close()


async def _transcript(
    stack: Stack,
    probe: GraphProbe,
    tenant: str,
    turns: list[tuple[str, str]],
    *,
    user: str = "user-1",
    session: str = "s1",
) -> None:
    messages = [
        Message(role=role, text=text, timestamp=at(f"2026-02-04T18:{n:02d}:00Z"))  # type: ignore[arg-type]
        for n, (role, text) in enumerate(turns)
    ]
    await stack.client.session_ingest(
        SessionIngestRequest(tenant_id=tenant, user_id=user, session_id=session, messages=messages)
    )
    await eventually(
        lambda: probe.processed_episode_count(group_id(tenant, user)),
        lambda n: n >= 1,
        what=f"the episode of {tenant}/{user}",
    )


async def _query(
    stack: Stack,
    tenant: str,
    query: str,
    *,
    user: str = "user-1",
    limit: int = 10,
    reference_time: str | None = None,
) -> list[Fact]:
    answer = await stack.client.memory_query(
        MemoryQueryRequest(
            tenant_id=tenant,
            user_id=user,
            query=query,
            limit=limit,
            reference_time=at(reference_time) if reference_time else None,
        )
    )
    assert answer.metadata.facts == len(answer.facts)
    assert len(answer.facts) <= limit
    assert all(0 <= f.relevance <= 1 for f in answer.facts)
    assert [f.relevance for f in answer.facts] == sorted(
        (f.relevance for f in answer.facts), reverse=True
    )
    assert {f.source for f in answer.facts} <= {"graphiti", "episode"}
    return answer.facts


async def test_a_turn_no_fact_captured_is_found_as_a_dated_window_of_its_neighbours(
    stack_factory: StackFactory, tenant: str, graph_probe: GraphProbe
) -> None:
    stack = await stack_factory()
    await _transcript(stack, graph_probe, tenant, WEEK)
    facts = await graph_probe.facts(group_id(tenant, "user-1"))

    found = await _query(stack, tenant, "copper kettle")
    before = await _query(stack, tenant, "copper kettle", reference_time="2026-01-01T00:00:00Z")

    # The extractor made nothing of the kettle: only the raw words can find it.
    assert not any("kettle" in fact.lower() for fact in facts), facts
    quotes = [f for f in found if f.source == "episode"]
    assert len(quotes) == 1, found
    quote = quotes[0]
    assert quote.relevance == 1.0
    stamp, _, body = quote.text.partition("] ")
    assert stamp == "[2026-02-04 18:00 UTC, Wednesday 4 February 2026"
    # The hit and two turns on each side, in order: not the whole transcript.
    assert body.splitlines() == [f"{role}: {text}" for role, text in WEEK[2:7]]
    assert len(body) <= WINDOW_CHARS
    assert "attic" not in quote.text
    assert "tell me everything" not in quote.text
    # Nothing of it had been said a month before the conversation.
    assert [f for f in before if f.source == "episode"] == []


async def test_passages_never_come_from_another_users_or_tenants_group(
    stack_factory: StackFactory, tenant: str, graph_probe: GraphProbe
) -> None:
    stack = await stack_factory()
    other_tenant = f"{tenant}-other"
    said = {
        (tenant, "user-1"): "the old copper kettle whistles every dawn",
        (tenant, "user-2"): "the old harmonica wheezes every dusk",
        (other_tenant, "user-1"): "the old trombone squeaks every noon",
    }
    for (who, user), text in said.items():
        turns = [("user", "hello there"), ("user", text), ("assistant", "noted")]
        await _transcript(stack, graph_probe, who, turns, user=user)

    for (who, user), text in said.items():
        own = text.split()[2]
        mine = await _query(stack, who, own, user=user)
        assert any(own in f.text for f in mine if f.source == "episode"), (who, user, mine)
        for other in said.values():
            word = other.split()[2]
            if word == own:
                continue
            theirs = await _query(stack, who, f"old {word} every", user=user)
            assert not any(word in f.text for f in theirs), (who, user, word, theirs)


async def test_limit_bounds_facts_and_passages_together(
    stack_factory: StackFactory, tenant: str, graph_probe: GraphProbe
) -> None:
    stack = await stack_factory()
    turns = [("user", "I need to water the garden before Friday")]
    for n in range(1, 16):
        if n % 5 == 0:
            text = ["the garden gnome fell over", "tulips fill the garden", "garden snails"][
                n // 5 - 1
            ]
        else:
            text = f"filler line number {n} about nothing much"
        turns.append(("user" if n % 2 == 0 else "assistant", text))
    await _transcript(stack, graph_probe, tenant, turns)

    sizes = {limit: await _query(stack, tenant, "garden", limit=limit) for limit in (1, 2, 3, 10)}

    assert len(sizes[1]) == 1
    assert len(sizes[2]) == 2
    assert len(sizes[3]) == 3
    everything = sizes[10]
    assert {f.source for f in everything} == {"graphiti", "episode"}
    quotes = [f.text for f in everything if f.source == "episode"]
    assert len(quotes) == 3, everything
    assert all("garden" in q for q in quotes)
    # The turn the fact already says is not repeated as a quote.
    assert not any("water the garden" in q for q in quotes), quotes
    # With two slots, one of each kind: neither can crowd the other out.
    assert {f.source for f in sizes[2]} == {"graphiti", "episode"}


async def test_a_deleted_user_leaves_no_passages(
    stack_factory: StackFactory, tenant: str, graph_probe: GraphProbe, neo4j: AsyncDriver
) -> None:
    stack = await stack_factory()
    await _transcript(stack, graph_probe, tenant, WEEK)
    group = group_id(tenant, "user-1")

    async def passages() -> int:
        records, _, _ = await neo4j.execute_query(
            "MATCH (p:SynapsePassage {group_id: $g}) RETURN count(p) AS n", g=group
        )
        return int(records[0]["n"])

    written = await passages()
    deleted = await stack.http.delete("/users", params={"tenantId": tenant, "userId": "user-1"})

    assert written == len(WEEK)
    assert deleted.status_code == 200
    assert await passages() == 0


async def test_query_passages_off_answers_from_facts_only_and_still_writes_passages(
    stack_factory: StackFactory, tenant: str, graph_probe: GraphProbe, neo4j: AsyncDriver
) -> None:
    stack = await stack_factory(QUERY_PASSAGES="off")
    await _transcript(stack, graph_probe, tenant, WEEK)
    records, _, _ = await neo4j.execute_query(
        "MATCH (p:SynapsePassage {group_id: $g}) RETURN count(p) AS n",
        g=group_id(tenant, "user-1"),
    )

    found = await _query(stack, tenant, "copper kettle")

    assert [f for f in found if f.source == "episode"] == []
    # Written all the same, so an API with the default finds them at once.
    assert records[0]["n"] == len(WEEK)


# --- the pure rules -------------------------------------------------------------------------


def test_the_window_grows_nearest_first_and_stops_within_the_budget() -> None:
    lines = [f"user: line {n} " + "x" * 150 for n in range(9)]

    first, last, text = window(lines, 4, {"line"})

    # 170 characters a line: the hit and one on each side fit, a fourth would not.
    assert (first, last) == (3, 5)
    assert text.splitlines() == lines[3:6]
    assert len(text) <= WINDOW_CHARS
    assert window(["user: only"], 0, set()) == (0, 0, "user: only")


def test_a_turn_longer_than_the_window_is_cut_around_the_query() -> None:
    line = "user: " + "blah " * 200 + "the kettle whistles " + "blah " * 200

    first, last, text = window(["assistant: before", line, "assistant: after"], 1, {"kettle"})

    assert (first, last) == (1, 1)
    assert "kettle" in text
    assert len(text) <= WINDOW_CHARS
    assert text.startswith("…")
    assert text.endswith("…")


def _passage(relevance: float, hit: str, episode: str = "e1", line: int = 0) -> Passage:
    return Passage(
        episode, line, hit, f"[2026-02-04 18:00 UTC, Wednesday 4 February 2026] {hit}", relevance
    )


def test_merge_shares_the_limit_orders_by_relevance_and_drops_what_a_fact_says() -> None:
    facts = [
        RankedFact("User needs to book the dentist", 1.0, ("e1",)),
        RankedFact("User likes tea", 0.5, ("e2",)),
        RankedFact("User plays chess", 0.3, ("e3",)),
    ]
    passages = [
        _passage(1.0, "user: I need to book the dentist", line=0),
        _passage(0.75, "user: the kettle whistles", line=5),
        _passage(0.4, "user: snails in the garden", line=9),
    ]

    merged = merge(facts, passages, 4)
    one = merge(facts, passages, 1)
    no_facts = merge([], passages, 2)

    assert [type(item).__name__ for item in merged] == [
        "RankedFact",
        "Passage",
        "RankedFact",
        "Passage",
    ]
    assert [item.relevance for item in merged] == [1.0, 0.75, 0.5, 0.4]
    assert not any(isinstance(i, Passage) and "dentist" in i.text for i in merged)
    assert one == [facts[0]]
    assert no_facts == passages[:2]
    assert merge(facts, [], 2) == facts[:2]


def test_the_time_prefix_is_utc() -> None:
    from service.graph.passages import _stamp

    assert (
        _stamp(datetime(2026, 2, 4, 18, 0, tzinfo=UTC))
        == "[2026-02-04 18:00 UTC, Wednesday 4 February 2026] "
    )
