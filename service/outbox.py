"""The durable outbox in Redis: closed sessions wait here until Graphiti has their episodes.

Life of an entry:
- close (explicit, idle sweep, or /session/ingest) atomically renames the session buffer to the
  entry's transcript and appends the entry id to the user's queue;
- one janitor at a time per user holds the user's lease and works the queue in order;
- after every chunk's episode is in Neo4j the entry is acknowledged and only then deleted;
- a failure schedules a retry with exponential backoff (at least Retry-After); after
  `max_attempts` the entry is dead: out of the queue, kept and visible, and can be re-driven.

Every state change that must not interleave with another is one Lua script, and each one the
janitor runs checks the lease token first, so a janitor whose lease expired (it hung, or was
presumed dead) can no longer acknowledge or fail anything.
"""

import secrets
from dataclasses import dataclass
from typing import Literal

from redis.asyncio import Redis

from service import redis_scripts
from service.episodes import TranscriptLine
from service.keys import (
    OUTBOX_DEAD,
    OUTBOX_DUE,
    UserKeys,
    encode,
    entry_key,
    entry_turns_key,
    tenant_entries_key,
)
from service.redis_io import resolved
from service.session_store import decode_turn
from service.usage import (
    RECENT_EPISODE_COSTS,
    EpisodeCost,
    encode_charge,
    user_costs_key,
    user_usage_key,
)


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
            tenant_id=fields["tenantId"],
            user_id=fields["userId"],
            session_id=fields["sessionId"],
            persona_id=fields.get("personaId") or None,
            generation=int(fields.get("generation", "1")),
            state=fields.get("state", "pending"),
            attempts=int(fields.get("attempts", "0")),
            chunks_done=int(fields.get("chunksDone", "0")),
            turn_count=int(fields.get("turns", "0")),
            created_at_ms=int(fields.get("createdAtMs", "0")),
            next_attempt_ms=int(fields.get("nextAttemptMs", "0")),
            last_error=fields.get("lastError") or None,
            episode_uuids=[u for u in fields.get("episodeUuids", "").split(",") if u],
        )


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

    def __init__(self, redis: "Redis") -> None:
        self._redis = redis
        self._acquire = redis.register_script(redis_scripts.ACQUIRE_LEASE)
        self._renew = redis.register_script(redis_scripts.RENEW_LEASE)
        self._schedule = redis.register_script(redis_scripts.SCHEDULE_USER)
        self._release = redis.register_script(redis_scripts.RELEASE_LEASE)
        self._settle = redis.register_script(redis_scripts.SETTLE_IF_EMPTY)
        self._chunk_done = redis.register_script(redis_scripts.CHUNK_DONE)
        self._ack = redis.register_script(redis_scripts.ACK_ENTRY)
        self._fail = redis.register_script(redis_scripts.FAIL_ENTRY)
        self._redrive = redis.register_script(redis_scripts.REDRIVE_ENTRY)
        self._purge_dead = redis.register_script(redis_scripts.PURGE_DEAD_ENTRY)

    # --- the janitor's side -----------------------------------------------------------------

    async def due_users(self, *, now_ms: int, limit: int) -> list[UserKeys]:
        refs = await resolved(
            self._redis.zrangebyscore(OUTBOX_DUE, "-inf", now_ms, start=0, num=limit)
        )
        return [UserKeys.from_ref(ref) for ref in refs]

    async def acquire(self, user: UserKeys, *, ttl_ms: int) -> Lease | None:
        """The user's lease and a fresh fencing token, or None when another process holds it."""
        token = secrets.token_hex(16)
        fence = await self._acquire(
            keys=[user.lease, user.fence, OUTBOX_DUE],
            args=[token, ttl_ms, user.ref, "", self.FENCE_TTL_MS],
        )
        return Lease(user, token, int(fence)) if fence else None

    async def take_over(self, user: UserKeys, *, ttl_ms: int) -> Lease:
        """The user's lease, taken from whoever holds it (a deletion). The holder finds out at
        its next renewal, and its graph writes are refused once this token has written."""
        token = secrets.token_hex(16)
        fence = await self._acquire(
            keys=[user.lease, user.fence, OUTBOX_DUE],
            args=[token, ttl_ms, user.ref, "1", self.FENCE_TTL_MS],
        )
        return Lease(user, token, int(fence))

    async def renew(self, lease: Lease, *, ttl_ms: int) -> bool:
        return bool(
            await self._renew(
                keys=[lease.user.lease, OUTBOX_DUE], args=[lease.token, ttl_ms, lease.user.ref]
            )
        )

    async def release(self, lease: Lease) -> None:
        await self._release(keys=[lease.user.lease], args=[lease.token])

    async def head(self, user: UserKeys) -> OutboxEntry | None:
        entry_id = await resolved(self._redis.lindex(user.outbox, 0))
        if entry_id is None:
            return None
        fields = await resolved(self._redis.hgetall(entry_key(entry_id)))
        if not fields:
            # An id without its entry cannot be flushed; drop it so the queue is not stuck.
            await resolved(self._redis.lrem(user.outbox, 1, entry_id))
            return await self.head(user)
        return OutboxEntry.from_hash(entry_id, fields)

    async def transcript(self, entry_id: str) -> list[TranscriptLine]:
        raw = await resolved(self._redis.lrange(entry_turns_key(entry_id), 0, -1))
        turns = [decode_turn(item) for item in raw]
        return [TranscriptLine(role=t.role, text=t.text, timestamp=t.timestamp) for t in turns]

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
            await self._chunk_done(
                keys=[
                    user.lease,
                    entry_key(entry.entry_id),
                    user.episodes,
                    user_usage_key(user),
                    user_costs_key(user),
                ],
                args=[
                    lease.token,
                    chunks_done,
                    uuid,
                    self.RECENT_EPISODES,
                    charge.llm_calls if charge else 0,
                    charge.input_tokens if charge else 0,
                    charge.output_tokens if charge else 0,
                    encode_charge(charge) if charge else "",
                    RECENT_EPISODE_COSTS,
                ],
            )
        )

    async def ack(self, lease: Lease, entry: OutboxEntry, *, now_ms: int) -> bool:
        user = lease.user
        return bool(
            await self._ack(
                keys=[
                    user.lease,
                    user.outbox,
                    entry_key(entry.entry_id),
                    entry_turns_key(entry.entry_id),
                    OUTBOX_DUE,
                    tenant_entries_key(user.tenant_id),
                    user.session(entry.session_id).meta,
                ],
                args=[lease.token, entry.entry_id, user.ref, now_ms, entry.generation],
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
        state, attempts, next_at = await self._fail(
            keys=[user.lease, entry_key(entry.entry_id), user.outbox, OUTBOX_DUE, OUTBOX_DEAD],
            args=[
                lease.token,
                entry.entry_id,
                user.ref,
                now_ms,
                error[:500],
                max_attempts,
                base_backoff_ms,
                max_backoff_ms,
                "" if retry_after_ms is None else retry_after_ms,
            ],
        )
        return FailOutcome(state=state, attempts=int(attempts), next_attempt_ms=int(next_at))

    async def schedule(self, lease: Lease, *, at_ms: int) -> None:
        """When the user's head entry may next be tried; only while holding the lease."""
        await self._schedule(
            keys=[lease.user.lease, OUTBOX_DUE], args=[lease.token, at_ms, lease.user.ref]
        )

    async def expedite(self, user: UserKeys, *, now_ms: int) -> None:
        """Make every queued entry of the user due now (operators' "emit now")."""
        queued: list[str] = await resolved(self._redis.lrange(user.outbox, 0, -1))
        async with self._redis.pipeline(transaction=True) as pipe:
            for entry_id in queued:
                pipe.hset(entry_key(entry_id), "nextAttemptMs", str(now_ms))
            if queued:
                pipe.zadd(OUTBOX_DUE, {user.ref: now_ms})
            await pipe.execute()

    async def settle_if_empty(self, user: UserKeys) -> None:
        """Drop a user from the due index when their queue is empty."""
        await self._settle(keys=[user.outbox, OUTBOX_DUE], args=[user.ref])

    # --- operators --------------------------------------------------------------------------

    async def redrive(self, entry_id: str, *, now_ms: int) -> UserKeys | None:
        fields = await resolved(self._redis.hgetall(entry_key(entry_id)))
        if not fields:
            return None
        user = UserKeys(fields["tenantId"], fields["userId"])
        moved = await self._redrive(
            keys=[OUTBOX_DEAD, entry_key(entry_id), user.outbox, OUTBOX_DUE],
            args=[entry_id, user.ref, now_ms],
        )
        return user if moved else None

    async def entries_for_tenant(self, tenant_id: str, *, limit: int) -> list[OutboxEntry]:
        ids: list[str] = await resolved(
            self._redis.zrange(tenant_entries_key(tenant_id), 0, limit - 1)
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
        async for entry_id, _ in self._redis.zscan_iter(
            tenant_entries_key(user.tenant_id), match=prefix + "*"
        ):
            ids.add(entry_id)
        return sorted(ids)

    async def purge_dead(self, *, died_before_ms: int, limit: int) -> int:
        """Delete up to `limit` dead letters that died before the cutoff (their retention is
        over), transcripts included. Returns how many were deleted."""
        ids: list[str] = await resolved(
            self._redis.zrangebyscore(OUTBOX_DEAD, "-inf", died_before_ms, start=0, num=limit)
        )
        purged = 0
        for entry_id in ids:
            tenant = await resolved(self._redis.hget(entry_key(entry_id), "tenantId"))
            purged += await self._purge_dead(
                keys=[
                    OUTBOX_DEAD,
                    entry_key(entry_id),
                    entry_turns_key(entry_id),
                    tenant_entries_key(tenant or ""),
                ],
                args=[entry_id],
            )
        return purged

    async def dead_entries(self, *, limit: int) -> list[OutboxEntry]:
        ids: list[str] = await resolved(self._redis.zrange(OUTBOX_DEAD, 0, limit - 1))
        return await self.load(ids)

    async def load(self, ids: list[str]) -> list[OutboxEntry]:
        if not ids:
            return []
        async with self._redis.pipeline(transaction=False) as pipe:
            for entry_id in ids:
                pipe.hgetall(entry_key(entry_id))
            rows: list[dict[str, str]] = await pipe.execute()
        return [OutboxEntry.from_hash(i, row) for i, row in zip(ids, rows, strict=True) if row]
