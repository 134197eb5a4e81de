"""Raw words are never lost: the episodes' own text, searched with the same hybrid as facts.

Graphiti's extraction keeps what it recognises as facts; whatever it missed is still in the
episode's `content` (one `role: text` line per turn). /memory/query therefore also searches the
user's own episodes and returns the best matching *passages*: a short window of turns around
the matching one, dated, with `source` "episode".

Writing. Each turn of an episode gets one `SynapsePassage` node (group_id, episode_uuid, line,
valid_at, embedding), created in the same fenced transaction that writes the episode's
extraction (service/graph/fencing.py): passages land exactly when the extraction lands, never
twice, never for a writer that lost its lease, never for a deleted user. The embeddings are
computed before that transaction, in one batched embedder call per episode, by the janitor: the
orchestrator's query path only embeds the query, as it already did. Small nodes rather than a
property on the Episodic node, because Neo4j cannot store (or index) a list of vectors on one
node, and a node per turn is found through a vector index like Graphiti's facts.

Searching (one group, never another; only episodes valid at the reference time):
- full text: Graphiti's `episode_content` fulltext index with Graphiti's own Lucene query (group
  filter and escaping included) ranks episodes; inside each, the turns sharing the most query
  words are its hits;
- similarity: the same cosine and threshold as Graphiti's fact search, answered by the
  `synapse_passage_embedding` vector index where its answer provably is the exact scan's, else
  by the exact scan (service/graph/vector_search.py, as for facts);
- both ranked lists are fused by reciprocal rank exactly like the facts (1/rank per list), and
  relevance is the fused score over its maximum, so it is on the facts' scale.

A hit becomes the matching turn plus up to two turns on each side, nearest first, as long as the
window stays within WINDOW_CHARS; a single turn longer than that is cut around the query's
words. Hits inside a window already returned are skipped, and so is a hit whose turn is already
said by a fact in the same answer extracted from the same episode.
"""

import asyncio
import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, LiteralString

from graphiti_core.driver.driver import GraphDriver
from graphiti_core.search import search_utils
from neo4j import AsyncManagedTransaction

from service.graph.vector_search import VectorSearch

SCHEMA: tuple[LiteralString, ...] = (
    "CREATE INDEX synapse_passage_group IF NOT EXISTS FOR (p:SynapsePassage) ON (p.group_id)",
)

# The most characters of turns a passage shows, and how many turns on each side of the hit.
WINDOW_CHARS = 600
WINDOW_TURNS = 2
# Only this much of a turn is embedded (full text still sees all of it).
EMBED_CHARS = 2_000
# Inputs per embedding request when an episode has many turns.
EMBED_BATCH = 256
# Turns of one full-text episode hit that count as hits, best first.
LINES_PER_EPISODE = 2
# Graphiti's cosine cut-off for fact similarity search (search_utils.DEFAULT_MIN_SCORE).
MIN_SCORE = search_utils.DEFAULT_MIN_SCORE
# A passage's turn counts as already said by a fact when this share of its words is in the
# facts the same answer took from the same episode.
COVERED_SHARE = 0.6
_RRF_METHODS = 2

_FULLTEXT: LiteralString = (
    "CALL db.index.fulltext.queryNodes('episode_content', $query, {limit: $candidates}) "
    "YIELD node AS e, score "
    "WHERE e.group_id = $group_id AND e.valid_at <= $reference_time "
    "RETURN e.uuid AS uuid, e.content AS content, e.valid_at AS valid_at, score "
    "ORDER BY score DESC LIMIT $candidates"
)
# The episodes of the most similar passages (found by VectorSearch, index or exact scan).
_EPISODES: LiteralString = (
    "MATCH (e:Episodic) WHERE e.uuid IN $uuids AND e.group_id = $group_id "
    "AND e.valid_at <= $reference_time "
    "RETURN e.uuid AS uuid, e.content AS content, e.valid_at AS valid_at"
)
_WRITE: LiteralString = (
    "MATCH (e:Episodic {uuid: $episode_uuid}) "
    "UNWIND $passages AS passage "
    "CREATE (:SynapsePassage {group_id: e.group_id, episode_uuid: e.uuid, line: passage.line, "
    "valid_at: e.valid_at, embedding: passage.embedding})"
)

_STOPWORD_TEXT = (
    "a an and are as at be been but by can could did do does doing for from had has have he "
    "her him his how i if in into is it its me my of on or our she so than that the their "
    "them then there these they this to up us was we were what when where which who why will "
    "with would you your user assistant about any some just"
)
_STOPWORDS = frozenset(_STOPWORD_TEXT.split())
_WORD = re.compile(r"[^\W_]+")


# --- writing ------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class PassageRows:
    """The passages of one episode, embedded, ready for the fenced transaction."""

    episode_uuid: str
    rows: list[dict[str, Any]]

    async def write(self, tx: AsyncManagedTransaction) -> None:
        if not self.rows:
            return
        result = await tx.run(_WRITE, episode_uuid=self.episode_uuid, passages=self.rows)
        await result.consume()


