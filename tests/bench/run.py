"""`make bench`: the performance suite of issue 5, with a baseline measured in the same run next to
every figure, printed as one table and appended to tests/bench/RESULTS.md.

What it starts (and stops), all on loopback and on ports of its own so it never touches dev or
test data: Redis and Neo4j through deploy/dev/services.sh (run dir .run/bench), the API as it is
deployed (`python -m service`: one uvicorn worker process), the baseline app
(tests/bench/baseline_app.py, same uvicorn settings), the janitor (`python -m janitor`, wrapped
by tests/bench/janitor_probe.py for per-episode timing) and the OpenAI stand-in
(tests/standin/server.py) in this process. Load comes from other processes: wrk (closed loop)
and tests/bench/loadgen.py (constant rate, and sequential).

Phases (BENCH_PHASES, comma-separated; default all): http (/ingest, /brief), query
(/memory/query at each fact count), janitor (flush at each stand-in latency), sweep (100k open
sessions), scaling (episodes/min with 1, 2 and 4 janitor processes, on the standalone Redis and
on a 3-master Redis Cluster, tests/bench/janitor_scaling.py; `BENCH_PHASES=scaling make bench`
runs only that), deployments (/ingest and /brief on a Redis Cluster and behind Sentinel next to
standalone, with and without REDIS_WAIT_REPLICAS=1, tests/bench/redis_deployments.py). Knobs,
with the issue's numbers as defaults:

  BENCH_SECONDS=20 BENCH_CONNECTIONS=32     closed-loop duration and connections
  BENCH_RATE_SECONDS=20                     constant-rate run at half the measured max rate
  BENCH_FACTS=1000,10000,100000             fact counts for /memory/query
  BENCH_QUERIES=40                          sequential queries per fact count (each side)
  BENCH_JANITOR_SESSIONS=1000 BENCH_JANITOR_TURNS=10 BENCH_JANITOR_LATENCIES_MS=0,300
  BENCH_JANITOR_MAX_SECONDS=420             cap per latency; the rate is measured on what landed
  BENCH_JANITOR_SERIAL_SESSIONS=100         then flushed by a janitor with JANITOR_MAX_JOBS=1
  BENCH_SWEEP_SESSIONS=100000
  BENCH_SCALING_JANITORS=1,2,4 BENCH_SCALING_JOBS=1,8   processes, and JANITOR_MAX_JOBS in each
  BENCH_SCALING_LATENCY_MS=300 BENCH_SCALING_WARMUP=10 BENCH_SCALING_SECONDS=30
  BENCH_SCALING_CLUSTER_JOBS=1              JANITOR_MAX_JOBS values run again on the cluster
  BENCH_EMBEDDING_DIM=1024                  the service's default EMBEDDING_DIM
  BENCH_REDIS_PORT=6394 BENCH_NEO4J_PORT=7694 BENCH_API_PORT=8794 BENCH_BASELINE_PORT=8795
  BENCH_FACTS_ONLY_PORT=8796                a second API with QUERY_PASSAGES=off
  BENCH_NEO4J=2026.08.1                     or 5.26: the Neo4j to run on
  BENCH_RECORD=1                            append the table to RESULTS.md (0: print only)
"""

import asyncio
import itertools
import json
import os
import platform
import re
import secrets
import signal
import socket
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]
BENCH = REPO / "tests" / "bench"
# BENCH_NEO4J: the Neo4j the bench runs on (deploy/dev/services.sh's NEO4J_VERSION), each in
# a data directory of its own (a 2026 store is not readable by 5.26).
NEO4J_VERSION = os.environ.get("BENCH_NEO4J", "2026.08.1")
RUN_DIR = REPO / ".run" / f"bench-neo4j-{NEO4J_VERSION}"
PY = sys.executable


def env_int(name: str, default: int) -> int:
    return int(os.environ.get(name, default))


def env_list(name: str, default: str) -> list[int]:
    return [int(x) for x in os.environ.get(name, default).split(",") if x.strip()]


SECONDS = env_int("BENCH_SECONDS", 20)
CONNECTIONS = env_int("BENCH_CONNECTIONS", 32)
RATE_SECONDS = env_int("BENCH_RATE_SECONDS", SECONDS)
FACTS = env_list("BENCH_FACTS", "1000,10000,100000")
QUERY_COUNT = env_int("BENCH_QUERIES", 40)
JANITOR_SESSIONS = env_int("BENCH_JANITOR_SESSIONS", 1000)
SERIAL_SESSIONS = env_int("BENCH_JANITOR_SERIAL_SESSIONS", 100)
JANITOR_TURNS = env_int("BENCH_JANITOR_TURNS", 10)
JANITOR_LATENCIES_MS = env_list("BENCH_JANITOR_LATENCIES_MS", "0,300")
JANITOR_MAX_SECONDS = env_int("BENCH_JANITOR_MAX_SECONDS", 420)
SWEEP_SESSIONS = env_int("BENCH_SWEEP_SESSIONS", 100_000)
DIM = env_int("BENCH_EMBEDDING_DIM", 1024)
REDIS_PORT = env_int("BENCH_REDIS_PORT", 6394)
NEO4J_PORT = env_int("BENCH_NEO4J_PORT", 7694)
API_PORT = env_int("BENCH_API_PORT", 8794)
BASELINE_PORT = env_int("BENCH_BASELINE_PORT", 8795)
FACTS_ONLY_PORT = env_int("BENCH_FACTS_ONLY_PORT", 8796)
PHASES = os.environ.get("BENCH_PHASES", "http,query,janitor,sweep,scaling,deployments").split(",")
RECORD = os.environ.get("BENCH_RECORD", "1") == "1"

REDIS_URL = f"redis://127.0.0.1:{REDIS_PORT}/0"
NEO4J_URI = f"bolt://127.0.0.1:{NEO4J_PORT}"
BRIEF_USERS = 1000


