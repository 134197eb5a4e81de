"""An API and a janitor process sharing one configuration: the deployed pair, in tests."""

from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import httpx

from contracts import SynapseClient
from tests.support.api import RunningApi
from tests.support.janitor import JanitorProcess

INTERNAL_TOKEN = "test-internal-token"


@dataclass
class Stack:
    api: RunningApi
    janitor: JanitorProcess
    client: SynapseClient
    http: httpx.AsyncClient

    async def debug(self, path: str, **params: str) -> httpx.Response:
        return await self.http.get(
            f"/internal/debug/{path}", params=params, headers={"X-Internal-Token": INTERNAL_TOKEN}
        )

    async def debug_post(self, path: str, **params: str) -> httpx.Response:
        return await self.http.post(
            f"/internal/debug/{path}", params=params, headers={"X-Internal-Token": INTERNAL_TOKEN}
        )


StackFactory = Callable[..., Awaitable[Stack]]
