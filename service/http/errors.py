"""One table from exceptions to HTTP answers, all with the single error body."""

import logging
import re
from dataclasses import dataclass, field
from typing import Any

from litestar import Request, Response
from litestar.exceptions import (
    ClientException,
    HTTPException,
    NotAuthorizedException,
    NotFoundException,
    PermissionDeniedException,
    ValidationException,
)
from litestar.openapi.datastructures import ResponseSpec
from litestar.status_codes import (
    HTTP_400_BAD_REQUEST,
    HTTP_413_REQUEST_ENTITY_TOO_LARGE,
    HTTP_422_UNPROCESSABLE_ENTITY,
    HTTP_500_INTERNAL_SERVER_ERROR,
    HTTP_503_SERVICE_UNAVAILABLE,
)
from litestar.types import ExceptionHandlersMap

from contracts import ErrorBody, ErrorCode
from service import errors
from service.graph.errors import GRAPH_UNAVAILABLE
from service.store.errors import STORE_UNAVAILABLE, NotReplicated

logger = logging.getLogger(__name__)

_NAMED_FIELD = re.compile(r"field `([^`]+)`")
_PATH = re.compile(r"at `\$\.([^`]+)`")


def _error(status: int, code: ErrorCode, message: str, field: str | None = None) -> Response[Any]:
    return Response(ErrorBody(error=code, message=message, field=field), status_code=status)


def _field_of(extra: Any) -> tuple[str | None, str]:
    """The offending field and message from Litestar's validation details."""
    if not isinstance(extra, list) or not extra or not isinstance(extra[0], dict):
        return None, "request is invalid"
    detail: dict[str, Any] = extra[0]
    message = str(detail.get("message", "request is invalid"))
    key = detail.get("key")
    if key in (None, "data"):
        named = _NAMED_FIELD.search(message) or _PATH.search(message)
        key = named.group(1) if named else None
    return (str(key) if key is not None else None), message


def validation_error(_: Request[Any, Any, Any], exc: ValidationException) -> Response[Any]:
    field, message = _field_of(exc.extra)
    text = f"{field}: {message}" if field and field not in message else message
    return _error(HTTP_422_UNPROCESSABLE_ENTITY, ErrorCode.VALIDATION_ERROR, text, field)


def http_error(_: Request[Any, Any, Any], exc: HTTPException) -> Response[Any]:
    status = exc.status_code
    if status == HTTP_413_REQUEST_ENTITY_TOO_LARGE:
        return _error(status, ErrorCode.BODY_TOO_LARGE, "request body is larger than allowed")
    if isinstance(exc, NotFoundException):
        return _error(status, ErrorCode.NOT_FOUND, exc.detail)
    if isinstance(exc, NotAuthorizedException):
        return _error(status, ErrorCode.UNAUTHORIZED, exc.detail)
    if isinstance(exc, PermissionDeniedException):
        return _error(status, ErrorCode.FORBIDDEN, exc.detail)
    if isinstance(exc, ClientException) and status == HTTP_400_BAD_REQUEST:
        return _error(status, ErrorCode.MALFORMED_BODY, exc.detail)
    if status >= HTTP_500_INTERNAL_SERVER_ERROR:
        logger.error("HTTP %s: %s", status, exc.detail)
        return _error(status, ErrorCode.INTERNAL, "internal error")
    return _error(status, ErrorCode.VALIDATION_ERROR, exc.detail)


@dataclass(frozen=True, slots=True)
class ErrorReply:
    """An error answer without a framework around it: the hot path (service/http/hot_path.py)
    sends it as raw ASGI, Litestar's exception handlers as a Response."""

    status: int
    body: ErrorBody
    headers: dict[str, str] = field(default_factory=dict)