def log(message: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


# --- the table ---------------------------------------------------------------------------------


@dataclass
class Row:
    what: str
    value: str
    baseline: str
    ratio: str
    target: str = ""
    verdict: str = ""


@dataclass
class Table:
    rows: list[Row] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def add(
        self,
        what: str,
        value: str,
        baseline: str = "",
        ratio: str = "",
        target: str = "",
        ok: bool | None = None,
    ) -> None:
        verdict = "" if ok is None else ("met" if ok else "MISSED")
        self.rows.append(Row(what, value, baseline, ratio, target, verdict))

    def markdown(self) -> str:
        head = (
            "| what | Synapse | baseline (same run) | ratio | target | |\n|---|---|---|---|---|---|"
        )
        lines = [
            f"| {r.what} | {r.value} | {r.baseline} | {r.ratio} | {r.target} | {r.verdict} |"
            for r in self.rows
        ]
        return "\n".join([head, *lines])


def ms(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.2f} ms"


def ratio(a: float | None, b: float | None) -> str:
    return "n/a" if not a or not b else f"{a / b:.2f}x"


# --- processes ---------------------------------------------------------------------------------


def services(command: str) -> None:
    env = {
        **os.environ,
        "SYNAPSE_RUN_DIR": str(RUN_DIR),
        "REDIS_PORT": str(REDIS_PORT),
        "NEO4J_BOLT_PORT": str(NEO4J_PORT),
        "NEO4J_PASSWORD": "",
        "NEO4J_HEAP": os.environ.get("BENCH_NEO4J_HEAP", "2g"),
        "NEO4J_VERSION": NEO4J_VERSION,
    }
    subprocess.run([str(REPO / "deploy" / "dev" / "services.sh"), command], env=env, check=True)


def service_env(port: int, **extra: str) -> dict[str, str]:
    return {
        "PATH": os.environ.get("PATH", ""),
        "HOME": os.environ.get("HOME", "/root"),
        "PYTHONPATH": str(REPO),
        "GRAPHITI_TELEMETRY_ENABLED": "false",
        "SYNAPSE_HOST": "127.0.0.1",
        "SYNAPSE_PORT": str(port),
        "REDIS_URL": REDIS_URL,
        "NEO4J_URI": NEO4J_URI,
        "NEO4J_USER": "neo4j",
        "NEO4J_PASSWORD": "",
        "LLM_PROVIDER": "offline",
        "EMBEDDING_DIM": str(DIM),
        **extra,
    }


class Process:
    def __init__(self, name: str, args: list[str], env: dict[str, str]) -> None:
        self.name = name
        self.log_path = RUN_DIR / f"{name}.log"
        with self.log_path.open("ab") as out:
            self.popen = subprocess.Popen(
                args, cwd=REPO, env=env, stdout=out, stderr=subprocess.STDOUT
            )

    @property
    def pid(self) -> int:
        return self.popen.pid

    def rss_mb(self) -> float:
        for line in Path(f"/proc/{self.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
        return 0.0

    def cpu_seconds(self) -> float:
        fields = Path(f"/proc/{self.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def wait_for_port(self, port: int, timeout: float = 120) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.popen.poll() is not None:
                raise RuntimeError(f"{self.name} exited; see {self.log_path}")
            with socket.socket() as sock:
                if sock.connect_ex(("127.0.0.1", port)) == 0:
                    return
            time.sleep(0.1)
        raise RuntimeError(f"{self.name} did not listen on {port}; see {self.log_path}")

    def wait_for_log(self, text: str, timeout: float = 120) -> None:
        deadline = time.monotonic() + timeout
        while text not in self.log_path.read_text(errors="replace"):
            if self.popen.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"{self.name} did not start; see {self.log_path}")
            time.sleep(0.1)

    def stop(self) -> None:
        if self.popen.poll() is None:
            self.popen.send_signal(signal.SIGTERM)
            try:
                self.popen.wait(timeout=40)
            except subprocess.TimeoutExpired:
                self.popen.kill()
                self.popen.wait(timeout=10)


@contextmanager
def started(process: Process) -> Iterator[Process]:
    try:
        yield process
    finally:
        process.stop()


# --- load ----------------------------------------------------------------------------------------

_UNITS = {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60_000.0}


def _duration_ms(text: str) -> float:
    number, unit = re.fullmatch(r"([\d.]+)([a-z]+)", text.strip()).groups()  # type: ignore[union-attr]
    return float(number) * _UNITS[unit]


def wrk(url: str, script: str, seconds: int, args: list[str]) -> dict[str, Any]:
    command = [
        "wrk", "-t1", f"-c{CONNECTIONS}", f"-d{seconds}s", "--latency", "--timeout", "10s",
        "-s", str(BENCH / "wrk" / script), url, "--", *args,
    ]  # fmt: skip
    out = subprocess.run(command, capture_output=True, text=True, check=True).stdout
    rate = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]
    percentiles = {
        p: _duration_ms(v) for p, v in re.findall(r"^\s+(50|75|90|99)%\s+(\S+)", out, re.M)
    }
    non_2xx = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", out)
    socket_errors = re.search(r"Socket errors:.*", out)
    return {
        "rate": rate,
        "p50_ms": percentiles.get("50"),
        "p99_ms": percentiles.get("99"),
        "errors": int(non_2xx.group(1)) if non_2xx else 0,
        "socket_errors": socket_errors.group(0) if socket_errors else "",
    }


def loadgen(spec: dict[str, Any]) -> dict[str, Any]:
    out = subprocess.run(
        [PY, "-m", "tests.bench.loadgen", json.dumps(spec)],
        cwd=REPO,
        env={**os.environ, "PYTHONPATH": str(REPO)},
        capture_output=True,
        text=True,
        check=False,
    )
    if out.returncode != 0:
        raise RuntimeError(f"loadgen failed: {out.stderr[-2000:]}")
    result: dict[str, Any] = json.loads(out.stdout.strip().splitlines()[-1])
    return result


# --- phases --------------------------------------------------------------------------------------


async def flush_redis() -> None:
    from redis.asyncio import Redis

    redis: Redis = Redis.from_url(REDIS_URL)
    await redis.flushall()
    await redis.aclose()


async def seed_brief_users(tenant: str, users: int, turns: int, connection: Any = None) -> None:
    """Users with a session of `turns` turns and a remembered timezone, for /brief to read, in
    the bench's Redis or on `connection` (a service.store.client.Connection)."""
    from service.store.client import Store
    from service.store.layout import UserKeys
    from service.store.sessions import NewTurn

    connected = Store.connect(
        connection or REDIS_URL, retention_seconds=3600, audit_max_entries=1000
    )
    store = connected.sessions
    now_ms = int(time.time() * 1000)

    async def one(i: int) -> None:
        user = UserKeys(tenant, f"u-{i}")
        for t in range(turns):
            turn = NewTurn(
                role="user" if t % 2 == 0 else "assistant",
                text=f"Turn {t}: I need to book the dentist before Friday and call my sister.",
                timestamp=datetime.fromtimestamp(now_ms / 1000 - 60 + t, tz=UTC),
            )
            await store.append_turn(user.session(f"s-{i}"), turn, persona_id="p", now_ms=now_ms)
        await store.remember_timezone(user, "Europe/Paris")

    for start in range(0, users, 100):
        await asyncio.gather(*(one(i) for i in range(start, min(users, start + 100))))
    await connected.close()


def http_phase(table: Table, api: Process, baseline: Process) -> None:
    nonce = secrets.token_hex(3)
    api_url = f"http://127.0.0.1:{API_PORT}"
    base_url = f"http://127.0.0.1:{BASELINE_PORT}"
    asyncio.run(seed_brief_users("brief", BRIEF_USERS, 10))

    Args = Callable[[str], list[str]]
    Spec = Callable[[str], dict[str, Any]]
    endpoints: list[tuple[str, str, Args, Spec]] = [
        (
            "/ingest",
            "ingest.lua",
            lambda side: [f"ingest-{side}", f"{nonce}{side[0]}"],
            lambda side: {
                "kind": "ingest",
                "tenant": f"ingest-{side}",
                "nonce": f"{nonce}r{side[0]}",
            },
        ),
        (
            "/brief",
            "brief.lua",
            lambda side: ["brief", str(BRIEF_USERS)],
            lambda side: {"kind": "brief", "tenant": "brief", "users": BRIEF_USERS},
        ),
    ]  # fmt: skip
    for path, script, wrk_args, rate_spec in endpoints:
        # Warm both (connection pools, script cache, first-request imports).
        wrk(base_url + path, script, 2, wrk_args("warmbase"))
        wrk(api_url + path, script, 2, wrk_args("warmsvc"))
        log(f"{path}: closed loop, {CONNECTIONS} connections, {SECONDS}s each side")
        closed_base = wrk(base_url + path, script, SECONDS, wrk_args("base"))
        closed_svc = wrk(api_url + path, script, SECONDS, wrk_args("svc"))
        log(f"{path}: closed loop synapse {closed_svc} baseline {closed_base}")
        half_svc = closed_svc["rate"] / 2
        half_base = closed_base["rate"] / 2
        open_base = loadgen(
            {
                **rate_spec("base"),
                "url": base_url,
                "path": path,
                "rate": half_base,
                "seconds": RATE_SECONDS,
            }
        )
        open_svc = loadgen(
            {
                **rate_spec("svc"),
                "url": api_url,
                "path": path,
                "rate": half_svc,
                "seconds": RATE_SECONDS,
            }
        )
        log(f"{path}: constant rate synapse {open_svc} baseline {open_base}")
        throughput = closed_svc["rate"] / closed_base["rate"]
        table.add(
            f"{path} throughput, closed loop {CONNECTIONS} conn {SECONDS}s (req/s)",
            f"{closed_svc['rate']:.0f}",
            f"{closed_base['rate']:.0f}",
            f"{throughput:.2f}x",
            ">= 0.80x",
            throughput >= 0.8,
        )
        table.add(
            f"{path} p50 / p99 in that closed loop",
            f"{ms(closed_svc['p50_ms'])} / {ms(closed_svc['p99_ms'])}",
            f"{ms(closed_base['p50_ms'])} / {ms(closed_base['p99_ms'])}",
            ratio(closed_svc["p99_ms"], closed_base["p99_ms"]),
        )
        p99 = open_svc["p99_ms"]
        table.add(
            f"{path} p99 at half max rate, constant rate {RATE_SECONDS}s "
            f"(Synapse {half_svc:.0f}/s, baseline {half_base:.0f}/s)",
            f"{ms(p99)} (p50 {ms(open_svc['p50_ms'])}, {open_svc['errors']} errors)",
            f"{ms(open_base['p99_ms'])} (p50 {ms(open_base['p50_ms'])})",
            ratio(p99, open_base["p99_ms"]),
            "<= 10 ms",
            p99 is not None and p99 <= 10 and open_svc["errors"] == 0,
        )
        errors = closed_svc["errors"] + closed_base["errors"]
        if errors:
            table.notes.append(f"{path}: {errors} non-2xx answers in the closed-loop runs")


@dataclass
class QueryTimes:
    service: list[float]  # the API as deployed (facts and passages)
    facts_only: list[float]  # the same API build with QUERY_PASSAGES=off
    plain: list[float]  # plain graphiti-core: its own search_ on its own driver, in-process


def recipe(limit: int) -> Any:
    """Graphiti's hybrid recipe (full text and cosine, reciprocal rank fusion) for facts and
    entities: what GraphMemory.search asks for, and what a Graphiti user would."""
    from graphiti_core.search.search_config import SearchConfig
    from graphiti_core.search.search_config_recipes import (
        EDGE_HYBRID_SEARCH_RRF,
        NODE_HYBRID_SEARCH_RRF,
    )

    edge_config = EDGE_HYBRID_SEARCH_RRF.edge_config
    node_config = NODE_HYBRID_SEARCH_RRF.node_config
    return SearchConfig(
        edge_config=edge_config.model_copy(deep=True) if edge_config else None,
        node_config=node_config.model_copy(deep=True) if node_config else None,
        limit=limit,
    )


async def paired_search(
    group: str, tenant: str, user: str, queries: list[str], count: int
) -> QueryTimes:
    """Each query three times, back to back: through the API (POST /memory/query on a keep-alive
    loopback connection), through a second API that answers from graph facts only
    (QUERY_PASSAGES=off: what the passage search costs), and through plain graphiti-core in
    this process: a Graphiti client on its own Neo4j driver, none of Synapse's search code,
    asked with the same recipe and limit (and the same embedder, so the query's embedding
    costs the same). Interleaving means the machine's noise (other work on a shared 2-core
    box) hits every side alike, which separate runs cannot promise."""
    from tests.bench.loadgen import Connection, query_bodies
    from tests.support.plain_graphiti import plain_graphiti as plain_graphiti_client

    limit = 10
    plain_graphiti = await plain_graphiti_client(NEO4J_URI, DIM)
    body = query_bodies(tenant, user, queries, limit)

    async def plain(n: int) -> float:
        start = time.perf_counter()
        await plain_graphiti.search_(
            queries[n % len(queries)], config=recipe(limit), group_ids=[group]
        )
        return (time.perf_counter() - start) * 1000

    class Api:
        def __init__(self, port: int) -> None:
            self.port = port
            self.connection = Connection("127.0.0.1", port)
            self.last_used = 0.0

        async def __call__(self, n: int) -> float:
            if time.monotonic() - self.last_used > 2:
                # uvicorn closes a keep-alive connection idle for 5 s (a slow search in
                # between is enough): reconnect outside the timed span instead of failing.
                self.connection.close()
                self.connection = Connection("127.0.0.1", self.port)
                await self.connection.open()
            start = time.perf_counter()
            status = await self.connection.post("/memory/query", body(n))
            self.last_used = time.monotonic()
            if status != 200:
                raise RuntimeError(f"/memory/query on port {self.port} answered {status}")
            return (time.perf_counter() - start) * 1000

    api, facts_only = Api(API_PORT), Api(FACTS_ONLY_PORT)
    times = QueryTimes([], [], [])
    sides = [(api, times.service), (facts_only, times.facts_only), (plain, times.plain)]
    try:
        for n in range(len(queries)):  # warm every side (caches, connection pools, plans)
            for side, _ in sides:
                await side(n)
        deadline = time.monotonic() + 240
        for n in range(count):
            # Rotate which side goes first, so none always sees the warmest cache.
            for k in range(len(sides)):
                side, into = sides[(n + k) % len(sides)]
                into.append(await side(n))
            if time.monotonic() > deadline:
                break
    finally:
        api.connection.close()
        facts_only.connection.close()
        await plain_graphiti.close()
    return times


async def index_agreement(group: str, queries: list[str]) -> tuple[int, int, int, str]:
    """On how many queries Synapse's similarity search (as the API runs it: filtered index,
    or index proven complete, or exact scan) returns the same top 10 facts as Graphiti's exact
    scan on a plain driver: (identical facts in the same order, the same scores in the same
    order, queries, how the searches were answered). The bench's facts are synthetic and
    near-identical, so many share a score exactly; among equal scores either search may pick
    any, which the second count does not hold against the index."""
    from graphiti_core.search import search_utils
    from graphiti_core.search.search_filters import SearchFilters

    from service import graph as graph_module
    from service.graph import HashingEmbedder
    from service.settings import Settings

    memory = await graph_module.GraphMemory.create(Settings.from_env(service_env(API_PORT)))
    await memory.prepare()
    plain = plain_driver(NEO4J_URI)
    if plain._init_task is not None:  # its index creation, scheduled in this running loop
        await plain._init_task
    embedder = HashingEmbedder(DIM)
    same = same_scores = 0
    try:
        for query in queries:
            vector = await embedder.create([query])
            args = (vector, None, None, SearchFilters(), [group], 10)
            ours = await search_utils.edge_similarity_search(memory._driver, *args)
            exact = await search_utils.edge_similarity_search(plain, *args)
            same += [e.uuid for e in ours] == [e.uuid for e in exact]
            scored = await plain.execute_query(
                "MATCH ()-[e:RELATES_TO]->() WHERE e.uuid IN $uuids "
                "RETURN e.uuid AS uuid, vector.similarity.cosine(e.fact_embedding, $v) AS s",
                params={"uuids": [e.uuid for e in ours + exact], "v": vector},
            )
            score = {record["uuid"]: record["s"] for record in scored.records}
            mine = [score[e.uuid] for e in ours]
            theirs = [score[e.uuid] for e in exact]
            same_scores += len(mine) == len(theirs) and all(
                abs(a - b) <= 1e-6 for a, b in zip(mine, theirs, strict=True)
            )
    finally:
        stats = memory.vector_search_stats
        await plain.close()
        await memory.close()
    return same, same_scores, len(queries), str(stats)


def plain_driver(uri: str) -> Any:
    from graphiti_core.driver.neo4j_driver import Neo4jDriver

    return Neo4jDriver(uri, "neo4j", "", database="neo4j")


def pct(values: list[float], p: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(p / 100 * len(ordered) + 0.5) - 1)]


