"""Per-tenant request rate and daily turn quota, enforced in Redis for every API replica."""

from redis.asyncio import Redis

from service import redis_scripts
from service.errors import RateLimited
from service.keys import encode
from service.tenants import Tenant


class Quotas:
    def __init__(self, redis: "Redis") -> None:
        self._admit = redis.register_script(redis_scripts.ADMIT)

    async def admit(self, tenant: Tenant, *, turns: int) -> None:
        """Spend one request (and `turns` turns); raise RateLimited, spending nothing more,
        when either budget is exhausted."""
        tenant_part = encode(tenant.tenant_id)
        allowed, which, remaining, wait = await self._admit(
            keys=[f"syn:rl:{tenant_part}"],
            args=[
                tenant.requests_per_second,
                max(1.0, tenant.requests_per_second),
                turns,
                tenant.turns_per_day,
                f"syn:quota:turns:{tenant_part}:",
            ],
        )
        if allowed:
            return
        if which == "turns":
            raise RateLimited(
                f"daily turn quota of {tenant.turns_per_day} is used up",
                limit=tenant.turns_per_day,
                remaining=int(remaining),
                retry_after_seconds=int(wait),
            )
        raise RateLimited(
            f"more than {tenant.requests_per_second:g} requests per second",
            limit=int(max(1.0, tenant.requests_per_second)),
            remaining=0,
            retry_after_seconds=max(1, int(wait)),
        )
