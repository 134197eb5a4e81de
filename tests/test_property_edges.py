"""Property-based edges: mostly-valid requests with every field pushed to its limits.

Where tests/test_hostile_input.py lets schemathesis derive requests from the OpenAPI document,
this file says what the edges are: timestamps at the calendar's ends and offsets at ±23:59,
ids of 0/1/128/129 characters from every unicode category (controls, format characters,
combining marks, right-to-left, zero-width, non-BMP, lone surrogates sent as `\\ud800` escapes),
texts of 0/1/32,000/32,001 characters, limits around 1-50 and of every JSON type, unknown and
duplicated fields, wrong types, deep nesting and broken JSON. Hundreds of them per endpoint go
to the real API over HTTP on the real Redis and Neo4j; the examples are derandomized, so a run
in CI is the same run as on a laptop.

Whatever the input: no 5xx (the API's error log is shown when there is one), every 4xx carries
the error body {error, message, field}, and every 2xx decodes strictly into its contract type.
"""

import json
import logging
import string
import traceback
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, timezone
from typing import Any
from urllib.parse import quote, quote_from_bytes

import httpx
import msgspec
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from redis import Redis

from contracts import (
    BriefResponse,
    ErrorBody,
    IngestResponse,
    MemoryQueryResponse,
    SessionBriefResponse,
    SessionCloseResponse,
    UserDeletion,
    UserExport,
)
from contracts.limits import (
    MAX_ID_CHARS,
    MAX_QUERY_CHARS,
    MAX_QUERY_LIMIT,
    MAX_TEXT_CHARS,
    MAX_TIMEZONE_CHARS,
    MAX_TRANSCRIPT_MESSAGES,
)
from tests.support.api import RunningApi, base_env
from tests.support.services import BackingServices

# Per endpoint; the whole file stays around a minute on two cores.
EXAMPLES = 300
EDGE_SETTINGS = settings(
    max_examples=EXAMPLES,
    deadline=None,
    database=None,
    derandomize=True,
    print_blob=False,
    suppress_health_check=[
        HealthCheck.too_slow,
        HealthCheck.data_too_large,
        HealthCheck.large_base_example,
    ],
)

# ---------------------------------------------------------------------------------------------
# JSON with the edges plain json.dumps cannot produce: verbatim fragments, duplicate keys.


@dataclass(frozen=True)
class Raw:
    """A JSON fragment spliced in verbatim (deep nesting, 1e400, NaN, a broken literal)."""

    text: str


@dataclass(frozen=True)
class Obj:
    """A JSON object as key/value pairs, so a key may appear twice."""

    pairs: tuple[tuple[str, Any], ...]


def _encode(value: Any, ascii_only: bool) -> str:
    if isinstance(value, Raw):
        return value.text
    if isinstance(value, Obj):
        members = (f"{_encode(k, ascii_only)}:{_encode(v, ascii_only)}" for k, v in value.pairs)
        return "{" + ",".join(members) + "}"
    if isinstance(value, dict):
        return _encode(Obj(tuple(value.items())), ascii_only)
    if isinstance(value, list):
        return "[" + ",".join(_encode(item, ascii_only) for item in value) + "]"
    return json.dumps(value, ensure_ascii=ascii_only)


def to_bytes(value: Any, ascii_only: bool) -> bytes:
    """Lone surrogates become `\\ud800` escapes (ascii) or CESU-8 bytes, invalid UTF-8."""
    return _encode(value, ascii_only).encode("utf-8", "surrogatepass")


# ---------------------------------------------------------------------------------------------
# Field values: valid ones (most requests should get deep into the service) and edges.

ALL_CHARACTERS = st.characters(exclude_categories=())  # every category, lone surrogates too
ID_ALPHABET = string.ascii_letters + string.digits + "-_.:@"

