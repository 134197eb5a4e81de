"""Tenants files for tests: real JSON files in the documented shape, keys stored as hashes."""

import json
import tempfile
from pathlib import Path
from typing import Any

from service.access.tenants import hash_key


def write_tenants_file(tenants: dict[str, dict[str, Any]], path: Path | None = None) -> Path:
    """`tenants` maps tenant id -> {"keys": [plain keys], ...limits}; keys are hashed here."""
    body = {
        "tenants": {
            tenant_id: {**entry, "keys": [hash_key(key) for key in entry["keys"]]}
            for tenant_id, entry in tenants.items()
        }
    }
    if path is None:
        path = Path(tempfile.mkstemp(prefix="tenants-", suffix=".json")[1])
    path.write_text(json.dumps(body))
    return path
