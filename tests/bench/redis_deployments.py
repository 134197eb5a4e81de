"""/ingest and /brief on the three Redis deployments, and what REDIS_WAIT_REPLICAS costs
(tests/bench/run.py, phase `deployments`).

The same API (`python -m service`, one uvicorn worker) is started once per deployment and
setting, one at a time, and driven by the same closed loop as the `http` phase (wrk,
BENCH_CONNECTIONS connections, BENCH_SECONDS each after a 2 s warm-up):

- standalone: the bench's own Redis (the default deployment, and the baseline of each row);
- cluster: a real Redis Cluster of 3 masters and 3 replicas on loopback
  (deploy/dev/redis-topology.sh via tests/support/redis_topology.py), arq's queue on the
  bench's standalone Redis (JOB_QUEUE_REDIS_URL), as deploy/README.md describes;
- sentinel: a primary, a replica and three sentinels on loopback.

/ingest runs with REDIS_WAIT_REPLICAS=0 and =1 on the two replicated deployments: the second
row of each is what waiting for a replica before acknowledging costs. /brief reads only, so it
never waits; it runs once per deployment on 1,000 users seeded into that deployment.

What it shows and what it cannot: on one 2-core machine the six cluster nodes, the API and the
load generator share the same cores, so a cluster cannot be faster here; the rows measure the
cost of the cluster client's routing and of WAIT's round trip, not the capacity a cluster of
machines adds.
"""

import asyncio
import secrets
import tempfile
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from service.store.client import Connection
from tests.bench.run import (
    API_PORT,
    BRIEF_USERS,
    CONNECTIONS,
    PY,
    REDIS_URL,
    SECONDS,
    Process,
    Table,
    log,
    ms,
    ratio,
    seed_brief_users,
    service_env,
    started,
    wrk,
)
from tests.support.redis_topology import running_cluster, running_sentinel


@dataclass(frozen=True)
class Deployment:
    name: str
    connection: Connection
    env: dict[str, str] = field(default_factory=dict)
    replicated: bool = False


@contextmanager
def deployments() -> Iterator[list[Deployment]]:
    with ExitStack() as stack:
        root = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="bench-topology-")))
        cluster = stack.enter_context(running_cluster(root / "cluster"))
        sentinel = stack.enter_context(running_sentinel(root / "sentinel"))
        yield [
            Deployment("standalone", Connection(url=REDIS_URL)),
            Deployment(
                "3-master Redis Cluster",
                Connection(mode="cluster", url=cluster.seed_url),
                {
                    "REDIS_MODE": "cluster",
                    "REDIS_URL": cluster.seed_url,
                    "JOB_QUEUE_REDIS_URL": REDIS_URL,
                },
                replicated=True,
            ),
            Deployment(
                "Sentinel (primary + replica)",
                Connection(
                    mode="sentinel",
                    sentinels=tuple(sentinel.sentinels),
                    sentinel_master=sentinel.master_name,
                ),
                {
                    "REDIS_MODE": "sentinel",
                    "REDIS_SENTINELS": sentinel.sentinels_env,
                    "REDIS_SENTINEL_MASTER": sentinel.master_name,
                },
                replicated=True,
            ),
        ]


def _closed_loop(
    deployment: Deployment, path: str, script: str, args: list[str], wait: int
) -> dict[str, float]:
    api = Process(
        f"api-{path.strip('/')}-{deployment.name.split()[0].lower()}-w{wait}",
        [PY, "-m", "service"],
        service_env(API_PORT, **deployment.env, REDIS_WAIT_REPLICAS=str(wait)),
    )
    with started(api):
        api.wait_for_port(API_PORT)
        url = f"http://127.0.0.1:{API_PORT}{path}"
        wrk(url, script, 2, [f"{args[0]}-warm", *args[1:]])
        result = wrk(url, script, SECONDS, args)
    log(f"{path} on {deployment.name}, REDIS_WAIT_REPLICAS={wait}: {result}")
    if result["errors"]:
        raise RuntimeError(f"{path} on {deployment.name}: {result['errors']} non-2xx answers")
    return result


def _describe(result: dict[str, float]) -> str:
    return f"{result['rate']:.0f} (p50 {ms(result['p50_ms'])}, p99 {ms(result['p99_ms'])})"


def deployments_phase(table: Table) -> None:
    nonce = secrets.token_hex(3)
    with deployments() as all_deployments:
        standalone = all_deployments[0]
        ingest: dict[tuple[str, int], dict[str, float]] = {}
        brief: dict[str, dict[str, float]] = {}
        for deployment in all_deployments:
            for wait in (0, 1) if deployment.replicated else (0,):
                tenant = f"ingest-{deployment.name.split()[0].lower()}-w{wait}"
                ingest[(deployment.name, wait)] = _closed_loop(
                    deployment, "/ingest", "ingest.lua", [tenant, nonce], wait
                )
            asyncio.run(
                seed_brief_users("brief", BRIEF_USERS, 10, connection=deployment.connection)
            )
            brief[deployment.name] = _closed_loop(
                deployment, "/brief", "brief.lua", ["brief", str(BRIEF_USERS)], 0
            )

    loop = f"closed loop {CONNECTIONS} conn {SECONDS}s, req/s"
    base_ingest = ingest[(standalone.name, 0)]
    base_brief = brief[standalone.name]
    for deployment in all_deployments[1:]:
        plain, waiting = ingest[(deployment.name, 0)], ingest[(deployment.name, 1)]
        table.add(
            f"/ingest on {deployment.name} vs standalone ({loop})",
            _describe(plain),
            _describe(base_ingest),
            ratio(plain["rate"], base_ingest["rate"]),
            "report",
        )
        table.add(
            f"/ingest on {deployment.name}, REDIS_WAIT_REPLICAS=1 vs 0 ({loop}): what waiting "
            "for a replica costs",
            _describe(waiting),
            _describe(plain),
            ratio(waiting["rate"], plain["rate"]),
            "report",
        )
        table.add(
            f"/brief on {deployment.name} vs standalone ({loop})",
            _describe(brief[deployment.name]),
            _describe(base_brief),
            ratio(brief[deployment.name]["rate"], base_brief["rate"]),
            "report",
        )
    table.notes.append(
        "Redis deployments: one API at a time on each deployment, all on loopback on this "
        "machine (6 cluster nodes, or a primary, a replica and 3 sentinels, sharing its cores "
        "with the API and wrk), so the rows show the cost of cluster routing and of WAIT's round "
        "trip, not what a cluster of machines adds. Baseline: the same API on the bench's "
        "standalone Redis in the same run."
    )