ID_EDGES = [
    "",
    "a",
    "a" * MAX_ID_CHARS,
    "a" * (MAX_ID_CHARS + 1),
    "é" * MAX_ID_CHARS,
    "e\u0301" * (MAX_ID_CHARS // 2),
    "e\u0301" * (MAX_ID_CHARS // 2) + "e",
    "😀" * MAX_ID_CHARS,  # 128 code points, 256 UTF-16 units
    "😀" * (MAX_ID_CHARS + 1),
    "\U0010ffff",
    "\x00",
    "a\x00b",
    "\x1f",
    "\x7f",
    "\x80",
    "x\x85",
    "\t",
    "\n",
    "id\n",
    "id\r\n",
    "id\r",
    " ",
    "  padded  ",
    "\u200b",
    "a\u200bb",
    "\u200d",
    "\u2060",
    "\ufeff",
    "\ufeffid",
    "\u202eevil",
    "\u2066x\u2069",
    "\u0301",
    "\u2028",
    "\u2029",
    "\ue000",
    "\ufffe",
    "\uffff",
    "\ud800",
    "a\udfff",
    "\udbff\udfff",
    "שלום",
    "مرحبا\u200f",
    "ﷺ",
    "ǅ",
    "İstanbul",
    "ß",
    "../../etc/passwd",
    "user:*",
    "{tenant}",
    "%00",
    "null",
    "0" * MAX_ID_CHARS,
]
VALID_TENANTS = ["edge-tenant-a", "edge-tenant-b"]
VALID_USERS = ["user-1", "user-2"]
VALID_SESSIONS = ["session-1", "session-2"]


def valid_id(pool: list[str]) -> st.SearchStrategy[str]:
    return st.one_of(
        st.sampled_from(pool),
        st.sampled_from(pool),
        st.text(ID_ALPHABET, min_size=1, max_size=MAX_ID_CHARS),
    )


EDGE_ID = st.one_of(
    st.sampled_from(ID_EDGES),
    st.text(ALL_CHARACTERS, max_size=8),
    st.text(ALL_CHARACTERS, min_size=MAX_ID_CHARS - 1, max_size=MAX_ID_CHARS + 1),
    st.tuples(st.sampled_from(["x", "é", "😀", "\u200b", "\u0301"]), st.integers(0, 130)).map(
        lambda piece: piece[0] * piece[1]
    ),
)

OFFSETS = st.integers(-(24 * 60 - 1), 24 * 60 - 1).map(lambda m: timezone(timedelta(minutes=m)))
TIMESTAMP_EDGES = [
    "0001-01-01T00:00:00Z",
    "0001-01-01T00:00:00+23:59",
    "0001-01-01T00:00:00-23:59",
    "0001-01-01T23:59:59.999999+23:59",
    "9999-12-31T23:59:59.999999Z",
    "9999-12-31T23:59:59+23:59",
    "9999-12-31T23:59:59-23:59",
    "9999-12-31T00:00:00-23:59",
    "2024-02-29T12:00:00Z",
    "2023-02-29T12:00:00Z",
    "2100-02-29T12:00:00Z",
    "2000-02-29T23:59:59-23:59",
    "1970-01-01T00:00:00Z",
    "1970-01-01T00:00:00+00:00",
    "1969-12-31T23:59:59.999999Z",
    "2038-01-19T03:14:08Z",
    "3000-01-01T00:00:00Z",
    "5000-06-15T12:00:00+05:30",
    "2026-02-03T18:34:12.1Z",
    "2026-02-03T18:34:12.123456Z",
    "2026-02-03T18:34:12.123456789Z",
    "2026-02-03T18:34:12,5Z",
    "2026-02-03T18:34:12",
    "2026-02-03T18:34",
    "2026-02-03",
    "2026-02-03T18:34:12+24:00",
    "2026-02-03T18:34:12-24:00",
    "2026-02-03T18:34:12+23:60",
    "2026-02-03T18:34:12+01:00:30",
    "2026-02-03T18:34:12+0100",
    "2026-02-03T18:34:12z",
    "2026-02-03t18:34:12Z",
    "2026-02-03 18:34:12Z",
    "2026-02-03T24:00:00Z",
    "2026-02-03T18:34:60Z",
    "2026-13-01T00:00:00Z",
    "0000-01-01T00:00:00Z",
    "10000-01-01T00:00:00Z",
    "-0001-01-01T00:00:00Z",
    "+2026-02-03T18:34:12Z",
    "２０２６-02-03T18:34:12Z",
    "2026-02-03T18:34:12Z\n",
    " 2026-02-03T18:34:12Z",
    "",
    "now",
    "yesterday",
    "T",
    "Z",
    "\ud800",
]


def _rfc3339(moment: datetime, style: int) -> str:
    text = moment.isoformat()
    if style == 1:
        return text.replace("+00:00", "Z")
    if style == 2:
        return text.replace("T", " ")
    if style == 3:
        return text.lower()
    return text


GENERATED_TIMESTAMP = st.builds(
    _rfc3339,
    st.datetimes(
        min_value=datetime(1, 1, 1),
        max_value=datetime(9999, 12, 31, 23, 59, 59, 999999),
        timezones=st.one_of(OFFSETS, st.none()),
    ),
    st.sampled_from([0, 0, 1, 1, 2, 3]),
)
VALID_TIMESTAMP = st.one_of(
    st.sampled_from(["2026-02-03T18:34:12Z", "2026-02-03T19:00:00+01:00"]),
    st.datetimes(
        min_value=datetime(2000, 1, 1),
        max_value=datetime(2100, 1, 1),
        timezones=OFFSETS,
    ).map(lambda moment: _rfc3339(moment, 1)),
)
EDGE_TIMESTAMP = st.one_of(st.sampled_from(TIMESTAMP_EDGES), GENERATED_TIMESTAMP)

TEXT_LENGTHS = [0, 1, 2, MAX_TEXT_CHARS - 1, MAX_TEXT_CHARS, MAX_TEXT_CHARS + 1, 2 * MAX_TEXT_CHARS]
EDGE_TEXT = st.one_of(
    st.tuples(
        st.sampled_from(["x", "é", "😀", "\u0301", "\x00", "\ud800", "\n", "\u202e"]),
        st.sampled_from(TEXT_LENGTHS),
    ).map(lambda piece: piece[0] * piece[1]),
    st.text(ALL_CHARACTERS, max_size=40),
)
VALID_TEXT = st.one_of(
    st.sampled_from(["Let's plan tomorrow.", "I need to water the plants", "ok"]),
    st.text(st.characters(codec="utf-8"), min_size=1, max_size=200),
)
QUERY_LENGTHS = [0, 1, MAX_QUERY_CHARS - 1, MAX_QUERY_CHARS, MAX_QUERY_CHARS + 1]
EDGE_QUERY = st.one_of(
    st.tuples(
        st.sampled_from(["q", "😀", "\x00", "\ud800", "*", '"']), st.sampled_from(QUERY_LENGTHS)
    ).map(lambda piece: piece[0] * piece[1]),
    st.sampled_from(["AND", "OR", "*", "~", '"', "\\", "a:b", "(", "[", "title:x", "?"]),
    st.text(ALL_CHARACTERS, max_size=30),
)
LIMIT_EDGES: list[Any] = [
    0,
    1,
    2,
    MAX_QUERY_LIMIT - 1,
    MAX_QUERY_LIMIT,
    MAX_QUERY_LIMIT + 1,
    -1,
    10**6,
    2**31,
    2**63 - 1,
    2**63,
    2**64,
    -(2**63) - 1,
    10**100,
    1.0,
    50.0,
    1.5,
    0.0,
    -0.0,
    1e308,
    True,
    False,
    "10",
    "",
    None,
    [],
    {},
    Raw("1e400"),
    Raw("-1e400"),
    Raw("1E1"),
    Raw("-0"),
    Raw("NaN"),
    Raw("Infinity"),
    Raw("01"),
    Raw("0x10"),
    Raw("1" * 5000),
    Raw("1." + "0" * 5000),
]
ZONE_EDGES = [
    "UTC",
    "Etc/UTC",
    "Europe/Paris",
    "Pacific/Kiritimati",
    "Etc/GMT-14",
    "Etc/GMT+12",
    "Pacific/Pago_Pago",
    "America/St_Johns",
    "Asia/Kathmandu",
    "Factory",
    "localtime",
    "posixrules",
    "EST5EDT",
    "Europe/Paris\x00",
    "Europe/Paris\n",
    "europe/paris",
    "../../etc/passwd",
    "/etc/localtime",
    "Mars/Olympus_Mons",
    "",
    "a" * MAX_TIMEZONE_CHARS,
    "a" * (MAX_TIMEZONE_CHARS + 1),
    "\ud800",
]


def _nested(depth: int, kind: str) -> Raw:
    if kind == "array":
        return Raw("[" * depth + "]" * depth)
    return Raw('{"a":' * depth + "1" + "}" * depth)


DEEP = st.builds(
    _nested, st.sampled_from([2, 64, 1_000, 10_000, 60_000]), st.sampled_from(["array", "object"])
)
JSON_LEAF = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.floats(),
    st.text(ALL_CHARACTERS, max_size=10),
)
WRONG_TYPE = st.one_of(
    JSON_LEAF,
    st.lists(JSON_LEAF, max_size=3),
    st.dictionaries(st.text(max_size=5), JSON_LEAF, max_size=2),
    DEEP,
)


@dataclass(frozen=True)
class Field:
    valid: st.SearchStrategy[Any]
    edge: st.SearchStrategy[Any]
    required: bool = True


ABSENT = object()


@st.composite
def field_value(draw: st.DrawFn, spec: Field) -> Any:
    """Mostly valid; else an edge, a wrong type, or missing (a required field, rarely)."""
    kind = draw(st.sampled_from(["valid"] * 5 + ["edge"] * 3 + ["wrong", "absent"]))
    if kind == "absent" or (not spec.required and kind == "valid" and draw(st.booleans())):
        return ABSENT
    if kind == "edge":
        return draw(spec.edge)
    if kind == "wrong":
        return draw(WRONG_TYPE)
    return draw(spec.valid)


UNKNOWN_NAMES = st.one_of(
    st.sampled_from(["surprise", "tenantid", "TenantId", "tenant_id", "__proto__", "", "limit "]),
    st.text(ALL_CHARACTERS, max_size=6),
)


@st.composite
def json_object(draw: st.DrawFn, fields: dict[str, Field]) -> Any:
    pairs = [
        (name, value)
        for name, spec in fields.items()
        if (value := draw(field_value(spec))) is not ABSENT
    ]
    if draw(st.integers(0, 9)) == 0:  # unknown fields
        pairs.extend(draw(st.lists(st.tuples(UNKNOWN_NAMES, JSON_LEAF), min_size=1, max_size=3)))
    present = [name for name, _ in pairs if name in fields]
    if present and draw(st.integers(0, 19)) == 0:  # a key twice
        name = draw(st.sampled_from(present))
        pairs.append((name, draw(st.one_of(fields[name].valid, fields[name].edge, JSON_LEAF))))
    if draw(st.booleans()):
        pairs = draw(st.permutations(pairs))
    return Obj(tuple(pairs))


def _broken(encoded: bytes, how: str, cut: int) -> bytes:
    """The same body made malformed in one of many ways."""
    return {
        "truncated": encoded[: cut % max(len(encoded), 1)],
        "trailing": encoded + b"x",
        "trailing-comma": encoded[:-1] + b",}" if encoded.endswith(b"}") else encoded + b",",
        "bom": b"\xef\xbb\xbf" + encoded,
        "invalid-utf8": encoded[:1] + b'"\xff\xfe":1,' + encoded[1:],
        "two-documents": encoded + encoded,
        "whitespace": b" \t\r\n" + encoded + b"\n\n",
        "empty": b"",
        "nul": encoded + b"\x00",
        "single-quotes": encoded.replace(b'"', b"'"),
    }[how]


@st.composite
def body(draw: st.DrawFn, fields: dict[str, Field]) -> bytes:
    """A mostly-valid JSON body for `fields`; sometimes not an object, sometimes not JSON."""
    shape = draw(st.sampled_from(["object"] * 16 + ["not-object", "deep", "broken"]))
    value: Any
    if shape == "not-object":
        value = draw(st.one_of(JSON_LEAF, st.lists(JSON_LEAF, max_size=2)))
    elif shape == "deep":
        value = draw(DEEP)
    else:
        value = draw(json_object(fields))
    encoded = to_bytes(value, ascii_only=draw(st.booleans()))
    if shape == "broken":
        how = draw(
            st.sampled_from(
                [
                    "truncated",
                    "trailing",
                    "trailing-comma",
                    "bom",
                    "invalid-utf8",
                    "two-documents",
                    "whitespace",
                    "empty",
                    "nul",
                    "single-quotes",
                ]
            )
        )
        encoded = _broken(encoded, how, draw(st.integers(0, 10_000)))
    return encoded


TENANT = Field(valid_id(VALID_TENANTS), EDGE_ID)
USER = Field(valid_id(VALID_USERS), EDGE_ID)
SESSION = Field(valid_id(VALID_SESSIONS), EDGE_ID)
OPTIONAL_SESSION = Field(valid_id(VALID_SESSIONS), EDGE_ID, required=False)
PERSONA = Field(valid_id(["persona-1"]), EDGE_ID, required=False)
ROLE = Field(
    st.sampled_from(["user", "assistant"]),
    st.sampled_from(["", "User", "USER", "system", "tool", "user ", "user\x00", "\ud800"]),
)
TIMESTAMP = Field(VALID_TIMESTAMP, EDGE_TIMESTAMP)
OPTIONAL_TIMESTAMP = Field(VALID_TIMESTAMP, EDGE_TIMESTAMP, required=False)

INGEST = {
    "tenantId": TENANT,
    "userId": USER,
    "sessionId": SESSION,
    "role": ROLE,
    "text": Field(VALID_TEXT, EDGE_TEXT),
    "timestamp": TIMESTAMP,
    "personaId": PERSONA,
    "messageId": Field(valid_id(["m-1", "m-2"]), EDGE_ID, required=False),
}
BRIEF = {
    "tenantId": TENANT,
    "userId": USER,
    "sessionId": OPTIONAL_SESSION,
    "personaId": PERSONA,
    "now": OPTIONAL_TIMESTAMP,
    "timezone": Field(
        st.sampled_from(["Europe/Paris", "UTC", "America/New_York"]),
        st.one_of(st.sampled_from(ZONE_EDGES), st.text(ALL_CHARACTERS, max_size=12)),
        required=False,
    ),
}
MEMORY_QUERY = {
    "tenantId": TENANT,
    "userId": USER,
    "query": Field(st.sampled_from(["plants", "tomorrow", "what did I say?"]), EDGE_QUERY),
    "limit": Field(st.integers(1, MAX_QUERY_LIMIT), st.sampled_from(LIMIT_EDGES), required=False),
    "referenceTime": OPTIONAL_TIMESTAMP,
}
SESSION_CLOSE = {
    "tenantId": TENANT,
    "userId": USER,
    "sessionId": OPTIONAL_SESSION,
    "personaId": PERSONA,
}
MESSAGE = {"role": ROLE, "text": Field(VALID_TEXT, EDGE_TEXT), "timestamp": TIMESTAMP}


def _transcript(count: int, start: datetime) -> list[dict[str, str]]:
    return [
        {
            "role": ("user", "assistant")[n % 2],
            "text": f"turn {n}",
            "timestamp": (start + timedelta(seconds=n)).isoformat().replace("+00:00", "Z"),
        }
        for n in range(count)
    ]


MESSAGES = Field(
    st.lists(json_object(MESSAGE), min_size=1, max_size=4),
    st.one_of(
        st.just([]),
        st.builds(
            _transcript,
            st.sampled_from([MAX_TRANSCRIPT_MESSAGES, MAX_TRANSCRIPT_MESSAGES + 1]),
            st.sampled_from([datetime(2026, 2, 3, tzinfo=UTC), datetime(9999, 12, 31, tzinfo=UTC)]),
        ),
        st.lists(json_object(MESSAGE), min_size=2, max_size=6),
        st.lists(WRONG_TYPE, min_size=1, max_size=2),
    ),
)
SESSION_INGEST = {
    "tenantId": TENANT,
    "userId": USER,
    "sessionId": SESSION,
    "messages": MESSAGES,
    "personaId": PERSONA,
    "startedAt": OPTIONAL_TIMESTAMP,
    "endedAt": OPTIONAL_TIMESTAMP,
}

# ---------------------------------------------------------------------------------------------
# Query strings, percent-encoded in every way a client (or an attacker) might.


def _percent(value: str, style: str) -> str:
    if style == "plus":
        return quote(value.encode("utf-8", "surrogatepass"), safe="").replace("%20", "+")
    if style == "latin-1" and all(ord(c) < 256 for c in value):
        return quote_from_bytes(value.encode("latin-1"), safe="")  # invalid UTF-8 when > 127
    if style == "bad-escape":
        return quote_from_bytes(value.encode("utf-8", "surrogatepass"), safe="") + "%zz%"
    # Lone surrogates go out as CESU-8 (%ED%A0%80): invalid UTF-8 as well.
    return quote_from_bytes(value.encode("utf-8", "surrogatepass"), safe="")


@st.composite
def query_string(draw: st.DrawFn, fields: dict[str, Field]) -> str:
    pairs: list[tuple[str, Any]] = [
        (name, value)
        for name, spec in fields.items()
        if (value := draw(field_value(spec))) is not ABSENT
    ]
    if draw(st.integers(0, 9)) == 0:
        pairs.append((draw(UNKNOWN_NAMES), draw(JSON_LEAF)))
    present = [name for name, _ in pairs if name in fields]
    if present and draw(st.integers(0, 9)) == 0:  # repeated, as `tenantId=a&tenantId=b`
        name = draw(st.sampled_from(present))
        pairs.append((name, draw(st.one_of(fields[name].valid, fields[name].edge))))
    if draw(st.booleans()):
        pairs = draw(st.permutations(pairs))
    parts = []
    for name, value in pairs:
        style = draw(st.sampled_from(["utf-8"] * 6 + ["plus", "latin-1", "bad-escape"]))
        text = value if isinstance(value, str) else _encode(value, ascii_only=True)[:300]
        if draw(st.integers(0, 29)) == 0:
            parts.append(_percent(name, "utf-8"))  # a name without `=`
        else:
            parts.append(f"{_percent(name, 'utf-8')}={_percent(text, style)}")
    return "&".join(parts)


USER_QUERY = {"tenantId": TENANT, "userId": USER}
SESSION_BRIEF_QUERY = {**USER_QUERY, "now": OPTIONAL_TIMESTAMP}

# ---------------------------------------------------------------------------------------------
# The API under test, and what every answer must be.


class ErrorLog(logging.Handler):
    """The API's ERROR records (it runs in this process), to explain a 5xx."""

    def __init__(self) -> None:
        super().__init__(logging.ERROR)
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        line = f"{record.name}: {record.getMessage()}"
        if record.exc_info and record.exc_info[1] is not None:
            frames = traceback.format_exception(record.exc_info[1])
            line += "\n" + "".join(frames[-6:])
        self.lines.append(line)


def _abridged(content: bytes) -> str:
    if len(content) <= 600:
        return repr(content)
    return f"{content[:400]!r} ... {content[-150:]!r} ({len(content)} bytes)"


@dataclass
class Target:
    http: httpx.Client
    errors: ErrorLog

    def check(self, method: str, url: str, contract: type[Any], content: bytes | None) -> None:
        self.errors.lines.clear()
        headers = {"Content-Type": "application/json"} if content is not None else {}
        shown = f"{method} {url} {_abridged(content or b'')}"
        try:
            response = self.http.request(method, url, content=content, headers=headers)
        except httpx.HTTPError as exc:
            pytest.fail(f"no answer: {exc!r}\n{shown}\nAPI log:\n{self._log()}")
        status = response.status_code
        assert status < 500, f"{status} {response.text[:300]}\n{shown}\nAPI log:\n{self._log()}"
        if status >= 400:
            error = json.loads(response.content)
            assert set(error) == {"error", "message", "field"}, (status, error, shown)
            msgspec.json.decode(response.content, type=ErrorBody)
        else:
            assert 200 <= status < 300, (status, response.text[:300], shown)
            msgspec.json.decode(response.content, type=contract)

    def _log(self) -> str:
        return "\n".join(self.errors.lines) or "(nothing logged)"


@pytest.fixture(scope="module")
def target(backing_services: BackingServices) -> Iterator[Target]:
    # Deterministic examples need a deterministic start: no state left by earlier runs.
    with Redis.from_url(backing_services.redis_url) as redis:
        redis.flushdb()
    api = RunningApi(base_env(backing_services.redis_url, backing_services.neo4j_uri)).start()
    errors = ErrorLog()
    logging.getLogger().addHandler(errors)
    try:
        with httpx.Client(base_url=api.base_url, timeout=60) as http:
            yield Target(http, errors)
    finally:
        logging.getLogger().removeHandler(errors)
        api.stop()


def _posting(path: str, fields: dict[str, Field], contract: type[Any]) -> Callable[[Target], None]:
    @EDGE_SETTINGS
    @given(content=body(fields))
    def run(target: Target, content: bytes) -> None:
        target.check("POST", path, contract, content)

    return run


def _querying(
    method: str, path: str, fields: dict[str, Field], contract: type[Any]
) -> Callable[[Target], None]:
    @EDGE_SETTINGS
    @given(query=query_string(fields))
    def run(target: Target, query: str) -> None:
        target.check(method, f"{path}?{query}" if query else path, contract, None)

    return run


# In this order: turns first, so the briefs, queries and exports after them meet stored edges.
test_ingest_edges = _posting("/ingest", INGEST, IngestResponse)
test_session_ingest_edges = _posting("/session/ingest", SESSION_INGEST, IngestResponse)
test_brief_edges = _posting("/brief", BRIEF, BriefResponse)
test_memory_query_edges = _posting("/memory/query", MEMORY_QUERY, MemoryQueryResponse)
test_session_brief_edges = _querying(
    "GET", "/session/brief", SESSION_BRIEF_QUERY, SessionBriefResponse
)
test_export_edges = _querying("GET", "/users/export", USER_QUERY, UserExport)
test_session_close_edges = _posting("/session/close", SESSION_CLOSE, SessionCloseResponse)
test_delete_user_edges = _querying("DELETE", "/users", USER_QUERY, UserDeletion)
