"""An OpenAI-compatible stand-in server on loopback, answered by ``service.graph.offline_llm``.

Tests point the real ``openai`` SDK (and Graphiti's OpenAI clients) at ``StandinServer.base_url``
so that the whole HTTP path runs: request shaping, retries on 429/5xx, ``Retry-After``,
base64 embeddings, structured-output parsing. The server is a small Litestar app served by
uvicorn on a background thread with its own event loop.

Endpoints: ``POST /v1/responses``, ``POST /v1/chat/completions`` (structured, ``json_object``,
plain text and the reranker's logprob form), ``POST /v1/embeddings``, ``GET /v1/models``.

Control is in-process and thread-safe: ``set_latency``, ``inject_failures``, ``fail_forever``,
``clear_failures``, ``set_flavour``, and a request log (``calls``, ``records``, ``total_tokens``,
``schema_calls``, ``reset_log``).

``set_flavour("llama.cpp")`` answers chat completions the way llama.cpp's OpenAI-compatible
server (llama-cpp-python 0.3.36) does where it differs from OpenAI: ``response_format``
``json_schema`` is a request validation error answered with HTTP **500** (not 4xx), and
``{"type": "json_object", "schema": {...}}`` is answered in that schema.
"""

from __future__ import annotations

import asyncio
import base64
import json
import math
import socket
import struct
import threading
import time
import uuid
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from types import TracebackType
from typing import Any, Literal

import uvicorn
from litestar import Litestar, Request, Response, get, post
from litestar.exceptions import HTTPException

from service.graph.offline_llm import (
    hashing_embedding,
    lexical_relevance,
    structured_response,
    text_response,
)

DEFAULT_EMBEDDING_DIM = 1024
Flavour = Literal["openai", "llama.cpp"]
_SCHEMA_MARKER = "Respond with a JSON object in the following format:"
_ERROR_TYPES = {
    400: ("invalid_request_error", None),
    401: ("authentication_error", "invalid_api_key"),
    403: ("permission_error", None),
    404: ("not_found_error", None),
    408: ("timeout_error", None),
    409: ("conflict_error", None),
    429: ("rate_limit_error", "rate_limit_exceeded"),
}


@dataclass(frozen=True)
class RequestRecord:
    """One request as the stand-in saw it."""

    method: str
    path: str
    status: int
    kind: str  # structured | json_object | text | rerank | embeddings | models | failure
    schema_name: str | None
    model: str | None
    input_tokens: int
    output_tokens: int
    retry_count: int  # the SDK's x-stainless-retry-count header (0 on the first attempt)


@dataclass
class _FailureRule:
    status: int
    remaining: int | None  # None = forever
    retry_after: float | None
    prefixes: tuple[str, ...]  # empty = every path

    def matches(self, path: str) -> bool:
        return not self.prefixes or any(path.startswith(p) for p in self.prefixes)


def approx_tokens(text: str) -> int:
    """Roughly four characters per token, like OpenAI's rule of thumb; at least 1."""
    return max(1, math.ceil(len(text) / 4))


