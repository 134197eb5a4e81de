"""An API and a janitor process sharing one configuration: the deployed pair, in tests."""

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import httpx

from contracts import SessionCloseRequest, SessionCloseResponse, SynapseClient
from tests.support.api import RunningApi
from tests.support.janitor import JanitorProcess
from tests.support.waiting import eventually

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

    async def close(
        self, tenant: str, user: str = "user-1", session: str = "session-1"
    ) -> SessionCloseResponse:
        return await self.client.close_session(
            SessionCloseRequest(tenant_id=tenant, user_id=user, session_id=session)
        )

    async def outbox_when(
        self, tenant: str, accept: Callable[[dict[str, Any]], bool], what: str
    ) -> dict[str, Any]:
        """The tenant's debug outbox view, once `accept` holds for it."""
        response = await eventually(
            lambda: self.debug("outbox", tenantId=tenant), lambda r: accept(r.json()), what=what
        )
        view: dict[str, Any] = response.json()
        return view

    async def debug_post(self, path: str, **params: str) -> httpx.Response:
        return await self.http.post(
            f"/internal/debug/{path}", params=params, headers={"X-Internal-Token": INTERNAL_TOKEN}
        )


StackFactory = Callable[..., Awaitable[Stack]]
