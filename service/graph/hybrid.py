"""/memory/query's whole graph read in one round of three concurrent statements, on Neo4j
2026.01+.

Graphiti's hybrid recipe (EDGE_HYBRID_SEARCH_RRF, NODE_HYBRID_SEARCH_RRF) asks four
questions per query, each a round trip returning 2 x limit whole rows: facts and entities,
each by full text and by cosine similarity; reciprocal rank fusion then keeps `limit` of each.
The passage search (service/graph/passages.py) adds two more and a third after them. Here
there is one statement per kind (facts, entities, passages), sent together: in each,
subqueries collect the candidates as uuids, the fusion runs inside Neo4j, and only the `limit`
facts or entities that survive it are read as rows. Three rather than one because Neo4j runs
a statement on one thread: one statement measured 34 ms p50 at 10k facts on two cores, its
parts run side by side less (tests/bench/RESULTS.md).

What it returns is what Graphiti's own `search_` returns for the same recipe and `limit` with
a validity filter at the reference time (tests/test_hybrid_search.py compares the two on a
plain driver), with these choices:
- validity is a WHERE inside each fact search, before its LIMIT, rather than a 3x over-fetch
  filtered afterwards: a fact is valid at `reference_time` when it had begun (valid_at unset or
  not after it) and had not ended: neither invalid_at nor expired_at set and not after it;
- the full-text searches are Graphiti's: its Lucene query (group filter and escaping
  included), the index's `limit`, then the filters, as graphiti_core does;
- the similarity searches use the filtered vector indexes (service/graph/vector_search.py),
  asking more neighbours than kept (the HNSW search is approximate, and facts not valid at
  the reference time are dropped after it), then keeping the best 2 x limit above the
  threshold; a group holding most of an index asks it without the filter for proportionally
  more neighbours and keeps its own (vector_search.UNFILTERED_SHARE says why);
- fusion is graphiti_core's `rrf` (1 / rank per list, summed; ties in order of first
  appearance: full-text list first), computed in Cypher; two lists give each item at most two
  terms, so the floating-point sums are the same as Python's.
"""

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from graphiti_core.driver.driver import GraphDriver
from graphiti_core.edges import EntityEdge, get_entity_edge_from_record
from graphiti_core.nodes import EntityNode, get_entity_node_from_record
from graphiti_core.search import search_utils
from neo4j.exceptions import ClientError

from service.graph import passages
from service.graph.vector_search import (
    EDGE_COLUMNS,
    FILTERED_MARGIN,
    NODE_COLUMNS,
    VectorSearch,
    filtered_candidates,
    quoted,
)

# Neighbours asked of a filtered vector index per item kept: the HNSW search is approximate
# (vector_search.FILTERED_MARGIN), and facts not valid at the reference time are dropped after
# it, so facts get room for both.
FILTER_MARGIN = 2 * FILTERED_MARGIN
# Cosine threshold of Graphiti's similarity searches (its recipes' sim_min_score default).
MIN_SCORE = search_utils.DEFAULT_MIN_SCORE


def _as_map(columns: str) -> str:
    """Graphiti's RETURN column list ("expr AS name, ...") as a Cypher map literal, so a
    subquery can collect whole rows."""
    parts: list[str] = []
    depth = 0
    current = ""
    for char in columns:
        if char in "{([":
            depth += 1
        elif char in "})]":
            depth -= 1
        if char == "," and depth == 0:
            parts.append(current)
            current = ""
        else:
            current += char
    parts.append(current)
    entries = []
    for part in parts:
        expression, _, name = part.strip().rpartition(" AS ")
        if not expression or not name.isidentifier():
            raise RuntimeError(f"graphiti_core's return clause changed shape: {part!r}")
        entries.append(f"{name}: {expression}")
    return "{" + ", ".join(entries) + "}"


_VALID = (
    "(e.valid_at IS NULL OR e.valid_at <= $reference_time) "
    "AND (e.invalid_at IS NULL OR e.invalid_at > $reference_time) "
    "AND (e.expired_at IS NULL OR e.expired_at > $reference_time)"
)

