"""Turn ingestion: POST /ingest, POST /session/ingest, POST /session/close."""

from typing import Annotated, Literal

import msgspec

from contracts._base import Inbound, Outbound
from contracts.limits import MAX_TRANSCRIPT_MESSAGES, Id, Role, Text, Timestamp


class IngestRequest(Inbound):
    tenant_id: Id
    user_id: Id
    session_id: Id
    role: Role
    text: Text
    timestamp: Timestamp
    persona_id: Id | None = None
    # Optional idempotency key: a retry with the same messageId is stored once even if its
    # text or timestamp differ.
    message_id: Id | None = None


class IngestResponse(Outbound):
    status: Literal["ingested"]
    session_id: str
    graphiti_added: bool


class Message(Inbound):
    role: Role
    text: Text
    timestamp: Timestamp


class SessionIngestRequest(Inbound):
    tenant_id: Id
    user_id: Id
    session_id: Id
    messages: Annotated[
        list[Message], msgspec.Meta(min_length=1, max_length=MAX_TRANSCRIPT_MESSAGES)
    ]
    persona_id: Id | None = None
    started_at: Timestamp | None = None
    ended_at: Timestamp | None = None


class SessionCloseRequest(Inbound):
    tenant_id: Id
    user_id: Id
    session_id: Id | None = None
    persona_id: Id | None = None


class SessionCloseResponse(Outbound):
    closed: bool
    session_id: str | None
