"""Process logging: one JSON object per line on stderr, for the API and the janitor alike.

Each line has `time` (UTC, RFC 3339), `level`, `logger`, `message`, and when known `request_id`
(service/http/request_context.py binds it per request) and `tenant`; plus any scalar `extra=`
fields the caller passed, and `error` (type, first line of the message, frames) for exceptions.

Callers log ids and counts only, never message text. As a second line of defence, strings that
look like credentials (OpenAI-style keys, bearer tokens, passwords in URLs) are masked, and
exception messages are cut to their first line.
"""

import json
import logging
import re
import sys
import traceback
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from datetime import UTC, datetime
from typing import Any, TextIO

_request_id: ContextVar[str | None] = ContextVar("synapse_request_id", default=None)


class _TenantSlot:
    """One per request or job. Mutable on purpose: frameworks run parts of a request in copied
    contexts (child tasks), and a tenant bound there must still reach the request's last line."""

    __slots__ = ("tenant",)

    def __init__(self, tenant: str | None) -> None:
        self.tenant = tenant


_tenant: ContextVar[_TenantSlot | None] = ContextVar("synapse_tenant", default=None)

_MAX_TEXT = 300
_MAX_FRAMES = 30
_SECRETS = (
    (re.compile(r"\bsk-[A-Za-z0-9_-]{12,}"), "sk-***"),
    (re.compile(r"(?i)\bbearer\s+[A-Za-z0-9._~+/=-]+"), "Bearer ***"),
    (re.compile(r"(?i)(x-internal-token[\"']?\s*[:=]\s*[\"']?)[^\s\"',}]+"), r"\1***"),
    (re.compile(r"(://[^/\s:@]*:)[^@\s/]+@"), r"\1***@"),
)
# Attributes every LogRecord has; anything else on a record came from `extra=`.
_STANDARD_ATTRIBUTES = frozenset(logging.LogRecord("", 0, "", 0, "", None, None).__dict__) | {
    "message",
    "asctime",
    "taskName",
}
_CORE_FIELDS = frozenset({"time", "level", "logger", "message", "request_id", "tenant", "error"})
# Extras some libraries add that only repeat the message (uvicorn's ANSI-coloured copy).
_DROPPED_EXTRAS = frozenset({"color_message"})
# Loggers that install their own handlers elsewhere (uvicorn's default config): ours instead.
_ADOPTED_LOGGERS = ("uvicorn", "uvicorn.error", "uvicorn.access", "arq", "arq.worker")


def current_request_id() -> str | None:
    return _request_id.get()


def current_tenant() -> str | None:
    slot = _tenant.get()
    return slot.tenant if slot else None


def bind_tenant(tenant_id: str | None) -> None:
    """Name the tenant of the work in progress (a request, a flush) for its log lines. Bound
    inside `log_context`, it is undone when that context ends."""
    slot = _tenant.get()
    if slot is None:
        _tenant.set(_TenantSlot(tenant_id))
    else:
        slot.tenant = tenant_id


@contextmanager
def log_context(*, request_id: str | None = None, tenant: str | None = None) -> Iterator[None]:
    """Every line logged inside carries this request id and tenant."""
    request_token = _request_id.set(request_id)
    tenant_token = _tenant.set(_TenantSlot(tenant))
    try:
        yield
    finally:
        _tenant.reset(tenant_token)
        _request_id.reset(request_token)


def scrub(text: str) -> str:
    for pattern, replacement in _SECRETS:
        text = pattern.sub(replacement, text)
    return text


def _short(text: str) -> str:
    first_line = text.strip().splitlines()[0] if text.strip() else ""
    if len(first_line) > _MAX_TEXT:
        first_line = first_line[:_MAX_TEXT] + "..."
    return scrub(first_line)


def _error(exc_info: Any) -> dict[str, Any] | None:
    if not exc_info or exc_info is True:
        return None
    _, exc, tb = exc_info
    if exc is None:
        return None
    frames = traceback.extract_tb(tb)[-_MAX_FRAMES:]
    causes: list[str] = []
    cause = exc.__cause__ or exc.__context__
    while cause is not None and len(causes) < 5:
        causes.append(type(cause).__name__)
        cause = cause.__cause__ or cause.__context__
    error: dict[str, Any] = {
        "type": f"{type(exc).__module__}.{type(exc).__qualname__}",
        "message": _short(str(exc)),
        "frames": [f"{f.filename}:{f.lineno} {f.name}" for f in frames],
    }
    if causes:
        error["causes"] = causes
    return error


def _scalar(value: Any) -> Any:
    if value is None or isinstance(value, bool | int | float):
        return value
    return _short(str(value))


class JsonFormatter(logging.Formatter):
    """One JSON object per record, on one line."""

    def format(self, record: logging.LogRecord) -> str:
        payload: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC)
            .isoformat(timespec="milliseconds")
            .replace("+00:00", "Z"),
            "level": record.levelname,
            "logger": record.name,
            "message": scrub(record.getMessage()),
        }
        request_id = getattr(record, "request_id", None) or _request_id.get()
        if request_id:
            payload["request_id"] = request_id
        tenant = getattr(record, "tenant", None) or current_tenant()
        if tenant:
            payload["tenant"] = tenant
        for key, value in record.__dict__.items():
            if key not in _STANDARD_ATTRIBUTES | _CORE_FIELDS | _DROPPED_EXTRAS:
                payload[key] = _scalar(value)
        error = _error(record.exc_info)
        if error is not None:
            payload["error"] = error
        return json.dumps(payload, ensure_ascii=False, default=str)


class _JsonHandler(logging.StreamHandler[TextIO]):
    """Marks the handler configure_logging installed, so a second call replaces it."""


def configure_logging(level: str) -> None:
    root = logging.getLogger()
    for handler in list(root.handlers):
        if isinstance(handler, _JsonHandler):
            root.removeHandler(handler)
    handler = _JsonHandler(sys.stderr)
    handler.setFormatter(JsonFormatter())
    root.addHandler(handler)
    root.setLevel(level.upper())
    for name in _ADOPTED_LOGGERS:
        adopted = logging.getLogger(name)
        adopted.handlers.clear()
        adopted.propagate = True
        adopted.setLevel(logging.NOTSET)
    # httpx (httpx2 under openai 3) logs every request line at INFO: a flood of LLM calls.
    for name in ("httpx", "httpx2"):
        logging.getLogger(name).setLevel(logging.WARNING)
    # Neo4j turns schema notes ("index already exists", "property key does not exist yet" on a
    # new database) into log records; none of them is actionable.
    logging.getLogger("neo4j.notifications").setLevel(logging.ERROR)