_FUSE = (
    "UNWIND range(0, size(lists) - 1) AS which "
    "UNWIND range(0, size(lists[which]) - 1) AS rank "
    "WITH lists[which][rank] AS uuid, 1.0 / (rank + 1) AS part, which * 1000000 + rank AS seen "
    "WITH uuid, sum(part) AS score, min(seen) AS first "
    "ORDER BY score DESC, first ASC LIMIT $limit "
)


@dataclass(frozen=True, slots=True)
class _Statements:
    facts: str
    entities: str
    passages: str


def _nearest(
    match: str,
    var: str,
    index: str,
    *,
    wide: bool,
    asked: str,
    wide_asked: str,
    body: str,
    outputs: str,
    short: str,
) -> str:
    """A subquery finding the group's nearest neighbours in a vector index, then `body` (rows
    of `var` and `score`, ending in a RETURN of `outputs`), plus a `short` column.

    Inside the group (filtered), `short` is false. Without the filter (`wide`: a group holding
    most of the index, vector_search.UNFILTERED_SHARE) the index is asked `$wide_asked`
    neighbours of every group and the group's kept; `short` says they were fewer than the
    filtered search's `$asked` while the index had more to give (the group's share was
    overestimated): the caller then runs the statement filtered."""
    if not wide:
        return (
            f"CALL () {{ {match} SEARCH {var} IN (VECTOR INDEX {index} FOR $vector "
            f"WHERE {var}.group_id = $group_id LIMIT ${asked}) SCORE AS score "
            # Outside the subquery: beside its aggregation the constant would be a grouping
            # key, and an empty search would then return no row at all.
            f"{body} }} WITH *, false AS {short} "
        )
    return (
        f"CALL () {{ {match} SEARCH {var} IN (VECTOR INDEX {index} FOR $vector "
        f"LIMIT ${wide_asked}) SCORE AS score "
        "WITH count(*) AS returned, "
        f"collect(CASE WHEN {var}.group_id = $group_id THEN {{hit: {var}, score: score}} END) "
        "AS mine "
        f"CALL (mine) {{ UNWIND mine AS found WITH found.hit AS {var}, found.score AS score "
        f"{body} }} "
        f"RETURN {outputs}, returned = ${wide_asked} AND size(mine) < ${asked} AS {short} }} "
    )