async def embed_passages(embedder: Any, episode_uuid: str, body: str) -> PassageRows:
    """One passage per non-empty turn of `body`, embedded in batched calls."""
    lines = [(n, line) for n, line in enumerate(body.splitlines()) if line.strip()]
    rows: list[dict[str, Any]] = []
    for start in range(0, len(lines), EMBED_BATCH):
        batch = lines[start : start + EMBED_BATCH]
        vectors = await embedder.create_batch(
            [" ".join(line[:EMBED_CHARS].split()) for _, line in batch]
        )
        rows += [
            {"line": n, "embedding": list(vector)}
            for (n, _), vector in zip(batch, vectors, strict=True)
        ]
    return PassageRows(episode_uuid, rows)


# --- reading ------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Passage:
    episode_uuid: str
    line: int
    hit: str  # the matching turn
    text: str  # "[time] window of turns"
    relevance: float


@dataclass(frozen=True, slots=True)
class RankedFact:
    text: str
    relevance: float
    episodes: tuple[str, ...]


@dataclass(slots=True)
class _Episode:
    content: str
    valid_at: datetime | None
    lines: list[str]


def _fold(word: str) -> str:
    return word[:-1] if len(word) > 3 and word.endswith("s") and not word.endswith("ss") else word


def words(text: str) -> set[str]:
    """Lower-cased content words, plurals folded; all words when there are only stop words."""
    found = [_fold(w) for w in _WORD.findall(text.lower())]
    content = {w for w in found if w not in _STOPWORDS}
    return content or set(found)


def _as_datetime(value: Any) -> datetime | None:
    native = value.to_native() if hasattr(value, "to_native") else value
    if isinstance(native, datetime):
        return native if native.tzinfo else native.replace(tzinfo=UTC)
    return None


def _stamp(moment: datetime | None) -> str:
    """When the conversation took place, for a program and for a reader (an LLM answering a
    "when" question is asked in words: "on 8 May 2023"), e.g.
    `[2026-02-04 18:00 UTC, Wednesday 4 February 2026] `."""
    if moment is None:
        return ""
    at = moment.astimezone(UTC)
    return f"[{at:%Y-%m-%d %H:%M} UTC, {at:%A} {at.day} {at:%B %Y}] "


