"""Seed one user's Graphiti group with N facts through Graphiti's own bulk save
(`add_nodes_and_edges_bulk`: EntityNode and EntityEdge with embeddings), using the offline
hashing embedder (service.graph.HashingEmbedder) instead of LLM extraction; and with the
episodes those facts would come from: one Episodic node per TURNS_PER_EPISODE facts, its content
one turn per fact, and a SynapsePassage per turn (service/graph/passages.py), so that
/memory/query's passage search has as many turns to search as there are facts.

Facts are synthetic but lexical, so both legs of the hybrid search have work to do: a person
does something with an object at some time ("Priya booked the dentist appointment on Friday"),
over a vocabulary small enough that common words match thousands of facts at 100k. Entities
grow with the facts (one per five facts), as they do in a real graph.
"""

import random
from datetime import UTC, datetime, timedelta

from graphiti_core.driver.neo4j_driver import Neo4jDriver
from graphiti_core.edges import EntityEdge
from graphiti_core.nodes import EntityNode
from graphiti_core.utils.bulk_utils import add_nodes_and_edges_bulk

from service.graph import HashingEmbedder

PEOPLE = [
    "Priya", "Mukesh", "Ana", "Tom", "Lena", "Omar", "Sofia", "Kenji", "Maya", "Lucas",
    "Grace", "Ivan", "Chloe", "Diego", "Hana", "Noah", "Zara", "Felix", "Amara", "Leo",
]  # fmt: skip
VERBS = [
    "booked", "cancelled", "planned", "forgot", "finished", "started", "postponed",
    "asked about", "worried about", "paid for", "enjoyed", "complained about",
]  # fmt: skip
THINGS = [
    "the dentist appointment", "a flight to Lisbon", "the flaky tests", "the quarterly report",
    "a birthday dinner", "the gym membership", "the car repair", "a piano lesson",
    "the rent payment", "a hiking trip", "the job interview", "the kitchen renovation",
    "a vet visit for the cat", "the tax return", "a concert ticket", "the team offsite",
    "a doctor checkup", "the garden fence", "a language course", "the wedding gift",
    "the laptop upgrade", "a school meeting", "the insurance claim", "a yoga class",
    "the passport renewal",
]  # fmt: skip
WHEN = [
    "on Monday", "on Friday", "tomorrow", "next week", "this weekend", "last month",
    "in the morning", "after work", "before the holidays", "tonight",
]  # fmt: skip

QUERIES = [
    "dentist appointment",
    "flight to Lisbon",
    "what did Priya plan for the weekend",
    "tax return",
    "flaky tests at work",
    "birthday dinner with friends",
    "job interview next week",
    "car repair cost",
]

# Many more queries than QUERIES, for how often the similarity search's top 10 is the exact
# scan's: a person and a thing, a verb and a thing.
AGREEMENT_QUERIES = [f"{p} {t}" for p, t in zip(PEOPLE * 3, THINGS * 3, strict=False)][:50] + [
    f"{v} {t}" for v, t in zip(VERBS * 5, reversed(THINGS * 3), strict=False)
][:50]

BATCH = 2_000
TURNS_PER_EPISODE = 10


def fact_text(rng: random.Random, index: int) -> tuple[str, str, str]:
    person = rng.choice(PEOPLE)
    verb = rng.choice(VERBS)
    thing = rng.choice(THINGS)
    when = rng.choice(WHEN)
    return person, thing, f"{person} {verb} {thing} {when} (note {index})"


def turn_text(rng: random.Random, index: int) -> str:
    # Numbered like the facts: from this small vocabulary, about half the turns would otherwise
    # repeat another word for word (50,544 distinct of 113,150 at 1k + 10k + 100k), and an HNSW
    # index full of identical vectors searches slower than one of real, distinct turns.
    person = rng.choice(PEOPLE)
    what = f"{rng.choice(VERBS)} {rng.choice(THINGS)} {rng.choice(WHEN)}"
    return f"user: {person} {what}, honestly{TURN_MARK}{index})"


TURN_MARK = " (turn "


_EPISODES = (
    "UNWIND $episodes AS ep "
    "CREATE (:Episodic {uuid: ep.uuid, group_id: $group, name: ep.uuid, content: ep.content, "
    "source: 'message', source_description: 'bench', entity_edges: [], "
    "created_at: datetime(ep.valid_at), valid_at: datetime(ep.valid_at)})"
)
_PASSAGES = (
    "UNWIND $passages AS p "
    "CREATE (:SynapsePassage {group_id: $group, episode_uuid: p.episode_uuid, line: p.line, "
    "valid_at: datetime(p.valid_at), embedding: p.embedding})"
)