class StandinServer:
    """Run the stand-in on a free 127.0.0.1 port in a background thread.

    Use as a context manager or call ``start()``/``stop()``. All control methods may be
    called from any thread while the server runs.
    """

    def __init__(
        self, *, embedding_dim: int = DEFAULT_EMBEDDING_DIM, startup_timeout: float = 10.0
    ) -> None:
        self.embedding_dim = embedding_dim
        self._startup_timeout = startup_timeout
        self._lock = threading.Lock()
        self._latency = 0.0
        self._flavour: Flavour = "openai"
        self._rules: list[_FailureRule] = []
        self._records: list[RequestRecord] = []
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None
        self._socket: socket.socket | None = None
        self._port: int | None = None

    # -- lifecycle ---------------------------------------------------------------------------

    @property
    def base_url(self) -> str:
        if self._port is None:
            raise RuntimeError("StandinServer is not running; call start() first")
        return f"http://127.0.0.1:{self._port}/v1"

    def start(self) -> StandinServer:
        if self._thread is not None:
            return self
        # Bind the socket ourselves so the port is ours before uvicorn starts (no race
        # between picking a free port and listening on it).
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(("127.0.0.1", 0))
        self._socket = sock
        self._port = int(sock.getsockname()[1])
        config = uvicorn.Config(
            self._build_app(),
            loop="asyncio",
            http="h11",
            ws="none",  # no websockets import: nothing to warn about under filterwarnings=error
            lifespan="on",
            log_config=None,  # leave the process's logging configuration alone
            log_level="warning",
            access_log=False,
            timeout_graceful_shutdown=2,
        )
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(
            target=self._server.run, kwargs={"sockets": [sock]}, name="standin", daemon=True
        )
        self._thread.start()
        deadline = time.monotonic() + self._startup_timeout
        while not self._server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError("the stand-in server did not start")
            time.sleep(0.01)
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.should_exit = True
        if self._thread is not None:
            self._thread.join(timeout=10)
        if self._socket is not None:
            self._socket.close()
        self._server, self._thread, self._socket, self._port = None, None, None, None

    def __enter__(self) -> StandinServer:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    # -- control -----------------------------------------------------------------------------

    def set_latency(self, seconds: float) -> None:
        """Delay every response by ``seconds`` (asyncio.sleep: the loop keeps serving)."""
        with self._lock:
            self._latency = max(0.0, seconds)

    def inject_failures(
        self,
        status: int,
        count: int,
        retry_after: float | None = None,
        paths: str | Sequence[str] | None = None,
    ) -> None:
        """Answer the next ``count`` matching requests with ``status`` and an OpenAI error.

        ``paths`` filters by prefix ("/v1/embeddings" or just "embeddings"); ``retry_after``
        adds a ``Retry-After`` header in seconds (the openai SDK honours values up to 60 s).
        """
        with self._lock:
            self._rules.append(_FailureRule(status, count, retry_after, _prefixes(paths)))

    def fail_forever(
        self,
        status: int,
        retry_after: float | None = None,
        paths: str | Sequence[str] | None = None,
    ) -> None:
        with self._lock:
            self._rules.append(_FailureRule(status, None, retry_after, _prefixes(paths)))

    def clear_failures(self) -> None:
        with self._lock:
            self._rules.clear()

    def set_flavour(self, flavour: Flavour) -> None:
        """Answer like OpenAI (the default) or like llama.cpp's server (module docstring)."""
        with self._lock:
            self._flavour = flavour

    def reset_log(self) -> None:
        with self._lock:
            self._records.clear()

    def reset(self) -> None:
        """Back to a clean state: OpenAI's flavour, no latency, no failures, empty log."""
        with self._lock:
            self._latency = 0.0
            self._flavour = "openai"
            self._rules.clear()
            self._records.clear()

    @property
    def records(self) -> list[RequestRecord]:
        with self._lock:
            return list(self._records)

    @property
    def calls(self) -> dict[str, int]:
        """Requests per path, failures included."""
        with self._lock:
            return dict(Counter(r.path for r in self._records))

    @property
    def schema_calls(self) -> dict[str, int]:
        """Successful structured requests per response-model name."""
        with self._lock:
            return dict(
                Counter(r.schema_name for r in self._records if r.schema_name and r.status == 200)
            )

    @property
    def total_tokens(self) -> int:
        with self._lock:
            return sum(r.input_tokens + r.output_tokens for r in self._records)

    # -- request plumbing --------------------------------------------------------------------

    def _record(self, record: RequestRecord) -> None:
        with self._lock:
            self._records.append(record)

    async def _preamble(self, request: Request[Any, Any, Any]) -> Response[Any] | None:
        """Apply latency, then an injected failure if one matches (logged as ``failure``)."""
        with self._lock:
            latency = self._latency
        if latency:
            await asyncio.sleep(latency)
        path = request.url.path
        with self._lock:
            rule = next((r for r in self._rules if r.matches(path) and r.remaining != 0), None)
            if rule is not None and rule.remaining is not None:
                rule.remaining -= 1
        if rule is None:
            return None
        self._record(
            RequestRecord(
                request.method,
                path,
                rule.status,
                "failure",
                None,
                None,
                0,
                0,
                _retry_count(request),
            )
        )
        headers = {"retry-after": _format_seconds(rule.retry_after)} if rule.retry_after else {}
        return _error(rule.status, f"Injected failure ({rule.status}) from the stand-in", headers)

    def _build_app(self) -> Litestar:
        server = self

        @post("/v1/responses", status_code=200)
        async def responses(request: Request[Any, Any, Any]) -> Response[Any]:
            failure = await server._preamble(request)
            if failure is not None:
                return failure
            body = await _json_body(request)
            messages = _responses_messages(body)
            text_format = (body.get("text") or {}).get("format") or {}
            kind, name, output = _answer(messages, text_format, body_schema_key="schema")
            input_tokens = approx_tokens("".join(m["content"] for m in messages))
            output_tokens = approx_tokens(output)
            model = str(body.get("model") or "standin")
            server._record(
                RequestRecord(
                    "POST",
                    request.url.path,
                    200,
                    kind,
                    name,
                    model,
                    input_tokens,
                    output_tokens,
                    _retry_count(request),
                )
            )
            return Response(
                {
                    "id": f"resp_{uuid.uuid4().hex}",
                    "object": "response",
                    "created_at": time.time(),
                    "status": "completed",
                    "model": model,
                    "output": [
                        {
                            "type": "message",
                            "id": f"msg_{uuid.uuid4().hex}",
                            "status": "completed",
                            "role": "assistant",
                            "content": [{"type": "output_text", "text": output, "annotations": []}],
                        }
                    ],
                    "parallel_tool_calls": False,
                    "tool_choice": "auto",
                    "tools": [],
                    "temperature": body.get("temperature"),
                    "top_p": None,
                    "error": None,
                    "incomplete_details": None,
                    "instructions": None,
                    "metadata": {},
                    "text": body.get("text") or {"format": {"type": "text"}},
                    "usage": {
                        "input_tokens": input_tokens,
                        "input_tokens_details": {"cached_tokens": 0},
                        "output_tokens": output_tokens,
                        "output_tokens_details": {"reasoning_tokens": 0},
                        "total_tokens": input_tokens + output_tokens,
                    },
                }
            )

        @post("/v1/chat/completions", status_code=200)
        async def chat_completions(request: Request[Any, Any, Any]) -> Response[Any]:
            failure = await server._preamble(request)
            if failure is not None:
                return failure
            body = await _json_body(request)
            if body.get("stream"):
                return _error(400, "streaming is not supported by the stand-in")
            messages = _chat_messages(body.get("messages"))
            model = str(body.get("model") or "standin")
            input_tokens = approx_tokens("".join(m["content"] for m in messages))
            logprobs: dict[str, Any] | None = None
            response_format = body.get("response_format") or {}
            with server._lock:
                flavour = server._flavour
            if flavour == "llama.cpp" and response_format.get("type") not in (
                None,
                "text",
                "json_object",
            ):
                server._record(
                    RequestRecord(
                        "POST",
                        request.url.path,
                        500,
                        "failure",
                        None,
                        model,
                        0,
                        0,
                        _retry_count(request),
                    )
                )
                return _llama_cpp_validation_error(response_format.get("type"))
            if body.get("logprobs"):
                kind, name, output, logprobs = "rerank", None, *_rerank(messages)
            else:
                spec = response_format.get("json_schema") or {}
                fmt = {"type": response_format.get("type"), **spec} if response_format else {}
                if flavour == "llama.cpp" and isinstance(response_format.get("schema"), dict):
                    # llama.cpp constrains json_object output to response_format's schema.
                    fmt = {"type": "json_schema", "schema": response_format["schema"]}
                kind, name, output = _answer(messages, fmt, body_schema_key="schema")
                if flavour == "llama.cpp" and fmt.get("type") == "json_schema":
                    kind = "json_object"
            output_tokens = approx_tokens(output)
            server._record(
                RequestRecord(
                    "POST",
                    request.url.path,
                    200,
                    kind,
                    name,
                    model,
                    input_tokens,
                    output_tokens,
                    _retry_count(request),
                )
            )
            return Response(
                {
                    "id": f"chatcmpl-{uuid.uuid4().hex}",
                    "object": "chat.completion",
                    "created": int(time.time()),
                    "model": model,
                    "choices": [
                        {
                            "index": 0,
                            "message": {"role": "assistant", "content": output, "refusal": None},
                            "finish_reason": "stop",
                            "logprobs": logprobs,
                        }
                    ],
                    "usage": {
                        "prompt_tokens": input_tokens,
                        "completion_tokens": output_tokens,
                        "total_tokens": input_tokens + output_tokens,
                    },
                }
            )

        @post("/v1/embeddings", status_code=200)
        async def embeddings(request: Request[Any, Any, Any]) -> Response[Any]:
            failure = await server._preamble(request)
            if failure is not None:
                return failure
            body = await _json_body(request)
            texts = _embedding_inputs(body.get("input"))
            dims = body.get("dimensions")
            dim = int(dims) if isinstance(dims, int) and dims > 0 else server.embedding_dim
            encoding = body.get("encoding_format") or "float"
            data = []
            for index, text in enumerate(texts):
                vector = hashing_embedding(text, dim)
                embedding: list[float] | str = vector
                if encoding == "base64":
                    # Little-endian float32, which is what the SDK decodes.
                    embedding = base64.b64encode(struct.pack(f"<{dim}f", *vector)).decode()
                data.append({"object": "embedding", "index": index, "embedding": embedding})
            tokens = sum(approx_tokens(t) for t in texts)
            model = str(body.get("model") or "standin-embedding")
            server._record(
                RequestRecord(
                    "POST",
                    request.url.path,
                    200,
                    "embeddings",
                    None,
                    model,
                    tokens,
                    0,
                    _retry_count(request),
                )
            )
            return Response(
                {
                    "object": "list",
                    "data": data,
                    "model": model,
                    "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
                }
            )

        @get("/v1/models")
        async def models(request: Request[Any, Any, Any]) -> Response[Any]:
            failure = await server._preamble(request)
            if failure is not None:
                return failure
            server._record(
                RequestRecord(
                    "GET", request.url.path, 200, "models", None, None, 0, 0, _retry_count(request)
                )
            )
            names = ("standin-large", "standin-small", "standin-embedding")
            return Response(
                {
                    "object": "list",
                    "data": [
                        {"id": n, "object": "model", "created": 0, "owned_by": "synapse-standin"}
                        for n in names
                    ],
                }
            )

        def on_http_error(request: Request[Any, Any, Any], exc: HTTPException) -> Response[Any]:
            return _error(exc.status_code, str(exc.detail))

        return Litestar(
            route_handlers=[responses, chat_completions, embeddings, models],
            exception_handlers={HTTPException: on_http_error},
            logging_config=None,
            openapi_config=None,
            debug=False,
        )


