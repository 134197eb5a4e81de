"""A small typed async client for Synapse's public endpoints (used by the tests, too)."""

from types import TracebackType
from typing import Any, Self, TypeVar

import httpx
import msgspec

from contracts.brief import BriefRequest, BriefResponse
from contracts.errors import ErrorBody, ErrorCode
from contracts.health import HealthResponse, ReadyResponse
from contracts.memory import MemoryQueryRequest, MemoryQueryResponse, SessionBriefResponse
from contracts.turns import (
    IngestRequest,
    IngestResponse,
    SessionCloseRequest,
    SessionCloseResponse,
    SessionIngestRequest,
)

T = TypeVar("T")

_encoder = msgspec.json.Encoder()
_error_decoder = msgspec.json.Decoder(ErrorBody)


class SynapseError(Exception):
    """A non-2xx answer; `body` is the service's error body when it sent one."""

    def __init__(self, status: int, body: ErrorBody) -> None:
        super().__init__(f"{status} {body.error}: {body.message}")
        self.status = status
        self.body = body


class SynapseClient:
    def __init__(
        self,
        base_url: str,
        *,
        api_key: str | None = None,
        timeout: float = 30.0,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self._http = httpx.AsyncClient(
            base_url=base_url, headers=headers, timeout=timeout, transport=transport
        )

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        await self._http.aclose()

    async def ingest(self, request: IngestRequest) -> IngestResponse:
        return await self._post("/ingest", request, IngestResponse)

    async def session_ingest(self, request: SessionIngestRequest) -> IngestResponse:
        return await self._post("/session/ingest", request, IngestResponse)

    async def close_session(self, request: SessionCloseRequest) -> SessionCloseResponse:
        return await self._post("/session/close", request, SessionCloseResponse)

    async def brief(self, request: BriefRequest) -> BriefResponse:
        return await self._post("/brief", request, BriefResponse)

    async def memory_query(self, request: MemoryQueryRequest) -> MemoryQueryResponse:
        return await self._post("/memory/query", request, MemoryQueryResponse)

    async def session_brief(
        self, *, tenant_id: str, user_id: str, now: str | None = None
    ) -> SessionBriefResponse:
        params = {"tenantId": tenant_id, "userId": user_id}
        if now is not None:
            params["now"] = now
        response = await self._http.get("/session/brief", params=params)
        return _decode(response, SessionBriefResponse)

    async def health(self) -> HealthResponse:
        return _decode(await self._http.get("/health"), HealthResponse)

    async def ready(self) -> ReadyResponse:
        """Readiness; a not-ready service answers 503 with the same body, returned here."""
        response = await self._http.get("/ready")
        if response.status_code == httpx.codes.SERVICE_UNAVAILABLE:
            return msgspec.json.decode(response.content, type=ReadyResponse)
        return _decode(response, ReadyResponse)

    async def _post(self, path: str, body: Any, response_type: type[T]) -> T:
        response = await self._http.post(
            path, content=_encoder.encode(body), headers={"Content-Type": "application/json"}
        )
        return _decode(response, response_type)


def _decode(response: httpx.Response, response_type: type[T]) -> T:
    if response.is_success:
        return msgspec.json.decode(response.content, type=response_type)
    try:
        body = _error_decoder.decode(response.content)
    except msgspec.DecodeError:
        body = ErrorBody(error=ErrorCode.INTERNAL, message=response.text[:500] or "no body")
    raise SynapseError(response.status_code, body)
