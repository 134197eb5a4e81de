"""LLM cost per episode, per user and per tenant, for the debug endpoints."""

from dataclasses import dataclass

import msgspec
from redis.asyncio import Redis

from service.store import scripts
from service.store.fields import UsageField
from service.store.io import resolved
from service.store.layout import TenantKeys, UserKeys
from service.store.scripts import Scripts

# Per-user list of the latest episodes' costs, newest first.
RECENT_EPISODE_COSTS = 50


class EpisodeCost(msgspec.Struct, rename="camel", kw_only=True):
    episode_uuid: str
    session_id: str
    llm_calls: int
    input_tokens: int
    output_tokens: int
    at_ms: int


@dataclass(frozen=True, slots=True)
class Totals:
    episodes: int
    llm_calls: int
    input_tokens: int
    output_tokens: int


_cost_encoder = msgspec.json.Encoder()
_cost_decoder = msgspec.json.Decoder(EpisodeCost)


def encode_charge(cost: EpisodeCost) -> bytes:
    return _cost_encoder.encode(cost)


class UsageLedger:
    def __init__(self, redis: "Redis", scripts: Scripts) -> None:
        self._redis = redis
        self._scripts = scripts

    async def record_for_tenant(self, tenant_id: str, cost: EpisodeCost) -> None:
        """Add an episode's cost to its tenant's totals. The user's own share is booked with
        the episode's chunk, under the lease (Outbox.chunk_done)."""
        await self._scripts[scripts.ADD_USAGE](
            {"usage": TenantKeys(tenant_id).usage},
            {
                "llm_calls": cost.llm_calls,
                "input_tokens": cost.input_tokens,
                "output_tokens": cost.output_tokens,
            },
        )

    async def tenant_totals(self, tenant_id: str) -> Totals:
        return _totals(await resolved(self._redis.hgetall(TenantKeys(tenant_id).usage)))

    async def user_totals(self, user: UserKeys) -> Totals:
        return _totals(await resolved(self._redis.hgetall(user.usage)))

    async def recent_costs(self, user: UserKeys) -> list[EpisodeCost]:
        raw: list[str] = await resolved(self._redis.lrange(user.costs, 0, -1))
        return [_cost_decoder.decode(item) for item in raw]


def _totals(fields: dict[str, str]) -> Totals:
    return Totals(
        episodes=int(fields.get(UsageField.episodes, 0)),
        llm_calls=int(fields.get(UsageField.llmCalls, 0)),
        input_tokens=int(fields.get(UsageField.inputTokens, 0)),
        output_tokens=int(fields.get(UsageField.outputTokens, 0)),
    )
