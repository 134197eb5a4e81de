"""The Redis Cluster and Sentinel harness (deploy/dev/redis-topology.sh,
tests/support/redis_topology.py), proven with plain redis-py and no Synapse code: slots and hash
tags, scripts, CROSSSLOT, and a kill -9 of the master/primary that a client rides out on its own
without losing the writes a replica acknowledged (WAIT) before the kill."""

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import TypeVar

import pytest
from redis.asyncio.cluster import RedisCluster
from redis.asyncio.sentinel import Sentinel
from redis.exceptions import ClusterCrossSlotError, RedisClusterException, RedisError

from tests.support.redis_topology import (
    ClusterTopology,
    SentinelTopology,
    missing_binaries,
)

T = TypeVar("T")

_MISSING = missing_binaries()
pytestmark = [
    pytest.mark.skipif(
        bool(_MISSING),
        reason=f"{' and '.join(_MISSING)} not on PATH (deploy/dev/services.sh install)",
    ),
    pytest.mark.timeout(300),
]

# Generous bounds: a failover here takes a few seconds (2 s failure detection, see
# redis-topology.sh); these only turn a hang into a clear failure.
RECOVERY_BOUND = 60.0
WAIT_TIMEOUT_MS = 5000

INCR_BOTH = "return {redis.call('INCR', KEYS[1]), redis.call('INCR', KEYS[2])}"


@pytest.fixture
async def cluster_client(redis_cluster: ClusterTopology) -> AsyncIterator[RedisCluster]:
    client = RedisCluster.from_url(redis_cluster.seed_url, decode_responses=True)
    await client.initialize()
    await client.flushall(target_nodes=RedisCluster.PRIMARIES)
    yield client
    await client.aclose()


def node_port(client: RedisCluster, key: str) -> int:
    """The port of the master the client routes KEY to."""
    node = client.get_node_from_key(key)
    assert node is not None, f"the client knows no node for {key!r}"
    return int(node.port)


async def retry_until_ok(what: str, call: Callable[[], Awaitable[T]]) -> tuple[T, list[str]]:
    """call() until it succeeds (the client is never replaced), within RECOVERY_BOUND; returns
    its result and the distinct errors seen meanwhile."""
    deadline = time.monotonic() + RECOVERY_BOUND
    errors: list[str] = []
    while True:
        try:
            return await call(), errors
        except (RedisError, OSError) as exc:
            seen = f"{type(exc).__name__}: {exc}"
            if seen not in errors:
                errors.append(seen)
            if time.monotonic() > deadline:
                raise AssertionError(
                    f"{what}: the client did not recover within {RECOVERY_BOUND:.0f} s; "
                    f"errors: {errors}"
                ) from exc
        await asyncio.sleep(0.2)


# ---------------------------------------------------------------------------------------------
# Cluster
# ---------------------------------------------------------------------------------------------


async def test_cluster_spreads_keys_and_keeps_hash_tagged_scripts_in_one_slot(
    redis_cluster: ClusterTopology, cluster_client: RedisCluster
) -> None:
    keys = [f"spread:{i}" for i in range(60)]
    for key in keys:
        await cluster_client.set(key, key)
    masters = {node_port(cluster_client, key) for key in keys}
    assert len(masters) == 3, f"60 keys should land on all 3 masters, landed on {masters}"
    for key in keys:
        assert await cluster_client.get(key) == key
    # The topology's view agrees with the client's routing.
    owner = await redis_cluster.master_for_key("spread:0")
    assert owner.port == node_port(cluster_client, "spread:0")

    # redis-py types register_script for Redis only; it works on RedisCluster.
    incr_both = cluster_client.register_script(INCR_BOTH)  # type: ignore[misc]
    assert await incr_both(keys=["{u1}:a", "{u1}:b"]) == [1, 1]
    assert await incr_both(keys=["{u1}:a", "{u1}:b"]) == [2, 2]

    assert cluster_client.keyslot("{u1}:a") != cluster_client.keyslot("{u2}:b")
    # redis-py refuses a script over two slots before sending it...
    with pytest.raises(RedisClusterException, match="same key slot"):
        await incr_both(keys=["{u1}:a", "{u2}:b"])
    # ...and the server itself answers CROSSSLOT when it gets one.
    with pytest.raises(ClusterCrossSlotError, match="don't hash to the same slot"):
        await cluster_client.execute_command(
            "EVAL",
            INCR_BOTH,
            2,
            "{u1}:a",
            "{u2}:b",
            target_nodes=cluster_client.get_node_from_key("{u1}:a"),
        )
    assert await cluster_client.get("{u2}:b") is None


