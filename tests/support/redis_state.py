"""Reading Synapse's Redis state in tests, through the store's own layout (service/store/
layout.py), so that a test names no key by hand."""

from redis.asyncio import Redis

from service.store.layout import ALL_BUCKETS, UserKeys, encode

# Every per-user key of any user, whatever its bucket.
ANY_USER_KEY = "syn:*:u:*"


def user_key_pattern(tenant_id: str, user_prefix: str = "") -> str:
    """Keys of the tenant's users whose encoded id starts with `user_prefix` (all by default)."""
    return f"syn:*:u:{encode(tenant_id)}:{encode(user_prefix)}*"


async def user_keys(redis: "Redis", tenant_id: str, user_id: str) -> list[str]:
    keys: list[str] = await redis.keys(f"{UserKeys(tenant_id, user_id).prefix}:*")
    return sorted(keys)


async def bucket_index_total(redis: "Redis", index: str) -> int:
    """How many members one kind of bucket index ('idle', 'outbox_due', 'outbox_dead') holds,
    summed over every bucket."""
    async with redis.pipeline(transaction=False) as pipe:
        for bucket in ALL_BUCKETS:
            pipe.zcard(getattr(bucket, index))
        counts: list[int] = await pipe.execute()
    return sum(counts)


async def index_members_of(redis: "Redis", tenant_id: str, user_id: str) -> list[str]:
    """The user's members in its bucket's indexes (idle sessions, due, dead, tenant entries)."""
    user = UserKeys(tenant_id, user_id)
    bucket = user.bucket
    found: list[str] = []
    for key in (bucket.idle, bucket.outbox_due, bucket.outbox_dead, user.tenant_entries):
        for member in await redis.zrange(key, 0, -1):
            if member == user.ref or member.startswith(
                (f"{user.ref} ", f"{user.ref.replace(' ', ':')}:")
            ):
                found.append(f"{key} {member}")
    return found


async def tenant_entry_count(redis: "Redis", tenant_id: str) -> int:
    """The tenant's outbox entries, queued or dead, over every bucket."""
    async with redis.pipeline(transaction=False) as pipe:
        for bucket in ALL_BUCKETS:
            pipe.zcard(bucket.tenant_entries(tenant_id))
        counts: list[int] = await pipe.execute()
    return sum(counts)
