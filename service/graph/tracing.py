"""Optional OpenTelemetry tracing of Graphiti's work: add_episode, each search phase, each LLM
call. Graphiti takes an OpenTelemetry tracer (`Graphiti(tracer=...)`) and wraps it itself.

Off unless switched on by the standard OpenTelemetry environment variables:

- `OTEL_SDK_DISABLED=true` turns it off whatever else is set;
- `OTEL_TRACES_EXPORTER`: `otlp` (OTLP over HTTP/protobuf), `console` (stdout, for debugging)
  or `none`; unset means `otlp` when an OTLP endpoint is configured, else off;
- `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT` (the full URL), or `OTEL_EXPORTER_OTLP_ENDPOINT` (the
  collector's base URL; `/v1/traces` is appended);
- `OTEL_SERVICE_NAME` (else the caller's default: `synapse-api`, `synapse-janitor`);
- the SDK and the exporter read the rest themselves from the process environment
  (`OTEL_RESOURCE_ATTRIBUTES`, `OTEL_TRACES_SAMPLER`, `OTEL_TRACES_SAMPLER_ARG`,
  `OTEL_EXPORTER_OTLP_HEADERS`, `OTEL_EXPORTER_OTLP_CERTIFICATE`, ...).

It needs the OpenTelemetry SDK and OTLP exporter (the `otel` extra; in the container image).
Without them, tracing that was asked for logs one warning and the process runs untraced.
Graphiti's span attributes are ids, counts, sizes and durations, never message text.
"""

import logging
import threading
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SpanExporter
    from opentelemetry.trace import Tracer

logger = logging.getLogger(__name__)

# Every variable this module reads from the environment it is given.
ENV_NAMES = (
    "OTEL_SDK_DISABLED",
    "OTEL_TRACES_EXPORTER",
    "OTEL_EXPORTER_OTLP_ENDPOINT",
    "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
    "OTEL_SERVICE_NAME",
)
_EXPORTERS = ("otlp", "console", "none")
INSTRUMENTATION_NAME = "synapse"

_lock = threading.Lock()
# One provider per process and configuration: several GraphMemory instances (tests build many
# apps in one process) share it instead of each starting an exporter thread.
_providers: dict[tuple[str, str, str], "TracerProvider"] = {}


class TracingConfigError(ValueError):
    """An OpenTelemetry variable has a value Synapse cannot use."""


def _exporter_choice(env: Mapping[str, str]) -> tuple[str, str]:
    """(exporter, traces endpoint); exporter `none` means tracing is off."""
    if env.get("OTEL_SDK_DISABLED", "").strip().lower() == "true":
        return "none", ""
    endpoint = env.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "").strip()
    base = env.get("OTEL_EXPORTER_OTLP_ENDPOINT", "").strip()
    if not endpoint and base:
        endpoint = base.rstrip("/") + "/v1/traces"
    exporter = env.get("OTEL_TRACES_EXPORTER", "").strip().lower()
    if not exporter:
        exporter = "otlp" if endpoint else "none"
    if exporter not in _EXPORTERS:
        raise TracingConfigError(
            f"OTEL_TRACES_EXPORTER must be one of {', '.join(_EXPORTERS)}, got {exporter!r}"
        )
    if exporter == "otlp" and not endpoint:
        raise TracingConfigError(
            "OTEL_TRACES_EXPORTER=otlp needs OTEL_EXPORTER_OTLP_ENDPOINT "
            "or OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"
        )
    return exporter, endpoint


def _span_exporter(exporter: str, endpoint: str) -> "SpanExporter":
    if exporter == "console":
        from opentelemetry.sdk.trace.export import ConsoleSpanExporter

        return ConsoleSpanExporter()
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

    return OTLPSpanExporter(endpoint=endpoint)


def create_tracer(env: Mapping[str, str], *, default_service_name: str) -> "Tracer | None":
    """An OpenTelemetry tracer for `Graphiti(tracer=...)`, or None when tracing is off (or its
    packages are missing). Raises TracingConfigError for an unusable configuration."""
    exporter, endpoint = _exporter_choice(env)
    if exporter == "none":
        return None
    service_name = env.get("OTEL_SERVICE_NAME", "").strip() or default_service_name
    try:
        from opentelemetry.sdk.resources import SERVICE_NAME, Resource
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import BatchSpanProcessor
    except ImportError:
        logger.warning(
            "tracing requested (OTEL_TRACES_EXPORTER=%s) but the OpenTelemetry SDK is not "
            "installed (the `otel` extra); running without traces",
            exporter,
        )
        return None
    key = (exporter, endpoint, service_name)
    with _lock:
        provider = _providers.get(key)
        if provider is None:
            try:
                span_exporter = _span_exporter(exporter, endpoint)
            except ImportError:
                logger.warning(
                    "tracing requested but the OTLP exporter is not installed (the `otel` "
                    "extra); running without traces"
                )
                return None
            # The SDK merges OTEL_RESOURCE_ATTRIBUTES from the process environment, and flushes
            # the batch at interpreter exit (shutdown_on_exit).
            provider = TracerProvider(resource=Resource.create({SERVICE_NAME: service_name}))
            provider.add_span_processor(BatchSpanProcessor(span_exporter))
            _providers[key] = provider
            logger.info(
                "tracing on: exporter %s, service %s%s",
                exporter,
                service_name,
                f", endpoint {endpoint}" if endpoint else "",
            )
    return provider.get_tracer(INSTRUMENTATION_NAME)


def flush_traces(timeout_millis: int = 5_000) -> bool:
    """Export the spans still buffered (e.g. before a process stops); True when all were."""
    with _lock:
        providers = list(_providers.values())
    results: list[Any] = [p.force_flush(timeout_millis) for p in providers]
    return all(results)
