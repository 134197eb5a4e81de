"""Every script the store runs, with the keys each receives (see service/store/lua.py)."""

from redis.asyncio import Redis

from service.store.lua import Replication, ScriptSpec, StoreScript

_APPEND_KEYS = ("meta", "buf", "seen", "recent", "profile", "sessions", "pending", "idle")
_CLOSE_KEYS = (
    "meta",
    "buf",
    "sessions",
    "idle",
    "outbox",
    "due",
    "tenant_entries",
    "entry",
    "entry_turns",
)

APPEND_TURN = ScriptSpec("append_turn", _APPEND_KEYS, uses=("append_turn",))
CLOSE_SESSION = ScriptSpec("close_session", _CLOSE_KEYS, uses=("close_session",))
INGEST_TRANSCRIPT = ScriptSpec(
    "ingest_transcript",
    tuple(dict.fromkeys(_APPEND_KEYS + _CLOSE_KEYS)),
    uses=("append_turn", "close_session"),
)
FORGET_SESSIONS = ScriptSpec("forget_sessions", ("sessions",), rest="stale")
READ_BRIEF = ScriptSpec(
    "read_brief", ("profile", "sessions", "buf", "recent"), waits_for_replicas=False
)

ACQUIRE_LEASE = ScriptSpec("acquire_lease", ("lease", "fence", "due"))
RENEW_LEASE = ScriptSpec("renew_lease", ("lease", "due"))
SCHEDULE_USER = ScriptSpec("schedule_user", ("lease", "due"))
RELEASE_LEASE = ScriptSpec("release_lease", ("lease",))
SETTLE_IF_EMPTY = ScriptSpec("settle_if_empty", ("outbox", "due"))
CHUNK_DONE = ScriptSpec("chunk_done", ("lease", "entry", "episodes", "usage", "costs"))
ACK_ENTRY = ScriptSpec(
    "ack_entry", ("lease", "outbox", "entry", "entry_turns", "due", "tenant_entries", "meta")
)
FAIL_ENTRY = ScriptSpec("fail_entry", ("lease", "entry", "outbox", "due", "dead"))
PURGE_DEAD_ENTRY = ScriptSpec(
    "purge_dead_entry", ("dead", "entry", "entry_turns", "tenant_entries")
)
REDRIVE_ENTRY = ScriptSpec("redrive_entry", ("dead", "entry", "outbox", "due"))
EXPEDITE = ScriptSpec("expedite", ("due",), rest="entries")

READ_SUMMARY_INPUT = ScriptSpec(
    "read_summary_input", ("pending", "profile"), waits_for_replicas=False
)
CONSUME_SUMMARY_LINES = ScriptSpec("consume_summary_lines", ("pending", "profile"))

# Counters, not acknowledged writes: a failover may lose a few of their latest increments, and
# waiting for replicas on every request's admission would tax the hot path for nothing.
ADMIT = ScriptSpec("admit", ("rate", "quota"), waits_for_replicas=False)
ADD_USAGE = ScriptSpec("add_usage", ("usage",), waits_for_replicas=False)
DELETE_USER = ScriptSpec("delete_user", ("idle", "due", "dead", "tenant_entries"), rest="doomed")

ALL_SPECS = (
    APPEND_TURN,
    CLOSE_SESSION,
    INGEST_TRANSCRIPT,
    FORGET_SESSIONS,
    READ_BRIEF,
    ACQUIRE_LEASE,
    RENEW_LEASE,
    SCHEDULE_USER,
    RELEASE_LEASE,
    SETTLE_IF_EMPTY,
    CHUNK_DONE,
    ACK_ENTRY,
    FAIL_ENTRY,
    PURGE_DEAD_ENTRY,
    REDRIVE_ENTRY,
    EXPEDITE,
    READ_SUMMARY_INPUT,
    CONSUME_SUMMARY_LINES,
    ADMIT,
    ADD_USAGE,
    DELETE_USER,
)


class Scripts:
    """The process's registered scripts, one per spec, created once with the client."""

    def __init__(self, redis: "Redis", replication: Replication) -> None:
        self._by_name = {spec.name: StoreScript(redis, spec, replication) for spec in ALL_SPECS}

    def __getitem__(self, spec: ScriptSpec) -> StoreScript:
        return self._by_name[spec.name]
