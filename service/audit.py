"""The audit log of operator (debug) and data-rights calls: who, what, when, outcome.

A Redis stream capped at AUDIT_MAX_ENTRIES (oldest trimmed first). Entries carry ids, paths and
status codes only: never message text, tokens or keys.
"""

import time
from dataclasses import dataclass

from redis.asyncio import Redis
from redis.typing import EncodableT, FieldT

from service.redis_io import resolved

AUDIT_STREAM = "syn:audit"


@dataclass(frozen=True, slots=True)
class AuditRecord:
    at_ms: int
    actor: str
    action: str
    target: str
    outcome: int


class AuditLog:
    def __init__(self, redis: "Redis", *, max_entries: int) -> None:
        self._redis = redis
        self._max_entries = max_entries

    async def record(self, *, actor: str, action: str, target: str, outcome: int) -> None:
        fields: dict[FieldT, EncodableT] = {
            "at": int(time.time() * 1000),
            "actor": actor,
            "action": action,
            "target": target,
            "outcome": outcome,
        }
        await resolved(
            self._redis.xadd(AUDIT_STREAM, fields, maxlen=self._max_entries, approximate=False)
        )

    async def latest(self, *, limit: int) -> list[AuditRecord]:
        rows: list[tuple[str, dict[str, str]]] = await resolved(
            self._redis.xrevrange(AUDIT_STREAM, count=limit)
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
