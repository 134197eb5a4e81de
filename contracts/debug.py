"""Internal debug endpoints' responses (all under /internal/debug, X-Internal-Token guarded)."""

from typing import Literal

from contracts._base import Outbound
from contracts.brief import Turn

SessionState = Literal["open", "closed", "unknown"]
EntryState = Literal["pending", "retrying", "dead"]
SessionActionStatus = Literal["closed", "empty", "already_closed", "unknown", "active"]


class UsageTotals(Outbound):
    episodes: int
    llm_calls: int
    input_tokens: int
    output_tokens: int


class EpisodeCostView(Outbound):
    episode_uuid: str
    session_id: str
    llm_calls: int
    input_tokens: int
    output_tokens: int
    at: str


class OutboxEntryView(Outbound):
    entry_id: str
    tenant_id: str
    user_id: str
    session_id: str
    generation: int
    state: EntryState
    attempts: int
    last_error: str | None
    created_at: str
    next_attempt_at: str | None
    turns: int
    chunks_done: int
    episode_uuids: list[str]


class DebugSession(Outbound):
    tenant_id: str
    user_id: str
    session_id: str
    state: SessionState
    generation: int
    flushed_generation: int
    persona_id: str | None
    buffered_turns: int
    last_activity: str | None
    closed_at: str | None
    buffer: list[Turn]
    outbox: list[OutboxEntryView]


class SessionSummaryView(Outbound):
    session_id: str
    state: SessionState
    last_activity: str | None
    buffered_turns: int


class DebugUser(Outbound):
    tenant_id: str
    user_id: str
    group_id: str
    name: str | None
    timezone: str | None
    rolling_summary: str | None
    summary_backlog: int
    last_turn_at: str | None
    sessions: list[SessionSummaryView]
    outbox: list[OutboxEntryView]
    recent_episodes: list[str]
    usage: UsageTotals
    recent_costs: list[EpisodeCostView]


class OutboxCounts(Outbound):
    pending: int
    retrying: int
    dead: int


class DebugOutbox(Outbound):
    tenant_id: str
    entries: list[OutboxEntryView]
    counts: OutboxCounts
    usage: UsageTotals


class SessionAction(Outbound):
    session_id: str
    status: SessionActionStatus


class DebugCloseResponse(Outbound):
    sessions: list[SessionAction]


class DebugEmitResponse(Outbound):
    sessions: list[SessionAction]
    # Dead entries put back in the queue for this emit.
    redriven: list[str]
    # False when a janitor held the user's lease: it is flushing them right now.
    flushed_here: bool
    acked: int
    failed: int
    dead: int
    # What is still queued for the user afterwards.
    outbox: list[OutboxEntryView]
