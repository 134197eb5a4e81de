"""The client side: several async clients driving every public endpoint for three tenants and
their users, recording every request (and every acknowledged turn) in the history."""

import asyncio
import contextlib
import random
import time
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import httpx

from tests.chaos.timeline import Op

NAMES = ("Alice", "Bob", "Carol", "Dmitri", "Esther")
ITEMS = ("dentist", "plumber", "accountant", "landlord", "mechanic")
CLIENT_TIMEOUT = 30.0


@dataclass(frozen=True)
class Tenant:
    tenant_id: str
    key: str
    marker: str  # a word only this tenant's turns contain


@dataclass
class User:
    tenant: Tenant
    user_id: str
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    session_number: int = 1
    session_has_acked_turn: bool = False
    turns: int = 0
    retired: bool = False
    delete_acked: bool = False
    delete_attempts: list[str] = field(default_factory=list)
    sent: dict[str, str] = field(default_factory=dict)  # text -> role, every turn sent
    acked: dict[str, str] = field(default_factory=dict)  # text -> role, 200 from /ingest

    @property
    def session_id(self) -> str:
        return f"s{self.session_number}"


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


class Load:
    def __init__(self, base_url: str, tenants: list[Tenant], rng: random.Random) -> None:
        self.base_url = base_url
        self.tenants = tenants
        self.rng = rng
        self.users: list[User] = []
        self.ops: list[Op] = []
        self.leaks: list[str] = []
        self._next_user = 0
        for tenant in tenants:
            for _ in range(4):
                self.add_user(tenant)

    def add_user(self, tenant: Tenant) -> User:
        self._next_user += 1
        # Ids with a space and a colon: Redis keys must percent-encode them.
        user = User(tenant, f"user {self._next_user}:{tenant.marker[-5:]}")
        self.users.append(user)
        return user

    def active_users(self) -> list[User]:
        return [u for u in self.users if not u.retired]

    # -- one request -------------------------------------------------------------------------

    async def _call(
        self, http: httpx.AsyncClient, op: Op, method: str, path: str, **kwargs: Any
    ) -> httpx.Response | None:
        headers = {"Authorization": f"Bearer {op_tenant(self, op).key}"}
        op.start = time.monotonic()
        try:
            response = await http.request(method, path, headers=headers, **kwargs)
        except httpx.TransportError as exc:
            op.end = time.monotonic()
            op.error = f"{type(exc).__name__}: {exc}"
            self.ops.append(op)
            return None
        op.end = time.monotonic()
        op.status = response.status_code
        op.body = response.text[:300]
        self.ops.append(op)
        self._check_leak(op, response.text)
        return response

    def _check_leak(self, op: Op, text: str) -> None:
        lowered = text.lower()
        for tenant in self.tenants:
            if tenant.tenant_id != op.tenant and tenant.marker in lowered:
                at = lowered.index(tenant.marker)
                self.leaks.append(
                    f"{op.kind} for tenant {op.tenant!r} user {op.user!r} (status {op.status}) "
                    f"carried {tenant.tenant_id!r}'s marker {tenant.marker!r}: "
                    f"...{text[max(0, at - 120) : at + 80]!r}..."
                )

    async def ingest(self, http: httpx.AsyncClient, user: User) -> None:
        user.turns += 1
        role = "user" if user.turns % 2 else "assistant"
        uid = uuid.uuid4().hex[:10]
        marker = user.tenant.marker
        if role == "user":
            # One finding, so one fact, per sentence (the offline extractor's rules): a
            # tension, unique by its uid.
            text = f"I need to book the {marker} {self.rng.choice(ITEMS)} {uid}."
        else:
            # One shared name (entities that every episode must dedupe against), one fact.
            text = f"ok, noted {marker} {uid} for {self.rng.choice(NAMES)}."
        op = Op("ingest", user.tenant.tenant_id, user.user_id, 0.0, detail=text)
        user.sent[text] = role
        body = {
            "tenantId": user.tenant.tenant_id,
            "userId": user.user_id,
            "sessionId": user.session_id,
            "personaId": "persona-1",
            "role": role,
            "text": text,
            "timestamp": _now(),
        }
        response = await self._call(http, op, "POST", "/ingest", json=body)
        if response is not None and response.status_code == 200:
            user.acked[text] = role
            user.session_has_acked_turn = True

    async def close(self, http: httpx.AsyncClient, user: User) -> None:
        if not user.session_has_acked_turn:
            return
        op = Op("session/close", user.tenant.tenant_id, user.user_id, 0.0, detail=user.session_id)
        body = {
            "tenantId": user.tenant.tenant_id,
            "userId": user.user_id,
            "sessionId": user.session_id,
        }
        response = await self._call(http, op, "POST", "/session/close", json=body)
        if response is not None and response.status_code == 200:
            user.session_number += 1
            user.session_has_acked_turn = False

    async def brief(self, http: httpx.AsyncClient, user: User) -> None:
        op = Op("brief", user.tenant.tenant_id, user.user_id, 0.0)
        body = {
            "tenantId": user.tenant.tenant_id,
            "userId": user.user_id,
            "sessionId": user.session_id,
        }
        await self._call(http, op, "POST", "/brief", json=body)

    async def query(self, http: httpx.AsyncClient, user: User) -> None:
        op = Op("memory/query", user.tenant.tenant_id, user.user_id, 0.0)
        body = {
            "tenantId": user.tenant.tenant_id,
            "userId": user.user_id,
            "query": f"what does the user need to book with {self.rng.choice(NAMES)}",
            "limit": 10,
        }
        await self._call(http, op, "POST", "/memory/query", json=body)

    async def session_brief(self, http: httpx.AsyncClient, user: User) -> None:
        op = Op("session/brief", user.tenant.tenant_id, user.user_id, 0.0)
        params = {"tenantId": user.tenant.tenant_id, "userId": user.user_id}
        await self._call(http, op, "GET", "/session/brief", params=params)

    async def delete(self, http: httpx.AsyncClient, user: User) -> bool:
        op = Op("delete-user", user.tenant.tenant_id, user.user_id, 0.0)
        params = {"tenantId": user.tenant.tenant_id, "userId": user.user_id}
        response = await self._call(http, op, "DELETE", "/users", params=params)
        outcome = op.error or f"{op.status} {op.body[:120]}"
        user.delete_attempts.append(outcome)
        if response is not None and response.status_code == 200:
            user.delete_acked = True
        return user.delete_acked

    # -- the clients -------------------------------------------------------------------------

    async def client(self, http: httpx.AsyncClient, stop: asyncio.Event, pace: float) -> None:
        actions = (
            (self.ingest, 62),
            (self.brief, 12),
            (self.close, 8),
            (self.query, 9),
            (self.session_brief, 9),
        )
        functions = [a for a, _ in actions]
        weights = [w for _, w in actions]
        while not stop.is_set():
            candidates = [u for u in self.active_users() if not u.lock.locked()]
            if candidates:
                user = self.rng.choice(candidates)
                action = self.rng.choices(functions, weights)[0]
                async with user.lock:
                    if not user.retired:
                        await action(http, user)
            await asyncio.sleep(self.rng.uniform(0.3, 1.7) * pace)

    async def deleter(self, http: httpx.AsyncClient, stop: asyncio.Event, every: float) -> None:
        """Now and then: stop one user's traffic, delete them, retire them for good."""
        while not stop.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), timeout=self.rng.uniform(0.6, 1.4) * every)
            if stop.is_set():
                return
            candidates = [u for u in self.active_users() if u.acked]
            if not candidates:
                continue
            user = self.rng.choice(candidates)
            user.retired = True  # no client picks them any more
            async with user.lock:  # and whatever they had in flight has finished
                await self.delete(http, user)
            self.add_user(user.tenant)


def op_tenant(load: Load, op: Op) -> Tenant:
    return next(t for t in load.tenants if t.tenant_id == op.tenant)


def new_http(base_url: str) -> httpx.AsyncClient:
    return httpx.AsyncClient(
        base_url=base_url,
        timeout=CLIENT_TIMEOUT,
        limits=httpx.Limits(max_connections=32, max_keepalive_connections=16),
    )
