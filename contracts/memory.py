"""Semantic memory: POST /memory/query and GET /session/brief."""

from typing import Literal

import msgspec

from contracts._base import Inbound, Outbound
from contracts.limits import DEFAULT_QUERY_LIMIT, Id, QueryLimit, QueryText, Timestamp


class MemoryQueryRequest(Inbound):
    tenant_id: Id
    user_id: Id
    query: QueryText
    limit: QueryLimit = DEFAULT_QUERY_LIMIT
    reference_time: Timestamp | None = None


class Fact(Outbound):
    """One item of POST /memory/query's `facts`, which holds two kinds, told apart by `source`:

    - "graphiti": a fact extracted into the user's graph ("User needs to book the dentist").
    - "episode": a passage of the user's own conversation, for words no fact captured: the
      matching turn and up to two turns on each side (at most 600 characters of turns, a longer
      turn cut around the query's words), `role: text` lines, prefixed with the time of the
      conversation it comes from in UTC, e.g.
      "[2026-02-03 18:34 UTC, Tuesday 3 February 2026] user: ...\nassistant: ...". Only the
      caller's own episodes, and only those that happened by `referenceTime`.

    Both kinds share one `limit` and one ranking: `relevance` is the reciprocal-rank fusion
    of a keyword and a vector search over facts or over turns, on the same [0, 1] scale, and
    the list is ordered by it. Clients should accept further `source` values in the future.
    """

    text: str
    # In [0, 1], ordered with the ranking: 1.0 for the best match.
    relevance: float
    source: Literal["graphiti", "episode"]


class MemoryEntity(Outbound):
    summary: str
    type: str
    uuid: str


class MemoryQueryMetadata(Outbound):
    query: str
    facts: int
    entities: int


class MemoryQueryResponse(Outbound):
    facts: list[Fact]
    entities: list[MemoryEntity]
    metadata: MemoryQueryMetadata


class NarrativeItem(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    # The contract spells this one field in snake_case: kept verbatim.
    summary: str
    reference_time: str


class ActiveLoop(Outbound):
    description: str
    status: str


class CurrentVibe(Outbound):
    mood: str | None
    energy_level: str | None
    location_type: str | None
    vibe: str | None


class SessionBriefResponse(Outbound):
    time_gap_description: str | None
    narrative_summary: list[NarrativeItem]
    active_loops: list[ActiveLoop]
    current_vibe: CurrentVibe
