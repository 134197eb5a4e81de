"""The field names of every hash the store keeps: the one list both Python and Lua read.

Each enum below is also handed to the Lua scripts as a table of the same name (service/store/
lua.py prepends `local SESSION = {state = 'state', ...}`), so a script writes `SESSION.state`
and a field that exists in one language but not the other fails the first test that runs it.
"""

from enum import StrEnum


class SessionField(StrEnum):
    """`:s:<session>`: one session of one user."""

    state = "state"  # 'open' | 'closed'
    generation = "generation"  # grows each time new turns reopen a closed session
    personaId = "personaId"  # the stored name
    openedAtMs = "openedAtMs"
    closedAtMs = "closedAtMs"
    lastActivityMs = "lastActivityMs"
    flushedGeneration = "flushedGeneration"  # the last generation in the graph


class ProfileField(StrEnum):
    """`:profile`: what Synapse knows about a user outside any one session."""

    tenantId = "tenantId"
    userId = "userId"
    timezone = "timezone"
    name = "name"
    summary = "summary"
    summarySeq = "summarySeq"  # turns ever added to the summary's pending list
    lastTurnMs = "lastTurnMs"
    lastActivityMs = "lastActivityMs"
    life = "life"  # this incarnation of the user: changes when it is deleted and comes back


class EntryField(StrEnum):
    """`:e:<entry>`: one closed session generation waiting for the graph."""

    tenantId = "tenantId"
    userId = "userId"
    sessionId = "sessionId"
    generation = "generation"
    personaId = "personaId"
    state = "state"  # 'pending' | 'retrying' | 'dead'
    attempts = "attempts"
    chunksDone = "chunksDone"
    episodeUuids = "episodeUuids"  # comma-separated, in chunk order
    turns = "turns"
    createdAtMs = "createdAtMs"
    nextAttemptMs = "nextAttemptMs"
    lastAttemptMs = "lastAttemptMs"
    lastError = "lastError"
    diedAtMs = "diedAtMs"


class UsageField(StrEnum):
    """`:usage` of a user or a tenant: LLM spending totals."""

    episodes = "episodes"
    llmCalls = "llmCalls"
    inputTokens = "inputTokens"
    outputTokens = "outputTokens"


class RateField(StrEnum):
    """A tenant's `:rl` token bucket and `:quota` day counter."""

    tokens = "tokens"
    ts = "ts"
    day = "day"
    used = "used"


LUA_TABLES: dict[str, type[StrEnum]] = {
    "SESSION": SessionField,
    "PROFILE": ProfileField,
    "ENTRY": EntryField,
    "USAGE": UsageField,
    "RATE": RateField,
}
