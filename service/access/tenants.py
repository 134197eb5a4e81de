"""Tenants and their API keys, read from the JSON file named by SYNAPSE_TENANTS_FILE.

The file (a Kubernetes Secret mounted as a file) has this fixed shape; keys are stored only as
SHA-256 hashes, several per tenant so keys can be rotated without downtime:

    {"tenants": {"<tenantId>": {"keys": ["sha256:<hex>"], "requestsPerSecond": 50,
                                "turnsPerDay": 100000}}}

The file is re-read when it changes (checked at most every few seconds), so a rotated Secret
takes effect without a restart.

Open mode (no keys, everyone trusted) is decided once, at start-up, from the settings alone: no
file configured. It is never reached at runtime. A file that is configured but holds no key
refuses to start, and a reload that would leave no key (an emptied Secret, a half-written
update) keeps the last good keys and logs an error: a reload can rotate keys, never open the API.
"""

import hashlib
import logging
import os
import time
from dataclasses import dataclass
from typing import Annotated

import msgspec

logger = logging.getLogger(__name__)

DEFAULT_REQUESTS_PER_SECOND = 50.0
DEFAULT_TURNS_PER_DAY = 100_000
_RECHECK_SECONDS = 5.0

KeyHash = Annotated[str, msgspec.Meta(pattern=r"^sha256:[0-9a-f]{64}$")]


class TenantEntry(msgspec.Struct, rename="camel", forbid_unknown_fields=True, kw_only=True):
    keys: list[KeyHash]
    requests_per_second: Annotated[float, msgspec.Meta(gt=0)] = DEFAULT_REQUESTS_PER_SECOND
    turns_per_day: Annotated[int, msgspec.Meta(ge=0)] = DEFAULT_TURNS_PER_DAY


class TenantsFile(msgspec.Struct, forbid_unknown_fields=True):
    tenants: dict[str, TenantEntry]


class TenantsFileError(ValueError):
    """The tenants file is missing, unreadable or not of the documented shape."""


@dataclass(frozen=True, slots=True)
class Tenant:
    tenant_id: str
    requests_per_second: float
    turns_per_day: int


def hash_key(api_key: str) -> str:
    return "sha256:" + hashlib.sha256(api_key.encode()).hexdigest()


def _load(path: str) -> dict[str, Tenant]:
    try:
        with open(path, "rb") as handle:
            parsed = msgspec.json.decode(handle.read(), type=TenantsFile)
    except OSError as exc:
        raise TenantsFileError(f"cannot read SYNAPSE_TENANTS_FILE {path}: {exc.strerror}") from None
    except msgspec.DecodeError as exc:
        raise TenantsFileError(f"SYNAPSE_TENANTS_FILE {path} is invalid: {exc}") from None
    by_hash: dict[str, Tenant] = {}
    for tenant_id, entry in parsed.tenants.items():
        tenant = Tenant(tenant_id, entry.requests_per_second, entry.turns_per_day)
        for key_hash in entry.keys:
            if key_hash in by_hash and by_hash[key_hash].tenant_id != tenant_id:
                raise TenantsFileError("one key hash is listed under two tenants")
            by_hash[key_hash] = tenant
    if not by_hash:
        raise TenantsFileError(f"SYNAPSE_TENANTS_FILE {path} holds no API key")
    return by_hash


class TenantDirectory:
    """Which tenant an API key belongs to. Open mode only when no file is configured."""

    def __init__(self, path: str | None) -> None:
        self._path = path
        self._by_hash: dict[str, Tenant] = _load(path) if path else {}
        # Fixed for the life of the process: a reload never turns authentication off.
        self._open_mode = path is None
        self._mtime = self._stat()
        self._checked_at = time.monotonic()

    @property
    def open_mode(self) -> bool:
        """No file configured: every caller is trusted (allowed only on loopback)."""
        return self._open_mode

    def _stat(self) -> float:
        if not self._path:
            return 0.0
        try:
            return os.stat(self._path).st_mtime
        except OSError:
            return 0.0

    def _maybe_reload(self) -> None:
        now = time.monotonic()
        if not self._path or now - self._checked_at < _RECHECK_SECONDS:
            return
        self._checked_at = now
        mtime = self._stat()
        if mtime != self._mtime:
            try:
                self._by_hash = _load(self._path)
                self._mtime = mtime
            except TenantsFileError as exc:
                # A half-written, broken or emptied update keeps the last good keys in force.
                logger.error("tenants file not reloaded, the last good keys stay in force: %s", exc)

    def tenant_for(self, api_key: str) -> Tenant | None:
        self._maybe_reload()
        return self._by_hash.get(hash_key(api_key))
