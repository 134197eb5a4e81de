"""LLM cost per episode, per user and per tenant, kept in Redis for the debug endpoints."""

from dataclasses import dataclass

import msgspec
from redis.asyncio import Redis

from service.keys import UserKeys, encode
from service.redis_io import resolved

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


def tenant_usage_key(tenant_id: str) -> str:
    return f"syn:usage:tenant:{encode(tenant_id)}"


def user_usage_key(user: UserKeys) -> str:
    return f"{user.prefix}:usage"


def user_costs_key(user: UserKeys) -> str:
    return f"{user.prefix}:costs"


class UsageLedger:
    def __init__(self, redis: "Redis") -> None:
        self._redis = redis

    async def record_for_tenant(self, tenant_id: str, cost: EpisodeCost) -> None:
        """Add an episode's cost to its tenant's totals. The user's own share is booked with
        the episode's chunk, under the lease (Outbox.chunk_done)."""
        key = tenant_usage_key(tenant_id)
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.hincrby(key, "episodes", 1)
            pipe.hincrby(key, "llmCalls", cost.llm_calls)
            pipe.hincrby(key, "inputTokens", cost.input_tokens)
            pipe.hincrby(key, "outputTokens", cost.output_tokens)
            await pipe.execute()

    async def tenant_totals(self, tenant_id: str) -> Totals:
        return _totals(await resolved(self._redis.hgetall(tenant_usage_key(tenant_id))))

    async def user_totals(self, user: UserKeys) -> Totals:
        return _totals(await resolved(self._redis.hgetall(user_usage_key(user))))

    async def recent_costs(self, user: UserKeys) -> list[EpisodeCost]:
        raw: list[str] = await resolved(self._redis.lrange(user_costs_key(user), 0, -1))
        return [_cost_decoder.decode(item) for item in raw]


def _totals(fields: dict[str, str]) -> Totals:
    return Totals(
        episodes=int(fields.get("episodes", 0)),
        llm_calls=int(fields.get("llmCalls", 0)),
        input_tokens=int(fields.get("inputTokens", 0)),
        output_tokens=int(fields.get("outputTokens", 0)),
    )
