"""The store's Lua scripts: loaded from service/store/lua/*.lua, called with named keys and
arguments.

Scripts are how multi-key changes stay atomic: a turn, a close or an acknowledgement is either
fully applied or not at all. Every key a script touches arrives in KEYS (a script never builds
a key name), and all of them share one hash slot (service/store/layout.py), so each script runs
on one node of a Redis Cluster.

Calling convention, the same for every script:
- keys are named: the spec lists their order, and the script reads them as `K.<name>`
  (the names after `rest` arrive as the list `K.<rest>`);
- ARGV[1] is a JSON object of named scalar arguments, read as `A.<name>`; every value is sent
  as a string (Lua's numbers are doubles: a 16-digit fencing token would lose digits), so a
  script says `tonumber(A.now_ms)` where it computes;
- ARGV[2..] carry opaque payloads (turns, fingerprints) byte for byte, never through JSON;
- the field names of the store's hashes are the tables SESSION, PROFILE, ENTRY, USAGE and RATE
  (service/store/fields.py).
"""

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import cache
from importlib import resources
from typing import Any

import msgspec
from redis.asyncio import Redis
from redis.asyncio.cluster import RedisCluster
from redis.commands.core import AsyncScript
from redis.exceptions import NoScriptError

from service.store.errors import NotReplicated
from service.store.fields import LUA_TABLES
from service.store.layout import replication_marker

Payload = str | bytes | int


@dataclass(frozen=True, slots=True)
class ScriptSpec:
    name: str
    keys: tuple[str, ...]
    # Library files (lua/lib/<name>.lua) whose functions the script calls, prepended in order.
    uses: tuple[str, ...] = ()
    # The name under which any keys after `keys` arrive, as a list.
    rest: str | None = None
    # Whether, with REDIS_WAIT_REPLICAS set, the call waits for the replicas before it returns:
    # every acknowledged write does; reads and counters do not.
    waits_for_replicas: bool = True


def _read(relative: str) -> str:
    return (resources.files("service.store") / "lua" / relative).read_text(encoding="utf-8")


# Reading a name that is not there is an error, not a nil: a misspelt field, key or argument
# fails the first test that runs the script instead of writing somewhere unexpected.
_STRICT = """local function strict(what, t)
  return setmetatable(t, {__index = function(_, name) error(what .. ' has no ' .. name) end})
end"""


def _tables() -> str:
    lines = []
    for table, fields in LUA_TABLES.items():
        pairs = ", ".join(f"{field.name} = '{field.value}'" for field in fields)
        lines.append(f"local {table} = strict('{table}', {{{pairs}}})")
    return "\n".join(lines)


def _key_names(spec: ScriptSpec) -> str:
    names = ", ".join(f"'{name}'" for name in spec.keys)
    lines = [
        "local K = strict('KEYS', {})",
        f"for i, name in ipairs({{{names}}}) do rawset(K, name, KEYS[i]) end",
    ]
    if spec.rest is not None:
        lines += [
            f"rawset(K, '{spec.rest}', {{}})",
            f"for i = {len(spec.keys) + 1}, #KEYS do table.insert(K.{spec.rest}, KEYS[i]) end",
        ]
    return "\n".join(lines)


@cache
def source(spec: ScriptSpec) -> str:
    """The script as Redis receives it: field tables, named keys and arguments, libraries, body."""
    parts = [
        f"-- synapse store script: {spec.name}",
        _STRICT,
        _tables(),
        _key_names(spec),
        "local A = strict('ARGV[1]', cjson.decode(ARGV[1]))",
        *(_read(f"lib/{lib}.lua") for lib in spec.uses),
        _read(f"{spec.name}.lua"),
    ]
    return "\n".join(parts)


_args_encoder = msgspec.json.Encoder()


@dataclass(frozen=True, slots=True)
class Replication:
    """REDIS_WAIT_REPLICAS and its bound: a write is acknowledged only once `replicas` replicas
    have it, else NotReplicated after `timeout_ms`."""

    replicas: int = 0
    timeout_ms: int = 1000


class StoreScript:
    """One registered script: EVALSHA, and EVAL (loading it) the first time a node lacks it.

    With replicas to wait for, a writing script is sent in one pipeline with an INCR of its
    slot's replication marker and `WAIT replicas timeout`, on one connection: WAIT counts the
    replicas that have everything that connection wrote, and the INCR makes sure it wrote
    something even when the script changed nothing (an idempotent retry of a write that is on
    the primary but not yet on a replica must not be acknowledged as replicated)."""

    def __init__(self, redis: "Redis", spec: ScriptSpec, replication: Replication) -> None:
        self._redis = redis
        self._spec = spec
        self._replication = replication
        self._script: AsyncScript = redis.register_script(source(spec))

    async def __call__(
        self,
        keys: Mapping[str, str],
        args: Mapping[str, str | int | float],
        payloads: Sequence[Payload] = (),
        rest: Sequence[str] = (),
    ) -> Any:
        spec = self._spec
        if set(keys) != set(spec.keys):
            raise ValueError(f"{spec.name}: keys {sorted(keys)} are not {sorted(spec.keys)}")
        if rest and spec.rest is None:
            raise ValueError(f"{spec.name} takes no extra keys")
        named = {name: str(value) for name, value in args.items()}
        ordered = [*(keys[name] for name in spec.keys), *rest]
        argv: list[Payload] = [_args_encoder.encode(named), *payloads]
        if self._replication.replicas == 0 or not spec.waits_for_replicas:
            return await self._script(keys=ordered, args=argv)
        return await self._replicated(ordered, argv)

    async def _replicated(self, keys: list[str], argv: list[Payload]) -> Any:
        wanted, timeout_ms = self._replication.replicas, self._replication.timeout_ms
        marker = replication_marker(keys[0])
        cluster = self._redis if isinstance(self._redis, RedisCluster) else None
        if cluster is not None:
            # Routing needs the slot map, which a new client reads on its first command.
            await cluster.initialize()
        for _ in range(2):
            node = cluster.get_node_from_key(marker) if cluster is not None else None
            async with self._redis.pipeline(transaction=False) as pipe:
                # execute_command: redis-py blocks the evalsha method in cluster pipelines, not
                # the command, which it routes by the script's keys.
                pipe.execute_command("EVALSHA", self._script.sha, len(keys), *keys, *argv)
                pipe.incr(marker)
                # On a cluster, WAIT has no key: it is sent to the node the script went to.
                target = {"target_nodes": node} if node is not None else {}
                pipe.execute_command("WAIT", wanted, timeout_ms, **target)
                try:
                    result, _, confirmed = await pipe.execute()
                except NoScriptError:
                    await self._load()
                    continue
            if cluster is not None and cluster.get_node_from_key(marker) is not node:
                # The slot moved while the pipeline ran (a failover): the WAIT may have been
                # answered by another connection than the write's.
                raise NotReplicated(wanted, 0, timeout_ms)
            if int(confirmed) < wanted:
                raise NotReplicated(wanted, int(confirmed), timeout_ms)
            return result
        raise NoScriptError(f"{self._spec.name}: the script could not be loaded")

    async def _load(self) -> None:
        # On a cluster, SCRIPT LOAD goes to every primary.
        await self._redis.script_load(self._script.script)