async def indexes_online() -> float | None:
    """Wait until every index is online, None if all already were. The API creates the vector
    indexes at start-up, and on a seeded database they populate for a minute or more; until
    then its similarity search is the exact scan, which is not what this phase measures."""
    from graphiti_core.driver.neo4j_driver import Neo4jDriver

    from service.graph.vector_search import RECHECK_SECONDS

    driver = Neo4jDriver(NEO4J_URI, "neo4j", "", database="neo4j")
    start = time.perf_counter()
    try:
        pending = await driver.execute_query(
            "SHOW INDEXES YIELD state WHERE state <> 'ONLINE' RETURN count(*) AS n"
        )
        if pending.records[0]["n"] == 0:
            return None
        await driver.execute_query("CALL db.awaitIndexes(600)")
    finally:
        await driver.close()
    # The API looks at an index it could not use again after RECHECK_SECONDS.
    await asyncio.sleep(RECHECK_SECONDS + 1)
    return time.perf_counter() - start


def query_phase(table: Table) -> None:
    """Needs the facts-only API running (see main)."""
    from graphiti_core.driver.neo4j_driver import Neo4jDriver

    from service.memory.episodes import group_id
    from tests.bench.seed_graph import AGREEMENT_QUERIES, QUERIES, seed_facts

    growth: list[tuple[int, float]] = []
    for facts in FACTS:
        tenant, user = "bench-facts", f"facts-{facts}-d{DIM}"
        group = group_id(tenant, user)

        async def seed(group: str = group, facts: int = facts) -> tuple[bool, float]:
            driver = Neo4jDriver(NEO4J_URI, "neo4j", "", database="neo4j")
            start = time.perf_counter()
            try:
                seeded = await seed_facts(driver, group, facts, DIM)
            finally:
                await driver.close()
            return seeded, time.perf_counter() - start

        try:
            seeded, seconds = asyncio.run(seed())
        except Exception as exc:  # e.g. the bench Neo4j out of memory at 100k: say so, go on
            table.add(f"/memory/query at {facts:,} facts", f"not measured: {exc!r}"[:200], "", "")
            continue
        log(f"{facts} facts: {f'seeded in {seconds:.0f}s' if seeded else 'already seeded'}")
        waited = asyncio.run(indexes_online())
        if waited is not None:
            log(f"{facts} facts: indexes online after {waited:.0f}s")
        times = asyncio.run(paired_search(group, tenant, user, QUERIES, QUERY_COUNT))
        service = times.service
        svc95, plain95, facts95 = (
            pct(service, 95),
            pct(times.plain, 95),
            pct(times.facts_only, 95),
        )
        log(f"{facts} facts: p95 http {svc95} facts-only {facts95} plain graphiti {plain95}")
        table.add(
            f"/memory/query p95 at {facts:,} facts over HTTP, sequential, {len(service)} "
            f"queries, limit 10, Neo4j {NEO4J_VERSION} (baseline: plain graphiti-core "
            "search_, same recipe and embedder, own driver, in-process, interleaved)",
            f"{ms(svc95)} (p50 {ms(pct(service, 50))})",
            f"{ms(plain95)} (p50 {ms(pct(times.plain, 50))})",
            ratio(svc95, plain95),
            "<= 50 ms and <= 0.5x",
            svc95 is not None and plain95 is not None and svc95 <= 50 and svc95 <= 0.5 * plain95,
        )
        passages_cost = (
            statistics.median(a - b for a, b in zip(service, times.facts_only, strict=True))
            if service
            else None
        )
        table.add(
            f"/memory/query p95 at {facts:,} facts with passage search ({facts:,} turns) vs "
            "the same API with QUERY_PASSAGES=off, interleaved",
            f"{ms(svc95)} (paired median +{ms(passages_cost)})",
            f"{ms(facts95)} (p50 {ms(pct(times.facts_only, 50))})",
            ratio(svc95, facts95),
            "<= 1.2x",
            svc95 is not None and facts95 is not None and svc95 <= 1.2 * facts95,
        )
        same, same_scores, asked, answered_by = asyncio.run(
            index_agreement(group, AGREEMENT_QUERIES)
        )
        table.add(
            f"similarity search top 10 at {facts:,} facts the exact scan's: the same scores in "
            f"the same order (equal-score facts may differ), and [identical facts] "
            f"({asked} queries; answered by: {answered_by})",
            f"{same_scores / asked * 100:.1f} % [{same / asked * 100:.1f} %]",
            "",
            "",
            ">= 98 %",
            same_scores / asked >= 0.98,
        )
        if svc95 is not None:
            growth.append((facts, svc95))
    if len(growth) >= 2:
        steps = [
            f"{b[0] // a[0]}x facts -> {b[1] / a[1]:.1f}x p95"
            for a, b in itertools.pairwise(growth)
        ]
        table.add("/memory/query growth with facts", "; ".join(steps), "", "", "report")


