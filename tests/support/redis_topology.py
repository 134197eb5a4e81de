"""Real Redis Cluster and Sentinel topologies for tests, which a test may kill -9 and restart.

deploy/dev/redis-topology.sh starts them (in a run dir of the session's, on free ports unless
the environment names them); this module finds the master of a key's slot (cluster) or the
current primary (sentinel), kills it by the pid in the script's pid file, waits until the
failover has completed, and starts the killed node again as a replica so the session goes on.

Use from a conftest or a test module:

    @pytest.fixture(scope="session")
    def redis_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ClusterTopology]:
        with running_cluster(tmp_path_factory.mktemp("redis-cluster")) as cluster:
            yield cluster

Ports: SYNAPSE_TEST_REDIS_CLUSTER_BASE_PORT (6 ports from it, and their bus ports +10000),
SYNAPSE_TEST_REDIS_SENTINEL_BASE_PORT (primary and replica) and
SYNAPSE_TEST_REDIS_SENTINELS_BASE_PORT (3 sentinels) pin them; by default free ones are picked
below the ephemeral port range, so that no outgoing connection takes one meanwhile.
"""

from __future__ import annotations

import asyncio
import os
import random
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Awaitable, Callable, Iterator, Mapping
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from redis.asyncio import Redis
from redis.exceptions import RedisError

T = TypeVar("T")

REPO = Path(__file__).resolve().parents[2]
TOPOLOGY_SCRIPT = REPO / "deploy" / "dev" / "redis-topology.sh"
SENTINEL_MASTER = "synapse"
CLUSTER_NODES = 6
CLUSTER_BUS_OFFSET = 10000
START_TIMEOUT = 120
FAILOVER_TIMEOUT = 60.0
# Free base ports are picked here: below Linux's default ephemeral range (32768-60999) with the
# cluster bus ports (+10000) too.
_PORT_RANGE = (10000, 22000)


class TopologyError(RuntimeError):
    """The script failed, or a node is not where the topology says it is."""


class FailoverTimeout(AssertionError):
    """A bounded wait for a failover (or a recovery) ran out; says what it last saw."""


def missing_binaries() -> list[str]:
    """The Redis binaries the topologies need that are not on PATH."""
    return [name for name in ("redis-server", "redis-cli") if shutil.which(name) is None]


@dataclass(frozen=True)
class KilledNode:
    """A node this module killed with SIGKILL."""

    port: int
    pid: int
    killed_at: float  # time.monotonic()
    node_id: str = ""  # cluster only


# ---------------------------------------------------------------------------------------------
# Ports and processes
# ---------------------------------------------------------------------------------------------


def _bindable(port: int) -> bool:
    with socket.socket() as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True


def free_port_block(offsets: list[int], *, attempts: int = 200) -> int:
    """A base port B such that B+offset is free on 127.0.0.1 for every offset."""
    for _ in range(attempts):
        base = random.randint(*_PORT_RANGE)
        if all(_bindable(base + offset) for offset in offsets):
            return base
    raise TopologyError(f"no free block of ports for offsets {offsets} in {_PORT_RANGE}")


def _env_port(name: str) -> int | None:
    value = os.environ.get(name, "").strip()
    return int(value) if value else None


def _proc_starttime(pid: int) -> str | None:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = stat.rsplit(") ", 1)[1].split()
    if fields[0] in ("Z", "X"):
        return None
    return fields[19]


def _own_pid(node_dir: Path) -> int:
    """The live pid the script recorded in NODE_DIR/node.pid (start time checked)."""
    pid_file = node_dir / "node.pid"
    try:
        pid_text, start, _port = pid_file.read_text().split()
    except (OSError, ValueError) as exc:
        raise TopologyError(f"no usable pid file {pid_file}: {exc}") from exc
    pid = int(pid_text)
    if _proc_starttime(pid) != start:
        raise TopologyError(f"{pid_file} names pid {pid}, which is no longer running")
    return pid


