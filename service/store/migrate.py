"""Move a Redis written by Synapse before the bucketed layout (2026-12-02) into the current one.

`python -m service.store.migrate` with REDIS_URL set, on a standalone Redis (the only kind the
old layout ran on), with the API and the janitors stopped. Every key keeps its value and its
expiry (RENAME); index members move into their user's bucket with their scores. It is
idempotent: a run that stopped halfway (a crash, a timeout) is finished by running it again,
and a run on a migrated Redis changes nothing.

What does not move: the per-tenant rate buckets and today's turn counters (their new form is one
hash per tenant: today's quota starts again from zero once), and arq's job keys (unchanged).
"""

import asyncio
import os
import sys
from collections.abc import Callable
from dataclasses import dataclass, field

from redis.asyncio import Redis

from service.store.layout import TenantKeys, UserKeys, decode

OLD_USER = "syn:u:"
OLD_ENTRY = "syn:ob:e:"
OLD_IDLE = "syn:idle"
OLD_DUE = "syn:ob:due"
OLD_DEAD = "syn:ob:dead"
OLD_TENANT_ENTRIES = "syn:ob:tenant:"
OLD_TENANT_USAGE = "syn:usage:tenant:"
OLD_RATE = ("syn:rl:", "syn:quota:turns:")


@dataclass(slots=True)
class Report:
    keys_moved: int = 0
    index_members_moved: int = 0
    dropped: int = 0
    conflicts: list[str] = field(default_factory=list)


def _user(tenant_part: str, user_part: str) -> UserKeys:
    return UserKeys(decode(tenant_part), decode(user_part))


def new_name(old: str) -> str | None:
    """The current name of a per-user, per-entry or per-tenant key of the old layout."""
    if old.startswith(OLD_USER):
        tenant, user, rest = old[len(OLD_USER) :].split(":", 2)
        return f"{_user(tenant, user).prefix}:{rest}"
    if old.startswith(OLD_ENTRY):
        entry_id = old[len(OLD_ENTRY) :].removesuffix(":turns")
        tenant, user, _ = entry_id.split(":", 2)
        keys = _user(tenant, user).entry(entry_id)
        return keys.turns if old.endswith(":turns") else keys.hash
    if old.startswith(OLD_TENANT_USAGE):
        return TenantKeys(decode(old[len(OLD_TENANT_USAGE) :])).usage
    return None


async def _move_members(redis: "Redis", old: str, target: Callable[[str], str]) -> int:
    """Move an old global index's members, with their scores, into their buckets' indexes."""
    moved = 0
    while True:
        rows: list[tuple[str, float]] = await redis.zrange(old, 0, 999, withscores=True)
        if not rows:
            return moved
        async with redis.pipeline(transaction=True) as pipe:
            for member, score in rows:
                pipe.zadd(target(member), {member: score})
            pipe.zrem(old, *(member for member, _ in rows))
            await pipe.execute()
        moved += len(rows)


def _idle_bucket(member: str) -> str:
    tenant, user, _ = member.split(" ")
    return _user(tenant, user).bucket.idle


def _due_bucket(ref: str) -> str:
    tenant, user = ref.split(" ")
    return _user(tenant, user).bucket.outbox_due


def _dead_bucket(entry_id: str) -> str:
    tenant, user, _ = entry_id.split(":", 2)
    return _user(tenant, user).bucket.outbox_dead


def _tenant_entries_bucket(tenant_id: str) -> Callable[[str], str]:
    def target(entry_id: str) -> str:
        tenant, user, _ = entry_id.split(":", 2)
        return _user(tenant, user).bucket.tenant_entries(tenant_id)

    return target


async def migrate(redis: "Redis") -> Report:
    report = Report()
    for pattern in (OLD_USER + "*", OLD_ENTRY + "*", OLD_TENANT_USAGE + "*"):
        async for old in redis.scan_iter(match=pattern, count=1000):
            new = new_name(old)
            if new is None or new == old:
                continue
            # RENAMENX: a key already written under its new name (the new version ran before
            # this migration) is never overwritten; the old one stays, reported, for a person.
            if await redis.renamenx(old, new):
                report.keys_moved += 1
            else:
                report.conflicts.append(old)
    for old_index, target in (
        (OLD_IDLE, _idle_bucket),
        (OLD_DUE, _due_bucket),
        (OLD_DEAD, _dead_bucket),
    ):
        report.index_members_moved += await _move_members(redis, old_index, target)
    async for old in redis.scan_iter(match=OLD_TENANT_ENTRIES + "*", count=1000):
        tenant = decode(old[len(OLD_TENANT_ENTRIES) :])
        report.index_members_moved += await _move_members(
            redis, old, _tenant_entries_bucket(tenant)
        )
    for prefix in OLD_RATE:
        async for old in redis.scan_iter(match=prefix + "*", count=1000):
            report.dropped += await redis.delete(old)
    return report


async def _main(url: str) -> Report:
    redis: Redis = Redis.from_url(url, decode_responses=True)
    try:
        return await migrate(redis)
    finally:
        await redis.aclose()


def main() -> None:
    url = os.environ.get("REDIS_URL")
    if not url:
        sys.exit("service.store.migrate: set REDIS_URL to the Redis to migrate")
    report = asyncio.run(_main(url))
    print(
        f"migrated: {report.keys_moved} keys renamed, {report.index_members_moved} index "
        f"members moved into buckets, {report.dropped} keys dropped"
    )
    if report.conflicts:
        sys.exit(
            f"{len(report.conflicts)} old keys were left in place because their new name is "
            f"already taken (was the new version started first?): {report.conflicts[:20]}"
        )


if __name__ == "__main__":
    main()