def _statements(
    fact_index: str, name_index: str, passage_index: str, wide: tuple[bool, bool, bool]
) -> _Statements:
    edge_row = _as_map(EDGE_COLUMNS)
    node_row = _as_map(NODE_COLUMNS)
    facts = (
        "CYPHER 25 "
        # facts by full text (graphiti_core's edge_fulltext_search, plus validity)
        "CALL () { WITH 1 AS go WHERE $lucene <> '' "
        "CALL db.index.fulltext.queryRelationships('edge_name_and_fact', $lucene, "
        "{limit: $per_list}) YIELD relationship AS e, score "
        "WITH e, score, startNode(e) AS n, endNode(e) AS m "
        f"WHERE n:Entity AND m:Entity AND e.group_id = $group_id AND {_VALID} "
        "WITH e, score ORDER BY score DESC LIMIT $per_list "
        "RETURN collect(e.uuid) AS edge_words } "
        # facts by similarity
        + _nearest(
            "MATCH ()-[e:RELATES_TO]->()",
            "e",
            fact_index,
            wide=wide[0],
            asked="asked",
            wide_asked="facts_wide",
            body=(
                "WITH e, score, startNode(e) AS n, endNode(e) AS m "
                f"WHERE n:Entity AND m:Entity AND score > $min_score AND {_VALID} "
                "WITH e, score ORDER BY score DESC LIMIT $per_list "
                "RETURN collect(e.uuid) AS edge_similar"
            ),
            outputs="edge_similar",
            short="short",
        )
        # fusion, then only the kept rows are read
        + "CALL (edge_words, edge_similar) { WITH [edge_words, edge_similar] AS lists "
        + _FUSE
        + "MATCH (n:Entity)-[e:RELATES_TO {uuid: uuid}]->(m:Entity) "
        f"WITH score, first, {edge_row} AS row ORDER BY score DESC, first ASC "
        "RETURN collect({row: row, score: score}) AS facts } "
        "RETURN facts, short"
    )
    entities = (
        "CYPHER 25 "
        # entities by full text (graphiti_core's node_fulltext_search)
        "CALL () { WITH 1 AS go WHERE $lucene <> '' "
        "CALL db.index.fulltext.queryNodes('node_name_and_summary', $lucene, "
        "{limit: $per_list}) YIELD node AS n, score "
        "WITH n, score WHERE n:Entity AND n.group_id = $group_id "
        "WITH n, score ORDER BY score DESC LIMIT $per_list "
        "RETURN collect(n.uuid) AS node_words } "
        # entities by similarity
        + _nearest(
            "MATCH (n:Entity)",
            "n",
            name_index,
            wide=wide[1],
            asked="names_asked",
            wide_asked="names_wide",
            body=(
                "WITH n, score WHERE score > $min_score "
                "WITH n, score ORDER BY score DESC LIMIT $per_list "
                "RETURN collect(n.uuid) AS node_similar"
            ),
            outputs="node_similar",
            short="short",
        )
        + "CALL (node_words, node_similar) { WITH [node_words, node_similar] AS lists "
        + _FUSE
        + "MATCH (n:Entity {uuid: uuid}) "
        f"WITH score, first, {node_row} AS row ORDER BY score DESC, first ASC "
        "RETURN collect({row: row, score: score}) AS entities } "
        "RETURN entities, short"
    )
    passages_ = (
        "CYPHER 25 "
        # passages: episodes by full text, turns by similarity (service/graph/passages.py)
        "CALL () { WITH 1 AS go WHERE $lucene <> '' "
        "CALL db.index.fulltext.queryNodes('episode_content', $lucene, "
        "{limit: $passage_candidates}) YIELD node AS e, score "
        "WITH e, score WHERE e.group_id = $group_id AND e.valid_at <= $reference_time "
        "WITH e, score ORDER BY score DESC LIMIT $passage_candidates "
        "RETURN collect({uuid: e.uuid, content: e.content, valid_at: e.valid_at}) "
        "AS episode_words } "
        + _nearest(
            "MATCH (p:SynapsePassage)",
            "p",
            passage_index,
            wide=wide[2],
            asked="turns_asked",
            wide_asked="turns_wide",
            body=(
                "WITH p, score WHERE score > $min_score "
                "MATCH (e:Episodic {uuid: p.episode_uuid}) "
                "WHERE e.group_id = $group_id AND e.valid_at <= $reference_time "
                "WITH p, e, score ORDER BY score DESC LIMIT $passage_candidates "
                # Each episode's text once, however many of its turns were found.
                "WITH collect({uuid: e.uuid, line: p.line, score: score}) AS turns, "
                "collect(DISTINCT e) AS episodes "
                "RETURN turns AS turns_similar, [e IN episodes | "
                "{uuid: e.uuid, content: e.content, valid_at: e.valid_at}] AS turn_episodes"
            ),
            outputs="turns_similar, turn_episodes",
            short="short",
        )
        + "RETURN episode_words, turns_similar, turn_episodes, short"
    )
    return _Statements(facts, entities, passages_)


@dataclass(frozen=True, slots=True)
class HybridAnswer:
    facts: list[tuple[EntityEdge, float]]  # fused, best first, at most `limit`
    entities: list[tuple[EntityNode, float]]
    passages: list[passages.Passage]


