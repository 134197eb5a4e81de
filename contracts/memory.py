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
    text: str
    # In [0, 1], ordered with the ranking: 1.0 for the best match.
    relevance: float
    source: Literal["graphiti"]


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
