"""Graphiti's search on Neo4j, with a vector index and without shipping embeddings back.

Installed as the driver's `search_interface`, which graphiti_core consults at the top of every
search function (graphiti_core/search/search_utils.py). It removes two costs from each
/memory/query:

- Graphiti's queries return `properties(e)` / `properties(n)`, embedding included, so the
  driver decodes a vector per hit that Graphiti then throws away. The queries here return the
  same columns with the embedding nulled, and graphiti's own record parsers build the results.
- Graphiti's cosine search scans every fact of the group (`vector.similarity.cosine` on each).
  Here a Neo4j vector index answers first, and the exact scan runs only when the index's answer
  is not provably the group's answer (see `VectorSearch._index_answer`).

Only the shape the service searches with takes this path: exactly one group, no search
filters, no source or target node. Anything else (Graphiti's dedupe searches in add_episode
filter on edge endpoints) runs graphiti_core's own implementation unchanged, on a shallow copy
of the driver whose `search_interface` is None. For Neo4jDriver that copy is safe: it shares the
one neo4j client and connection pool, and its other attributes are the database name and
stateless operation objects; it is never closed, so it never closes the shared client.
"""

import asyncio
import contextlib
import copy
import functools
import logging
import math
import time
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any, cast

from graphiti_core.driver.driver import GraphDriver, GraphProvider
from graphiti_core.driver.search_interface.search_interface import SearchInterface
from graphiti_core.edges import EntityEdge, get_entity_edge_from_record
from graphiti_core.graph_queries import (
    get_nodes_query,
    get_relationships_query,
    get_vector_cosine_func_query,
)
from graphiti_core.models.edges.edge_db_queries import get_entity_edge_return_query
from graphiti_core.models.nodes.node_db_queries import get_entity_node_return_query
from graphiti_core.nodes import EntityNode, get_entity_node_from_record
from graphiti_core.search import search_utils
from graphiti_core.search.search_filters import (
    SearchFilters,
    edge_search_filter_query_constructor,
    node_search_filter_query_constructor,
)
from neo4j.exceptions import ClientError
from pydantic import PrivateAttr

logger = logging.getLogger(__name__)

_NEO4J = GraphProvider.NEO4J

# Never more neighbours than this: past it, asking the index costs about what the exact scan
# costs for a group that rare in it (on the bench machine: 1,200 neighbours of 111k facts take
# ~100 ms; the scan spends ~30 us per fact of the group, mostly reading its embedding).
DEFAULT_MAX_CANDIDATES = 2_000
# An ask is sized to expect this many times `limit` of the group's neighbours.
SIZE_MARGIN = 1.5
# A group's share of the neighbours is remembered this long, for this many groups.
SHARE_MEMORY_SECONDS = 300.0
SHARE_MEMORY_GROUPS = 10_000
# A filtered index (HNSW searched inside the group) is approximate: asked for this many times
# the neighbours kept, its top `limit` is the exact scan's far more often (make bench reports
# how often on its queries).
FILTERED_MARGIN = 2
# ... and never fewer than this many: HNSW's recall rises with the neighbours asked (its
# search breadth follows them), and at 100k facts in one index, 20 neighbours for a top 10
# gave the exact top 10 on 78 % of the bench's queries.
FILTERED_MIN_CANDIDATES = 100


# A group holding at least this share of an index is searched in it without the group filter,
# asking WIDE_MARGIN / share times the neighbours and keeping the group's (service/graph/
# hybrid.py). Lucene answers a filtered search whose filter matches most of a large segment
# by scanning the group's vectors in it when the graph walk finds fewer than its expected
# share: at 100k facts in an index of 111k that was 17 of 200 bench queries taking 41-67 ms
# instead of 5 ms. The unfiltered ask never falls back. At 30 % it asks 10x the neighbours
# (1,000 for a top 10's 100): on the bench machine 300-600 took ~19 ms p95, 1,200-2,000 34-38.
UNFILTERED_SHARE = 0.3
# Such an unfiltered ask expects this many times the neighbours kept to be the group's: HNSW's
# recall grows with the neighbours asked. On the bench's 100k group (90 % of its index, top 10
# against the exact scan, 100 queries, tie-aware): 1.5x gave 97 %, 3x 98 %, 6x 98 %, with the
# same latency (p95 41 and 35 ms in-process for 3x and 6x).
WIDE_MARGIN = 3.0
# Background share counts in flight per process (each reads the group's count).
MAX_SHARE_COUNTS = 4


def filtered_candidates(kept: int, margin: int = FILTERED_MARGIN) -> int:
    """Neighbours to ask a filtered index for, to keep the best `kept`."""
    return max(kept * margin, FILTERED_MIN_CANDIDATES)


# A usable index is trusted until a query on it fails; an unusable one (missing, populating,
# wrong dimension) is looked at again this often.
RECHECK_SECONDS = 5.0
# prepare() waits this long for a freshly created index (instant on a small database); a large
# one keeps populating in the background and is picked up by the recheck.
CREATE_WAIT_SECONDS = 2.0


def _strip(projection: str, expression: str, replacement: str) -> str:
    # Fail at import rather than silently ship embeddings again if graphiti_core's return
    # clause changes shape.
    if projection.count(expression) != 1:
        raise RuntimeError(f"graphiti_core's return clause no longer has {expression!r} once")
    return projection.replace(expression, replacement)


