"""Time rendering for briefs: the user's local clock and human-readable gaps.

Everything internal is timezone-aware UTC; only these functions look at a user's zone.
"""

from datetime import UTC, datetime, timedelta, tzinfo
from typing import Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from service.errors import InvalidInput

TimeOfDay = Literal["morning", "afternoon", "evening", "night"]


def utc_now() -> datetime:
    return datetime.now(UTC)


def resolve_zone(name: str | None) -> tzinfo:
    """The IANA zone `name`, or UTC when none is given."""
    if name is None:
        return UTC
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise InvalidInput(f"unknown IANA timezone {name!r}", field="timezone") from None


def is_valid_zone(name: str) -> bool:
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        return False
    return True


def clock_time(moment: datetime) -> str:
    """`06:35 PM` style, zero-padded, as the contract shows."""
    return moment.strftime("%I:%M %p")


def weekday(moment: datetime) -> str:
    return moment.strftime("%A")


def time_of_day(moment: datetime) -> TimeOfDay:
    """Morning 05-12, afternoon 12-17, evening 17-21, night 21-05 (local hours)."""
    hour = moment.hour
    if 5 <= hour < 12:
        return "morning"
    if 12 <= hour < 17:
        return "afternoon"
    if 17 <= hour < 21:
        return "evening"
    return "night"


def _span(gap: timedelta) -> str | None:
    """`10 minutes`, `5 hours`, `3 days`; None under a minute."""
    seconds = int(gap.total_seconds())
    for unit_seconds, unit in ((86_400, "day"), (3_600, "hour"), (60, "minute")):
        if seconds >= unit_seconds:
            count = seconds // unit_seconds
            return f"{count} {unit}{'s' if count != 1 else ''}"
    return None


def ago(then: datetime, now: datetime) -> str:
    """`10 minutes ago`; `just now` under a minute or when `then` is after `now`."""
    span = _span(now - then)
    return f"{span} ago" if span else "just now"


def since_last_spoke(then: datetime, now: datetime) -> str:
    """`5 hours since last spoke`, as /session/brief's timeGapDescription."""
    span = _span(now - then)
    return f"{span} since last spoke" if span else "just spoke"


def from_millis(millis: int) -> datetime | None:
    """The UTC instant `millis` after the epoch; None if a datetime cannot hold it (a value
    stored before timestamps were bounded must not make every later brief fail)."""
    try:
        return datetime.fromtimestamp(millis / 1000, tz=UTC)
    except (OverflowError, ValueError, OSError):
        return None


def iso_utc(moment: datetime) -> str:
    """`2026-02-03T18:34:12Z`: the wire form of every timestamp the service returns."""
    text = moment.astimezone(UTC).isoformat()
    return text.removesuffix("+00:00") + "Z"
