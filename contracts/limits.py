"""Documented input limits, enforced at decode time by the Struct annotations that use them.

Changing one changes the API contract: keep README.md's "Limits" table in step.
"""

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
_PRINTABLE = r"^[^\x00-\x1f\x7f]+$"

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