# -- helpers ---------------------------------------------------------------------------------


def _prefixes(paths: str | Sequence[str] | None) -> tuple[str, ...]:
    if paths is None:
        return ()
    items = [paths] if isinstance(paths, str) else list(paths)
    return tuple(p if p.startswith("/") else f"/v1/{p}" for p in items)


def _format_seconds(seconds: float | None) -> str:
    return "0" if seconds is None else f"{seconds:g}"


def _retry_count(request: Request[Any, Any, Any]) -> int:
    raw = request.headers.get("x-stainless-retry-count", "0")
    return int(raw) if raw.isdigit() else 0


def _error(status: int, message: str, headers: Mapping[str, str] | None = None) -> Response[Any]:
    error_type, code = _ERROR_TYPES.get(
        status, ("server_error" if status >= 500 else "error", None)
    )
    return Response(
        {"error": {"message": message, "type": error_type, "param": None, "code": code}},
        status_code=status,
        headers=dict(headers or {}),
    )


def _llama_cpp_validation_error(given: Any) -> Response[Any]:
    """What llama-cpp-python's server answers for a response_format it does not know: its
    request validation error (FastAPI's 422 detail), sent with status 500."""
    detail = {
        "type": "literal_error",
        "loc": ("body", "response_format", "type"),
        "msg": "Input should be 'text' or 'json_object'",
        "input": given,
        "ctx": {"expected": "'text' or 'json_object'"},
    }
    message = f"1 validation error:\n  {detail!r}\n\n    POST /v1/chat/completions"
    return Response(
        {
            "error": {
                "message": message,
                "type": "internal_server_error",
                "param": None,
                "code": None,
            }
        },
        status_code=500,
    )


