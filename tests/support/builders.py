"""Request builders with sensible defaults, so each test states only what it is about."""

from datetime import datetime
from typing import Any

import msgspec

from contracts import BriefRequest, IngestRequest


def at(text: str) -> datetime:
    """`2026-02-03T18:34:12Z` -> an aware datetime."""
    return msgspec.convert(text, datetime)


def turn(
    tenant: str,
    text: str,
    *,
    user: str = "user-1",
    session: str = "session-1",
    role: str = "user",
    timestamp: str = "2026-02-03T18:34:12Z",
    **extra: Any,
) -> IngestRequest:
    return IngestRequest(
        tenant_id=tenant,
        user_id=user,
        session_id=session,
        role=role,  # type: ignore[arg-type]
        text=text,
        timestamp=at(timestamp),
        persona_id="persona-1",
        **extra,
    )


def brief(
    tenant: str, *, user: str = "user-1", session: str | None = "session-1", **extra: Any
) -> BriefRequest:
    return BriefRequest(tenant_id=tenant, user_id=user, session_id=session, **extra)


def ingest_body(tenant: str, **overrides: Any) -> dict[str, Any]:
    """A valid /ingest JSON body as a dict, to be broken on purpose by bad-input tests."""
    body: dict[str, Any] = {
        "tenantId": tenant,
        "userId": "user-1",
        "personaId": "persona-1",
        "role": "user",
        "text": "Let's plan tomorrow.",
        "timestamp": "2026-02-03T18:34:12Z",
        "sessionId": "session-1",
    }
    body.update(overrides)
    return {key: value for key, value in body.items() if value is not ...}
