"""Strict request bodies.

Litestar converts bodies with msgspec's lax rules (a number becomes a timestamp, "10" an int),
but the contract promises that wrong types are rejected. Handlers keep `data: JSONBody[T]` so
the OpenAPI document describes the body, and decode the same cached bytes again, strictly, with
one reusable decoder per type; a difference becomes a 422 naming the field.
"""

import re
from typing import Any, TypeVar

import msgspec
from litestar import Request

from service.errors import InvalidInput

T = TypeVar("T")

_decoders: dict[type[Any], msgspec.json.Decoder[Any]] = {}
_PATH = re.compile(r"at `\$\.([^`]+)`")
_NAMED = re.compile(r"field `([^`]+)`")


def _field(message: str) -> str | None:
    found = _PATH.search(message) or _NAMED.search(message)
    return found.group(1) if found else None


async def strict_body(request: Request[Any, Any, Any], kind: type[T]) -> T:
    decoder = _decoders.get(kind)
    if decoder is None:
        decoder = _decoders[kind] = msgspec.json.Decoder(kind)
    try:
        value: T = decoder.decode(await request.body())
    except msgspec.ValidationError as exc:
        message = str(exc)
        raise InvalidInput(message, field=_field(message)) from None
    return value