async def test_cluster_client_rides_out_a_master_kill_and_keeps_acknowledged_writes(
    redis_cluster: ClusterTopology, cluster_client: RedisCluster
) -> None:
    slot = cluster_client.keyslot("{u1}")
    old_master = await redis_cluster.master_for_key("{u1}")
    assert node_port(cluster_client, "{u1}") == old_master.port

    # Writes and WAIT on one connection (a pipeline): WAIT counts the replicas that acknowledged
    # this connection's writes.
    pipe = cluster_client.pipeline()
    for i in range(100):
        pipe.set(f"{{u1}}:acked:{i}", i)
    pipe.execute_command("WAIT", 1, WAIT_TIMEOUT_MS)
    replies = await pipe.execute()
    assert replies[-1] == 1, f"WAIT 1: {replies[-1]} replicas acknowledged"
    # redis-py types register_script for Redis only; it works on RedisCluster.
    incr_both = cluster_client.register_script(INCR_BOTH)  # type: ignore[misc]
    assert await incr_both(keys=["{u1}:a", "{u1}:b"]) == [1, 1]
    assert (
        await cluster_client.execute_command(
            "WAIT", 1, WAIT_TIMEOUT_MS, target_nodes=cluster_client.get_node_from_key("{u1}")
        )
        == 1
    )

    killed = await redis_cluster.kill_master_for_key("{u1}")
    # The same client object, retried from the moment of the kill: it must find the promoted
    # replica by itself.
    _, errors = await retry_until_ok(
        "SET on {u1} after the kill", lambda: cluster_client.set("{u1}:after", "yes")
    )
    recovered = time.monotonic()
    new_master_port = await redis_cluster.wait_for_failover(killed, slot)
    failed_over = time.monotonic()
    assert new_master_port != old_master.port
    assert node_port(cluster_client, "{u1}") == new_master_port
    values = [await cluster_client.get(f"{{u1}}:acked:{i}") for i in range(100)]
    assert values == [str(i) for i in range(100)], "WAIT-acknowledged keys lost in the failover"
    # The script cache is per node: register_script's Script reloads it (NOSCRIPT -> EVAL).
    assert await incr_both(keys=["{u1}:a", "{u1}:b"]) == [2, 2]
    print(
        f"\ncluster: kill -> client recovered {recovered - killed.killed_at:.1f} s, "
        f"-> failover confirmed {failed_over - killed.killed_at:.1f} s; errors meanwhile: {errors}"
    )

    await redis_cluster.restart(killed)
    assert (await redis_cluster.master_for_key("{u1}")).port == new_master_port
    assert await cluster_client.get("{u1}:after") == "yes"


# ---------------------------------------------------------------------------------------------
# Sentinel
# ---------------------------------------------------------------------------------------------


async def test_sentinel_client_follows_the_promoted_replica_and_keeps_acknowledged_writes(
    redis_sentinel: SentinelTopology,
) -> None:
    sentinel = Sentinel(redis_sentinel.sentinels, socket_timeout=1.0)  # type: ignore[no-untyped-call]
    master = sentinel.master_for(
        redis_sentinel.master_name,
        decode_responses=True,
        socket_timeout=2.0,
        socket_connect_timeout=1.0,
    )
    try:
        old_primary = await redis_sentinel.primary()
        assert (await sentinel.discover_master(redis_sentinel.master_name))[1] == old_primary
        await master.flushall()
        pipe = master.pipeline(transaction=False)
        for i in range(100):
            pipe.set(f"acked:{i}", i)
        pipe.execute_command("WAIT", 1, WAIT_TIMEOUT_MS)
        replies = await pipe.execute()
        assert replies[-1] == 1, f"WAIT 1: {replies[-1]} replicas acknowledged"

        killed = await redis_sentinel.kill_primary()
        # Retried from the moment of the kill; the client asks the sentinels for the primary
        # at each new connection.
        _, errors = await retry_until_ok(
            "SET after the primary's kill", lambda: master.set("after", "yes")
        )
        recovered = time.monotonic()
        new_primary = await redis_sentinel.wait_for_failover(killed)
        failed_over = time.monotonic()
        assert new_primary != old_primary
        role = await master.execute_command("ROLE")
        assert role[0] == "master"
        assert master.connection_pool.master_address == ("127.0.0.1", new_primary)
        values = [await master.get(f"acked:{i}") for i in range(100)]
        assert values == [str(i) for i in range(100)], "WAIT-acknowledged keys lost in the failover"
        print(
            f"\nsentinel: kill -> client recovered {recovered - killed.killed_at:.1f} s, "
            f"-> failover confirmed {failed_over - killed.killed_at:.1f} s; "
            f"errors meanwhile: {errors}"
        )

        # The killed primary comes back as a replica: the session can go on, WAIT included.
        await redis_sentinel.restart(killed)
        assert await redis_sentinel.primary() == new_primary
        pipe = master.pipeline(transaction=False)
        pipe.set("after-restart", "yes")
        pipe.execute_command("WAIT", 1, WAIT_TIMEOUT_MS)
        assert (await pipe.execute())[-1] == 1
    finally:
        await master.aclose()
        for client in sentinel.sentinels:
            await client.aclose()


def test_script_env_names_the_running_topologies(
    redis_cluster: ClusterTopology, redis_sentinel: SentinelTopology
) -> None:
    out = redis_cluster.run("env")
    assert f"SYNAPSE_TEST_REDIS_CLUSTER_URL={redis_cluster.seed_url}" in out.splitlines()
    out = redis_sentinel.run("env")
    assert f"SYNAPSE_TEST_REDIS_SENTINELS={redis_sentinel.sentinels_env}" in out.splitlines()
    assert "SYNAPSE_TEST_REDIS_SENTINEL_MASTER=synapse" in out.splitlines()
    assert "cluster: healthy" in redis_cluster.run("cluster-status")
    assert "sentinel: healthy" in redis_sentinel.run("sentinel-status")
