"""GET /metrics (Prometheus text format) and the middleware that times every request.

Wired in service/app.py's create_app:

    request_metrics = RequestMetrics()
    Litestar(
        route_handlers=[..., metrics_handler(request_metrics)],
        middleware=[metrics_middleware(request_metrics)],
        ...
    )
"""

from time import perf_counter

from litestar import Response, get
from litestar.datastructures import State
from litestar.enums import ScopeType
from litestar.handlers import HTTPRouteHandler
from litestar.middleware import DefineMiddleware
from litestar.types import ASGIApp, Message, Receive, Scope, Send

from service.http.deps import resources_from
from service.metrics import CONTENT_TYPE, ClusterReader, RequestMetrics, render

# The label of requests that matched no route (only seen when the middleware wraps the router).
UNMATCHED_ROUTE = "unmatched"


class MetricsMiddleware:
    """Observes each HTTP request's duration under its route template (`/ingest`, never the
    raw path, so label cardinality stays bounded), method and status code."""

    def __init__(self, app: ASGIApp, metrics: RequestMetrics) -> None:
        self._app = app
        self._metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != ScopeType.HTTP:
            await self._app(scope, receive, send)
            return
        method = scope["method"]
        start = perf_counter()
        status = 500  # what the client sees when the app fails before it answers

        async def observe_status(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self._app(scope, receive, observe_status)
        finally:
            # Read afterwards: Litestar's router sets the template while routing.
            route = scope.get("path_template") or UNMATCHED_ROUTE
            self._metrics.observe(route, method, status, perf_counter() - start)


def metrics_middleware(metrics: RequestMetrics) -> DefineMiddleware:
    return DefineMiddleware(MetricsMiddleware, metrics=metrics)


def metrics_handler(metrics: RequestMetrics) -> HTTPRouteHandler:
    """Built per app: it serves that app's own request metrics."""

    @get("/metrics", include_in_schema=False, summary="Prometheus metrics")
    async def metrics_endpoint(state: State) -> Response[bytes]:
        snapshot = await ClusterReader(resources_from(state).redis).snapshot()
        body = render(metrics, snapshot)
        return Response(body, media_type=CONTENT_TYPE)

    return metrics_endpoint
