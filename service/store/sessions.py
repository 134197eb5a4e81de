"""Sessions: append turns idempotently, close sessions into the outbox, read what a brief needs.

Every multi-key change is one script (service/store/lua/), so a turn or a close is either fully
recorded or not at all.
"""

import hashlib
import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Literal

import msgspec
from redis.asyncio import Redis

from contracts import Role
from service.clock import iso_utc
from service.settings import MAX_WORKING_MEMORY_TURNS
from service.store import buckets, scripts
from service.store.fields import ProfileField, SessionField
from service.store.io import resolved
from service.store.layout import SessionKeys, UserKeys
from service.store.lua import Payload
from service.store.scripts import Scripts

CloseStatus = Literal["closed", "empty", "already_closed", "unknown", "active"]

# Turns kept for the rolling summariser when it falls behind; older ones are dropped from the
# summary's input only (never from the transcript).
SUMMARY_BACKLOG_CAP = 500


class StoredTurn(msgspec.Struct, kw_only=True, omit_defaults=True):
    role: Role
    text: str
    timestamp: str
    message_id: str | None = msgspec.field(default=None, name="messageId")


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
    def __init__(self, redis: "Redis", scripts: Scripts, *, retention_seconds: int) -> None:
        self._redis = redis
        self._scripts = scripts
        self._retention_seconds = retention_seconds

    def _append_keys(self, session: SessionKeys) -> dict[str, str]:
        user = session.user
        return {
            "meta": session.meta,
            "buf": session.buffer,
            "seen": session.seen,
            "recent": session.recent,
            "profile": user.profile,
            "sessions": user.sessions,
            "pending": user.summary_pending,
            "idle": user.bucket.idle,
        }

    def _append_args(
        self, session: SessionKeys, persona_id: str | None, now_ms: int
    ) -> dict[str, str | int]:
        user = session.user
        return {
            "member": session.member,
            "idle_member": session.idle_member,
            "now_ms": now_ms,
            "persona": persona_id or "",
            "tenant": user.tenant_id,
            "user": user.user_id,
            "recent_cap": MAX_WORKING_MEMORY_TURNS,
            "retention": self._retention_seconds,
            "summary_cap": SUMMARY_BACKLOG_CAP,
        }

    def _close_keys(self, session: SessionKeys, entry_id: str) -> dict[str, str]:
        user = session.user
        entry = user.entry(entry_id)
        return {
            "meta": session.meta,
            "buf": session.buffer,
            "sessions": user.sessions,
            "idle": user.bucket.idle,
            "outbox": user.outbox,
            "due": user.bucket.outbox_due,
            "tenant_entries": user.tenant_entries,
            "entry": entry.hash,
            "entry_turns": entry.turns,
        }

    def _close_args(
        self, session: SessionKeys, entry_id: str, now_ms: int, cutoff_ms: int | None
    ) -> dict[str, str | int]:
        user = session.user
        return {
            "member": session.member,
            "idle_member": session.idle_member,
            "user_ref": user.ref,
            "entry_id": entry_id,
            "now_ms": now_ms,
            "cutoff_ms": "" if cutoff_ms is None else cutoff_ms,
            "tenant": user.tenant_id,
            "user": user.user_id,
            "session": session.session_id,
            "retention": self._retention_seconds,
        }

    @staticmethod
    def _new_entry_id(session: SessionKeys) -> str:
        # Used only if this close creates an entry; a close that finds the session already
        # closed creates nothing, so a retried close never makes a second entry.
        return session.user.new_entry_id(session, secrets.token_hex(6))

    async def append_turn(
        self, session: SessionKeys, turn: NewTurn, *, persona_id: str | None, now_ms: int
    ) -> AppendResult:
        stored, size, backlog = await self._scripts[scripts.APPEND_TURN](
            self._append_keys(session),
            self._append_args(session, persona_id, now_ms),
            [fingerprint(turn), _encode_turn(turn), min(_millis(turn.timestamp), now_ms)],
        )
        return AppendResult(
            stored=bool(stored), buffer_size=int(size), summary_backlog=int(backlog)
        )

    async def close_session(
        self, session: SessionKeys, *, now_ms: int, idle_cutoff_ms: int | None = None
    ) -> CloseResult:
        """Move an open session's transcript into the outbox. With `idle_cutoff_ms`, only if
        the session has had no activity after that instant (the idle sweep's guard)."""
        entry_id = self._new_entry_id(session)
        status, created, generation, *stale = await self._scripts[scripts.CLOSE_SESSION](
            self._close_keys(session, entry_id),
            self._close_args(session, entry_id, now_ms, idle_cutoff_ms),
        )
        await self._forget(session.user, stale)
        return CloseResult(status=status, entry_id=created or None, generation=int(generation))

    async def ingest_transcript(
        self,
        session: SessionKeys,
        turns: Sequence[NewTurn],
        *,
        persona_id: str | None,
        now_ms: int,
    ) -> TranscriptResult:
        """Append every turn not stored before and close the session, in one atomic step."""
        entry_id = self._new_entry_id(session)
        payloads: list[Payload] = []
        for turn in turns:
            payloads += [
                fingerprint(turn),
                _encode_turn(turn),
                min(_millis(turn.timestamp), now_ms),
            ]
        stored, status, created, generation, *stale = await self._scripts[
            scripts.INGEST_TRANSCRIPT
        ](
            self._append_keys(session) | self._close_keys(session, entry_id),
            self._append_args(session, persona_id, now_ms)
            | self._close_args(session, entry_id, now_ms, None),
            payloads,
        )
        await self._forget(session.user, stale)
        close = CloseResult(status=status, entry_id=created or None, generation=int(generation))
        return TranscriptResult(stored=int(stored), close=close)

    async def _forget(self, user: UserKeys, members: list[str]) -> None:
        """Drop sessions past their retention from the user's index (their keys expire on their
        own); the script skips any that was reopened since it was listed."""
        if not members:
            return
        sessions = [user.session_from_member(member) for member in members]
        await self._scripts[scripts.FORGET_SESSIONS](
            {"sessions": user.sessions},
            {},
            members,
            rest=[key for s in sessions for key in (s.meta, s.seen, s.recent)],
        )

    async def most_recent_open_session(self, user: UserKeys) -> SessionKeys | None:
        members: list[str] = await resolved(self._redis.zrevrange(user.sessions, 0, 49))
        for member in members:
            session = user.session_from_member(member)
            if await resolved(self._redis.hget(session.meta, SessionField.state)) == "open":
                return session
        return None

    async def open_sessions(self, user: UserKeys, *, limit: int) -> list[SessionKeys]:
        members: list[str] = await resolved(self._redis.zrevrange(user.sessions, 0, -1))
        sessions = [user.session_from_member(member) for member in members]
        async with self._redis.pipeline(transaction=False) as pipe:
            for session in sessions:
                pipe.hget(session.meta, SessionField.state)
            states: list[str | None] = await pipe.execute()
        opened = [s for s, state in zip(sessions, states, strict=True) if state == "open"]
        return opened[:limit]

    async def flushed_generation(self, session: SessionKeys) -> int:
        value = await resolved(self._redis.hget(session.meta, SessionField.flushedGeneration))
        return int(value) if value else 0

    async def idle_sessions(self, *, cutoff_ms: int, limit: int) -> list[SessionKeys]:
        """Up to `limit` sessions idle since before the cutoff, from every bucket, the longest
        idle first."""
        idle = await buckets.lowest(
            self._redis, lambda bucket: bucket.idle, limit=limit, max_score=cutoff_ms
        )
        return [SessionKeys.from_idle_member(member) for member in idle]

    async def open_session_count(self) -> int:
        return await buckets.size(self._redis, lambda bucket: bucket.idle)

    async def read_brief(self, user: UserKeys, session_id: str | None, *, turns: int) -> BriefState:
        if session_id is not None:
            session, member = user.session(session_id), user.session(session_id).member
        else:
            newest: list[str] = await resolved(self._redis.zrevrange(user.sessions, 0, 0))
            member = newest[0] if newest else ""
            # With no session at all the script reads only the profile; the keys passed for the
            # session are the user's own (same slot) and are not read.
            session = user.session_from_member(member)
        profile, buffered, raw_turns, fallback = await self._scripts[scripts.READ_BRIEF](
            {
                "profile": user.profile,
                "sessions": user.sessions,
                "buf": session.buffer,
                "recent": session.recent,
            },
            {"member": member, "n": turns},
        )
        if fallback:
            # An empty or new session: continue from the user's most recent other session.
            other = user.session_from_member(fallback)
            raw_turns = await resolved(self._redis.lrange(other.recent, -turns, -1))
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
        value = await resolved(self._redis.hget(user.profile, ProfileField.lastTurnMs))
        return int(value) if value else None

    async def remember_timezone(self, user: UserKeys, timezone: str) -> None:
        await resolved(self._redis.hset(user.profile, ProfileField.timezone, timezone))

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
