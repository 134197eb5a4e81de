"""Session state in Redis: append turns idempotently, close sessions into the outbox, read
what a brief needs.

Every multi-key change is one Lua script (service/redis_scripts.py), so a turn or a close is
either fully recorded or not at all.
"""

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Literal

import msgspec
from redis.asyncio import Redis

from contracts import Role
from service import redis_scripts
from service.clock import iso_utc
from service.keys import SessionKeys, UserKeys, encode, tenant_entries_key
from service.redis_io import resolved
from service.settings import MAX_WORKING_MEMORY_TURNS

CloseStatus = Literal["closed", "empty", "already_closed", "unknown", "active"]

# Turns kept for the rolling summariser when it falls behind; older ones are dropped from the
# summary's input only (never from the transcript).
SUMMARY_BACKLOG_CAP = 500


class StoredTurn(msgspec.Struct, kw_only=True, omit_defaults=True):
    role: Role
    text: str
    timestamp: str
    message_id: str | None = msgspec.field(default=None, name="messageId")


ScriptArg = str | bytes | int | float

_turn_encoder = msgspec.json.Encoder()
_turn_decoder = msgspec.json.Decoder(StoredTurn)


def decode_turn(raw: str | bytes) -> StoredTurn:
    return _turn_decoder.decode(raw)


@dataclass(frozen=True, slots=True)
class NewTurn:
    role: Role
    text: str
    timestamp: datetime
    message_id: str | None = None


@dataclass(frozen=True, slots=True)
class AppendResult:
    stored: bool
    buffer_size: int
    summary_backlog: int


@dataclass(frozen=True, slots=True)
class CloseResult:
    status: CloseStatus
    entry_id: str | None
    generation: int


@dataclass(frozen=True, slots=True)
class TranscriptResult:
    stored: int
    close: CloseResult


@dataclass(frozen=True, slots=True)
class BriefState:
    timezone: str | None
    name: str | None
    rolling_summary: str | None
    last_turn_ms: int | None
    buffer_size: int
    recent_turns: list[StoredTurn]


def fingerprint(turn: NewTurn) -> str:
    """Identity of a turn for idempotent retries: its messageId, else its full content."""
    if turn.message_id is not None:
        return "m:" + turn.message_id
    content = f"{turn.role}\x1f{iso_utc(turn.timestamp)}\x1f{turn.text}"
    return "c:" + hashlib.sha256(content.encode()).hexdigest()


def _encode_turn(turn: NewTurn) -> bytes:
    stored = StoredTurn(
        role=turn.role,
        text=turn.text,
        timestamp=iso_utc(turn.timestamp),
        message_id=turn.message_id,
    )
    return _turn_encoder.encode(stored)


def _millis(moment: datetime) -> int:
    return int(moment.timestamp() * 1000)