class HybridQuery:
    """Builds the statement once per set of index names; VectorSearch says which indexes are
    usable and filtered, and whether this path applies at all."""

    def __init__(self, driver: GraphDriver, vectors: VectorSearch) -> None:
        self._driver = driver
        self._vectors = vectors
        self._statements: dict[
            tuple[tuple[str, str, str], tuple[bool, bool, bool]], _Statements
        ] = {}

    def _built(self, names: tuple[str, str, str], wide: tuple[bool, bool, bool]) -> _Statements:
        statements = self._statements.get((names, wide))
        if statements is None:
            fact_index, name_index, passage_index = (quoted(name) for name in names)
            statements = _statements(fact_index, name_index, passage_index, wide)
            self._statements[(names, wide)] = statements
        return statements

    def available(self) -> bool:
        return self._vectors.filtered_names() is not None

    async def search(
        self,
        *,
        group_id: str,
        query: str,
        vector: Sequence[float],
        limit: int,
        reference_time: datetime,
        with_passages: bool,
    ) -> HybridAnswer | None:
        """None when the filtered indexes are not (or no longer) all usable: the caller takes
        the per-search path."""
        names = self._vectors.filtered_names()
        if names is None:
            return None
        asked = filtered_candidates(2 * limit, FILTER_MARGIN)
        names_asked = filtered_candidates(2 * limit)
        # Passages are quotes, not compared with any exact answer: no floor, so their search
        # stays cheap (with it, one in-process run at 100k facts and turns measured 53 ms p50
        # for the whole search, against 31-38 ms in runs without it).
        turns_asked = 2 * limit * FILTERED_MARGIN
        wide = self._vectors.unfiltered_asks(group_id, (asked, names_asked, turns_asked))
        params = {
            "group_id": group_id,
            "vector": list(vector),
            "reference_time": reference_time,
            "lucene": search_utils.fulltext_query(query, [group_id], self._driver),
            "per_list": 2 * limit,
            "asked": asked,
            "names_asked": names_asked,
            "turns_asked": turns_asked,
            "facts_wide": wide[0] or 0,
            "names_wide": wide[1] or 0,
            "turns_wide": wide[2] or 0,
            "limit": limit,
            "min_score": MIN_SCORE,
            "passage_candidates": 2 * limit,
        }
        flags = (wide[0] is not None, wide[1] is not None, wide[2] is not None)
        chosen = self._built(names, flags)
        asked_of = [chosen.facts, chosen.entities]
        if with_passages:
            asked_of.append(chosen.passages)
        try:
            # Concurrent: Neo4j runs each statement on one thread, so three of them use the
            # server's cores where one would queue its searches behind each other.
            results = [
                result.records[0]
                for result in await asyncio.gather(
                    *(
                        self._driver.execute_query(statement, params=params, routing_="r")
                        for statement in asked_of
                    )
                )
            ]
            # A search without the group filter that found too few of the group's neighbours
            # (its share was overestimated) is asked again inside the group.
            filtered = self._built(names, (False, False, False))
            again = (filtered.facts, filtered.entities, filtered.passages)
            for position, record in enumerate(results):
                if record["short"]:
                    self._vectors.stats.narrowed += 1
                    redo = await self._driver.execute_query(
                        again[position], params=params, routing_="r"
                    )
                    results[position] = redo.records[0]
        except ClientError as exc:
            # An index dropped or replaced since it was checked: the per-search path answers
            # while VectorSearch looks at the indexes again.
            self._vectors.forget_filtered(f"the one-statement search failed: {exc.code}")
            return None
        self._vectors.stats.wide += sum(flags[: len(asked_of)])
        self._vectors.stats.hybrid += 1
        facts, entities = results[0], results[1]
        found: list[passages.Passage] = []
        if with_passages:
            quotes = results[2]
            found = passages.rank(
                quotes["episode_words"],
                passages.similar_by_episode(quotes["turns_similar"], quotes["turn_episodes"]),
                query=query,
                limit=limit,
            )
        return HybridAnswer(
            facts=[
                (get_entity_edge_from_record(item["row"], self._driver.provider), item["score"])
                for item in facts["facts"]
            ],
            entities=[
                (get_entity_node_from_record(item["row"], self._driver.provider), item["score"])
                for item in entities["entities"]
            ],
            passages=found,
        )
