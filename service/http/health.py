"""GET /health (liveness) and GET /ready (Redis and Neo4j reachable)."""

import asyncio
from collections.abc import Awaitable, Callable

from litestar import Response, get
from litestar.datastructures import State

from contracts import DependencyStatus, HealthResponse, ReadyResponse
from service.http.deps import resources_from

_PROBE_TIMEOUT_SECONDS = 2.0
_OFFLINE_WARNING = (
    "LLM_PROVIDER=offline: memory extraction is a rule-based fallback, not a language model"
)

_OPEN_MODE_WARNING = (
    "no API keys configured (SYNAPSE_TENANTS_FILE): open mode, every caller is trusted; "
    "allowed only on loopback"
)


@get("/health", summary="Liveness: the process answers")
async def health(state: State) -> HealthResponse:
    settings = resources_from(state).settings
    return HealthResponse(
        status="ok",
        llm_provider=settings.llm_provider,
        offline_fallback=settings.offline_fallback,
        extractor=settings.extractor,
        embedder=settings.embedder,
    )


async def _probe(check: Callable[[], Awaitable[None]]) -> DependencyStatus:
    try:
        await asyncio.wait_for(check(), _PROBE_TIMEOUT_SECONDS)
    except TimeoutError:
        return DependencyStatus(ok=False, detail="timed out")
    except Exception as exc:  # any failure means not ready; the type is enough for operators
        return DependencyStatus(ok=False, detail=type(exc).__name__)
    return DependencyStatus(ok=True)


@get("/ready", summary="Readiness: 503 without Redis; Neo4j down is reported as degraded")
async def ready(state: State) -> Response[ReadyResponse]:
    resources = resources_from(state)
    settings = resources.settings
    redis_status, neo4j_status = await asyncio.gather(
        _probe(resources.store.ping), _probe(resources.graph.ping)
    )
    # Without Redis nothing works. Without Neo4j, ingest, /brief and closes still do (episodes
    # wait in the outbox): failing readiness then would pull every API pod out of the Service
    # and turn a graph outage into a full one. So Neo4j down means ready, degraded.
    is_ready = redis_status.ok
    body = ReadyResponse(
        ready=is_ready,
        degraded=is_ready and not neo4j_status.ok,
        redis=redis_status,
        neo4j=neo4j_status,
        llm_provider=settings.llm_provider,
        offline_fallback=settings.offline_fallback,
        warnings=[
            *([_OFFLINE_WARNING] if settings.offline_fallback else []),
            *([_OPEN_MODE_WARNING] if resources.tenants.open_mode else []),
            *([search_warning] if (search_warning := resources.graph.search_warning()) else []),
        ],
        extractor=settings.extractor,
        embedder=settings.embedder,
        graph_search=resources.graph.search_mode(),
        redis_mode=settings.redis_mode,
        redis_wait_replicas=settings.redis_wait_replicas,
    )
    return Response(body, status_code=200 if is_ready else 503)
