"""The API's composition root: the only place that wires routes, dependencies, lifespan and
error handling."""

import logging
import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from litestar import Litestar
from litestar.di import Provide
from litestar.openapi import OpenAPIConfig
from litestar.openapi.plugins import SwaggerRenderPlugin

import contracts
from service.access.tenants import TenantDirectory
from service.http import brief, health, memory, turns
from service.http.body_drain import BodyDrain
from service.http.debug import debug_router
from service.http.deps import (
    RESOURCES_KEY,
    provide_audit,
    provide_graph,
    provide_jobs,
    provide_operator,
    provide_resources,
    provide_settings,
    provide_store,
    provide_user_data,
    resources_from,
)
from service.http.errors import EXCEPTION_HANDLERS
from service.http.hot_path import HotPath
from service.http.metrics import metrics_handler
from service.http.request_context import RequestContextMiddleware
from service.http.users import users_router
from service.observability.logs import configure_logging
from service.observability.metrics import RequestMetrics
from service.resources import Resources
from service.settings import Settings, SettingsError

logger = logging.getLogger(__name__)

_OPEN_MODE_REFUSED = (
    "refusing to serve on {host} without API keys: set SYNAPSE_TENANTS_FILE to a file with "
    "keys (or bind to 127.0.0.1 for local development)"
)


def create_app(settings: Settings | None = None) -> Litestar:
    settings = settings or Settings.from_env(os.environ)
    configure_logging(settings.log_level)
    # Read (and validate) the keys before connecting to anything: a bad file fails fast.
    tenants = TenantDirectory(settings.tenants_file)
    if tenants.open_mode and not settings.binds_loopback:
        raise SettingsError(_OPEN_MODE_REFUSED.format(host=settings.host))

    @asynccontextmanager
    async def lifespan(app: Litestar) -> AsyncIterator[None]:
        resources = await Resources.open(settings, tenants=tenants)
        app.state[RESOURCES_KEY] = resources
        if tenants.open_mode:
            logger.warning(
                "no API keys configured (SYNAPSE_TENANTS_FILE): open mode, every caller is "
                "trusted and no quota applies; allowed only on a loopback address"
            )
        try:
            yield
        finally:
            await resources.close()

    request_metrics = RequestMetrics()
    app = Litestar(
        route_handlers=[
            metrics_handler(request_metrics),
            turns.ingest,
            turns.close_session,
            turns.session_ingest_handler(settings.max_transcript_body_bytes),
            brief.brief,
            memory.memory_query,
            memory.session_brief,
            health.health,
            health.ready,
            debug_router(),
            users_router(),
        ],
        dependencies={
            "store": Provide(provide_store, sync_to_thread=False),
            "settings": Provide(provide_settings, sync_to_thread=False),
            "jobs": Provide(provide_jobs, sync_to_thread=False),
            "graph": Provide(provide_graph, sync_to_thread=False),
            "resources": Provide(provide_resources, sync_to_thread=False),
            "operator": Provide(provide_operator, sync_to_thread=False),
            "audit": Provide(provide_audit, sync_to_thread=False),
            "user_data": Provide(provide_user_data, sync_to_thread=False),
        },
        lifespan=[lifespan],
        exception_handlers=EXCEPTION_HANDLERS,
        request_max_body_size=settings.max_body_bytes,
        # Logging is configured once for the process (service/observability/logs.py), not again
        # by Litestar.
        logging_config=None,
        openapi_config=OpenAPIConfig(
            title="Synapse",
            version="1.0.0",
            description="Graph memory for AI orchestrators.",
            path="/schema",
            render_plugins=[SwaggerRenderPlugin()],
        ),
    )
    _declare_strict_bodies(app)
    # Outermost, around routing and error handling: every response (a routing 404, a 500)
    # carries X-Request-ID, and every log line of the request has its id and tenant.
    # Inside it, /ingest and /brief skip the framework when the request is well-formed.
    inner = app.asgi_handler
    if settings.hot_path:
        inner = HotPath(inner, lambda: resources_from(app.state), settings.max_body_bytes)
    # A 413 waits for the rest of the body (bounded), so clients still sending can read it.
    app.asgi_handler = RequestContextMiddleware(
        BodyDrain(inner), request_metrics, log_every_request=settings.access_log == "all"
    )
    return app


def _declare_strict_bodies(app: Litestar) -> None:
    """Request bodies reject unknown fields (forbid_unknown_fields); Litestar does not carry
    that into the OpenAPI document, so clients and fuzzers are told here."""
    components = app.openapi_schema.components
    schemas = components.schemas if components and components.schemas else {}
    for name, component in schemas.items():
        if name in _INBOUND_NAMES:
            component.additional_properties = False


_INBOUND_NAMES = frozenset(
    struct.__name__
    for struct in (
        contracts.IngestRequest,
        contracts.SessionIngestRequest,
        contracts.SessionCloseRequest,
        contracts.Message,
        contracts.BriefRequest,
        contracts.MemoryQueryRequest,
    )
)
