"""/memory/query's graph read answers what Graphiti's own search_ answers, on a plain driver.

On Neo4j 2026.01+ GraphMemory.search asks one statement (service/graph/hybrid.py) with
validity inside each search; the reference is graphiti_core's search_ with the same recipe and
limit and a SearchFilters on the three validity dates. On Neo4j 5.x it runs Graphiti's search_
itself over-fetching 3x and filters afterwards; the reference is the same, done by hand. Either
way the facts (text, order, relevance) and the entities (order) must be the reference's.
Real Neo4j, facts written through Graphiti's bulk save with the hashing embedder.
"""

import random
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import pytest
from graphiti_core.driver.neo4j_driver import Neo4jDriver
from graphiti_core.edges import EntityEdge
from graphiti_core.nodes import EntityNode
from graphiti_core.search.search_config import SearchConfig
from graphiti_core.search.search_config_recipes import (
    EDGE_HYBRID_SEARCH_RRF,
    NODE_HYBRID_SEARCH_RRF,
)
from graphiti_core.search.search_filters import ComparisonOperator, DateFilter, SearchFilters
from graphiti_core.utils.bulk_utils import add_nodes_and_edges_bulk

from service.graph import GraphMemory, HashingEmbedder
from service.graph.hybrid import HybridQuery
from service.graph.keywords import keywords
from service.graph.vector_search import VectorSearch, supports_filtered_vector_search
from service.settings import Settings
from tests.bench.seed_graph import AGREEMENT_QUERIES, PEOPLE, THINGS, fact_text
from tests.support.graph_probe import neo4j_version
from tests.support.plain_graphiti import plain_graphiti

pytestmark = pytest.mark.graph

DIM = 256  # every test group's dimension (tests/support/api.py)
LIMIT = 10
_FLAVOUR = [
    "quietly",
    "eagerly",
    "reluctantly",
    "happily",
    "finally",
    "again",
    "twice",
    "early",
    "late",
    "maybe",
    "surely",
    "apparently",
    "sadly",
    "luckily",
    "oddly",
    "honestly",
    "briefly",
    "gladly",
    "nervously",
    "calmly",
]
REFERENCE = datetime(2026, 6, 1, tzinfo=UTC)
QUERIES = [*AGREEMENT_QUERIES[::5], "dentist", "what did Priya plan", "Lisbon flight"]


def _recipe(limit: int) -> SearchConfig:
    edge, node = EDGE_HYBRID_SEARCH_RRF.edge_config, NODE_HYBRID_SEARCH_RRF.node_config
    return SearchConfig(
        edge_config=edge.model_copy(deep=True) if edge else None,
        node_config=node.model_copy(deep=True) if node else None,
        limit=limit,
    )


def _valid_filters(moment: datetime) -> SearchFilters:
    def ended() -> list[list[DateFilter]]:
        return [
            [DateFilter(comparison_operator=ComparisonOperator.is_null)],
            [DateFilter(date=moment, comparison_operator=ComparisonOperator.greater_than)],
        ]

    return SearchFilters(
        valid_at=[
            [DateFilter(date=moment, comparison_operator=ComparisonOperator.less_than_equal)],
            [DateFilter(comparison_operator=ComparisonOperator.is_null)],
        ],
        invalid_at=ended(),
        expired_at=ended(),
    )


def _valid(edge: EntityEdge, moment: datetime) -> bool:
    if edge.valid_at is not None and edge.valid_at > moment:
        return False
    return all(end is None or end > moment for end in (edge.invalid_at, edge.expired_at))


async def _write_group(driver: Neo4jDriver, group: str, facts: int) -> None:
    """Facts of every validity: most valid at REFERENCE, some not begun yet, some ended
    (invalidated or expired) before it, some ending after it."""
    rng = random.Random(facts)
    embedder = HashingEmbedder(DIM)
    nodes = [
        EntityNode(name=name, group_id=group, labels=["Entity"], summary=f"{name}, mentioned")
        for name in PEOPLE + THINGS
    ]
    edges = []
    for i in range(facts):
        person, thing, text = fact_text(rng, i)
        # Words of their own, so that no two facts score exactly alike: among equal scores the
        # vector index and the exact scan may order differently, which fusion would carry on.
        text += " " + " ".join(rng.sample(_FLAVOUR, rng.randint(1, 4)))
        day = REFERENCE - timedelta(days=rng.randint(-30, 300))
        end = REFERENCE + timedelta(days=rng.randint(-60, 60))
        edges.append(
            EntityEdge(
                group_id=group,
                source_node_uuid=nodes[PEOPLE.index(person)].uuid,
                target_node_uuid=nodes[len(PEOPLE) + THINGS.index(thing)].uuid,
                name="MENTIONED",
                fact=text,
                episodes=[],
                created_at=day,
                valid_at=day if i % 9 else None,
                invalid_at=end if i % 4 == 0 else None,
                expired_at=end if i % 7 == 0 else None,
            )
        )
    for node, vector in zip(
        nodes, await embedder.create_batch([n.name for n in nodes]), strict=True
    ):
        node.name_embedding = vector
    for edge, vector in zip(
        edges, await embedder.create_batch([e.fact for e in edges]), strict=True
    ):
        edge.fact_embedding = vector
    await add_nodes_and_edges_bulk(driver, [], [], nodes, edges, embedder)


