"""Long-lived clients for one process, opened once at start-up and closed at shutdown.

Both the API and the janitor build theirs here, so they talk to Redis and Graphiti the same way.
"""

import logging
from dataclasses import dataclass

from arq.connections import ArqRedis, RedisSettings, create_pool
from redis.asyncio import Redis

from service.audit import AuditLog
from service.data_rights import UserData
from service.flushing import Flusher, FlushPolicy
from service.graph import GraphMemory
from service.jobs import JobQueue
from service.metrics import JanitorMetrics
from service.operator_views import Operator
from service.outbox import Outbox
from service.quotas import Quotas
from service.redaction import Redactor, build_redactor
from service.session_store import SessionStore
from service.settings import Settings
from service.tenants import TenantDirectory
from service.usage import UsageLedger

logger = logging.getLogger(__name__)

# Start-up does not wait longer than this for Neo4j; the graph is prepared on first use instead.
PREPARE_TIMEOUT_SECONDS = 5.0
PREPARE_LOCK = "syn:lock:graph-prepare"


@dataclass(slots=True)
class Resources:
    settings: Settings
    redis: "Redis"
    arq: ArqRedis
    store: SessionStore
    outbox: Outbox
    ledger: UsageLedger
    jobs: JobQueue
    graph: GraphMemory
    flusher: Flusher
    operator: Operator
    tenants: TenantDirectory
    quotas: Quotas
    audit: AuditLog
    user_data: UserData
    redactor: Redactor
    janitor_metrics: JanitorMetrics

    @classmethod
    async def open(
        cls, settings: Settings, *, tenants: TenantDirectory | None = None
    ) -> "Resources":
        redis: Redis = Redis.from_url(
            settings.redis_url,
            decode_responses=True,
            socket_timeout=10.0,
            socket_connect_timeout=5.0,
            health_check_interval=30,
        )
        arq_pool = await create_pool(RedisSettings.from_dsn(settings.redis_url))
        graph = await GraphMemory.create(settings)
        # Neo4j may come up after us: /ready reports it, the graph is prepared on first use,
        # and the Redis-only endpoints serve meanwhile. Graphiti's index build is not
        # cancelled midway (it would leave coroutines never awaited), hence the probe first.
        if await graph.reachable(PREPARE_TIMEOUT_SECONDS):
            # API and janitor replicas start together; creating the same index concurrently
            # makes Neo4j report "equivalent index already exists", so one prepares at a time.
            async with redis.lock(PREPARE_LOCK, timeout=120, blocking_timeout=120):
                await graph.prepare()
        else:
            logger.warning("graph indices not prepared: Neo4j unreachable at start-up")
        if settings.offline_fallback:
            logger.warning(
                "LLM_PROVIDER=offline: memory extraction uses the rule-based fallback, "
                "not a language model; set OPENAI_API_KEY for real extraction"
            )
        outbox = Outbox(redis)
        ledger = UsageLedger(redis)
        policy = FlushPolicy(
            lease_ms=settings.janitor_lease_seconds * 1000,
            max_attempts=settings.janitor_max_attempts,
            episode_timeout_seconds=settings.janitor_episode_timeout_seconds,
            backoff_base_ms=settings.janitor_backoff_base_ms,
            backoff_max_ms=settings.janitor_backoff_max_ms,
        )
        store = SessionStore(redis, retention_seconds=settings.session_retention_seconds)
        jobs = JobQueue(arq_pool)
        redactor = build_redactor(settings.pii_redaction, settings.pii_patterns)
        janitor_metrics = JanitorMetrics(redis)
        flusher = Flusher(outbox, graph, ledger, policy, redactor, janitor_metrics)
        return cls(
            settings=settings,
            redis=redis,
            arq=arq_pool,
            store=store,
            outbox=outbox,
            ledger=ledger,
            jobs=jobs,
            graph=graph,
            flusher=flusher,
            operator=Operator(store, outbox, ledger, flusher, jobs),
            tenants=tenants or TenantDirectory(settings.tenants_file),
            quotas=Quotas(redis),
            audit=AuditLog(redis, max_entries=settings.audit_max_entries),
            user_data=UserData(store, outbox, graph, lease_ms=policy.lease_ms),
            redactor=redactor,
            janitor_metrics=janitor_metrics,
        )

    async def close(self) -> None:
        await self.graph.close()
        await self.arq.aclose()
        await self.redis.aclose()
