"""The durable outbox: closed sessions wait here until Graphiti has their episodes.

Life of an entry:
- close (explicit, idle sweep, or /session/ingest) atomically renames the session buffer to the
  entry's transcript and appends the entry id to the user's queue;
- one janitor at a time per user holds the user's lease and works the queue in order;
- after every chunk's episode is in Neo4j the entry is acknowledged and only then deleted;
- a failure schedules a retry with exponential backoff (at least Retry-After); after
  `max_attempts` the entry is dead: out of the queue, kept and visible, and can be re-driven.

Every state change that must not interleave with another is one script (service/store/lua/),
and each one the janitor runs checks the lease token first, so a janitor whose lease expired
(it hung, or was presumed dead) can no longer acknowledge or fail anything.
"""

import secrets
from dataclasses import dataclass
from typing import Any, Literal

from redis.asyncio import Redis

from service.store import buckets, scripts
from service.store.fields import EntryField
from service.store.io import resolved
from service.store.layout import ALL_BUCKETS, EntryKeys, UserKeys, encode
from service.store.scripts import Scripts
from service.store.sessions import StoredTurn, decode_turn
from service.store.usage import RECENT_EPISODE_COSTS, EpisodeCost, encode_charge


@dataclass(frozen=True, slots=True)
class OutboxEntry:
    entry_id: str
    tenant_id: str
    user_id: str
    session_id: str
    persona_id: str | None
    generation: int
    state: str
    attempts: int
    chunks_done: int
    turn_count: int
    created_at_ms: int
    next_attempt_ms: int
    last_error: str | None
    episode_uuids: list[str]

    @classmethod
    def from_hash(cls, entry_id: str, fields: dict[str, str]) -> "OutboxEntry":
        return cls(
            entry_id=entry_id,
            tenant_id=fields[EntryField.tenantId],
            user_id=fields[EntryField.userId],
            session_id=fields[EntryField.sessionId],
            persona_id=fields.get(EntryField.personaId) or None,
            generation=int(fields.get(EntryField.generation, "1")),
            state=fields.get(EntryField.state, "pending"),
            attempts=int(fields.get(EntryField.attempts, "0")),
            chunks_done=int(fields.get(EntryField.chunksDone, "0")),
            turn_count=int(fields.get(EntryField.turns, "0")),
            created_at_ms=int(fields.get(EntryField.createdAtMs, "0")),
            next_attempt_ms=int(fields.get(EntryField.nextAttemptMs, "0")),
            last_error=fields.get(EntryField.lastError) or None,
            episode_uuids=[u for u in fields.get(EntryField.episodeUuids, "").split(",") if u],
        )


# Users whose queues the scrape-time depth reads per pipeline.
DEPTH_BATCH = 1000


@dataclass(frozen=True, slots=True)
class OutboxDepth:
    pending: int
    retrying: int
    dead: int


@dataclass(frozen=True, slots=True)
class FailOutcome:
    state: Literal["retrying", "dead", "lost"]
    attempts: int
    next_attempt_ms: int


@dataclass(frozen=True, slots=True)
class Lease:
    user: UserKeys
    token: str
    # The fencing token every graph write under this lease carries (service/graph/fencing.py).
    fence: int


