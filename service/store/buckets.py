"""Reading one kind of bucketed index (layout.py) as if it were one sorted set: every bucket's
index in one pipeline (one round trip per node on a Cluster), merged by score."""

from collections.abc import Callable

from redis.asyncio import Redis

from service.store.layout import ALL_BUCKETS, Bucket

IndexOf = Callable[[Bucket], str]


async def lowest(
    redis: "Redis", index: IndexOf, *, limit: int, max_score: float | str = "+inf"
) -> list[str]:
    """Up to `limit` members scored at most `max_score`, lowest scores first, over every
    bucket's index."""
    async with redis.pipeline(transaction=False) as pipe:
        for bucket in ALL_BUCKETS:
            pipe.zrangebyscore(
                index(bucket), "-inf", max_score, start=0, num=limit, withscores=True
            )
        per_bucket: list[list[tuple[str, float]]] = await pipe.execute()
    rows = sorted((score, member) for rows in per_bucket for member, score in rows)
    return [member for _, member in rows[:limit]]


async def size(redis: "Redis", index: IndexOf) -> int:
    """How many members every bucket's index holds together."""
    async with redis.pipeline(transaction=False) as pipe:
        for bucket in ALL_BUCKETS:
            pipe.zcard(index(bucket))
        counts: list[int] = await pipe.execute()
    return sum(counts)
