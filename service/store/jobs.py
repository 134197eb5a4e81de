"""Background jobs the API hands to the janitor through arq's queue.

The queue lives with the store in standalone and Sentinel deployments (arq follows Sentinel
itself). On a Redis Cluster it needs JOB_QUEUE_REDIS_URL, a Redis of its own: arq's queue runs
transactions across its job, queue and in-progress keys, which a cluster client cannot send.
It holds only triggers: the turns a summary folds in are in the store, and every close queues
another refresh, so that Redis needs no persistence.
"""

from arq.connections import ArqRedis, RedisSettings, create_pool
from redis.asyncio.connection import parse_url

from service.settings import Settings
from service.store.layout import UserKeys

REFRESH_SUMMARY = "refresh_summary"


def queue_settings(settings: Settings) -> RedisSettings:
    """Where arq's queue is, for the API's pool and the janitor's worker alike."""
    if settings.job_queue_redis_url is not None:
        return RedisSettings.from_dsn(settings.job_queue_redis_url)
    if settings.redis_mode == "sentinel":
        primary = parse_url(settings.redis_url)
        return RedisSettings(
            host=list(settings.redis_sentinels),
            sentinel=True,
            sentinel_master=settings.redis_sentinel_master,
            username=primary.get("username"),
            password=primary.get("password"),
            database=int(primary.get("db", 0)),
        )
    return RedisSettings.from_dsn(settings.redis_url)


async def open_pool(settings: Settings) -> ArqRedis:
    return await create_pool(queue_settings(settings))


async def close_pool(pool: ArqRedis) -> None:
    await pool.aclose()
    # With Sentinel, arq closes the primary's connections but not the sentinels' own.
    manager = getattr(pool.connection_pool, "sentinel_manager", None)
    for sentinel in getattr(manager, "sentinels", []):
        await sentinel.aclose()


class JobQueue:
    def __init__(self, pool: ArqRedis) -> None:
        self._pool = pool

    async def refresh_summary(self, user: UserKeys) -> None:
        # One queued refresh per user is enough: the job folds in every pending turn.
        await self._pool.enqueue_job(REFRESH_SUMMARY, user.ref, _job_id=f"summary:{user.ref}")
