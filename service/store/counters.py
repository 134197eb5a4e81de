"""The janitors' counters: one hash for the whole deployment, added to by every replica."""

from redis.asyncio import Redis

from service.store.io import resolved
from service.store.layout import JANITOR_COUNTERS


class JanitorCounters:
    def __init__(self, redis: "Redis") -> None:
        self._redis = redis

    async def add(self, counts: dict[str, int], amounts: dict[str, float]) -> None:
        async with self._redis.pipeline(transaction=False) as pipe:
            for name, value in counts.items():
                pipe.hincrby(JANITOR_COUNTERS, name, value)
            for name, amount in amounts.items():
                pipe.hincrbyfloat(JANITOR_COUNTERS, name, amount)
            await pipe.execute()

    async def read(self) -> dict[str, str]:
        fields: dict[str, str] = await resolved(self._redis.hgetall(JANITOR_COUNTERS))
        return fields