@dataclass
class JanitorRound:
    latency_ms: int
    episodes: int
    seconds: float
    llm_calls: int
    tokens: int
    outside_ms: list[float]
    neo4j_ms: list[float]
    queries: float
    wall_ms: list[float]
    llm_ms: list[float]
    cpu_seconds: float
    standin_calls: dict[str, int]


async def janitor_round(
    janitor: Process, latency_ms: int, standin: Any, sessions: int = JANITOR_SESSIONS
) -> JanitorRound:
    from arq.connections import RedisSettings, create_pool
    from redis.asyncio import Redis

    from contracts import SessionCloseRequest
    from service.store.client import Store
    from service.store.jobs import JobQueue
    from service.store.layout import JANITOR_COUNTERS as JANITOR_METRICS_KEY
    from service.store.layout import UserKeys
    from service.store.sessions import NewTurn
    from service.turns.closing import close_session
    from tests.bench.janitor_probe import TIMINGS_KEY
    from tests.support.redis_state import bucket_index_total

    redis: Redis = Redis.from_url(REDIS_URL, decode_responses=True)
    arq = await create_pool(RedisSettings.from_dsn(REDIS_URL))
    connected = Store.connect(REDIS_URL, retention_seconds=3600, audit_max_entries=1000)
    store = connected.sessions
    jobs = JobQueue(arq)
    tenant = f"janitor-{secrets.token_hex(3)}-{latency_ms}ms"
    standin.set_latency(latency_ms / 1000)
    standin.reset_log()
    await redis.delete(TIMINGS_KEY)
    before = await redis.hgetall(JANITOR_METRICS_KEY)
    base_ms = int(time.time() * 1000)

    async def converse(i: int) -> None:
        session = UserKeys(tenant, f"u-{i}").session("s-1")
        for t in range(JANITOR_TURNS):
            text = (
                "I need to book the dentist before Friday and I feel stressed about the report."
                if t % 2 == 0
                else "Understood. I will remind you about the dentist on Thursday evening."
            )
            turn = NewTurn(
                role="user" if t % 2 == 0 else "assistant",
                text=text,
                timestamp=datetime.fromtimestamp((base_ms + t * 5000) / 1000, tz=UTC),
            )
            await store.append_turn(session, turn, persona_id="persona-1", now_ms=base_ms)

    for start in range(0, sessions, 100):
        await asyncio.gather(*(converse(i) for i in range(start, min(sessions, start + 100))))
    cpu_before = janitor.cpu_seconds()
    started_at = time.perf_counter()
    now = datetime.now(UTC)
    for i in range(sessions):
        await close_session(
            store,
            jobs,
            SessionCloseRequest(tenant_id=tenant, user_id=f"u-{i}", session_id="s-1"),
            now=now,
        )
    emitted = 0
    initial = int(before.get("episodesEmitted", 0))
    while time.perf_counter() - started_at < JANITOR_MAX_SECONDS:
        await asyncio.sleep(1)
        emitted = int(await redis.hget(JANITOR_METRICS_KEY, "episodesEmitted") or 0) - initial
        if emitted >= sessions:
            break
    seconds = time.perf_counter() - started_at
    cpu = janitor.cpu_seconds() - cpu_before
    after = await redis.hgetall(JANITOR_METRICS_KEY)

    def delta(name: str) -> int:
        return int(after.get(name, 0)) - int(before.get(name, 0))

    timings = [json.loads(raw) for raw in await redis.lrange(TIMINGS_KEY, 0, -1)]
    # Requests for episodes only: the rolling summary the close queued is a job of its own.
    calls = standin.calls
    calls["summaries"] = standin.schema_calls.get("RollingSummary", 0)
    # Let the queue drain (summary jobs, the last flushes) before the next round starts.
    standin.set_latency(0)
    for _ in range(120):
        if not await bucket_index_total(redis, "outbox_due") and not await redis.zcard("arq:queue"):
            break
        await asyncio.sleep(1)
    await arq.aclose()
    await redis.aclose()
    await connected.close()
    return JanitorRound(
        latency_ms=latency_ms,
        episodes=emitted,
        seconds=seconds,
        llm_calls=delta("llmCalls"),
        tokens=delta("llmInputTokens") + delta("llmOutputTokens"),
        outside_ms=[(t["wall"] - t["llm"]) * 1000 for t in timings],
        neo4j_ms=[t["neo4j"] * 1000 for t in timings],
        queries=sum(t["queries"] for t in timings) / max(1, len(timings)),
        wall_ms=[t["wall"] * 1000 for t in timings],
        llm_ms=[t["llm"] * 1000 for t in timings],
        cpu_seconds=cpu,
        standin_calls=calls,
    )


