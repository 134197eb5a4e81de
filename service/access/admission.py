"""Admission: may this caller act for this tenant now? The one decision behind every public
entrance, the framework's handlers (service/http/auth.py) and the per-turn hot path
(service/http/hot_path.py) alike, so the two can never disagree on who gets in.

A caller is the tenant whose API key authenticated the request, or None in open mode (no keys
configured, loopback only), where everyone is trusted and no quota applies. Admission checks
that the key's tenant is the one the request names, then spends the tenant's request rate and
daily turn quota, enforced for every API replica by the store's counters; a refusal spends
nothing more.
"""

from service.access.tenants import Tenant
from service.errors import Forbidden, RateLimited
from service.store.admission import AdmissionCounters


class Admission:
    def __init__(self, counters: AdmissionCounters) -> None:
        self._counters = counters

    async def admit(self, caller: Tenant | None, tenant_id: str, *, turns: int) -> None:
        """Return when `caller` may act for `tenant_id`, spending one request and `turns`
        turns; raise Forbidden (another tenant's key) or RateLimited (a budget used up)."""
        if caller is None:
            return
        if caller.tenant_id != tenant_id:
            raise Forbidden("this API key belongs to another tenant", field="tenantId")
        burst = max(1.0, caller.requests_per_second)
        admission = await self._counters.spend(
            caller.tenant_id,
            requests_per_second=caller.requests_per_second,
            burst=burst,
            turns=turns,
            turns_per_day=caller.turns_per_day,
        )
        if admission.allowed:
            return
        if admission.refused_by == "turns":
            raise RateLimited(
                f"daily turn quota of {caller.turns_per_day} is used up",
                limit=caller.turns_per_day,
                remaining=admission.remaining,
                retry_after_seconds=admission.wait_seconds,
            )
        raise RateLimited(
            f"more than {caller.requests_per_second:g} requests per second",
            limit=int(burst),
            remaining=0,
            retry_after_seconds=max(1, admission.wait_seconds),
        )
