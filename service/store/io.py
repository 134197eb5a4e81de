"""redis-py 5 (arq requires <6) types every async command as `Awaitable[T] | T`. At runtime the
asyncio client always returns an awaitable; this helper says so once, in one place."""

from collections.abc import Awaitable
from typing import TypeVar, cast

T = TypeVar("T")


async def resolved(result: Awaitable[T] | T) -> T:
    return await cast(Awaitable[T], result)