def janitor_phase(table: Table, rss: dict[str, tuple[float, float]]) -> None:
    from tests.standin.server import StandinServer

    # The HTTP phase left arq summary jobs queued (no janitor ran then); a janitor started on
    # them would spend this benchmark summarising those users.
    asyncio.run(flush_redis())
    with StandinServer(embedding_dim=DIM) as standin:
        env = service_env(
            API_PORT,
            LLM_PROVIDER="openai",
            OPENAI_API_KEY="bench-key",
            OPENAI_BASE_URL=standin.base_url,
            LLM_MODEL="standin-large",
            LLM_SMALL_MODEL="standin-small",
            SESSION_IDLE_SECONDS="86400",
            JANITOR_SWEEP_SECONDS="3600",
            LOG_LEVEL="INFO",
        )
        janitor = Process("janitor", [PY, "-m", "tests.bench.janitor_probe"], env)
        with started(janitor):
            janitor.wait_for_log("janitor started")
            time.sleep(2)
            idle = janitor.rss_mb()
            for latency in JANITOR_LATENCIES_MS:
                log(f"janitor: {JANITOR_SESSIONS} sessions at {latency} ms per LLM call")
                r = asyncio.run(janitor_round(janitor, latency, standin))
                log(f"janitor: {r.episodes} episodes in {r.seconds:.0f}s; calls {r.standin_calls}")
                per_min = r.episodes / r.seconds * 60 if r.seconds else 0
                n = max(1, r.episodes)
                outside = statistics.mean(r.outside_ms) if r.outside_ms else None
                wall = statistics.mean(r.wall_ms) if r.wall_ms else None
                llm = statistics.mean(r.llm_ms) if r.llm_ms else None
                landed = f"{r.episodes}/{JANITOR_SESSIONS} in {r.seconds:.0f}s"
                llm_requests = (
                    r.standin_calls.get("/v1/responses", 0) - r.standin_calls["summaries"]
                )
                table.add(
                    f"janitor @ {latency} ms/LLM call: episodes/min ({landed}, 8 users at a time)",
                    f"{per_min:.0f}",
                    f"{wall:.0f} ms wall/episode" if wall else "",
                    f"LLM wait {llm:.0f} ms/episode" if llm is not None else "",
                    "report",
                )
                table.add(
                    f"janitor @ {latency} ms: LLM calls and tokens per episode",
                    f"{r.llm_calls / n:.1f} calls, {r.tokens / n:.0f} tokens",
                    f"stand-in HTTP requests/episode {llm_requests / n:.1f} LLM + "
                    f"{r.standin_calls.get('/v1/embeddings', 0) / n:.1f} embeddings",
                    "",
                    "report",
                )
                table.add(
                    f"janitor @ {latency} ms: time outside LLM calls per episode "
                    "(mean, p95; baseline: LLM wait)",
                    f"{ms(outside)}, p95 {ms(pct(r.outside_ms, 95))}",
                    ms(llm),
                    ratio(outside, llm),
                    "<= 100 ms",
                    outside is not None and outside <= 100,
                )
                graph = statistics.mean(r.neo4j_ms) if r.neo4j_ms else None
                table.add(
                    f"janitor @ {latency} ms: of the time outside LLM calls, waiting on Neo4j "
                    "(mean per episode, queries per episode)",
                    f"{ms(graph)}, {r.queries:.0f} queries",
                    ms(outside),
                    ratio(graph, outside),
                    "report",
                )
                table.add(
                    f"janitor @ {latency} ms: janitor CPU per episode (incl. summaries)",
                    ms(r.cpu_seconds / n * 1000),
                    "",
                    "",
                    "report",
                )
            rss["janitor"] = (idle, janitor.rss_mb())
        if SERIAL_SESSIONS:
            serial_round(table, standin, {**env, "JANITOR_MAX_JOBS": "1"})