# Graphiti's own column lists; only the attributes map loses the embedding, which graphiti's
# record parsers pop from it anyway.
EDGE_COLUMNS = _strip(
    get_entity_edge_return_query(_NEO4J),
    "properties(e) AS attributes",
    "e {.*, fact_embedding: NULL} AS attributes",
)
NODE_COLUMNS = _strip(
    get_entity_node_return_query(_NEO4J),
    "properties(n) AS attributes",
    "n {.*, name_embedding: NULL} AS attributes",
)


@dataclass(frozen=True, slots=True)
class VectorIndex:
    name: str
    entity_type: str  # as SHOW INDEXES names it
    label_or_type: str
    key: str  # the embedding property
    pattern: str  # binds `x`

    def share_query(self) -> str:
        """The group's count and the whole index's, both served by Neo4j's indexes and count
        store rather than by reading the items."""
        return (
            f"CALL () {{ MATCH {self.pattern} WHERE x.group_id = $group_id "
            "RETURN count(x) AS mine } "
            f"CALL () {{ MATCH {self.pattern} RETURN count(x) AS total }} "
            "RETURN mine, total"
        )

    def create_query(self, dimensions: int, *, filtered: bool) -> str:
        # Index options cannot be parameters; `dimensions` is an int from the settings.
        # Filtered: group_id is declared as the index's filter property (Cypher 25), so a
        # search is answered inside one group's neighbours.
        prefix, filter_clause = ("CYPHER 25 ", " WITH [x.group_id]") if filtered else ("", "")
        return (
            f"{prefix}CREATE VECTOR INDEX {self.name} IF NOT EXISTS FOR {self.pattern} "
            f"ON (x.{self.key}){filter_clause} OPTIONS {{indexConfig: {{"
            f"`vector.dimensions`: {int(dimensions)}, "
            "`vector.similarity_function`: 'cosine', "
            # Unquantised, the index's scores are the exact cosines the scan computes, which
            # the completeness test in VectorSearch._index_answer relies on.
            "`vector.quantization.enabled`: false}}"
        )


FACT_INDEX = VectorIndex(
    "synapse_fact_embedding", "RELATIONSHIP", "RELATES_TO", "fact_embedding", "()-[x:RELATES_TO]-()"
)
NAME_INDEX = VectorIndex("synapse_name_embedding", "NODE", "Entity", "name_embedding", "(x:Entity)")
# The turns of every episode, one node each (service/graph/passages.py).
PASSAGE_INDEX = VectorIndex(
    "synapse_passage_embedding", "NODE", "SynapsePassage", "embedding", "(x:SynapsePassage)"
)


@dataclass(slots=True)
class VectorSearchStats:
    """How similarity searches were answered in this process."""

    hybrid: int = 0  # /memory/query's one statement (service/graph/hybrid.py), filtered indexes
    wide: int = 0  # of its searches, those asked of an index without the group filter
    narrowed: int = 0  # of those, asked again inside the group (too few of the group's found)
    filtered: int = 0  # by the vector index searched inside the group (Neo4j 2026.01+)
    index: int = 0  # by the vector index of every group, answer proven complete
    exact: int = 0  # by the exact scan: no usable index, or its answer not provably complete
    library: int = 0  # outside the fast path (filters, several groups): graphiti_core as is


@dataclass(slots=True)
class _IndexState:
    usable_name: str | None = None
    filtered: bool = False  # the usable index declares group_id as its filter property
    checked_at: float | None = None
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)


@dataclass(frozen=True, slots=True)
class _Share:
    fraction: float  # of the index's neighbours that were the group's
    at: float  # monotonic seconds


@dataclass(frozen=True, slots=True)
class _IndexAnswer:
    rows: list[Any]  # the group's neighbours above min_score, best first, at most `limit`
    candidates: int  # neighbours asked for
    returned: int  # neighbours the index returned, of every group
    lowest: float | None  # the lowest score among them
    in_group: int  # how many of them were the group's

    def is_complete(self, limit: int, min_score: float) -> bool:
        return (
            len(self.rows) >= limit
            or self.returned < self.candidates
            or (self.lowest is not None and self.lowest <= min_score)
        )