async def seed_passages(driver: Neo4jDriver, group: str, turns: int, dim: int) -> None:
    """`turns` turns in episodes of TURNS_PER_EPISODE, each turn a SynapsePassage."""
    embedder = HashingEmbedder(dim)
    rng = random.Random(-turns)
    now = datetime.now(UTC)
    for start in range(0, turns, BATCH):
        episodes: list[dict[str, str]] = []
        passages: list[dict[str, object]] = []
        for first in range(start, min(turns, start + BATCH), TURNS_PER_EPISODE):
            lines = [
                turn_text(rng, first + n) for n in range(min(TURNS_PER_EPISODE, turns - first))
            ]
            uuid = f"bench-episode-{group}-{first}"
            valid_at = (now - timedelta(days=1 + first % 300)).isoformat()
            episodes.append({"uuid": uuid, "content": "\n".join(lines), "valid_at": valid_at})
            vectors = await embedder.create_batch(lines)
            passages += [
                {"episode_uuid": uuid, "line": n, "valid_at": valid_at, "embedding": vector}
                for n, vector in enumerate(vectors)
            ]
        await driver.execute_query(_EPISODES, params={"group": group, "episodes": episodes})
        await driver.execute_query(_PASSAGES, params={"group": group, "passages": passages})


async def count_facts(driver: Neo4jDriver, group: str) -> int:
    result = await driver.execute_query(
        "MATCH (:Entity)-[e:RELATES_TO {group_id: $group}]->(:Entity) RETURN count(e) AS n",
        params={"group": group},
    )
    n: int = result.records[0]["n"]
    return n


async def count_passages(driver: Neo4jDriver, group: str) -> int:
    result = await driver.execute_query(
        "MATCH (p:SynapsePassage {group_id: $group}) RETURN count(p) AS n", params={"group": group}
    )
    n: int = result.records[0]["n"]
    return n


async def passages_current(driver: Neo4jDriver, group: str) -> bool:
    """The group's turns are numbered (seeded after turn_text numbered them)."""
    result = await driver.execute_query(
        "MATCH (e:Episodic {group_id: $group}) RETURN e.content AS content LIMIT 1",
        params={"group": group},
    )
    return bool(result.records) and TURN_MARK in (result.records[0]["content"] or "")


async def drop_passages(driver: Neo4jDriver, group: str) -> None:
    for label in ("SynapsePassage", "Episodic"):
        while True:
            result = await driver.execute_query(
                f"MATCH (n:{label} {{group_id: $group}}) WITH n LIMIT 5000 DETACH DELETE n "
                "RETURN count(*) AS n",
                params={"group": group},
            )
            if result.records[0]["n"] == 0:
                break


async def drop_group(driver: Neo4jDriver, group: str) -> None:
    while True:
        result = await driver.execute_query(
            "MATCH (n {group_id: $group}) WITH n LIMIT 5000 DETACH DELETE n RETURN count(*) AS n",
            params={"group": group},
        )
        if result.records[0]["n"] == 0:
            return


async def seed_facts(driver: Neo4jDriver, group: str, facts: int, dim: int) -> bool:
    """Make the group hold exactly `facts` facts; False when it already did (kept from an
    earlier run on the same bench database)."""
    if await count_facts(driver, group) == facts:
        if await count_passages(driver, group) == facts and await passages_current(driver, group):
            return False
        # Facts kept from an earlier run, turns from before they were numbered: only those.
        await drop_passages(driver, group)
        await seed_passages(driver, group, facts, dim)
        return True
    await drop_group(driver, group)
    embedder = HashingEmbedder(dim)
    rng = random.Random(facts)
    entity_count = max(len(PEOPLE) + len(THINGS), facts // 5)
    now = datetime.now(UTC)
    entities: list[EntityNode] = []
    for i in range(entity_count):
        base = PEOPLE[i] if i < len(PEOPLE) else THINGS[i % len(THINGS)]
        name = base if i < len(PEOPLE) + len(THINGS) else f"{base} #{i}"
        entities.append(
            EntityNode(
                name=name,
                group_id=group,
                labels=["Entity"],
                summary=f"{name}, as mentioned in conversations",
                created_at=now,
            )
        )
    people = entities[: len(PEOPLE)]
    things = entities[len(PEOPLE) :]
    for start in range(0, facts, BATCH):
        # Every entity goes in with the first batch; later batches only add facts between them.
        batch_nodes = entities if start == 0 else []
        edges: list[EntityEdge] = []
        for index in range(start, min(facts, start + BATCH)):
            person, _thing, text = fact_text(rng, index)
            source = people[PEOPLE.index(person)]
            target = rng.choice(things)
            edges.append(
                EntityEdge(
                    group_id=group,
                    source_node_uuid=source.uuid,
                    target_node_uuid=target.uuid,
                    name="MENTIONED",
                    fact=text,
                    episodes=[],
                    created_at=now,
                    valid_at=now - timedelta(days=1 + index % 300),
                )
            )
        vectors = await embedder.create_batch([e.fact for e in edges])
        for edge, vector in zip(edges, vectors, strict=True):
            edge.fact_embedding = vector
        names = await embedder.create_batch([n.name for n in batch_nodes])
        for node, vector in zip(batch_nodes, names, strict=True):
            node.name_embedding = vector
        await add_nodes_and_edges_bulk(driver, [], [], batch_nodes, edges, embedder)
    await seed_passages(driver, group, facts, dim)
    return True