def _excerpt(line: str, query_words: set[str], budget: int) -> str:
    """`line` cut to `budget` characters around the first query word it contains."""
    if len(line) <= budget:
        return line
    lower = line.lower()
    positions = [lower.find(w) for w in query_words if w in lower]
    centre = min(positions) if positions else 0
    start = max(0, min(centre - budget // 2, len(line) - budget + 1))
    end = start + budget - 2
    return ("…" if start else "") + line[start:end].strip() + ("…" if end < len(line) else "")


def window(lines: Sequence[str], hit: int, query_words: set[str]) -> tuple[int, int, str]:
    """The hit turn and its neighbours, nearest first, within WINDOW_CHARS: (first, last,
    text). A side stops growing at the first turn that does not fit."""
    first = last = hit
    text_len = len(lines[hit])
    if text_len > WINDOW_CHARS:
        return hit, hit, _excerpt(lines[hit], query_words, WINDOW_CHARS)
    open_before = open_after = True
    for distance in range(1, WINDOW_TURNS + 1):
        for side in (-1, 1):
            if (side < 0 and not open_before) or (side > 0 and not open_after):
                continue
            n = hit + side * distance
            if not 0 <= n < len(lines) or text_len + 1 + len(lines[n]) > WINDOW_CHARS:
                if side < 0:
                    open_before = False
                else:
                    open_after = False
                continue
            text_len += 1 + len(lines[n])
            first, last = min(first, n), max(last, n)
    return first, last, "\n".join(lines[first : last + 1])


def _line_hits(lines: Sequence[str], query_words: set[str]) -> list[int]:
    """Turns sharing query words, most shared first (earlier first on ties)."""
    scored = []
    for n, line in enumerate(lines):
        shared = len(query_words & words(line))
        if shared:
            scored.append((-shared, n))
    return [n for _, n in sorted(scored)[:LINES_PER_EPISODE]]


async def _similar(
    driver: GraphDriver,
    vectors: VectorSearch,
    params: dict[str, Any],
    vector: list[float],
) -> list[Any]:
    """The most similar passages grouped by episode: records of uuid, content, valid_at and
    hits ([line, score] pairs). The search itself ignores time (the index cannot filter by
    it); passages of episodes after the reference time are dropped here."""
    found = await vectors.passage_similarity_search(
        vector, params["group_id"], params["candidates"], MIN_SCORE
    )
    if not found:
        return []
    hits: dict[str, list[tuple[int, float]]] = {}
    for record in found:
        hits.setdefault(record["episode_uuid"], []).append((record["line"], record["score"]))
    result = await driver.execute_query(
        _EPISODES, params={**params, "uuids": list(hits)}, routing_="r"
    )
    return [
        {
            "uuid": record["uuid"],
            "content": record["content"],
            "valid_at": record["valid_at"],
            "hits": hits[record["uuid"]],
        }
        for record in result.records
    ]


async def search(
    driver: GraphDriver,
    vectors: VectorSearch,
    *,
    group_id: str,
    query: str,
    vector: list[float],
    limit: int,
    reference_time: datetime,
) -> list[Passage]:
    """The group's best passages for `query`, best first, at most `limit`."""
    candidates = limit * 2
    lucene = search_utils.fulltext_query(query, [group_id], driver)
    params = {"group_id": group_id, "reference_time": reference_time, "candidates": candidates}
    if lucene:
        fulltext, similar = await asyncio.gather(
            driver.execute_query(_FULLTEXT, params={**params, "query": lucene}, routing_="r"),
            _similar(driver, vectors, params, vector),
        )
        fulltext_records = fulltext.records
    else:  # Graphiti's answer for a query too long to search by words
        similar = await _similar(driver, vectors, params, vector)
        fulltext_records = []

    return rank(fulltext_records, similar, query=query, limit=limit)


def similar_by_episode(turns: Sequence[Any], episodes: Sequence[Any]) -> list[dict[str, Any]]:
    """Similar turns (uuid of the episode, line, score; best first) and their episodes (uuid,
    content, valid_at) as _similar's records: one per episode, with its [line, score] hits."""
    found = {episode["uuid"]: {**episode, "hits": []} for episode in episodes}
    for turn in turns:
        found[turn["uuid"]]["hits"].append((turn["line"], turn["score"]))
    return list(found.values())


def rank(
    fulltext_records: Sequence[Any], similar: Sequence[Any], *, query: str, limit: int
) -> list[Passage]:
    """The best passages, best first, at most `limit`: the turns of the full-text episodes
    sharing the most query words, and the most similar turns, fused by reciprocal rank."""
    episodes: dict[str, _Episode] = {}

    def remember(record: Any) -> None:
        if record["uuid"] not in episodes:
            content = record["content"] or ""
            episodes[record["uuid"]] = _Episode(
                content, _as_datetime(record["valid_at"]), content.splitlines()
            )

    query_words = words(query)
    by_words: list[tuple[str, int]] = []
    for record in fulltext_records:
        remember(record)
        lines = episodes[record["uuid"]].lines
        by_words += [(record["uuid"], n) for n in _line_hits(lines, query_words)]
    scored: list[tuple[float, str, int]] = []
    for record in similar:
        remember(record)
        scored += [(float(score), record["uuid"], int(line)) for line, score in record["hits"]]
    by_vector = [(uuid, line) for _, uuid, line in sorted(scored, key=lambda s: -s[0])]

    fused: dict[tuple[str, int], float] = {}
    for ranked in (by_words, by_vector):
        for rank, key in enumerate(ranked):
            fused[key] = fused.get(key, 0.0) + 1.0 / (rank + 1)
    order = sorted(fused.items(), key=lambda item: -item[1])

    passages: list[Passage] = []
    shown: dict[str, list[tuple[int, int]]] = {}
    for (uuid, line), score in order:
        episode = episodes[uuid]
        if not 0 <= line < len(episode.lines):
            continue  # the content changed under a stale passage: never index out of it
        if any(first <= line <= last for first, last in shown.get(uuid, [])):
            continue
        first, last, text = window(episode.lines, line, query_words)
        shown.setdefault(uuid, []).append((first, last))
        passages.append(
            Passage(
                episode_uuid=uuid,
                line=line,
                hit=episode.lines[line],
                text=_stamp(episode.valid_at) + text,
                relevance=min(1.0, score / _RRF_METHODS),
            )
        )
        if len(passages) >= limit:
            break
    return passages


def _covered(passage: Passage, facts: Sequence[RankedFact]) -> bool:
    said: set[str] = set()
    for fact in facts:
        if passage.episode_uuid in fact.episodes:
            said |= words(fact.text)
    if not said:
        return False
    own = words(passage.hit.partition(": ")[2] or passage.hit)
    return len(own & said) >= COVERED_SHARE * len(own)


def merge(
    facts: Sequence[RankedFact], passages: Sequence[Passage], limit: int
) -> list[RankedFact | Passage]:
    """At most `limit` facts and passages together, ordered by relevance (facts first on a
    tie). Each kind is guaranteed half the slots (facts the odd one) when it has that many
    matches; slots one kind cannot fill go to the other. Passages already said by a fact of
    the answer from the same episode are dropped."""
    facts = list(facts)[:limit]
    fresh = [p for p in passages if not _covered(p, facts)]
    passage_slots = min(len(fresh), max(limit // 2, limit - len(facts)))
    facts = facts[: limit - passage_slots]
    # Facts cut just now may have been all that covered a passage: look again.
    fresh = [p for p in passages if not _covered(p, facts)][: limit - len(facts)]
    chosen: list[tuple[float, int, RankedFact | Passage]] = [
        (-f.relevance, 0, f) for f in facts
    ] + [(-p.relevance, 1, p) for p in fresh]
    chosen.sort(key=lambda item: (item[0], item[1]))
    return [item for _, _, item in chosen]


__all__ = [
    "SCHEMA",
    "Passage",
    "PassageRows",
    "RankedFact",
    "embed_passages",
    "merge",
    "search",
    "window",
    "words",
]
