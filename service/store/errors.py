"""What the store raises beyond redis-py's own errors."""

from redis.exceptions import RedisError


class NotReplicated(RedisError):
    """A write reached the primary but fewer than REDIS_WAIT_REPLICAS replicas confirmed it
    within REDIS_WAIT_TIMEOUT_MS. It was not acknowledged: the caller answers 503, and a retry
    (every store write is idempotent) waits again."""

    def __init__(self, wanted: int, confirmed: int, timeout_ms: int) -> None:
        super().__init__(
            f"{confirmed} of {wanted} replicas confirmed the write within {timeout_ms} ms"
        )
        self.wanted = wanted
        self.confirmed = confirmed