def serial_round(table: Table, standin: Any, env: dict[str, str]) -> None:
    """The same flush with one user at a time: the time outside LLM calls without seven other
    episodes contending for the same 2 cores, which is what one episode costs by itself."""
    janitor = Process("janitor-serial", [PY, "-m", "tests.bench.janitor_probe"], env)
    with started(janitor):
        janitor.wait_for_log("janitor started")
        log(f"janitor: {SERIAL_SESSIONS} sessions, one user at a time, 0 ms per LLM call")
        r = asyncio.run(janitor_round(janitor, 0, standin, sessions=SERIAL_SESSIONS))
    outside = statistics.mean(r.outside_ms) if r.outside_ms else None
    llm = statistics.mean(r.llm_ms) if r.llm_ms else None
    graph = statistics.mean(r.neo4j_ms) if r.neo4j_ms else None
    table.add(
        f"janitor @ 0 ms, one user at a time ({r.episodes} episodes): time outside LLM calls "
        "per episode (mean, p95; baseline: LLM wait)",
        f"{ms(outside)}, p95 {ms(pct(r.outside_ms, 95))}",
        ms(llm),
        ratio(outside, llm),
        "<= 100 ms",
        outside is not None and outside <= 100,
    )
    table.add(
        "janitor @ 0 ms, one user at a time: of that, waiting on Neo4j (mean, queries/episode)",
        f"{ms(graph)}, {r.queries:.0f} queries",
        ms(outside),
        ratio(graph, outside),
        "report",
    )