# One round trip: the neighbours' count and lowest score for the completeness test, and the
# group's neighbours above min_score. OPTIONAL keeps the counts when none is the group's.
# Unquantised, the index's score is the same float as vector.similarity.cosine() on the
# stored embedding, which Graphiti's scan compares with min_score.
_EDGE_ANN = (
    "CALL db.index.vector.queryRelationships($index_name, $candidates, $search_vector) "
    "YIELD relationship AS e, score "
    "WITH count(*) AS returned, min(score) AS lowest, "
    "collect(CASE WHEN e.group_id = $group_id THEN {e: e, score: score} END) AS mine "
    "OPTIONAL CALL (mine) { "
    "UNWIND mine AS hit WITH hit.e AS e, hit.score AS score WHERE score > $min_score "
    "WITH e, score, startNode(e) AS n, endNode(e) AS m WHERE n:Entity AND m:Entity "
    "RETURN e, n, m, score } "
    "WITH returned, lowest, size(mine) AS in_group, e, n, m, score "
    "ORDER BY score DESC LIMIT $limit "
    "RETURN returned, lowest, in_group, " + EDGE_COLUMNS
)
_NODE_ANN = (
    "CALL db.index.vector.queryNodes($index_name, $candidates, $search_vector) "
    "YIELD node AS n, score "
    "WITH count(*) AS returned, min(score) AS lowest, "
    "collect(CASE WHEN n.group_id = $group_id THEN {n: n, score: score} END) AS mine "
    "OPTIONAL CALL (mine) { "
    "UNWIND mine AS hit WITH hit.n AS n, hit.score AS score "
    "WHERE score > $min_score AND n:Entity "
    "RETURN n, score } "
    "WITH returned, lowest, size(mine) AS in_group, n, score "
    "ORDER BY score DESC LIMIT $limit "
    "RETURN returned, lowest, in_group, " + NODE_COLUMNS
)
# The same shape for passages; a passage has no uuid, its element id stands in for the
# completeness test's "was anything found" column.
_PASSAGE_ANN = (
    "CALL db.index.vector.queryNodes($index_name, $candidates, $search_vector) "
    "YIELD node AS p, score "
    "WITH count(*) AS returned, min(score) AS lowest, "
    "collect(CASE WHEN p.group_id = $group_id THEN {p: p, score: score} END) AS mine "
    "OPTIONAL CALL (mine) { "
    "UNWIND mine AS hit WITH hit.p AS p, hit.score AS score WHERE score > $min_score "
    "RETURN p, score } "
    "WITH returned, lowest, size(mine) AS in_group, p, score "
    "ORDER BY score DESC LIMIT $limit "
    "RETURN returned, lowest, in_group, elementId(p) AS uuid, p.episode_uuid AS episode_uuid, "
    "p.line AS line, score"
)
# Neo4j 2026.01+ (Cypher 25): the index is searched inside the group (group_id is its filter
# property), so it returns the group's own nearest neighbours with no over-fetch, no share
# bookkeeping and no exact-scan fallback. SEARCH binds one variable; the endpoints are read
# after it. {index} is the index's name as SHOW INDEXES reports it, quoted.
_EDGE_FILTERED = (
    "CYPHER 25 MATCH ()-[e:RELATES_TO]->() "
    "SEARCH e IN (VECTOR INDEX {index} FOR $search_vector WHERE e.group_id = $group_id "
    "LIMIT $candidates) SCORE AS score "
    "WITH e, score, startNode(e) AS n, endNode(e) AS m "
    "WHERE n:Entity AND m:Entity AND score > $min_score "
    "WITH e, n, m, score ORDER BY score DESC LIMIT $limit "
    "RETURN " + EDGE_COLUMNS
)
_NODE_FILTERED = (
    "CYPHER 25 MATCH (n:Entity) "
    "SEARCH n IN (VECTOR INDEX {index} FOR $search_vector WHERE n.group_id = $group_id "
    "LIMIT $candidates) SCORE AS score "
    "WITH n, score WHERE score > $min_score "
    "WITH n, score ORDER BY score DESC LIMIT $limit "
    "RETURN " + NODE_COLUMNS
)
_PASSAGE_FILTERED = (
    "CYPHER 25 MATCH (p:SynapsePassage) "
    "SEARCH p IN (VECTOR INDEX {index} FOR $search_vector WHERE p.group_id = $group_id "
    "LIMIT $candidates) SCORE AS score "
    "WITH p, score WHERE score > $min_score "
    "WITH p, score ORDER BY score DESC LIMIT $limit "
    "RETURN elementId(p) AS uuid, p.episode_uuid AS episode_uuid, p.line AS line, score"
)
_PASSAGE_EXACT = (
    "MATCH (p:SynapsePassage) WHERE p.group_id IN $group_ids "
    "AND size(p.embedding) = size($search_vector) "
    "WITH p, vector.similarity.cosine(p.embedding, $search_vector) AS score "
    "WHERE score > $min_score "
    "WITH p, score ORDER BY score DESC LIMIT $limit "
    "RETURN elementId(p) AS uuid, p.episode_uuid AS episode_uuid, p.line AS line, score"
)
# Graphiti's exact scans (search_utils.edge_similarity_search / node_similarity_search for one
# group and no filters), projecting only the rows kept, without the embedding.
_EDGE_EXACT = (
    "MATCH (n:Entity)-[e:RELATES_TO]->(m:Entity) WHERE e.group_id IN $group_ids "
    "WITH DISTINCT e, n, m, "
    + get_vector_cosine_func_query("e.fact_embedding", "$search_vector", _NEO4J)
    + " AS score WHERE score > $min_score "
    "WITH e, n, m, score ORDER BY score DESC LIMIT $limit "
    "RETURN " + EDGE_COLUMNS
)
_NODE_EXACT = (
    "MATCH (n:Entity) WHERE n.group_id IN $group_ids "
    "WITH n, "
    + get_vector_cosine_func_query("n.name_embedding", "$search_vector", _NEO4J)
    + " AS score WHERE score > $min_score "
    "WITH n, score ORDER BY score DESC LIMIT $limit "
    "RETURN " + NODE_COLUMNS
)
_EDGE_FULLTEXT = (
    get_relationships_query("edge_name_and_fact", limit=0, provider=_NEO4J)
    # The index hands back the relationship itself; no need to look it up again by uuid.
    + " YIELD relationship AS e, score "
    "WITH e, score, startNode(e) AS n, endNode(e) AS m "
    "WHERE n:Entity AND m:Entity AND e.group_id IN $group_ids "
    "WITH e, score, n, m ORDER BY score DESC LIMIT $limit "
    "RETURN " + EDGE_COLUMNS
)
_NODE_FULLTEXT = (
    get_nodes_query("node_name_and_summary", "$query", limit=0, provider=_NEO4J)
    + " YIELD node AS n, score "
    "WHERE n.group_id IN $group_ids "
    "WITH n, score ORDER BY score DESC LIMIT $limit "
    "RETURN " + NODE_COLUMNS
)


