"""Base Struct configurations shared by every wire type."""

import msgspec


class Inbound(msgspec.Struct, rename="camel", forbid_unknown_fields=True, kw_only=True):
    """A request body: camelCase on the wire, strict (unknown fields and wrong types rejected)."""


class Outbound(msgspec.Struct, rename="camel", forbid_unknown_fields=True, kw_only=True):
    """A response body: camelCase on the wire; the client decodes it just as strictly."""