async def _json_body(request: Request[Any, Any, Any]) -> dict[str, Any]:
    try:
        body = json.loads(await request.body())
    except ValueError as exc:
        raise HTTPException(status_code=400, detail="request body is not JSON") from exc
    if not isinstance(body, dict):
        raise HTTPException(status_code=400, detail="request body must be a JSON object")
    return body


def _content_text(content: Any) -> str:
    """Message content as text: a string, or the text parts of a content list."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(str(part.get("text", "")) for part in content if isinstance(part, Mapping))
    return ""


def _chat_messages(raw: Any) -> list[dict[str, str]]:
    if not isinstance(raw, list):
        return []
    return [
        {"role": str(m.get("role", "user")), "content": _content_text(m.get("content"))}
        for m in raw
        if isinstance(m, Mapping)
    ]


def _responses_messages(body: Mapping[str, Any]) -> list[dict[str, str]]:
    messages: list[dict[str, str]] = []
    if isinstance(body.get("instructions"), str):
        messages.append({"role": "system", "content": body["instructions"]})
    raw = body.get("input")
    if isinstance(raw, str):
        messages.append({"role": "user", "content": raw})
    else:
        messages.extend(_chat_messages(raw))
    # The Responses API calls the system role "developer" too.
    return [
        {"role": "system" if m["role"] == "developer" else m["role"], "content": m["content"]}
        for m in messages
    ]


def _schema_from_prompt(messages: Sequence[Mapping[str, str]]) -> dict[str, Any] | None:
    """In json_object mode Graphiti appends the JSON schema to the last message."""
    for message in reversed(messages):
        text = message.get("content", "")
        at = text.rfind(_SCHEMA_MARKER)
        if at < 0:
            continue
        try:
            schema, _ = json.JSONDecoder().raw_decode(text[at + len(_SCHEMA_MARKER) :].lstrip())
        except ValueError:
            return None
        return schema if isinstance(schema, dict) else None
    return None


def _answer(
    messages: Sequence[Mapping[str, str]], fmt: Mapping[str, Any], *, body_schema_key: str
) -> tuple[str, str | None, str]:
    """(kind, schema name, output text) for a structured, json_object or plain request."""
    fmt_type = fmt.get("type")
    if fmt_type == "json_schema":
        schema = fmt.get(body_schema_key)
        name = str(fmt.get("name") or (schema or {}).get("title") or "")
        result = structured_response(name, messages, schema if isinstance(schema, dict) else None)
        return "structured", name, json.dumps(result)
    if fmt_type == "json_object":
        schema = _schema_from_prompt(messages)
        if schema is None:
            return "json_object", None, "{}"
        name = str(schema.get("title") or "")
        return "json_object", name, json.dumps(structured_response(name, messages, schema))
    return "text", None, text_response(messages)


def _rerank(messages: Sequence[Mapping[str, str]]) -> tuple[str, dict[str, Any]]:
    """The reranker asks for one token, "True" or "False", and reads its logprob.

    Graphiti scores exp(logprob) for "True" and 1 - exp(logprob) for "False", so answering
    with the more likely token and that token's probability makes the score equal to the
    lexical relevance r.
    """
    text = "\n".join(m.get("content", "") for m in messages)
    passage = _between(text, "<PASSAGE>", "</PASSAGE>")
    query = _between(text, "<QUERY>", "</QUERY>")
    relevance = min(0.999, max(0.001, lexical_relevance(query, passage)))
    token, probability = ("True", relevance) if relevance >= 0.5 else ("False", 1 - relevance)
    other = "False" if token == "True" else "True"

    def entry(tok: str, p: float) -> dict[str, Any]:
        return {"token": tok, "logprob": math.log(p), "bytes": list(tok.encode())}

    top = [entry(token, probability), entry(other, 1 - probability)]
    return token, {"content": [{**entry(token, probability), "top_logprobs": top}], "refusal": None}


def _between(text: str, start: str, end: str) -> str:
    a = text.find(start)
    b = text.find(end, a + len(start)) if a >= 0 else -1
    return text[a + len(start) : b].strip() if a >= 0 and b >= 0 else ""


def _embedding_inputs(raw: Any) -> list[str]:
    """``input`` may be a string, a list of strings, or token ids (one list or several)."""
    if isinstance(raw, str):
        return [raw]
    if not isinstance(raw, list) or not raw:
        return [""]
    if all(isinstance(x, int) for x in raw):
        return [" ".join(str(x) for x in raw)]
    out: list[str] = []
    for item in raw:
        if isinstance(item, str):
            out.append(item)
        elif isinstance(item, Iterable):
            out.append(" ".join(str(x) for x in item))
        else:
            out.append(str(item))
    return out
