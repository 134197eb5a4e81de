"""Data rights: GET /users/export and DELETE /users, plus the audit log's debug view."""

from contracts._base import Outbound
from contracts.brief import Turn
from contracts.memory import MemoryEntity


class ExportedSession(Outbound):
    session_id: str
    state: str
    # Turns not yet written to the graph.
    buffered: list[Turn]
    # The session's latest turns as /brief shows them (kept after a close).
    recent: list[Turn]


class ExportedOutboxEntry(Outbound):
    entry_id: str
    session_id: str
    state: str
    turns: list[Turn]


class ExportedEpisode(Outbound):
    uuid: str
    name: str
    content: str
    reference_time: str | None


class ExportedFact(Outbound):
    uuid: str
    text: str
    valid_at: str | None
    invalid_at: str | None


class UserExport(Outbound):
    tenant_id: str
    user_id: str
    name: str | None
    timezone: str | None
    rolling_summary: str | None
    sessions: list[ExportedSession]
    outbox: list[ExportedOutboxEntry]
    episodes: list[ExportedEpisode]
    entities: list[MemoryEntity]
    facts: list[ExportedFact]


class UserDeletion(Outbound):
    tenant_id: str
    user_id: str
    deleted: bool
    redis_keys: int
    graph_nodes: int


class AuditEntry(Outbound):
    at: str
    actor: str
    action: str
    target: str
    outcome: int


class AuditLogView(Outbound):
    # Newest first: the real actions, or with ?rejected=true the calls turned away.
    entries: list[AuditEntry]
    # Calls turned away (no or wrong key or token, another tenant's key, over quota, invalid
    # ids), counted per status code ("401": n); never trimmed, unlike the rejected entries.
    rejected_counts: dict[str, int] | None = None