class SessionStore:
    def __init__(self, redis: "Redis", *, retention_seconds: int) -> None:
        self._redis = redis
        self._retention_seconds = retention_seconds
        self._append = redis.register_script(redis_scripts.APPEND_TURN)
        self._close = redis.register_script(redis_scripts.CLOSE_SESSION)
        self._ingest_transcript = redis.register_script(redis_scripts.INGEST_TRANSCRIPT)
        self._read_brief = redis.register_script(redis_scripts.READ_BRIEF)

    async def append_turn(
        self, session: SessionKeys, turn: NewTurn, *, persona_id: str | None, now_ms: int
    ) -> AppendResult:
        user = session.user
        stored, size, backlog = await self._append(
            args=[
                user.prefix,
                session.member,
                session.idle_member,
                fingerprint(turn),
                _encode_turn(turn),
                now_ms,
                min(_millis(turn.timestamp), now_ms),
                persona_id or "",
                user.tenant_id,
                user.user_id,
                MAX_WORKING_MEMORY_TURNS,
                self._retention_seconds,
                SUMMARY_BACKLOG_CAP,
            ]
        )
        return AppendResult(
            stored=bool(stored), buffer_size=int(size), summary_backlog=int(backlog)
        )

    def _close_args(
        self, session: SessionKeys, now_ms: int, cutoff_ms: int | None
    ) -> list[ScriptArg]:
        user = session.user
        return [
            user.prefix,
            session.member,
            session.idle_member,
            user.ref,
            f"{encode(user.tenant_id)}:{encode(user.user_id)}:{session.member}",
            now_ms,
            "" if cutoff_ms is None else cutoff_ms,
            user.tenant_id,
            user.user_id,
            session.session_id,
            tenant_entries_key(user.tenant_id),
        ]

    async def close_session(
        self, session: SessionKeys, *, now_ms: int, idle_cutoff_ms: int | None = None
    ) -> CloseResult:
        """Move an open session's transcript into the outbox. With `idle_cutoff_ms`, only if
        the session has had no activity after that instant (the idle sweep's guard)."""
        status, entry_id, generation = await self._close(
            args=[*self._close_args(session, now_ms, idle_cutoff_ms), self._retention_seconds]
        )
        return CloseResult(status=status, entry_id=entry_id or None, generation=int(generation))

    async def ingest_transcript(
        self,
        session: SessionKeys,
        turns: Sequence[NewTurn],
        *,
        persona_id: str | None,
        now_ms: int,
    ) -> TranscriptResult:
        """Append every turn not stored before and close the session, in one atomic step."""
        args: list[ScriptArg] = [
            *self._close_args(session, now_ms, None),
            MAX_WORKING_MEMORY_TURNS,
            self._retention_seconds,
            SUMMARY_BACKLOG_CAP,
            persona_id or "",
        ]
        for turn in turns:
            args += [fingerprint(turn), _encode_turn(turn), min(_millis(turn.timestamp), now_ms)]
        stored, status, entry_id, generation = await self._ingest_transcript(args=args)
        close = CloseResult(status=status, entry_id=entry_id or None, generation=int(generation))
        return TranscriptResult(stored=int(stored), close=close)

    async def most_recent_open_session(self, user: UserKeys) -> SessionKeys | None:
        members: list[str] = await resolved(self._redis.zrevrange(user.sessions, 0, 49))
        for member in members:
            session = user.session_from_member(member)
            if await resolved(self._redis.hget(session.meta, "state")) == "open":
                return session
        return None

    async def open_sessions(self, user: UserKeys, *, limit: int) -> list[SessionKeys]:
        members: list[str] = await resolved(self._redis.zrevrange(user.sessions, 0, -1))
        sessions = [user.session_from_member(member) for member in members]
        async with self._redis.pipeline(transaction=False) as pipe:
            for session in sessions:
                pipe.hget(session.meta, "state")
            states: list[str | None] = await pipe.execute()
        opened = [s for s, state in zip(sessions, states, strict=True) if state == "open"]
        return opened[:limit]

    async def flushed_generation(self, session: SessionKeys) -> int:
        value = await resolved(self._redis.hget(session.meta, "flushedGeneration"))
        return int(value) if value else 0

    async def idle_sessions(self, *, cutoff_ms: int, limit: int) -> list[SessionKeys]:
        members: list[str] = await resolved(
            self._redis.zrangebyscore("syn:idle", "-inf", cutoff_ms, start=0, num=limit)
        )
        return [SessionKeys.from_idle_member(member) for member in members]

    async def read_brief(self, user: UserKeys, session_id: str | None, *, turns: int) -> BriefState:
        member = user.session(session_id).member if session_id is not None else ""
        profile, buffered, raw_turns = await self._read_brief(args=[user.prefix, member, turns])
        timezone, name, summary, last_turn_ms = profile
        return BriefState(
            timezone=timezone,
            name=name,
            rolling_summary=summary,
            last_turn_ms=int(last_turn_ms) if last_turn_ms is not None else None,
            buffer_size=int(buffered),
            recent_turns=[decode_turn(raw) for raw in raw_turns],
        )

    async def last_turn_ms(self, user: UserKeys) -> int | None:
        value = await resolved(self._redis.hget(user.profile, "lastTurnMs"))
        return int(value) if value else None

    async def remember_timezone(self, user: UserKeys, timezone: str) -> None:
        await resolved(self._redis.hset(user.profile, "timezone", timezone))

    @property
    def redis(self) -> "Redis":
        """For the data-rights deletion, which removes every key this store writes."""
        return self._redis

    # --- operators' views -------------------------------------------------------------------

    async def session_meta(self, session: SessionKeys) -> dict[str, str]:
        meta: dict[str, str] = await resolved(self._redis.hgetall(session.meta))
        return meta

    async def buffered_turns(self, session: SessionKeys) -> list[StoredTurn]:
        raw: list[str] = await resolved(self._redis.lrange(session.buffer, 0, -1))
        return [decode_turn(item) for item in raw]

    async def recent_turns(self, session: SessionKeys) -> list[StoredTurn]:
        raw: list[str] = await resolved(self._redis.lrange(session.recent, 0, -1))
        return [decode_turn(item) for item in raw]

    async def buffer_sizes(self, sessions: list[SessionKeys]) -> list[int]:
        async with self._redis.pipeline(transaction=False) as pipe:
            for session in sessions:
                pipe.llen(session.buffer)
            sizes: list[int] = await pipe.execute()
        return sizes

    async def profile(self, user: UserKeys) -> dict[str, str]:
        fields: dict[str, str] = await resolved(self._redis.hgetall(user.profile))
        return fields

    async def summary_backlog(self, user: UserKeys) -> int:
        return await resolved(self._redis.llen(user.summary_pending))

    async def sessions_by_activity(self, user: UserKeys) -> list[tuple[SessionKeys, int]]:
        """The user's sessions, most recently active first, with that activity (ms)."""
        rows: list[tuple[str, float]] = await resolved(
            self._redis.zrevrange(user.sessions, 0, -1, withscores=True)
        )
        return [(user.session_from_member(member), int(score)) for member, score in rows]

    async def ping(self) -> None:
        await resolved(self._redis.ping())