@pytest.fixture
async def group(graph_uri: str) -> AsyncIterator[str]:
    name = f"hy_{uuid.uuid4().hex[:16]}"
    driver = Neo4jDriver(graph_uri, "neo4j", "", database="neo4j")
    if driver._init_task is not None:  # its index creation, scheduled in this running loop
        await driver._init_task
    await _write_group(driver, name, 300)
    yield name
    await driver.execute_query("MATCH (n {group_id: $g}) DETACH DELETE n", params={"g": name})
    await driver.close()


async def _server_filters(uri: str) -> bool:
    return supports_filtered_vector_search(await neo4j_version(uri))


async def test_memory_search_returns_graphitis_own_answer(graph_uri: str, group: str) -> None:
    uri = graph_uri
    filtering = await _server_filters(uri)
    memory = await GraphMemory.create(
        Settings.from_env(
            {
                "NEO4J_URI": uri,
                "LLM_PROVIDER": "offline",
                "EMBEDDING_DIM": str(DIM),
                "QUERY_PASSAGES": "off",
            }
        )
    )
    plain = await plain_graphiti(uri, DIM)
    embedder = HashingEmbedder(DIM)
    compared = invalid_seen = 0
    try:
        await memory.prepare()
        for query in QUERIES:
            got = await memory.search(
                group_id=group, query=query, limit=LIMIT, reference_time=REFERENCE
            )
            # Synapse searches the query's content words, with the whole query's embedding.
            words, vector = keywords(query), await embedder.create([query])
            if filtering:
                want = await plain.search_(
                    words,
                    config=_recipe(LIMIT),
                    group_ids=[group],
                    query_vector=vector,
                    search_filter=_valid_filters(REFERENCE),
                )
                facts = list(zip(want.edges, want.edge_reranker_scores, strict=True))
            else:
                want = await plain.search_(
                    words, config=_recipe(3 * LIMIT), group_ids=[group], query_vector=vector
                )
                everything = list(zip(want.edges, want.edge_reranker_scores, strict=True))
                invalid_seen += sum(not _valid(edge, REFERENCE) for edge, _ in everything)
                facts = [(e, s) for e, s in everything if _valid(e, REFERENCE)][:LIMIT]
            assert [(hit.text, hit.relevance) for hit in got.facts] == [
                (edge.fact, min(1.0, score / 2)) for edge, score in facts
            ], query
            assert [hit.uuid for hit in got.entities] == [n.uuid for n in want.nodes][:LIMIT]
            assert all(hit.source == "graphiti" for hit in got.facts)
            compared += bool(got.facts)
    finally:
        await plain.close()
        await memory.close()
    # The comparison had something to compare, including facts the validity test removes.
    assert compared >= len(QUERIES) - 2
    if filtering:
        assert memory.vector_search_stats.hybrid == len(QUERIES)
    else:
        assert invalid_seen > 0


async def test_a_group_asked_without_the_filter_gets_the_same_answer(
    graph_uri: str, group: str
) -> None:
    """A group holding most of an index is searched in it without the group filter, for
    proportionally more neighbours (vector_search.UNFILTERED_SHARE). Forced here for any
    share: the answer must still be Graphiti's own, and the index must have been asked that
    way. On 5.x the one statement, and so this path, is not offered at all."""
    driver = Neo4jDriver(graph_uri, "neo4j", "", database="neo4j")
    if driver._init_task is not None:
        await driver._init_task
    vectors = VectorSearch.install(
        driver, dimensions=DIM, max_candidates=1_000_000, unfiltered_share=0.0
    )
    await vectors.ensure_indexes()
    hybrid = HybridQuery(driver, vectors)
    embedder = HashingEmbedder(DIM)
    plain = await plain_graphiti(graph_uri, DIM)
    try:
        if not await _server_filters(graph_uri):
            assert not hybrid.available()
            return
        await vectors.count_shares(group)
        for query in QUERIES:
            words, vector = keywords(query), await embedder.create([query])
            got = await hybrid.search(
                group_id=group,
                query=words,
                vector=vector,
                limit=LIMIT,
                reference_time=REFERENCE,
                with_passages=False,
            )
            want = await plain.search_(
                words,
                config=_recipe(LIMIT),
                group_ids=[group],
                query_vector=vector,
                search_filter=_valid_filters(REFERENCE),
            )
            assert got is not None
            assert [(e.fact, s) for e, s in got.facts] == [
                (e.fact, s) for e, s in zip(want.edges, want.edge_reranker_scores, strict=True)
            ], query
            assert [n.uuid for n, _ in got.entities] == [n.uuid for n in want.nodes][:LIMIT]
        assert vectors.stats.wide == 2 * len(QUERIES)
        # Mostly answered that way, not by the filtered search a short answer falls back to
        # (the group's neighbours among the wide ask vary with the rest of the test database).
        assert vectors.stats.narrowed < vectors.stats.wide / 2, vectors.stats
    finally:
        await plain.close()
        await vectors.close()
        await driver.close()
