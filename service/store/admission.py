"""A tenant's request rate and daily turn quota, counted in Redis for every API replica."""

from dataclasses import dataclass
from typing import Literal

from service.store import scripts
from service.store.layout import TenantKeys
from service.store.scripts import Scripts


@dataclass(frozen=True, slots=True)
class Admission:
    allowed: bool
    # Which budget refused the call ('' when allowed).
    refused_by: Literal["rate", "turns", ""]
    remaining: int
    wait_seconds: int


class AdmissionCounters:
    def __init__(self, scripts: Scripts) -> None:
        self._scripts = scripts

    async def spend(
        self,
        tenant_id: str,
        *,
        requests_per_second: float,
        burst: float,
        turns: int,
        turns_per_day: int,
    ) -> Admission:
        """Spend one request (and `turns` turns) if both budgets allow it, else nothing more."""
        keys = TenantKeys(tenant_id)
        allowed, which, remaining, wait = await self._scripts[scripts.ADMIT](
            {"rate": keys.rate, "quota": keys.quota},
            {
                "rate": requests_per_second,
                "capacity": burst,
                "turns": turns,
                "turns_limit": turns_per_day,
            },
        )
        return Admission(
            allowed=bool(allowed),
            refused_by=which,
            remaining=int(remaining),
            wait_seconds=int(wait),
        )