async def seed_open_sessions(tenant: str, sessions: int, now_ms: int) -> None:
    """`sessions` users with one open session of one turn each, through the store."""
    from service.store.client import Store
    from service.store.layout import UserKeys
    from service.store.sessions import NewTurn

    store = Store.connect(REDIS_URL, retention_seconds=3600, audit_max_entries=1000)
    turn = NewTurn(
        role="user", text="hello", timestamp=datetime(2026, 2, 3, 18, 34, 12, tzinfo=UTC)
    )

    async def one(i: int) -> None:
        session = UserKeys(tenant, f"u-{i}").session("s-1")
        await store.sessions.append_turn(session, turn, persona_id=None, now_ms=now_ms)

    for start in range(0, sessions, 1000):
        await asyncio.gather(*(one(i) for i in range(start, min(sessions, start + 1000))))
    await store.close()


async def sweep_measurements() -> dict[str, Any]:
    from arq.connections import RedisSettings, create_pool
    from redis.asyncio import Redis

    from janitor.runtime import SWEEP_BATCH, Sweeper
    from service.observability.metrics import JanitorMetrics
    from service.store.client import Store
    from service.store.jobs import JobQueue
    from service.store.layout import ALL_BUCKETS
    from tests.support.redis_state import bucket_index_total

    redis: Redis = Redis.from_url(REDIS_URL, decode_responses=True)
    arq = await create_pool(RedisSettings.from_dsn(REDIS_URL))
    connected = Store.connect(REDIS_URL, retention_seconds=3600, audit_max_entries=1000)
    store = connected.sessions
    jobs = JobQueue(arq)
    metrics = JanitorMetrics(connected.counters)
    await redis.delete(*(bucket.idle for bucket in ALL_BUCKETS))
    now_ms = int(time.time() * 1000)
    await seed_open_sessions("sweep-a", SWEEP_SESSIONS, now_ms)
    result: dict[str, Any] = {"open": await bucket_index_total(redis, "idle")}

    busy = Sweeper(store, jobs, idle_seconds=900, metrics=metrics)
    none_idle: list[float] = []
    bare: list[float] = []
    for _ in range(30):
        start = time.perf_counter()
        await busy.sweep_once()
        none_idle.append((time.perf_counter() - start) * 1000)
        # The bare work of finding no idle session: one range query per bucket, pipelined.
        start = time.perf_counter()
        async with redis.pipeline(transaction=False) as pipe:
            for bucket in ALL_BUCKETS:
                pipe.zrangebyscore(bucket.idle, "-inf", now_ms - 900_000, start=0, num=SWEEP_BATCH)
            await pipe.execute()
        bare.append((time.perf_counter() - start) * 1000)
    result["none_idle_ms"] = (pct(none_idle, 50), pct(none_idle, 95))
    result["none_idle_bare_ms"] = (pct(bare, 50), pct(bare, 95))

    # Every open session idle: the sweep closes all of them, one script call (and one summary
    # job) at a time.
    await asyncio.sleep(0.01)
    everyone = Sweeper(store, jobs, idle_seconds=0, metrics=metrics)
    start = time.perf_counter()
    closed = await everyone.sweep_once()
    result["all_idle_s"] = time.perf_counter() - start
    result["all_idle_closed"] = closed

    # Baseline for that: the same close scripts for the same number of sessions, 1000 at a
    # time concurrently, with nothing else.
    await seed_open_sessions("sweep-b", SWEEP_SESSIONS, now_ms)
    cutoff = int(time.time() * 1000)
    start = time.perf_counter()
    while True:
        idle = await store.idle_sessions(cutoff_ms=cutoff, limit=1000)
        if not idle:
            break
        await asyncio.gather(
            *(store.close_session(s, now_ms=cutoff, idle_cutoff_ms=cutoff) for s in idle)
        )
    result["all_idle_bare_s"] = time.perf_counter() - start
    await connected.close()
    await arq.aclose()
    await redis.aclose()
    return result