def supports_filtered_vector_search(version: str) -> bool:
    """Neo4j's SEARCH clause with in-index filters came with 2026.01 (calendar versions;
    5.x and 2025.x lack it). Unknown or unparsable versions are treated as lacking it."""
    head = version.split(".", 1)[0]
    return head.isdigit() and int(head) >= 2026


def quoted(name: str) -> str:
    """An index name as a Cypher identifier (index names cannot be parameters)."""
    return "`" + name.replace("`", "``") + "`"


def _single_group(group_ids: list[str] | None) -> str | None:
    return group_ids[0] if group_ids is not None and len(group_ids) == 1 else None


def _no_edge_filters(search_filter: SearchFilters) -> bool:
    clauses, _ = edge_search_filter_query_constructor(search_filter, _NEO4J)
    return not clauses


def _no_node_filters(search_filter: SearchFilters) -> bool:
    clauses, _ = node_search_filter_query_constructor(search_filter, _NEO4J)
    return not clauses


class VectorSearch(SearchInterface):
    """The fast path for one group's unfiltered searches; graphiti_core's code for the rest."""

    _library: GraphDriver = PrivateAttr()
    _dimensions: int = PrivateAttr()
    _max_candidates: int = PrivateAttr()
    _states: dict[str, _IndexState] = PrivateAttr()
    _shares: OrderedDict[tuple[str, str], _Share] = PrivateAttr()
    _logged: set[str] = PrivateAttr()
    _stats: VectorSearchStats = PrivateAttr()
    _filtering: bool = PrivateAttr()
    _counting: dict[tuple[str, str], asyncio.Task[None]] = PrivateAttr()
    _unfiltered_share: float = PrivateAttr()

    def __init__(
        self,
        library_driver: GraphDriver,
        *,
        dimensions: int,
        max_candidates: int = DEFAULT_MAX_CANDIDATES,
        unfiltered_share: float = UNFILTERED_SHARE,
    ) -> None:
        super().__init__()
        self._library = library_driver
        self._dimensions = dimensions
        self._max_candidates = max_candidates
        self._states = {
            index.name: _IndexState() for index in (FACT_INDEX, NAME_INDEX, PASSAGE_INDEX)
        }
        self._shares = OrderedDict()
        self._logged = set()
        self._stats = VectorSearchStats()
        self._filtering = False
        self._counting = {}
        self._unfiltered_share = unfiltered_share

    @classmethod
    def install(
        cls,
        driver: GraphDriver,
        *,
        dimensions: int,
        max_candidates: int = DEFAULT_MAX_CANDIDATES,
        unfiltered_share: float = UNFILTERED_SHARE,
    ) -> "VectorSearch":
        """Route `driver`'s searches through a new VectorSearch. Call it once the driver's
        neo4j client is final: the library's view made here shares that client."""
        if driver.provider != _NEO4J:
            raise ValueError("VectorSearch speaks Neo4j's Cypher only")
        library = copy.copy(driver)
        library.search_interface = None
        interface = cls(
            library,
            dimensions=dimensions,
            max_candidates=max_candidates,
            unfiltered_share=unfiltered_share,
        )
        driver.search_interface = interface
        return interface

    @property
    def stats(self) -> VectorSearchStats:
        return self._stats

    @property
    def filtering(self) -> bool:
        """The server can search a vector index inside one group (Neo4j 2026.01+)."""
        return self._filtering

    def filtered_names(self) -> tuple[str, str, str] | None:
        """The fact, entity name and passage indexes' names when all three are usable and
        filtered by group (service/graph/hybrid.py needs all three), else None."""
        states = [self._states[index.name] for index in (FACT_INDEX, NAME_INDEX, PASSAGE_INDEX)]
        names = tuple(state.usable_name for state in states)
        if not all(state.filtered for state in states) or None in names:
            return None
        return cast(tuple[str, str, str], names)

    def unfiltered_asks(self, group: str, asked: tuple[int, int, int]) -> tuple[int | None, ...]:
        """For the fact, entity name and passage indexes: how many neighbours to ask the index
        for without the group filter, to expect `asked` of the group's among them, when the
        group holds at least UNFILTERED_SHARE of it; None: search inside the group. Shares come
        from counts made in the background (never waited for): an unknown or stale one is
        counted for a later query."""
        return tuple(
            self._wide_ask(index, group, kept)
            for index, kept in zip((FACT_INDEX, NAME_INDEX, PASSAGE_INDEX), asked, strict=True)
        )

    def _wide_ask(self, index: VectorIndex, group: str, kept: int) -> int | None:
        share = self._known_share(index, group)
        if share is None or share < self._unfiltered_share:
            return None
        return self._sized(kept, share, WIDE_MARGIN)

    def _known_share(self, index: VectorIndex, group: str) -> float | None:
        key = (index.name, group)
        share = self._shares.get(key)
        stale = share is None or time.monotonic() - share.at > SHARE_MEMORY_SECONDS
        if stale and key not in self._counting and len(self._counting) < MAX_SHARE_COUNTS:
            task = asyncio.create_task(self._count_share(index, key), name=f"share {key}")
            self._counting[key] = task
            task.add_done_callback(functools.partial(self._counted, key))
        return share.fraction if share is not None else None

    async def count_shares(self, group: str) -> None:
        """Count the group's share of every index now, rather than in the background."""
        for index in (FACT_INDEX, NAME_INDEX, PASSAGE_INDEX):
            await self._count_share(index, (index.name, group))

    def _counted(self, key: tuple[str, str], _: "asyncio.Task[None]") -> None:
        self._counting.pop(key, None)

    async def _count_share(self, index: VectorIndex, key: tuple[str, str]) -> None:
        try:
            result = await self._library.execute_query(
                index.share_query(), group_id=key[1], routing_="r"
            )
        except Exception as exc:
            # Only an optimisation: the filtered search answers meanwhile.
            logger.debug("counting %s's share of %s failed: %s", key[1], key[0], exc)
            return
        record = result.records[0]
        self._remember(key, record["mine"] / record["total"] if record["total"] else 0.0)

    async def close(self) -> None:
        for task in list(self._counting.values()):
            task.cancel()
        for task in list(self._counting.values()):
            with contextlib.suppress(asyncio.CancelledError):
                await task

    def forget_filtered(self, problem: str) -> None:
        for index in (FACT_INDEX, NAME_INDEX, PASSAGE_INDEX):
            if self._states[index.name].filtered:
                self._forget(index, problem)

    def mode(self) -> str:
        """How similarity search is answered now, for /health: `filtered` (every index
        searched inside the group), `index` (indexes of every group, proven complete or else
        the exact scan), or `exact` (some index missing or not online: its searches scan)."""
        states = list(self._states.values())
        if any(state.usable_name is None for state in states):
            return "exact"
        return "filtered" if all(state.filtered for state in states) else "index"

    # --- the indexes -----------------------------------------------------------------------

    async def ensure_indexes(self) -> None:
        """Create the vector indexes if missing and read their state. On a server that can
        filter a vector search by group (Neo4j 2026.01+) they are created with group_id as
        their filter property. An index that already exists on the same property is kept,
        whatever its name or configuration: one without the filter property (created before
        an upgrade from 5.x) is still used the 5.x way until an operator drops it (see
        deploy/README.md); one that cannot be used only means the exact scan."""
        self._filtering = await self._server_filters()
        for index in (FACT_INDEX, NAME_INDEX, PASSAGE_INDEX):
            try:
                await self._library.execute_query(
                    index.create_query(self._dimensions, filtered=self._filtering)
                )
            except ClientError as exc:
                self._note(index, f"creating {index.name} failed: {exc.code}")
                continue
            deadline = time.monotonic() + CREATE_WAIT_SECONDS
            while (await self._read_state(index))[1] == "POPULATING":
                if time.monotonic() >= deadline:
                    break
                await asyncio.sleep(0.1)
            await self._refresh(index)

    async def _server_filters(self) -> bool:
        result = await self._library.execute_query(
            "CALL dbms.components() YIELD name, versions "
            "WHERE name = 'Neo4j Kernel' RETURN versions[0] AS version",
            routing_="r",
        )
        version = str(result.records[0]["version"]) if result.records else ""
        filtering = supports_filtered_vector_search(version)
        logger.info(
            "Neo4j %s: similarity search %s",
            version or "of unknown version",
            "inside the group (filtered vector indexes)"
            if filtering
            else "by vector indexes of every group, or the exact scan",
        )
        return filtering

    async def _read_state(self, index: VectorIndex) -> tuple[str | None, str]:
        """(name of the usable index, None if there is none; why not, or its state). Whether
        it is filtered by group is recorded in the index's state."""
        result = await self._library.execute_query(
            "SHOW INDEXES YIELD name, type, entityType, labelsOrTypes, properties, state, "
            "options WHERE type = 'VECTOR' AND entityType = $entity_type "
            "AND labelsOrTypes = [$label] AND properties[0] = $key "
            "RETURN name, state, options, properties[1..] AS filters",
            entity_type=index.entity_type,
            label=index.label_or_type,
            key=index.key,
            routing_="r",
        )
        for record in result.records:  # Neo4j allows one per property, under any name
            name = record["name"]
            config = (record["options"] or {}).get("indexConfig", {})
            dimensions = config.get("vector.dimensions")
            function = str(config.get("vector.similarity_function", "")).upper()
            if dimensions != self._dimensions:
                return (
                    None,
                    f"{name} has {dimensions} dimensions, EMBEDDING_DIM is {self._dimensions}",
                )
            if function != "COSINE":
                return None, f"{name} uses {function} similarity, not cosine"
            if record["state"] != "ONLINE":
                return None, str(record["state"])
            filtered = self._filtering and "group_id" in (record["filters"] or [])
            self._states[index.name].filtered = filtered
            if self._filtering and not filtered:
                self._note_upgrade(index, name)
            return name, "ONLINE"
        return None, "none exists"

    async def _refresh(self, index: VectorIndex) -> None:
        name, problem = await self._read_state(index)
        state = self._states[index.name]
        state.checked_at = time.monotonic()
        if name is None:
            state.usable_name = None
            self._note(index, problem)
            return
        if state.usable_name != name:
            logger.info(
                "vector index %s is online: similarity search on %s uses it", name, index.key
            )
        state.usable_name = name

    async def _usable_index(self, index: VectorIndex, vector: list[float]) -> str | None:
        if len(vector) != self._dimensions:
            self._note(
                index,
                f"query vectors have {len(vector)} dimensions, EMBEDDING_DIM is {self._dimensions}",
            )
            return None
        state = self._states[index.name]
        if state.usable_name is None and self._recheck_due(state):
            async with state.lock:  # one look for all the searches waiting on it
                if self._recheck_due(state):
                    await self._refresh(index)
        return state.usable_name

    @staticmethod
    def _recheck_due(state: _IndexState) -> bool:
        return state.checked_at is None or time.monotonic() - state.checked_at >= RECHECK_SECONDS

    def _note_upgrade(self, index: VectorIndex, name: str) -> None:
        message = (
            f"vector index {name} on {index.label_or_type}.{index.key} predates filtered "
            "vector search (it has no group_id filter property): searches use it the Neo4j 5 "
            f"way. Drop it (DROP INDEX `{name}`) and restart the API to rebuild it filtered; "
            "searches scan exactly while it populates (deploy/README.md)"
        )
        if message not in self._logged:
            self._logged.add(message)
            logger.warning(message)

    def _note(self, index: VectorIndex, problem: str) -> None:
        """Say once per process and problem why an index is not used."""
        message = (
            f"vector index on {index.label_or_type}.{index.key} not used ({problem}): "
            "similarity search scans the whole group instead, exact but slower"
        )
        if message not in self._logged:
            self._logged.add(message)
            logger.warning(message)

    # --- similarity ------------------------------------------------------------------------

    async def edge_similarity_search(
        self,
        driver: Any,
        search_vector: list[float],
        source_node_uuid: str | None,
        target_node_uuid: str | None,
        search_filter: Any,
        group_ids: list[str] | None = None,
        limit: int = 100,
        min_score: float = 0.7,
    ) -> list[EntityEdge]:
        group = _single_group(group_ids)
        if (
            group is None
            or source_node_uuid is not None
            or target_node_uuid is not None
            or not _no_edge_filters(search_filter)
        ):
            self._stats.library += 1
            return await search_utils.edge_similarity_search(
                self._library,
                search_vector,
                source_node_uuid,
                target_node_uuid,
                search_filter,
                group_ids,
                limit,
                min_score,
            )
        rows = await self._index_answer(
            FACT_INDEX, _EDGE_ANN, search_vector, group, limit, min_score, _EDGE_FILTERED
        )
        if rows is None:
            rows = await self._exact(_EDGE_EXACT, search_vector, group, limit, min_score)
        return [get_entity_edge_from_record(row, _NEO4J) for row in rows]

    async def node_similarity_search(
        self,
        driver: Any,
        search_vector: list[float],
        search_filter: Any,
        group_ids: list[str] | None = None,
        limit: int = 100,
        min_score: float = 0.7,
    ) -> list[EntityNode]:
        group = _single_group(group_ids)
        if group is None or not _no_node_filters(search_filter):
            self._stats.library += 1
            return await search_utils.node_similarity_search(
                self._library, search_vector, search_filter, group_ids, limit, min_score
            )
        rows = await self._index_answer(
            NAME_INDEX, _NODE_ANN, search_vector, group, limit, min_score, _NODE_FILTERED
        )
        if rows is None:
            rows = await self._exact(_NODE_EXACT, search_vector, group, limit, min_score)
        return [get_entity_node_from_record(row, _NEO4J) for row in rows]

    async def passage_similarity_search(
        self, vector: list[float], group: str, limit: int, min_score: float
    ) -> list[Any]:
        """The group's `limit` most similar passages above `min_score`, best first (records
        of episode_uuid, line, score): from the vector index where its answer is provably the
        exact scan's, else the exact scan, as for facts."""
        rows = await self._index_answer(
            PASSAGE_INDEX, _PASSAGE_ANN, vector, group, limit, min_score, _PASSAGE_FILTERED
        )
        if rows is None:
            rows = await self._exact(_PASSAGE_EXACT, vector, group, limit, min_score)
        return rows

    async def _exact(
        self, query: str, vector: list[float], group: str, limit: int, min_score: float
    ) -> list[Any]:
        self._stats.exact += 1
        result = await self._library.execute_query(
            query,
            group_ids=[group],
            search_vector=vector,
            min_score=min_score,
            limit=limit,
            routing_="r",
        )
        rows: list[Any] = result.records
        return rows

    async def _index_answer(
        self,
        index: VectorIndex,
        query: str,
        vector: list[float],
        group: str,
        limit: int,
        min_score: float,
        filtered_query: str,
    ) -> list[Any] | None:
        """The group's top `limit` above `min_score` from the vector index, or None when the
        index cannot be used or its answer is not provably the exact scan's.

        A filtered index (Neo4j 2026.01+) is searched inside the group: its answer is the
        group's nearest neighbours, up to the HNSW approximation (make bench measures how
        often its top 10 equals the exact scan's).

        The index ranks the neighbours of every group together (Neo4j 5 cannot filter it by
        group), so it is asked for more neighbours than `limit` and the group's are kept. Its
        scores are the same normalised cosine, (1 + cos) / 2, that Graphiti's scan compares
        with `min_score`, so they need no conversion. The kept neighbours are the scan's
        answer when one of these holds (up to the approximation of the HNSW search itself,
        which asking for more than `limit` also pads):
        - `limit` of them were kept: a fact of the group the index did not return scores no
          higher than the lowest neighbour, hence no higher than any kept one;
        - the index returned fewer neighbours than asked: it returned all it holds;
        - the lowest neighbour scores at most `min_score`: whatever the index did not return
          would fail the threshold anyway.
        Otherwise other tenants' facts crowded the group's out of the neighbours, so the group
        is a small share of the index. One larger ask, sized from the share just seen, may
        still settle it; failing that the caller scans the group exactly, which is cheap
        exactly when the group is small (the scan's cost grows with the group, ~30 us a fact
        on the bench machine, so a large group in a far larger database still pays it). A
        group known to be too rare in the index for any ask up to the cap goes straight to
        the scan. Either way only the group's own facts are returned, and the same ones the
        scan would return.
        """
        name = await self._usable_index(index, vector)
        if name is None:
            return None
        if self._states[index.name].filtered:
            wide = self._wide_ask(index, group, filtered_candidates(limit))
            if wide is not None:
                # A group holding most of the index: asked without the filter (UNFILTERED_SHARE
                # says why), and kept only when provably complete, else asked filtered.
                answer = await self._ask(index, name, query, vector, group, limit, min_score, wide)
                if answer is not None and answer.is_complete(limit, min_score):
                    self._stats.wide += 1
                    return answer.rows
                self._stats.narrowed += 1
            return await self._filtered(
                index, name, filtered_query, vector, group, limit, min_score
            )
        key = (index.name, group)
        candidates = await self._first_ask(index, key, limit)
        for attempt in (1, 2):
            if candidates is None:
                return None
            answer = await self._ask(
                index, name, query, vector, group, limit, min_score, candidates
            )
            if answer is None:
                return None
            share = answer.in_group / answer.returned if answer.returned else 0.0
            self._remember(key, share)
            if answer.is_complete(limit, min_score):
                self._stats.index += 1
                return answer.rows
            bigger = self._sized(limit, share) if attempt == 1 else None
            candidates = bigger if bigger is not None and bigger > candidates else None
        return None

    async def _filtered(
        self,
        index: VectorIndex,
        name: str,
        query: str,
        vector: list[float],
        group: str,
        limit: int,
        min_score: float,
    ) -> list[Any] | None:
        try:
            result = await self._library.execute_query(
                query.replace("{index}", quoted(name)),
                search_vector=vector,
                group_id=group,
                min_score=min_score,
                limit=limit,
                candidates=filtered_candidates(limit),
                routing_="r",
            )
        except ClientError as exc:
            self._forget(index, f"querying {name} failed: {exc.code}")
            return None
        self._stats.filtered += 1
        rows: list[Any] = result.records
        return rows

    def _forget(self, index: VectorIndex, problem: str) -> None:
        """Dropped, replaced or reconfigured since it was checked: scan, and look at it again
        after RECHECK_SECONDS."""
        state = self._states[index.name]
        state.usable_name = None
        state.filtered = False
        state.checked_at = time.monotonic()
        self._note(index, problem)

    async def _first_ask(self, index: VectorIndex, key: tuple[str, str], limit: int) -> int | None:
        """Neighbours to ask for first, or None to scan at once. Sized from the group's share
        of the neighbours its last search saw, or else from its share of the whole index: a
        group too small a share of it (most users of a big database, and every new one) goes
        straight to the scan instead of paying for an index call that cannot settle it."""
        share = self._shares.get(key)
        if share is not None and time.monotonic() - share.at <= SHARE_MEMORY_SECONDS:
            return self._sized(limit, share.fraction)
        result = await self._library.execute_query(
            index.share_query(), group_id=key[1], routing_="r"
        )
        record = result.records[0]
        fraction = record["mine"] / record["total"] if record["total"] else 0.0
        self._remember(key, fraction)
        return self._sized(limit, fraction)

    def _sized(self, limit: int, share: float, margin: float = SIZE_MARGIN) -> int | None:
        """Neighbours to ask for so that about `margin` x `limit` are the group's; None when
        that is beyond the cap."""
        if share <= 0:
            return None
        wanted = math.ceil(limit * margin / share)
        return max(wanted, limit) if wanted <= self._max_candidates else None

    def _remember(self, key: tuple[str, str], share: float) -> None:
        self._shares[key] = _Share(share, time.monotonic())
        self._shares.move_to_end(key)
        while len(self._shares) > SHARE_MEMORY_GROUPS:
            self._shares.popitem(last=False)

    async def _ask(
        self,
        index: VectorIndex,
        name: str,
        query: str,
        vector: list[float],
        group: str,
        limit: int,
        min_score: float,
        candidates: int,
    ) -> _IndexAnswer | None:
        try:
            result = await self._library.execute_query(
                query,
                index_name=name,
                candidates=candidates,
                search_vector=vector,
                group_id=group,
                min_score=min_score,
                limit=limit,
                routing_="r",
            )
        except ClientError as exc:
            self._forget(index, f"querying {name} failed: {exc.code}")
            return None
        first = result.records[0]
        return _IndexAnswer(
            rows=[record for record in result.records if record["uuid"] is not None],
            candidates=candidates,
            returned=first["returned"],
            lowest=first["lowest"],
            in_group=first["in_group"],
        )

    # --- fulltext --------------------------------------------------------------------------

    async def edge_fulltext_search(
        self,
        driver: Any,
        query: str,
        search_filter: Any,
        group_ids: list[str] | None = None,
        limit: int = 100,
    ) -> list[EntityEdge]:
        if _single_group(group_ids) is None or not _no_edge_filters(search_filter):
            self._stats.library += 1
            return await search_utils.edge_fulltext_search(
                self._library, query, search_filter, group_ids, limit
            )
        records = await self._fulltext(_EDGE_FULLTEXT, query, group_ids, limit)
        return [get_entity_edge_from_record(record, _NEO4J) for record in records]

    async def node_fulltext_search(
        self,
        driver: Any,
        query: str,
        search_filter: Any,
        group_ids: list[str] | None = None,
        limit: int = 100,
    ) -> list[EntityNode]:
        if _single_group(group_ids) is None or not _no_node_filters(search_filter):
            self._stats.library += 1
            return await search_utils.node_fulltext_search(
                self._library, query, search_filter, group_ids, limit
            )
        records = await self._fulltext(_NODE_FULLTEXT, query, group_ids, limit)
        return [get_entity_node_from_record(record, _NEO4J) for record in records]

    async def _fulltext(
        self, cypher: str, query: str, group_ids: list[str] | None, limit: int
    ) -> list[Any]:
        """Graphiti's Lucene query (group filter and escaping included), run by our Cypher."""
        lucene = search_utils.fulltext_query(query, group_ids, self._library)
        if lucene == "":  # Graphiti's answer for a query too long to search
            return []
        result = await self._library.execute_query(
            cypher, query=lucene, group_ids=group_ids, limit=limit, routing_="r"
        )
        records: list[Any] = result.records
        return records

    # --- everything else: graphiti_core's own code -----------------------------------------

    async def episode_fulltext_search(
        self,
        driver: Any,
        query: str,
        search_filter: Any,
        group_ids: list[str] | None = None,
        limit: int = 100,
    ) -> list[Any]:
        return await search_utils.episode_fulltext_search(
            self._library, query, search_filter, group_ids, limit
        )

    async def edge_bfs_search(
        self,
        driver: Any,
        bfs_origin_node_uuids: list[str] | None,
        bfs_max_depth: int,
        search_filter: Any,
        group_ids: list[str] | None = None,
        limit: int = 100,
    ) -> list[Any]:
        return await search_utils.edge_bfs_search(
            self._library, bfs_origin_node_uuids, bfs_max_depth, search_filter, group_ids, limit
        )

    async def node_bfs_search(
        self,
        driver: Any,
        bfs_origin_node_uuids: list[str] | None,
        search_filter: Any,
        bfs_max_depth: int,
        group_ids: list[str] | None = None,
        limit: int = 100,
    ) -> list[Any]:
        return await search_utils.node_bfs_search(
            self._library, bfs_origin_node_uuids, search_filter, bfs_max_depth, group_ids, limit
        )

    async def community_fulltext_search(
        self,
        driver: Any,
        query: str,
        group_ids: list[str] | None = None,
        limit: int = 100,
    ) -> list[Any]:
        return await search_utils.community_fulltext_search(self._library, query, group_ids, limit)

    async def community_similarity_search(
        self,
        driver: Any,
        search_vector: list[float],
        group_ids: list[str] | None = None,
        limit: int = 100,
        min_score: float = 0.6,
    ) -> list[Any]:
        return await search_utils.community_similarity_search(
            self._library, search_vector, group_ids, limit, min_score
        )

    async def get_embeddings_for_communities(
        self, driver: Any, communities: list[Any]
    ) -> dict[str, list[float]]:
        return await search_utils.get_embeddings_for_communities(self._library, communities)

    async def node_distance_reranker(
        self,
        driver: Any,
        node_uuids: list[str],
        center_node_uuid: str,
        min_score: float = 0,
    ) -> tuple[list[str], list[float]]:
        return await search_utils.node_distance_reranker(
            self._library, node_uuids, center_node_uuid, min_score
        )

    async def episode_mentions_reranker(
        self,
        driver: Any,
        node_uuids: list[list[str]],
        min_score: float = 0,
    ) -> tuple[list[str], list[float]]:
        return await search_utils.episode_mentions_reranker(self._library, node_uuids, min_score)
