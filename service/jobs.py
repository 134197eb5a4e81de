"""Background jobs the API hands to the janitor through arq's queue in Redis."""

from arq.connections import ArqRedis

from service.keys import UserKeys

REFRESH_SUMMARY = "refresh_summary"


class JobQueue:
    def __init__(self, pool: ArqRedis) -> None:
        self._pool = pool

    async def refresh_summary(self, user: UserKeys) -> None:
        # One queued refresh per user is enough: the job folds in every pending turn.
        await self._pool.enqueue_job(REFRESH_SUMMARY, user.ref, _job_id=f"summary:{user.ref}")
