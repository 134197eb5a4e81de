"""Per-tenant request rate and daily turn quota, enforced for every API replica."""

from service.errors import RateLimited
from service.store.admission import AdmissionCounters
from service.tenants import Tenant


class Quotas:
    def __init__(self, counters: AdmissionCounters) -> None:
        self._counters = counters

    async def admit(self, tenant: Tenant, *, turns: int) -> None:
        """Spend one request (and `turns` turns); raise RateLimited, spending nothing more,
        when either budget is exhausted."""
        burst = max(1.0, tenant.requests_per_second)
        admission = await self._counters.spend(
            tenant.tenant_id,
            requests_per_second=tenant.requests_per_second,
            burst=burst,
            turns=turns,
            turns_per_day=tenant.turns_per_day,
        )
        if admission.allowed:
            return
        if admission.refused_by == "turns":
            raise RateLimited(
                f"daily turn quota of {tenant.turns_per_day} is used up",
                limit=tenant.turns_per_day,
                remaining=admission.remaining,
                retry_after_seconds=admission.wait_seconds,
            )
        raise RateLimited(
            f"more than {tenant.requests_per_second:g} requests per second",
            limit=int(burst),
            remaining=0,
            retry_after_seconds=max(1, admission.wait_seconds),
        )
