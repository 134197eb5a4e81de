"""Redis key names: the one place that knows how state is laid out.

Every key of one user carries the hash tag of the user's *bucket* (`{b042}`), one of BUCKETS
fixed buckets chosen by a hash of the user's ids. The indexes that span users (idle sessions,
users with outbox work, dead letters, a tenant's entries) are sharded into the same buckets, so a
per-user script and the index entries it maintains live in one hash slot: on Redis Cluster every
script still runs atomically on one node, and the sweep and the pump walk the buckets.

Ids are percent-encoded before they become key parts, so any printable id is safe (an encoded
part holds no `:`, space, `{` or `}`) and two different (tenant, user, session) triples never
share a key. Per user, under `syn:{bNNN}:u:<tenant>:<user>`:

- `:profile`        hash (ProfileField): timezone, name, rolling summary, last turn, incarnation
- `:sessions`       zset: encoded session id -> last activity (ms); the user's sessions
- `:s:<session>`    hash (SessionField): state (open|closed), generation, persona, timestamps
- `:s:<session>:buf`    list: the open generation's transcript, in arrival order
- `:s:<session>:seen`   set: fingerprints of every stored turn (idempotent retries)
- `:s:<session>:recent` list: the session's last turns, kept after close for working memory
- `:outbox`         list: the user's queued outbox entry ids, oldest first
- `:e:<entry>`      hash (EntryField), and `:e:<entry>:turns` (list): an outbox entry and the
                    transcript moved out of the session buffer at close
- `:lease`, `:fence` the janitor flushing the user, and the last fencing token handed out (it
                    outlives a deletion, as part of its tombstone: service/graph/fencing.py)
- `:episodes`       list: the latest episode uuids, for Graphiti's previous-episode context
- `:summary_pending` list: turns not yet folded into the rolling summary
- `:usage`, `:costs` the user's LLM totals (hash) and latest episodes' costs (list)

Per bucket, under `syn:{bNNN}`: `:idle` (zset of open sessions by last activity), `:ob:due`
(users with outbox work, by when their head entry may next be tried), `:ob:dead` (dead letters
by when they died), `:ob:tenant:<tenant>` (a tenant's entries in this bucket, by creation).

Per tenant, under `syn:{t:<tenant>}`: `:rl` (request token bucket), `:quota` (today's turns),
`:usage` (LLM totals). Global: the audit streams, the janitors' counters, the graph-prepare lock.

BUCKETS is part of the stored format: changing it moves users to other buckets, so it is a
constant, not a setting (256: enough slots to spread over many masters, few enough that walking
every bucket is one pipelined round trip per node).
"""

import zlib
from dataclasses import dataclass
from typing import Final
from urllib.parse import quote, unquote

BUCKETS: Final = 256

AUDIT_STREAM: Final = "syn:audit"
REJECTED_STREAM: Final = "syn:audit:rejected"
REJECTED_COUNTS: Final = "syn:audit:rejected:counts"
JANITOR_COUNTERS: Final = "syn:metrics:janitor"
GRAPH_PREPARE_LOCK: Final = "syn:lock:graph-prepare"


def janitor_health_key(host: str) -> str:
    """arq's health-check key of one janitor process, in the job queue's Redis: one per process,
    because with arq's shared per-queue key one live replica would vouch for a dead one, and any
    replica shutting down would delete it for all."""
    return f"arq:janitor:health-check:{host}"


def encode(identifier: str) -> str:
    return quote(identifier, safe="")


def decode(part: str) -> str:
    return unquote(part)


def replication_marker(key: str) -> str:
    """A counter in `key`'s hash slot that a replicated write increments (service/store/lua.py):
    `syn:{tag}:replicated` for a key tagged `{tag}`."""
    start = key.index("{")
    return f"syn:{key[start : key.index('}', start) + 1]}:replicated"


def bucket_of(tenant_id: str, user_id: str) -> int:
    """The user's bucket: a stable hash of the encoded ids (CRC-32, the same on every host)."""
    return zlib.crc32(f"{encode(tenant_id)} {encode(user_id)}".encode()) % BUCKETS


