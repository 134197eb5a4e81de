"""Redis key names: the one place that knows how state is laid out.

Ids are percent-encoded before they become key parts, so any printable id is safe and two
different (tenant, user, session) triples never share a key. Layout per user
`syn:u:<tenant>:<user>`:

- `:profile`        hash: timezone, name, rolling summary, last turn time, last session
- `:sessions`       zset: encoded session id -> last activity (ms); the user's sessions, newest last
- `:s:<session>`    hash: state (open|closed), generation, persona, timestamps
- `:s:<session>:buf`    list: the open generation's transcript, in arrival order
- `:s:<session>:seen`   set: fingerprints of every stored turn (idempotent retries)
- `:s:<session>:recent` list: the session's last turns, kept after close for working memory

Outbox (see service/outbox.py): `:outbox` (list of the user's entry ids, oldest first),
`:lease` (the janitor currently flushing this user), `:fence` (the last lease token handed out;
it outlives a deletion, as part of its tombstone), `:episodes` (the user's latest episode
uuids, for Graphiti's previous-episode context), `syn:ob:e:<entry>` (hash) and
`syn:ob:e:<entry>:turns` (list, the transcript moved out of the session buffer at close).

Global: `syn:idle`, a zset of open sessions scored by last activity, so the janitor finds idle
sessions with one range query instead of scanning keys. Scripts touch several users' keys, so the
deployment is a single Redis primary (with replicas), not Redis Cluster.
"""

from dataclasses import dataclass
from urllib.parse import quote, unquote

IDLE_INDEX = "syn:idle"
# Users with outbox work, scored by when their head entry may next be tried.
OUTBOX_DUE = "syn:ob:due"
# Dead-lettered entries, scored by when they died.
OUTBOX_DEAD = "syn:ob:dead"
ENTRY_PREFIX = "syn:ob:e:"
TENANT_ENTRIES_PREFIX = "syn:ob:tenant:"


def encode(identifier: str) -> str:
    return quote(identifier, safe="")


def decode(part: str) -> str:
    return unquote(part)


@dataclass(frozen=True, slots=True)
class UserKeys:
    tenant_id: str
    user_id: str

    @property
    def prefix(self) -> str:
        return f"syn:u:{encode(self.tenant_id)}:{encode(self.user_id)}"

    @property
    def profile(self) -> str:
        return f"{self.prefix}:profile"

    @property
    def sessions(self) -> str:
        return f"{self.prefix}:sessions"

    @property
    def ref(self) -> str:
        """The user's member in the global outbox index: two encoded ids, space-separated."""
        return f"{encode(self.tenant_id)} {encode(self.user_id)}"

    @property
    def outbox(self) -> str:
        return f"{self.prefix}:outbox"

    @property
    def lease(self) -> str:
        return f"{self.prefix}:lease"

    @property
    def fence(self) -> str:
        """The last lease token handed out for the user (service/graph/fencing.py)."""
        return f"{self.prefix}:fence"

    @property
    def summary_pending(self) -> str:
        """Turns not yet folded into the rolling summary."""
        return f"{self.prefix}:summary_pending"

    @property
    def episodes(self) -> str:
        return f"{self.prefix}:episodes"

    @classmethod
    def from_ref(cls, ref: str) -> "UserKeys":
        tenant, user = ref.split(" ")
        return cls(decode(tenant), decode(user))

    def session(self, session_id: str) -> "SessionKeys":
        return SessionKeys(self, session_id)

    def session_from_member(self, member: str) -> "SessionKeys":
        return SessionKeys(self, decode(member))


@dataclass(frozen=True, slots=True)
class SessionKeys:
    user: UserKeys
    session_id: str

    @property
    def member(self) -> str:
        """The session's entry in the user's `:sessions` zset."""
        return encode(self.session_id)

    @property
    def idle_member(self) -> str:
        """The session's entry in the global idle index: three encoded ids, space-separated."""
        return f"{encode(self.user.tenant_id)} {encode(self.user.user_id)} {self.member}"

    @property
    def meta(self) -> str:
        return f"{self.user.prefix}:s:{self.member}"

    @property
    def buffer(self) -> str:
        return f"{self.meta}:buf"

    @property
    def seen(self) -> str:
        return f"{self.meta}:seen"

    @property
    def recent(self) -> str:
        return f"{self.meta}:recent"

    @classmethod
    def from_idle_member(cls, member: str) -> "SessionKeys":
        tenant, user, session = member.split(" ")
        return cls(UserKeys(decode(tenant), decode(user)), decode(session))


def entry_key(entry_id: str) -> str:
    return ENTRY_PREFIX + entry_id


def entry_turns_key(entry_id: str) -> str:
    return ENTRY_PREFIX + entry_id + ":turns"


def tenant_entries_key(tenant_id: str) -> str:
    return TENANT_ENTRIES_PREFIX + encode(tenant_id)
