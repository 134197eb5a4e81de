"""Documented input limits, enforced at decode time by the Struct annotations that use them.

Changing one changes the API contract: keep README.md's "Limits" table in step.
"""

import re
from datetime import datetime
from typing import Annotated, Literal

import msgspec

MAX_ID_CHARS = 128
MAX_TEXT_CHARS = 32_000
MAX_QUERY_CHARS = 2_000
MAX_TIMEZONE_CHARS = 64
MAX_TRANSCRIPT_MESSAGES = 1_000
MAX_QUERY_LIMIT = 50
DEFAULT_QUERY_LIMIT = 10

# Printable ids only: control characters (and DEL) would corrupt logs and key listings.
# One rule for every id on every endpoint, in a body or in a query string (is_valid_id).
# Not `$`: in Python's re it also matches before a final newline, which let "id\n" through.
_PRINTABLE = r"^[^\x00-\x1f\x7f]+(?![\s\S])"
_ID_RULE = re.compile(_PRINTABLE)

Id = Annotated[
    str,
    msgspec.Meta(
        min_length=1,
        max_length=MAX_ID_CHARS,
        pattern=_PRINTABLE,
        description=f"1-{MAX_ID_CHARS} printable characters.",
    ),
]
Text = Annotated[
    str,
    msgspec.Meta(
        min_length=1, max_length=MAX_TEXT_CHARS, description=f"1-{MAX_TEXT_CHARS} characters."
    ),
]
QueryText = Annotated[str, msgspec.Meta(min_length=1, max_length=MAX_QUERY_CHARS)]
QueryLimit = Annotated[int, msgspec.Meta(ge=1, le=MAX_QUERY_LIMIT)]
Timezone = Annotated[
    str,
    msgspec.Meta(
        min_length=1, max_length=MAX_TIMEZONE_CHARS, description="An IANA zone, e.g. Europe/Paris."
    ),
]
Timestamp = Annotated[
    datetime,
    msgspec.Meta(tz=True, description="RFC 3339 with a zone offset, e.g. 2026-02-03T18:34:12Z."),
]
Role = Literal["user", "assistant"]


def is_valid_id(value: str) -> bool:
    """The same rule as `Id` in a body: 1-128 characters, none of them a control character."""
    return 1 <= len(value) <= MAX_ID_CHARS and _ID_RULE.match(value) is not None


# Every timestamp the API accepts, on every endpoint, lies in [EARLIEST_TIMESTAMP,
# LATEST_TIMESTAMP): far enough from datetime's own ends (years 1 and 9999) that moving an
# instant into any zone cannot overflow, and never before the epoch that stored milliseconds
# count from. Turn timestamps must also not run ahead of the server clock by more than
# TIMESTAMP_MAX_SKEW_SECONDS (service/input_rules.py).
EARLIEST_TIMESTAMP = datetime.fromisoformat("1970-01-01T00:00:00+00:00")
LATEST_TIMESTAMP = datetime.fromisoformat("2200-01-01T00:00:00+00:00")  # excluded


def is_valid_timestamp(value: datetime) -> bool:
    """Within the documented range; `value` is zone-aware, as `Timestamp` guarantees."""
    return EARLIEST_TIMESTAMP <= value < LATEST_TIMESTAMP