def domain_reply(exc: errors.SynapseError) -> ErrorReply:
    if isinstance(exc, errors.Unauthorized):
        body = ErrorBody(error=ErrorCode.UNAUTHORIZED, message=exc.message)
        return ErrorReply(401, body, {"WWW-Authenticate": "Bearer"})
    if isinstance(exc, errors.Forbidden):
        return ErrorReply(
            403, ErrorBody(error=ErrorCode.FORBIDDEN, message=exc.message, field=exc.field)
        )
    if isinstance(exc, errors.RateLimited):
        headers = {
            "Retry-After": str(exc.retry_after_seconds),
            "X-RateLimit-Limit": str(exc.limit),
            "X-RateLimit-Remaining": str(exc.remaining),
            "X-RateLimit-Reset": str(exc.retry_after_seconds),
        }
        return ErrorReply(
            429, ErrorBody(error=ErrorCode.RATE_LIMITED, message=exc.message), headers
        )
    if isinstance(exc, errors.NotFound):
        return ErrorReply(
            404, ErrorBody(error=ErrorCode.NOT_FOUND, message=exc.message, field=exc.field)
        )
    if isinstance(exc, errors.ModelUnavailable):
        body = ErrorBody(error=ErrorCode.MODEL_UNAVAILABLE, message=exc.message)
        headers = {"Retry-After": str(exc.retry_after_seconds)}
        return ErrorReply(HTTP_503_SERVICE_UNAVAILABLE, body, headers)
    if isinstance(exc, errors.DependencyUnavailable):
        body = ErrorBody(error=ErrorCode.UNAVAILABLE, message=exc.message)
        return ErrorReply(HTTP_503_SERVICE_UNAVAILABLE, body, {"Retry-After": "5"})
    body = ErrorBody(error=ErrorCode.VALIDATION_ERROR, message=exc.message, field=exc.field)
    return ErrorReply(HTTP_422_UNPROCESSABLE_ENTITY, body)


# What a backing service says while it is down, restarting or failing over (each owner names
# its own: service/store/errors.py, service/graph/errors.py): a 503 with Retry-After, never a
# 500.
DEPENDENCY_ERRORS = (*STORE_UNAVAILABLE, *GRAPH_UNAVAILABLE)


def dependency_reply(exc: Exception) -> ErrorReply:
    which = "graph database" if isinstance(exc, GRAPH_UNAVAILABLE) else "Redis"
    logger.warning("%s unavailable: %s", which, type(exc).__name__)
    message = f"{which} unavailable"
    if isinstance(exc, NotReplicated):
        # Not acknowledged: REDIS_WAIT_REPLICAS replicas did not confirm the write in time.
        message = f"Redis replicas did not confirm the write ({exc}); retrying it is safe"
    body = ErrorBody(error=ErrorCode.UNAVAILABLE, message=message)
    return ErrorReply(HTTP_503_SERVICE_UNAVAILABLE, body, {"Retry-After": "5"})


def unexpected_reply(exc: Exception) -> ErrorReply:
    logger.exception("unhandled error", exc_info=exc)
    return ErrorReply(
        HTTP_500_INTERNAL_SERVER_ERROR,
        ErrorBody(error=ErrorCode.INTERNAL, message="internal error"),
    )


def _response(reply: ErrorReply) -> Response[Any]:
    return Response(reply.body, status_code=reply.status, headers=reply.headers or None)


def undecodable_body(_: Request[Any, Any, Any], exc: Exception) -> Response[Any]:
    """A body msgspec cannot even parse as JSON text: not UTF-8, or nested beyond its
    recursion limit. Raised by Litestar's body parsing, before any handler runs."""
    what = "not valid UTF-8" if isinstance(exc, UnicodeDecodeError) else "nested too deeply"
    return _error(HTTP_400_BAD_REQUEST, ErrorCode.MALFORMED_BODY, f"request body is {what}")


def domain_error(_: Request[Any, Any, Any], exc: errors.SynapseError) -> Response[Any]:
    return _response(domain_reply(exc))


def dependency_down(_: Request[Any, Any, Any], exc: Exception) -> Response[Any]:
    return _response(dependency_reply(exc))


def unexpected_error(_: Request[Any, Any, Any], exc: Exception) -> Response[Any]:
    return _response(unexpected_reply(exc))


EXCEPTION_HANDLERS: ExceptionHandlersMap = {
    ValidationException: validation_error,
    HTTPException: http_error,
    errors.SynapseError: domain_error,
    UnicodeDecodeError: undecodable_body,
    RecursionError: undecodable_body,
    **dict.fromkeys(DEPENDENCY_ERRORS, dependency_down),
    Exception: unexpected_error,
}


def _documented(status: int, description: str) -> ResponseSpec:
    return ResponseSpec(data_container=ErrorBody, description=description)


# Every error a public route can answer, declared in the OpenAPI document with the error body.
PUBLIC_ERRORS: dict[int, ResponseSpec] = {
    400: _documented(400, "Malformed JSON"),
    401: _documented(401, "Missing or invalid API key"),
    403: _documented(403, "The key belongs to another tenant"),
    404: _documented(404, "Unknown session or user"),
    413: _documented(413, "Body larger than allowed"),
    422: _documented(422, "A field is missing, unknown, mistyped or out of bounds"),
    429: _documented(429, "Request rate or daily turn quota exhausted"),
    503: _documented(
        503,
        "Redis or Neo4j unavailable (`unavailable`), or the model endpoint down, slow or rate "
        "limiting (`model_unavailable`); Retry-After says when to try again",
    ),
}
