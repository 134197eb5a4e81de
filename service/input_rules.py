"""Semantic input rules: what a well-formed request must also satisfy to be served.

The Struct annotations (contracts/limits.py) check shape when a body is decoded; these rules
check what they cannot express: every timestamp within the documented range, turn timestamps
not ahead of the server clock by more than the allowed skew, a transcript in time order,
startedAt not after endedAt, a known IANA zone, ids in a query string. Every entry point (the
Litestar handlers and service/http/hot_path.py) applies them right after decoding and BEFORE
admission, so a refused request spends no quota and changes nothing.

No HTTP knowledge here: a violation is an InvalidInput naming the field (camelCase, as on the
wire); service/http/errors.py makes it a 422.
"""

from datetime import datetime, timedelta

from contracts import BriefRequest, IngestRequest, MemoryQueryRequest, SessionIngestRequest
from contracts.limits import (
    EARLIEST_TIMESTAMP,
    LATEST_TIMESTAMP,
    MAX_ID_CHARS,
    is_valid_id,
    is_valid_timestamp,
)
from service.clock import iso_utc, resolve_zone
from service.errors import InvalidInput

_RANGE = f"from {iso_utc(EARLIEST_TIMESTAMP)} up to, not including, {iso_utc(LATEST_TIMESTAMP)}"


def check_id(value: str, field: str) -> str:
    """The body rule for ids (contracts.limits.Id), for ids that arrive outside a body."""
    if not is_valid_id(value):
        raise InvalidInput(
            f"{field} must be 1-{MAX_ID_CHARS} characters without control characters",
            field=field,
        )
    return value


def check_moment(value: datetime | None, field: str) -> None:
    """Any timestamp: within the documented range."""
    if value is not None and not is_valid_timestamp(value):
        raise InvalidInput(f"{field} must be {_RANGE}", field=field)


def check_turn_time(
    value: datetime | None, field: str, *, now: datetime, max_skew_seconds: int
) -> None:
    """When something was said: within the range and not ahead of `now` beyond the skew."""
    check_moment(value, field)
    if value is not None and value > now + timedelta(seconds=max_skew_seconds):
        raise InvalidInput(
            f"{field} is more than {max_skew_seconds} seconds ahead of the server clock "
            f"({iso_utc(now)})",
            field=field,
        )


def check_ingest(request: IngestRequest, *, now: datetime, max_skew_seconds: int) -> None:
    check_turn_time(request.timestamp, "timestamp", now=now, max_skew_seconds=max_skew_seconds)


def check_transcript(
    request: SessionIngestRequest, *, now: datetime, max_skew_seconds: int
) -> None:
    previous: datetime | None = None
    for index, message in enumerate(request.messages):
        field = f"messages[{index}].timestamp"
        check_turn_time(message.timestamp, field, now=now, max_skew_seconds=max_skew_seconds)
        if previous is not None and message.timestamp < previous:
            raise InvalidInput(
                f"messages must be in time order: {field} is earlier than message {index - 1}'s",
                field=field,
            )
        previous = message.timestamp
    for value, field in ((request.started_at, "startedAt"), (request.ended_at, "endedAt")):
        check_turn_time(value, field, now=now, max_skew_seconds=max_skew_seconds)
    if request.started_at and request.ended_at and request.started_at > request.ended_at:
        raise InvalidInput("startedAt is after endedAt", field="startedAt")


def check_brief(request: BriefRequest) -> None:
    check_moment(request.now, "now")
    if request.timezone is not None:
        resolve_zone(request.timezone)  # an unknown zone is an InvalidInput naming `timezone`


def check_memory_query(request: MemoryQueryRequest) -> None:
    check_moment(request.reference_time, "referenceTime")