def sweep_phase(table: Table) -> None:
    log(f"sweep: {SWEEP_SESSIONS} open sessions")
    r = asyncio.run(sweep_measurements())
    log(f"sweep: {r}")
    p50, p95 = r["none_idle_ms"]
    b50, b95 = r["none_idle_bare_ms"]
    table.add(
        f"sweep over {r['open']:,} open sessions, none idle (p50 / p95 of 30; "
        "baseline: the bare ZRANGEBYSCORE of every bucket, pipelined)",
        f"{ms(p50)} / {ms(p95)}",
        f"{ms(b50)} / {ms(b95)}",
        ratio(p95, b95),
        "<= 50 ms",
        p95 is not None and p95 <= 50,
    )
    closed, seconds, bare = r["all_idle_closed"], r["all_idle_s"], r["all_idle_bare_s"]
    table.add(
        f"sweep with all {closed:,} idle: closes them all (baseline: the same closes, 1,000 "
        "at a time concurrently, no summary jobs)",
        f"{seconds * 1000:.0f} ms ({closed / seconds:.0f} closes/s)",
        f"{bare * 1000:.0f} ms ({closed / bare:.0f} closes/s)",
        ratio(seconds, bare),
        "report",
    )


# --- the run -------------------------------------------------------------------------------------


def machine() -> str:
    cpus = os.cpu_count()
    mem = next(
        int(line.split()[1]) // (1024 * 1024)
        for line in Path("/proc/meminfo").read_text().splitlines()
        if line.startswith("MemTotal")
    )
    model = next(
        (
            line.split(":", 1)[1].strip()
            for line in Path("/proc/cpuinfo").read_text().splitlines()
            if line.startswith("model name")
        ),
        platform.processor(),
    )
    load = " ".join(Path("/proc/loadavg").read_text().split()[:3])
    return f"{cpus} cores ({model}), {mem} GiB RAM, load average at start {load}"


def commit() -> str:
    sha = subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"], cwd=REPO, capture_output=True, text=True
    ).stdout.strip()
    dirty = subprocess.run(
        ["git", "status", "--porcelain", "--untracked-files=no"],
        cwd=REPO,
        capture_output=True,
        text=True,
    ).stdout.strip()
    return f"{sha or 'unknown'}{' + uncommitted changes' if dirty else ''}"


def phase(table: Table, name: str, run: Callable[[], None]) -> None:
    """One phase failing (a server gone, a timeout) is a row saying so, not a lost run."""
    try:
        run()
    except Exception as exc:
        log(f"{name} phase failed: {exc!r}")
        table.add(f"{name} phase", f"not measured: {type(exc).__name__}: {exc}"[:300])


def deployments_phase(table: Table) -> None:
    from tests.bench.redis_deployments import deployments_phase as run_deployments

    run_deployments(table)


def scaling_phase(table: Table) -> None:
    from tests.bench.janitor_scaling import scaling_phase as run_scaling

    run_scaling(table)


def main() -> None:
    from service.observability.logs import configure_logging

    configure_logging("WARNING")
    RUN_DIR.mkdir(parents=True, exist_ok=True)
    started_at = datetime.now(UTC)
    header = (
        f"### {started_at:%Y-%m-%d %H:%M} UTC, commit {commit()}\n\n"
        f"Machine: {machine()}. Shared and noisy: other work may run at the same time, which is "
        "why every figure sits next to a baseline measured in the same run."
    )
    table = Table()
    rss: dict[str, tuple[float, float]] = {}
    services("start")
    try:
        asyncio.run(flush_redis())
        if "http" in PHASES or "query" in PHASES:
            api = Process("api", [PY, "-m", "service"], service_env(API_PORT))
            baseline = Process(
                "baseline", [PY, "-m", "tests.bench.baseline_app"], service_env(BASELINE_PORT)
            )
            with started(api), started(baseline):
                api.wait_for_port(API_PORT)
                baseline.wait_for_port(BASELINE_PORT)
                time.sleep(2)
                idle = (api.rss_mb(), baseline.rss_mb())
                if "http" in PHASES:
                    phase(table, "http", lambda: http_phase(table, api, baseline))
                if "query" in PHASES:
                    facts_only = Process(
                        "api-facts-only",
                        [PY, "-m", "service"],
                        service_env(FACTS_ONLY_PORT, QUERY_PASSAGES="off"),
                    )
                    with started(facts_only):
                        facts_only.wait_for_port(FACTS_ONLY_PORT)
                        phase(table, "query", lambda: query_phase(table))
                rss["api"] = (idle[0], api.rss_mb())
                rss["baseline"] = (idle[1], baseline.rss_mb())
        if "janitor" in PHASES:
            phase(table, "janitor", lambda: janitor_phase(table, rss))
        if "sweep" in PHASES:
            phase(table, "sweep", lambda: sweep_phase(table))
        if "scaling" in PHASES:
            phase(table, "scaling", lambda: scaling_phase(table))
        if "deployments" in PHASES:
            phase(table, "deployments", lambda: deployments_phase(table))
        if "api" in rss:
            api_idle, api_end = rss["api"]
            base_idle, base_end = rss["baseline"]
            table.add(
                "RSS of the API, idle / at the end of the load",
                f"{api_idle:.0f} MB / {api_end:.0f} MB",
                f"{base_idle:.0f} MB / {base_end:.0f} MB (baseline app)",
                ratio(api_end, base_end),
                "API <= 200 MB",
                api_end <= 200,
            )
        if "janitor" in rss:
            j_idle, j_end = rss["janitor"]
            app_idle = rss["baseline"][0] if "baseline" in rss else None
            table.add(
                "RSS of the janitor, idle / at the end of the load",
                f"{j_idle:.0f} MB / {j_end:.0f} MB",
                f"{app_idle:.0f} MB (baseline app, idle)" if app_idle else "",
                ratio(j_end, app_idle),
                "report",
            )
    finally:
        services("stop")
    text = "\n\n".join([header, table.markdown(), *[f"- {n}" for n in table.notes]])
    print(text)
    if RECORD:
        results = BENCH / "RESULTS.md"
        with results.open("a") as out:
            out.write("\n" + text + "\n")
        log(f"recorded in {results.relative_to(REPO)}")


if __name__ == "__main__":
    main()
