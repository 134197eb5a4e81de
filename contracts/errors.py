"""The single error body every non-2xx answer carries."""

from enum import StrEnum

from contracts._base import Outbound


class ErrorCode(StrEnum):
    MALFORMED_BODY = "malformed_body"
    VALIDATION_ERROR = "validation_error"
    BODY_TOO_LARGE = "body_too_large"
    NOT_FOUND = "not_found"
    UNAUTHORIZED = "unauthorized"
    FORBIDDEN = "forbidden"
    CONFLICT = "conflict"
    RATE_LIMITED = "rate_limited"
    UNAVAILABLE = "unavailable"
    MODEL_UNAVAILABLE = "model_unavailable"
    INTERNAL = "internal_error"


class ErrorBody(Outbound):
    error: ErrorCode
    message: str
    # The offending request field (camelCase, as sent), when one is to blame.
    field: str | None = None
