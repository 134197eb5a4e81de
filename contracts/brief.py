"""Start-of-session seed: POST /brief."""

from typing import Literal

from contracts._base import Inbound, Outbound
from contracts.limits import Id, Role, Timestamp, Timezone
from contracts.memory import MemoryEntity


class BriefRequest(Inbound):
    tenant_id: Id
    user_id: Id
    session_id: Id | None = None
    persona_id: Id | None = None
    now: Timestamp | None = None
    timezone: Timezone | None = None


class Identity(Outbound):
    name: str | None
    is_default: bool


TimeOfDay = Literal["morning", "afternoon", "evening", "night"]


class TemporalAuthority(Outbound):
    current_time: str
    current_day: str
    time_of_day: TimeOfDay
    time_since_last_interaction: str | None


class Turn(Outbound):
    role: Role
    text: str
    timestamp: str


class BriefMetadata(Outbound):
    buffer_size: int
    has_rolling_summary: bool


class BriefResponse(Outbound):
    identity: Identity
    temporal_authority: TemporalAuthority
    working_memory: list[Turn]
    rolling_summary: str | None
    semantic_context: list[str]
    entities: list[MemoryEntity]
    metadata: BriefMetadata