class Outbox:
    # How many of a user's latest episode uuids are kept for Graphiti's previous-episode context.
    RECENT_EPISODES = 5
    # A lease token outlives its lease by this much: consecutive tokens of a user must grow
    # even when two leases are taken within the same millisecond.
    FENCE_TTL_MS = 24 * 3600 * 1000

    def __init__(self, redis: "Redis", scripts: Scripts) -> None:
        self._redis = redis
        self._scripts = scripts

    # --- the janitor's side -----------------------------------------------------------------

    async def due_users(self, *, now_ms: int, limit: int) -> list[UserKeys]:
        """Up to `limit` users whose head entry is due, from every bucket, longest due first."""
        due = await buckets.lowest(
            self._redis, lambda bucket: bucket.outbox_due, limit=limit, max_score=now_ms
        )
        return [UserKeys.from_ref(ref) for ref in due]

    async def _lease(self, user: UserKeys, *, ttl_ms: int, steal: bool) -> Lease | None:
        token = secrets.token_hex(16)
        fence = await self._scripts[scripts.ACQUIRE_LEASE](
            {"lease": user.lease, "fence": user.fence, "due": user.bucket.outbox_due},
            {
                "token": token,
                "ttl_ms": ttl_ms,
                "user_ref": user.ref,
                "steal": "1" if steal else "",
                "fence_ttl_ms": self.FENCE_TTL_MS,
            },
        )
        return Lease(user, token, int(fence)) if fence else None

    async def acquire(self, user: UserKeys, *, ttl_ms: int) -> Lease | None:
        """The user's lease and a fresh fencing token, or None when another process holds it."""
        return await self._lease(user, ttl_ms=ttl_ms, steal=False)

    async def take_over(self, user: UserKeys, *, ttl_ms: int) -> Lease:
        """The user's lease, taken from whoever holds it (a deletion). The holder finds out at
        its next renewal, and its graph writes are refused once this token has written."""
        lease = await self._lease(user, ttl_ms=ttl_ms, steal=True)
        if lease is None:
            raise RuntimeError("acquire_lease refused a steal, which it never does")
        return lease

    async def renew(self, lease: Lease, *, ttl_ms: int) -> bool:
        user = lease.user
        return bool(
            await self._scripts[scripts.RENEW_LEASE](
                {"lease": user.lease, "due": user.bucket.outbox_due},
                {"token": lease.token, "ttl_ms": ttl_ms, "user_ref": user.ref},
            )
        )

    async def release(self, lease: Lease) -> None:
        await self._scripts[scripts.RELEASE_LEASE](
            {"lease": lease.user.lease}, {"token": lease.token}
        )

    async def head(self, user: UserKeys) -> OutboxEntry | None:
        entry_id = await resolved(self._redis.lindex(user.outbox, 0))
        if entry_id is None:
            return None
        fields = await resolved(self._redis.hgetall(user.entry(entry_id).hash))
        if not fields:
            # An id without its entry cannot be flushed; drop it so the queue is not stuck.
            await resolved(self._redis.lrem(user.outbox, 1, entry_id))
            return await self.head(user)
        return OutboxEntry.from_hash(entry_id, fields)

    async def transcript(self, entry: OutboxEntry) -> list[StoredTurn]:
        keys = EntryKeys(UserKeys(entry.tenant_id, entry.user_id), entry.entry_id)
        raw = await resolved(self._redis.lrange(keys.turns, 0, -1))
        return [decode_turn(item) for item in raw]

    async def recent_episodes(self, user: UserKeys) -> list[str]:
        episodes: list[str] = await resolved(self._redis.lrange(user.episodes, 0, -1))
        return episodes

    async def chunk_done(
        self,
        lease: Lease,
        entry: OutboxEntry,
        chunks_done: int,
        uuid: str,
        charge: EpisodeCost | None,
    ) -> bool:
        """Record a chunk's episode, and book its charge to the user, if the lease is still
        held; False (nothing written) otherwise."""
        user = lease.user
        return bool(
            await self._scripts[scripts.CHUNK_DONE](
                {
                    "lease": user.lease,
                    "entry": user.entry(entry.entry_id).hash,
                    "episodes": user.episodes,
                    "usage": user.usage,
                    "costs": user.costs,
                },
                {
                    "token": lease.token,
                    "chunks_done": chunks_done,
                    "episode_uuid": uuid,
                    "keep": self.RECENT_EPISODES,
                    "llm_calls": charge.llm_calls if charge else 0,
                    "input_tokens": charge.input_tokens if charge else 0,
                    "output_tokens": charge.output_tokens if charge else 0,
                    "cost": encode_charge(charge).decode() if charge else "",
                    "costs_keep": RECENT_EPISODE_COSTS,
                },
            )
        )

    async def ack(self, lease: Lease, entry: OutboxEntry, *, now_ms: int) -> bool:
        user = lease.user
        keys = user.entry(entry.entry_id)
        return bool(
            await self._scripts[scripts.ACK_ENTRY](
                {
                    "lease": user.lease,
                    "outbox": user.outbox,
                    "entry": keys.hash,
                    "entry_turns": keys.turns,
                    "due": user.bucket.outbox_due,
                    "tenant_entries": user.tenant_entries,
                    "meta": user.session(entry.session_id).meta,
                },
                {
                    "token": lease.token,
                    "entry_id": entry.entry_id,
                    "user_ref": user.ref,
                    "now_ms": now_ms,
                    "generation": entry.generation,
                },
            )
        )

    async def fail(
        self,
        lease: Lease,
        entry: OutboxEntry,
        *,
        error: str,
        now_ms: int,
        max_attempts: int,
        base_backoff_ms: int,
        max_backoff_ms: int,
        retry_after_ms: int | None,
    ) -> FailOutcome:
        user = lease.user
        state, attempts, next_at = await self._scripts[scripts.FAIL_ENTRY](
            {
                "lease": user.lease,
                "entry": user.entry(entry.entry_id).hash,
                "outbox": user.outbox,
                "due": user.bucket.outbox_due,
                "dead": user.bucket.outbox_dead,
            },
            {
                "token": lease.token,
                "entry_id": entry.entry_id,
                "user_ref": user.ref,
                "now_ms": now_ms,
                "error": error[:500],
                "max_attempts": max_attempts,
                "base_ms": base_backoff_ms,
                "cap_ms": max_backoff_ms,
                "retry_after_ms": "" if retry_after_ms is None else retry_after_ms,
            },
        )
        return FailOutcome(state=state, attempts=int(attempts), next_attempt_ms=int(next_at))

    async def schedule(self, lease: Lease, *, at_ms: int) -> None:
        """When the user's head entry may next be tried; only while holding the lease."""
        user = lease.user
        await self._scripts[scripts.SCHEDULE_USER](
            {"lease": user.lease, "due": user.bucket.outbox_due},
            {"token": lease.token, "at_ms": at_ms, "user_ref": user.ref},
        )

    async def expedite(self, user: UserKeys, *, now_ms: int) -> None:
        """Make every queued entry of the user due now (operators' "emit now")."""
        queued: list[str] = await resolved(self._redis.lrange(user.outbox, 0, -1))
        if not queued:
            return
        await self._scripts[scripts.EXPEDITE](
            {"due": user.bucket.outbox_due},
            {"now_ms": now_ms, "user_ref": user.ref},
            rest=[user.entry(entry_id).hash for entry_id in queued],
        )

    async def settle_if_empty(self, user: UserKeys) -> None:
        """Drop a user from the due index when their queue is empty."""
        await self._scripts[scripts.SETTLE_IF_EMPTY](
            {"outbox": user.outbox, "due": user.bucket.outbox_due}, {"user_ref": user.ref}
        )

    # --- operators --------------------------------------------------------------------------

    async def redrive(self, entry_id: str, *, now_ms: int) -> UserKeys | None:
        keys = EntryKeys.from_id(entry_id)
        user = keys.user
        moved = await self._scripts[scripts.REDRIVE_ENTRY](
            {
                "dead": user.bucket.outbox_dead,
                "entry": keys.hash,
                "outbox": user.outbox,
                "due": user.bucket.outbox_due,
            },
            {"entry_id": entry_id, "user_ref": user.ref, "now_ms": now_ms},
        )
        return user if moved else None

    async def entries_for_tenant(self, tenant_id: str, *, limit: int) -> list[OutboxEntry]:
        """The tenant's oldest `limit` entries, queued or dead, from every bucket."""
        ids = await buckets.lowest(
            self._redis, lambda bucket: bucket.tenant_entries(tenant_id), limit=limit
        )
        return await self.load(ids)

    async def entries_for_user(self, user: UserKeys) -> list[OutboxEntry]:
        queued: list[str] = await resolved(self._redis.lrange(user.outbox, 0, -1))
        return await self.load(queued)

    async def user_entry_ids(self, user: UserKeys) -> list[str]:
        """Every entry of the user, queued or dead, without reading the tenant's other entries:
        ids start with the user's encoded ids, which contain no glob characters."""
        prefix = f"{encode(user.tenant_id)}:{encode(user.user_id)}:"
        ids: set[str] = set(await resolved(self._redis.lrange(user.outbox, 0, -1)))
        async for entry_id, _ in self._redis.zscan_iter(user.tenant_entries, match=prefix + "*"):
            ids.add(entry_id)
        return sorted(ids)

    async def purge_dead(self, *, died_before_ms: int, limit: int) -> int:
        """Delete up to `limit` dead letters that died before the cutoff (their retention is
        over), transcripts included. Returns how many were deleted."""
        expired = await buckets.lowest(
            self._redis, lambda bucket: bucket.outbox_dead, limit=limit, max_score=died_before_ms
        )
        purged = 0
        for entry_id in expired:
            keys = EntryKeys.from_id(entry_id)
            user = keys.user
            purged += await self._scripts[scripts.PURGE_DEAD_ENTRY](
                {
                    "dead": user.bucket.outbox_dead,
                    "entry": keys.hash,
                    "entry_turns": keys.turns,
                    "tenant_entries": user.tenant_entries,
                },
                {"entry_id": entry_id},
            )
        return purged

    async def dead_entries(self, *, limit: int) -> list[OutboxEntry]:
        """The `limit` oldest dead letters, from every bucket."""
        return await self.load(
            await buckets.lowest(self._redis, lambda bucket: bucket.outbox_dead, limit=limit)
        )

    async def load(self, ids: list[str]) -> list[OutboxEntry]:
        if not ids:
            return []
        async with self._redis.pipeline(transaction=False) as pipe:
            for entry_id in ids:
                pipe.hgetall(EntryKeys.from_id(entry_id).hash)
            rows: list[dict[str, str]] = await pipe.execute()
        return [OutboxEntry.from_hash(i, row) for i, row in zip(ids, rows, strict=True) if row]

    async def depth(self) -> "OutboxDepth":
        """Queued entries (and how many of them wait for a retry) and dead letters, over every
        bucket. Only a user's head entry can be retrying: entries are flushed in order and a
        failure reschedules the head. Read at scrape time, without a script: the users to look
        at are only known once the due index is read."""
        async with self._redis.pipeline(transaction=False) as pipe:
            for bucket in ALL_BUCKETS:
                pipe.zrange(bucket.outbox_due, 0, -1)
                pipe.zcard(bucket.outbox_dead)
            rows: list[Any] = await pipe.execute()
        users = [UserKeys.from_ref(ref) for refs in rows[0::2] for ref in refs]
        dead = sum(int(n) for n in rows[1::2])
        queued = retrying = 0
        for start in range(0, len(users), DEPTH_BATCH):
            batch = users[start : start + DEPTH_BATCH]
            async with self._redis.pipeline(transaction=False) as pipe:
                for user in batch:
                    pipe.llen(user.outbox)
                    pipe.lindex(user.outbox, 0)
                counts: list[Any] = await pipe.execute()
            heads = [(user, head) for user, head in zip(batch, counts[1::2], strict=True) if head]
            queued += sum(int(n) for n in counts[0::2])
            async with self._redis.pipeline(transaction=False) as pipe:
                for user, head in heads:
                    pipe.hget(user.entry(head).hash, EntryField.state)
                states: list[str | None] = await pipe.execute()
            retrying += sum(1 for state in states if state == "retrying")
        return OutboxDepth(pending=queued - retrying, retrying=retrying, dead=dead)
