"""The process's Redis connection and the repositories over it, created once per process.

Three deployments, one code path (REDIS_MODE): a standalone primary (REDIS_URL), a Redis
Cluster (REDIS_URL names any node; the client discovers the rest and follows failovers), or a
primary found through Sentinel (REDIS_SENTINELS, REDIS_SENTINEL_MASTER; REDIS_URL then only
carries the primary's password, user name and database). Every script keeps its keys in one
hash slot (layout.py), so the same scripts and repositories run on all three.
"""

from dataclasses import dataclass, field
from typing import Any, cast

from redis.asyncio import Redis
from redis.asyncio.cluster import RedisCluster
from redis.asyncio.connection import parse_url
from redis.asyncio.lock import Lock
from redis.asyncio.sentinel import Sentinel

from service.settings import RedisMode
from service.store.admission import AdmissionCounters
from service.store.audit import AuditLog
from service.store.counters import JanitorCounters
from service.store.layout import GRAPH_PREPARE_LOCK
from service.store.lua import Replication
from service.store.outbox import Outbox
from service.store.scripts import Scripts
from service.store.sessions import SessionStore
from service.store.summaries import SummaryStore
from service.store.usage import UsageLedger
from service.store.users import UserFootprints

_TIMEOUTS: dict[str, Any] = {
    "decode_responses": True,
    "socket_timeout": 10.0,
    "socket_connect_timeout": 5.0,
}


@dataclass(frozen=True, slots=True)
class Connection:
    """Where Redis is and how writes are acknowledged (README: Configuration)."""

    mode: RedisMode = "standalone"
    url: str = "redis://127.0.0.1:6379/0"
    sentinels: tuple[tuple[str, int], ...] = ()
    sentinel_master: str = "synapse"
    sentinel_password: str | None = None
    replication: Replication = field(default_factory=Replication)

    def open(self) -> tuple["Redis", list["Redis"]]:
        """The client, and the sentinels' own clients (closed with it)."""
        if self.mode == "cluster":
            # RedisCluster serves every command the store sends (the cluster suite runs all of
            # them); its stubs are narrower than Redis's, hence the cast.
            return cast(Redis, RedisCluster.from_url(self.url, **_TIMEOUTS)), []
        if self.mode == "sentinel":
            parsed = parse_url(self.url)
            primary: dict[str, Any] = {
                name: parsed[name] for name in ("username", "password", "db") if name in parsed
            }
            sentinels = Sentinel(  # type: ignore[no-untyped-call]  # redis-py leaves it untyped
                list(self.sentinels),
                sentinel_kwargs={"password": self.sentinel_password, **_TIMEOUTS},
            )
            client: Redis = sentinels.master_for(
                self.sentinel_master,
                redis_class=Redis,
                health_check_interval=30,
                **_TIMEOUTS,
                **primary,
            )
            return client, list(sentinels.sentinels)
        standalone: Redis = Redis.from_url(self.url, health_check_interval=30, **_TIMEOUTS)
        return standalone, []


@dataclass(frozen=True, slots=True)
class Store:
    redis: "Redis"
    sessions: SessionStore
    outbox: Outbox
    summaries: SummaryStore
    usage: UsageLedger
    admission: AdmissionCounters
    audit: AuditLog
    counters: JanitorCounters
    footprints: UserFootprints
    # Closed with the client: the sentinels' connections, in Sentinel mode.
    companions: tuple["Redis", ...] = ()

    @classmethod
    def connect(
        cls, connection: Connection | str, *, retention_seconds: int, audit_max_entries: int
    ) -> "Store":
        """A store over a new client; a bare URL means a standalone Redis."""
        if isinstance(connection, str):
            connection = Connection(url=connection)
        redis, companions = connection.open()
        scripts = Scripts(redis, connection.replication)
        sessions = SessionStore(redis, scripts, retention_seconds=retention_seconds)
        outbox = Outbox(redis, scripts)
        return cls(
            redis=redis,
            sessions=sessions,
            outbox=outbox,
            summaries=SummaryStore(scripts),
            usage=UsageLedger(redis, scripts),
            admission=AdmissionCounters(scripts),
            audit=AuditLog(redis, max_entries=audit_max_entries),
            counters=JanitorCounters(redis),
            footprints=UserFootprints(sessions, outbox, scripts),
            companions=tuple(companions),
        )

    def graph_prepare_lock(self) -> Lock:
        """API and janitor replicas start together: one prepares the graph's indexes at a time."""
        return self.redis.lock(GRAPH_PREPARE_LOCK, timeout=120, blocking_timeout=120)

    async def close(self) -> None:
        await self.redis.aclose()
        for companion in self.companions:
            await companion.aclose()