@dataclass(frozen=True, slots=True)
class Bucket:
    index: int

    @property
    def prefix(self) -> str:
        return f"syn:{{b{self.index:03d}}}"

    @property
    def idle(self) -> str:
        return f"{self.prefix}:idle"

    @property
    def outbox_due(self) -> str:
        return f"{self.prefix}:ob:due"

    @property
    def outbox_dead(self) -> str:
        return f"{self.prefix}:ob:dead"

    def tenant_entries(self, tenant_id: str) -> str:
        return f"{self.prefix}:ob:tenant:{encode(tenant_id)}"


ALL_BUCKETS: Final = tuple(Bucket(i) for i in range(BUCKETS))


@dataclass(frozen=True, slots=True)
class TenantKeys:
    tenant_id: str

    @property
    def prefix(self) -> str:
        return f"syn:{{t:{encode(self.tenant_id)}}}"

    @property
    def rate(self) -> str:
        return f"{self.prefix}:rl"

    @property
    def quota(self) -> str:
        return f"{self.prefix}:quota"

    @property
    def usage(self) -> str:
        return f"{self.prefix}:usage"


@dataclass(frozen=True, slots=True)
class UserKeys:
    tenant_id: str
    user_id: str

    @property
    def bucket(self) -> Bucket:
        return ALL_BUCKETS[bucket_of(self.tenant_id, self.user_id)]

    @property
    def prefix(self) -> str:
        return f"{self.bucket.prefix}:u:{encode(self.tenant_id)}:{encode(self.user_id)}"

    @property
    def ref(self) -> str:
        """The user's member in the bucket's outbox index: two encoded ids, space-separated."""
        return f"{encode(self.tenant_id)} {encode(self.user_id)}"

    @property
    def profile(self) -> str:
        return f"{self.prefix}:profile"

    @property
    def sessions(self) -> str:
        return f"{self.prefix}:sessions"

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
        return f"{self.prefix}:summary_pending"

    @property
    def episodes(self) -> str:
        return f"{self.prefix}:episodes"

    @property
    def usage(self) -> str:
        return f"{self.prefix}:usage"

    @property
    def costs(self) -> str:
        return f"{self.prefix}:costs"

    def own_keys(self) -> tuple[str, ...]:
        """Every per-user key that is not a session's or an entry's, except `:fence` (a
        deletion keeps it as its tombstone) and `:lease` (the deletion holds it, and releases it
        at the end). A new per-user key goes here, so that a deletion removes it."""
        return (
            self.profile,
            self.sessions,
            self.outbox,
            self.summary_pending,
            self.episodes,
            self.usage,
            self.costs,
        )

    @property
    def tenant_entries(self) -> str:
        return self.bucket.tenant_entries(self.tenant_id)

    @classmethod
    def from_ref(cls, ref: str) -> "UserKeys":
        tenant, user = ref.split(" ")
        return cls(decode(tenant), decode(user))

    def session(self, session_id: str) -> "SessionKeys":
        return SessionKeys(self, session_id)

    def session_from_member(self, member: str) -> "SessionKeys":
        return SessionKeys(self, decode(member))

    def entry(self, entry_id: str) -> "EntryKeys":
        return EntryKeys(self, entry_id)

    def new_entry_id(self, session: "SessionKeys", nonce: str) -> str:
        return f"{encode(self.tenant_id)}:{encode(self.user_id)}:{session.member}:{nonce}"


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
        """The session's entry in its bucket's idle index: three encoded ids, space-separated."""
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

    def all_keys(self) -> tuple[str, ...]:
        return (self.meta, self.buffer, self.seen, self.recent)

    @classmethod
    def from_idle_member(cls, member: str) -> "SessionKeys":
        tenant, user, session = member.split(" ")
        return cls(UserKeys(decode(tenant), decode(user)), decode(session))


@dataclass(frozen=True, slots=True)
class EntryKeys:
    """An outbox entry's keys. Its id starts with the user's encoded ids, so the id alone names
    the user (and so the bucket): an operator's re-drive needs nothing else."""

    user: UserKeys
    entry_id: str

    @property
    def hash(self) -> str:
        return f"{self.user.prefix}:e:{self.entry_id}"

    @property
    def turns(self) -> str:
        return f"{self.hash}:turns"

    def all_keys(self) -> tuple[str, ...]:
        return (self.hash, self.turns)

    @classmethod
    def from_id(cls, entry_id: str) -> "EntryKeys":
        tenant, user, _ = entry_id.split(":", 2)
        return cls(UserKeys(decode(tenant), decode(user)), entry_id)
