"""What the store raises, named for the code outside it (which never imports redis-py)."""

from redis.exceptions import (
    ClusterDownError,
    ReadOnlyError,
    RedisError,
    TryAgainError,
)
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

# Any failure of a store call.
StoreError = RedisError


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


# What the store says while Redis is down, restarting or failing over, so the caller answers
# 503 with Retry-After rather than 500: unreachable, timed out, loading its data
# (BusyLoadingError is a ConnectionError), a replica or a cluster that cannot take the write
# right now, or replicas that did not confirm it.
STORE_UNAVAILABLE: tuple[type[Exception], ...] = (
    NotReplicated,
    RedisConnectionError,
    RedisTimeoutError,
    ReadOnlyError,
    ClusterDownError,
    TryAgainError,
)
