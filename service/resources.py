"""Long-lived clients for one process, opened once at start-up and closed at shutdown.

Both the API and the janitor build theirs here, so they talk to Redis and Graphiti the same way.
"""

import logging
from dataclasses import dataclass

from arq.connections import ArqRedis

from service.access.admission import Admission
from service.access.tenants import TenantDirectory
from service.graph import GraphMemory
from service.memory.flushing import Flusher, FlushPolicy
from service.memory.redaction import Redactor, build_redactor
from service.observability.metrics import ClusterReader, JanitorMetrics
from service.operations.operator_views import Operator
from service.privacy.data_rights import UserData
from service.settings import Settings
from service.store.audit import AuditLog
from service.store.client import Connection, Store
from service.store.jobs import JobQueue, close_pool, open_pool
from service.store.lua import Replication
from service.store.outbox import Outbox
from service.store.sessions import SessionStore
from service.store.usage import UsageLedger

logger = logging.getLogger(__name__)

# Start-up does not wait longer than this for Neo4j; the graph is prepared on first use instead.
PREPARE_TIMEOUT_SECONDS = 5.0


def connection_of(settings: Settings) -> Connection:
    return Connection(
        mode=settings.redis_mode,
        url=settings.redis_url,
        sentinels=settings.redis_sentinels,
        sentinel_master=settings.redis_sentinel_master,
        sentinel_password=settings.redis_sentinel_password,
        replication=Replication(
            replicas=settings.redis_wait_replicas, timeout_ms=settings.redis_wait_timeout_ms
        ),
    )


@dataclass(slots=True)
class Resources:
    settings: Settings
    redis_store: Store
    arq: ArqRedis
    store: SessionStore
    outbox: Outbox
    ledger: UsageLedger
    jobs: JobQueue
    graph: GraphMemory
    flusher: Flusher
    operator: Operator
    tenants: TenantDirectory
    admission: Admission
    audit: AuditLog
    user_data: UserData
    redactor: Redactor
    janitor_metrics: JanitorMetrics
    cluster: ClusterReader

    @classmethod
    async def open(
        cls, settings: Settings, *, tenants: TenantDirectory | None = None
    ) -> "Resources":
        redis_store = Store.connect(
            connection_of(settings),
            retention_seconds=settings.session_retention_seconds,
            audit_max_entries=settings.audit_max_entries,
        )
        arq_pool = await open_pool(settings)
        graph = await GraphMemory.create(settings)
        # Neo4j may come up after us: /ready reports it, the graph is prepared on first use,
        # and the Redis-only endpoints serve meanwhile. Graphiti's index build is not
        # cancelled midway (it would leave coroutines never awaited), hence the probe first.
        if await graph.reachable(PREPARE_TIMEOUT_SECONDS):
            # API and janitor replicas start together; creating the same index concurrently
            # makes Neo4j report "equivalent index already exists", so one prepares at a time.
            async with redis_store.graph_prepare_lock():
                await graph.prepare()
        else:
            logger.warning("graph indices not prepared: Neo4j unreachable at start-up")
        if settings.offline_fallback:
            logger.warning(
                "LLM_PROVIDER=offline: memory extraction uses the rule-based fallback, "
                "not a language model; set OPENAI_API_KEY for real extraction"
            )
        outbox = redis_store.outbox
        ledger = redis_store.usage
        policy = FlushPolicy(
            lease_ms=settings.janitor_lease_seconds * 1000,
            max_attempts=settings.janitor_max_attempts,
            episode_timeout_seconds=settings.janitor_episode_timeout_seconds,
            backoff_base_ms=settings.janitor_backoff_base_ms,
            backoff_max_ms=settings.janitor_backoff_max_ms,
        )
        store = redis_store.sessions
        jobs = JobQueue(arq_pool)
        redactor = build_redactor(settings.pii_redaction, settings.pii_patterns)
        janitor_metrics = JanitorMetrics(redis_store.counters)
        flusher = Flusher(outbox, graph, ledger, policy, redactor, janitor_metrics)
        return cls(
            settings=settings,
            redis_store=redis_store,
            arq=arq_pool,
            store=store,
            outbox=outbox,
            ledger=ledger,
            jobs=jobs,
            graph=graph,
            flusher=flusher,
            operator=Operator(store, outbox, ledger, flusher, jobs),
            tenants=tenants or TenantDirectory(settings.tenants_file),
            admission=Admission(redis_store.admission),
            audit=redis_store.audit,
            user_data=UserData(
                store, outbox, redis_store.footprints, graph, lease_ms=policy.lease_ms
            ),
            redactor=redactor,
            janitor_metrics=janitor_metrics,
            cluster=ClusterReader(store, outbox, redis_store.counters),
        )

    async def close(self) -> None:
        await self.graph.close()
        await close_pool(self.arq)
        await self.redis_store.close()
