"""The audit log of operator (debug) and data-rights calls: who, what, when, outcome.

Two Redis streams, each capped at AUDIT_MAX_ENTRIES (oldest trimmed first):

- `syn:audit`, the real actions: calls that passed authentication and admission (tenant match,
  quota) and were not turned away. Anonymous traffic can never reach it, so it cannot flush it.
- `syn:audit:rejected`, the calls turned away (401, 403, 422, 429, ...), plus a hash
  `syn:audit:rejected:counts` of how many per status code, never trimmed: after a flood the
  stream holds only its latest entries but the counts still say how big it was.

Entries carry ids, paths and status codes only: never message text, tokens or keys.
"""

import time
from dataclasses import dataclass

from redis.asyncio import Redis
from redis.typing import EncodableT, FieldT

from service.store.io import resolved
from service.store.layout import AUDIT_STREAM, REJECTED_COUNTS, REJECTED_STREAM


@dataclass(frozen=True, slots=True)
class AuditRecord:
    at_ms: int
    actor: str
    action: str
    target: str
    outcome: int


def _fields(*, actor: str, action: str, target: str, outcome: int) -> dict[FieldT, EncodableT]:
    return {
        "at": int(time.time() * 1000),
        "actor": actor,
        "action": action,
        "target": target,
        "outcome": outcome,
    }


class AuditLog:
    def __init__(self, redis: "Redis", *, max_entries: int) -> None:
        self._redis = redis
        self._max_entries = max_entries

    async def record(self, *, actor: str, action: str, target: str, outcome: int) -> None:
        """A real action: an authenticated, admitted call."""
        fields = _fields(actor=actor, action=action, target=target, outcome=outcome)
        await resolved(
            self._redis.xadd(AUDIT_STREAM, fields, maxlen=self._max_entries, approximate=False)
        )

    async def record_rejected(self, *, actor: str, action: str, target: str, outcome: int) -> None:
        """A call turned away: into its own capped stream, and counted per status code."""
        fields = _fields(actor=actor, action=action, target=target, outcome=outcome)
        async with self._redis.pipeline(transaction=False) as pipe:
            pipe.xadd(REJECTED_STREAM, fields, maxlen=self._max_entries, approximate=False)
            pipe.hincrby(REJECTED_COUNTS, str(outcome), 1)
            await pipe.execute()

    async def latest(self, *, limit: int, rejected: bool = False) -> list[AuditRecord]:
        stream = REJECTED_STREAM if rejected else AUDIT_STREAM
        rows: list[tuple[str, dict[str, str]]] = await resolved(
            self._redis.xrevrange(stream, count=limit)
        )
        return [
            AuditRecord(
                at_ms=int(fields["at"]),
                actor=fields["actor"],
                action=fields["action"],
                target=fields["target"],
                outcome=int(fields["outcome"]),
            )
            for _, fields in rows
        ]

    async def rejected_counts(self) -> dict[int, int]:
        """Calls turned away so far, per status code."""
        counts: dict[str, str] = await resolved(self._redis.hgetall(REJECTED_COUNTS))
        return {int(status): int(n) for status, n in sorted(counts.items())}
