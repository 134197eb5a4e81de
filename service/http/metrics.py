"""GET /metrics (Prometheus text format). Request latencies are observed by
service/http/request_context.py, which wraps every request."""

from litestar import Response, get
from litestar.datastructures import State
from litestar.handlers import HTTPRouteHandler

from service.http.deps import resources_from
from service.observability.metrics import CONTENT_TYPE, RequestMetrics, render


def metrics_handler(metrics: RequestMetrics) -> HTTPRouteHandler:
    """Built per app: it serves that app's own request metrics."""

    @get("/metrics", include_in_schema=False, summary="Prometheus metrics")
    async def metrics_endpoint(state: State) -> Response[bytes]:
        snapshot = await resources_from(state).cluster.snapshot()
        body = render(metrics, snapshot)
        return Response(body, media_type=CONTENT_TYPE)

    return metrics_endpoint