def _listening(port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(0.2)
        return sock.connect_ex(("127.0.0.1", port)) == 0


async def _kill(node_dir: Path, port: int, node_id: str = "") -> KilledNode:
    pid = _own_pid(node_dir)
    os.kill(pid, signal.SIGKILL)
    killed_at = time.monotonic()
    deadline = killed_at + 10
    while _proc_starttime(pid) is not None or _listening(port):
        if time.monotonic() > deadline:
            raise TopologyError(f"pid {pid} (port {port}) still alive 10 s after SIGKILL")
        await asyncio.sleep(0.05)
    return KilledNode(port=port, pid=pid, killed_at=killed_at, node_id=node_id)


async def _probe(port: int, *args: Any) -> Any:
    """One command on one node over a fresh connection (never through a cluster client)."""
    client = Redis(host="127.0.0.1", port=port, socket_timeout=2, socket_connect_timeout=2)
    try:
        # redis-py leaves execute_command unannotated.
        return await client.execute_command(*args)  # type: ignore[no-untyped-call]
    finally:
        await client.aclose()


async def _try_probe(port: int, *args: Any) -> Any | None:
    try:
        return await _probe(port, *args)
    except (RedisError, OSError):
        return None


async def _role(port: int) -> str | None:
    reply = await _try_probe(port, "ROLE")
    if not reply:
        return None
    role = reply[0]
    return role.decode() if isinstance(role, bytes) else str(role)


class _Topology:
    def __init__(self, run_dir: Path) -> None:
        self.run_dir = run_dir

    def script_env(self) -> dict[str, str]:
        return {**os.environ, "REDIS_TOPOLOGY_DIR": str(self.run_dir)}

    def run(self, command: str, *, timeout: float = START_TIMEOUT) -> str:
        done = subprocess.run(
            [str(TOPOLOGY_SCRIPT), command],
            env=self.script_env(),
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
        if done.returncode != 0:
            raise TopologyError(
                f"redis-topology.sh {command} failed (exit {done.returncode}):\n"
                f"{done.stdout}{done.stderr}"
            )
        return done.stdout

    def start(self) -> None:
        raise NotImplementedError

    async def arun(self, command: str, *, within: float = START_TIMEOUT) -> str:
        """run() without blocking the event loop."""
        return await asyncio.to_thread(self.run, command, timeout=within)


async def _eventually(
    what: str, within: float, probe: Callable[[], Awaitable[tuple[T | None, str]]]
) -> T:
    """Await probe() until it returns something other than None; FailoverTimeout after timeout.
    probe returns (result, description of what it saw)."""
    deadline = time.monotonic() + within
    seen = "nothing yet"
    while True:
        result, seen = await probe()
        if result is not None:
            return result
        if time.monotonic() > deadline:
            raise FailoverTimeout(
                f"timed out after {within:.0f} s waiting for {what}; last seen: {seen}"
            )
        await asyncio.sleep(0.1)


# ---------------------------------------------------------------------------------------------
# Cluster
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ClusterNodeView:
    """One line of CLUSTER NODES."""

    node_id: str
    port: int
    flags: frozenset[str]
    master_id: str
    connected: bool
    slots: tuple[tuple[int, int], ...]

    @property
    def healthy_master(self) -> bool:
        return "master" in self.flags and not self.flags & {"fail", "fail?"} and self.connected

    def owns(self, slot: int) -> bool:
        return any(low <= slot <= high for low, high in self.slots)


def parse_cluster_nodes(text: str) -> list[ClusterNodeView]:
    nodes = []
    for line in text.splitlines():
        fields = line.split()
        if len(fields) < 8:
            continue
        address = fields[1].split("@", 1)[0]
        slots: list[tuple[int, int]] = []
        for item in fields[8:]:
            if item.startswith("["):  # a slot being migrated
                continue
            low, _, high = item.partition("-")
            slots.append((int(low), int(high or low)))
        nodes.append(
            ClusterNodeView(
                node_id=fields[0],
                port=int(address.rsplit(":", 1)[1]),
                flags=frozenset(fields[2].split(",")),
                master_id=fields[3],
                connected=fields[7] == "connected",
                slots=tuple(slots),
            )
        )
    return nodes


class ClusterTopology(_Topology):
    """3 masters + 3 replicas on base_port..base_port+5 (deploy/dev/redis-topology.sh)."""

    def __init__(self, run_dir: Path, base_port: int) -> None:
        super().__init__(run_dir)
        self.base_port = base_port
        self.ports = [base_port + i for i in range(CLUSTER_NODES)]

    @property
    def seed_url(self) -> str:
        return f"redis://127.0.0.1:{self.base_port}"

    @property
    def startup_nodes(self) -> list[tuple[str, int]]:
        return [("127.0.0.1", port) for port in self.ports]

    def script_env(self) -> dict[str, str]:
        return {**super().script_env(), "REDIS_CLUSTER_BASE_PORT": str(self.base_port)}

    def node_dir(self, port: int) -> Path:
        return self.run_dir / "cluster" / str(port)

    def pid(self, port: int) -> int:
        return _own_pid(self.node_dir(port))

    def start(self) -> None:
        self.run("cluster-start")

    def stop(self) -> None:
        self.run("cluster-stop")

    async def nodes_view(self, port: int) -> list[ClusterNodeView] | None:
        reply = await _try_probe(port, "CLUSTER", "NODES")
        if reply is None:
            return None
        return parse_cluster_nodes(reply.decode() if isinstance(reply, bytes) else str(reply))

    async def keyslot(self, key: str) -> int:
        for port in self.ports:
            slot = await _try_probe(port, "CLUSTER", "KEYSLOT", key)
            if slot is not None:
                return int(slot)
        raise TopologyError("no cluster node answers CLUSTER KEYSLOT")

    async def master_for_slot(self, slot: int) -> ClusterNodeView:
        """The healthy master owning SLOT, as the first answering node sees it."""
        for port in self.ports:
            view = await self.nodes_view(port)
            if view is None:
                continue
            for node in view:
                if node.healthy_master and node.owns(slot):
                    return node
        raise TopologyError(f"no answering node knows a healthy master for slot {slot}")

    async def master_for_key(self, key: str) -> ClusterNodeView:
        return await self.master_for_slot(await self.keyslot(key))

    async def kill_master_for_key(self, key: str) -> KilledNode:
        """kill -9 the master that owns KEY's slot now."""
        master = await self.master_for_key(key)
        return await _kill(self.node_dir(master.port), master.port, master.node_id)

    async def wait_for_failover(
        self, killed: KilledNode, slot: int, *, within: float = FAILOVER_TIMEOUT
    ) -> int:
        """Until every surviving node flags the killed one as failed, agrees on a new healthy
        master for SLOT (not the killed node) and says cluster_state:ok. Returns its port."""

        async def probe() -> tuple[int | None, str]:
            new_ports = set()
            for port in self.ports:
                if port == killed.port:
                    continue
                view = await self.nodes_view(port)
                info = await _try_probe(port, "CLUSTER", "INFO")
                if view is None or info is None:
                    return None, f"node {port} does not answer"
                text = info.decode() if isinstance(info, bytes) else str(info)
                if "cluster_state:ok" not in text:
                    return None, f"node {port}: cluster_state not ok"
                dead = [n for n in view if n.node_id == killed.node_id]
                if not dead or "fail" not in dead[0].flags:
                    flags = sorted(dead[0].flags) if dead else "unknown"
                    return None, f"node {port}: killed node {killed.port} flags {flags}"
                owners = [n.port for n in view if n.healthy_master and n.owns(slot)]
                if len(owners) != 1:
                    return None, f"node {port}: healthy masters for slot {slot}: {owners}"
                new_ports.add(owners[0])
            if len(new_ports) != 1:
                return None, f"surviving nodes disagree on slot {slot}'s master: {new_ports}"
            new_port = new_ports.pop()
            if await _role(new_port) != "master":
                return None, f"new master {new_port} does not answer ROLE as master"
            return new_port, "done"

        port: int = await _eventually(
            f"the cluster to fail over from {killed.port} (slot {slot})", within, probe
        )
        return port

    async def restart(self, killed: KilledNode, *, within: float = FAILOVER_TIMEOUT) -> None:
        """Start the killed node again (cluster-start): it rejoins from its nodes.conf as a
        replica of its promoted former replica; returns once the cluster is healthy again."""
        await self.arun("cluster-start")

        async def probe() -> tuple[bool | None, str]:
            role = await _role(killed.port)
            return (True if role == "slave" else None), f"role of {killed.port}: {role}"

        await _eventually(f"node {killed.port} to rejoin as a replica", within, probe)


# ---------------------------------------------------------------------------------------------
# Sentinel
# ---------------------------------------------------------------------------------------------


class SentinelTopology(_Topology):
    """A primary, one replica and three sentinels (deploy/dev/redis-topology.sh)."""

    def __init__(self, run_dir: Path, data_base_port: int, sentinels_base_port: int) -> None:
        super().__init__(run_dir)
        self.data_ports = [data_base_port, data_base_port + 1]
        self.sentinel_ports = [sentinels_base_port + i for i in range(3)]
        self.master_name = SENTINEL_MASTER

    @property
    def sentinels(self) -> list[tuple[str, int]]:
        """For redis.asyncio.sentinel.Sentinel(...)."""
        return [("127.0.0.1", port) for port in self.sentinel_ports]

    @property
    def sentinels_env(self) -> str:
        """The SYNAPSE_TEST_REDIS_SENTINELS form: host:port,host:port,host:port."""
        return ",".join(f"{host}:{port}" for host, port in self.sentinels)

    def script_env(self) -> dict[str, str]:
        return {
            **super().script_env(),
            "REDIS_SENTINEL_BASE_PORT": str(self.data_ports[0]),
            "REDIS_SENTINELS_BASE_PORT": str(self.sentinel_ports[0]),
            "REDIS_SENTINEL_MASTER": self.master_name,
        }

    def node_dir(self, port: int) -> Path:
        return self.run_dir / "sentinel" / f"redis-{port}"

    def pid(self, port: int) -> int:
        return _own_pid(self.node_dir(port))

    def start(self) -> None:
        self.run("sentinel-start")

    def stop(self) -> None:
        self.run("sentinel-stop")

    async def masters_seen(self) -> dict[int, int | None]:
        """Each sentinel's answer to SENTINEL GET-MASTER-ADDR-BY-NAME (port, or None)."""
        seen: dict[int, int | None] = {}
        for port in self.sentinel_ports:
            reply = await _try_probe(port, "SENTINEL", "GET-MASTER-ADDR-BY-NAME", self.master_name)
            seen[port] = int(reply[1]) if reply else None
        return seen

    async def primary(self) -> int:
        """The primary's port, as the sentinels agree on it."""
        seen = await self.masters_seen()
        ports = set(seen.values()) - {None}
        if len(ports) != 1:
            raise TopologyError(f"sentinels do not agree on the primary: {seen}")
        port = ports.pop()
        assert port is not None
        return port

    async def kill_primary(self) -> KilledNode:
        port = await self.primary()
        return await _kill(self.node_dir(port), port)

    async def wait_for_failover(
        self, killed: KilledNode, *, within: float = FAILOVER_TIMEOUT
    ) -> int:
        """Until every sentinel names another primary than the killed one and that node answers
        ROLE as master. Returns its port."""

        async def probe() -> tuple[int | None, str]:
            seen = await self.masters_seen()
            ports = set(seen.values())
            if len(ports) != 1 or None in ports or killed.port in ports:
                return None, f"sentinels' primaries: {seen}"
            port = ports.pop()
            assert port is not None
            role = await _role(port)
            if role != "master":
                return None, f"new primary {port} answers ROLE {role}"
            return port, "done"

        port: int = await _eventually(
            f"the sentinels to fail over from {killed.port}", within, probe
        )
        return port

    async def restart(self, killed: KilledNode, *, within: float = FAILOVER_TIMEOUT) -> None:
        """Start the killed node again (sentinel-start), as a replica of the current primary;
        returns once every sentinel sees it as a healthy replica again."""
        await self.arun("sentinel-start")

        async def probe() -> tuple[bool | None, str]:
            role = await _role(killed.port)
            return (True if role == "slave" else None), f"role of {killed.port}: {role}"

        await _eventually(f"node {killed.port} to come back as a replica", within, probe)


# ---------------------------------------------------------------------------------------------
# Session helpers
# ---------------------------------------------------------------------------------------------

TopologyT = TypeVar("TopologyT", bound=_Topology)


def _start_with_free_ports(make: Callable[[], TopologyT], fixed: bool) -> TopologyT:
    """Starts make()'s topology; with ports of our choosing, once more on other ports if one
    was taken meanwhile."""
    for attempt in range(3):
        topology = make()
        try:
            topology.start()
        except TopologyError as exc:
            with suppress(TopologyError):
                topology.run("stop")
            if fixed or "is taken" not in str(exc) or attempt == 2:
                raise
            continue
        return topology
    raise AssertionError("unreachable")


@contextmanager
def running_cluster(run_dir: Path) -> Iterator[ClusterTopology]:
    """A fresh cluster in RUN_DIR for the duration of the block; stopped after."""
    base = _env_port("SYNAPSE_TEST_REDIS_CLUSTER_BASE_PORT")

    def make() -> ClusterTopology:
        offsets = list(range(CLUSTER_NODES))
        offsets += [CLUSTER_BUS_OFFSET + i for i in range(CLUSTER_NODES)]
        return ClusterTopology(run_dir, base if base is not None else free_port_block(offsets))

    topology = _start_with_free_ports(make, base is not None)
    try:
        yield topology
    finally:
        topology.stop()


@contextmanager
def running_sentinel(run_dir: Path) -> Iterator[SentinelTopology]:
    """A fresh primary, replica and three sentinels in RUN_DIR for the block; stopped after."""
    data = _env_port("SYNAPSE_TEST_REDIS_SENTINEL_BASE_PORT")
    sentinels = _env_port("SYNAPSE_TEST_REDIS_SENTINELS_BASE_PORT")
    fixed = data is not None and sentinels is not None

    def make() -> SentinelTopology:
        data_base = data if data is not None else free_port_block([0, 1])
        sentinels_base = sentinels
        while sentinels_base is None:
            candidate = free_port_block([0, 1, 2])
            if candidate not in range(data_base - 2, data_base + 2):
                sentinels_base = candidate
        return SentinelTopology(run_dir, data_base, sentinels_base)

    topology = _start_with_free_ports(make, fixed)
    try:
        yield topology
    finally:
        topology.stop()


def topology_env(cluster: ClusterTopology, sentinel: SentinelTopology) -> Mapping[str, str]:
    """What `redis-topology.sh env` prints, for these topologies."""
    return {
        "SYNAPSE_TEST_REDIS_CLUSTER_URL": cluster.seed_url,
        "SYNAPSE_TEST_REDIS_SENTINELS": sentinel.sentinels_env,
        "SYNAPSE_TEST_REDIS_SENTINEL_MASTER": sentinel.master_name,
    }
