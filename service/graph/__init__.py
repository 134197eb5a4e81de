"""Everything Graphiti: the only package that imports graphiti_core.

It builds the Graphiti client once per process for the configured LLM provider, and pins the
library's known problems in one place:
- all three clients (LLM, embedder, cross-encoder) are passed explicitly, or Graphiti builds
  OpenAI defaults that need an API key;
- indices are built with delete_existing=False (True uses db.indexes(), gone in Neo4j 5);
- episodes get deterministic uuids through a pre-saved episode node (issue #1646), and every
  episode write is fenced by its janitor's lease token (fencing.py);
- search uses deep copies of the RRF recipes (issue #1680), always one group, and filters
  facts by validity in Python (issue #1664; SearchFilters' date OR-groups collide, #488);
- search goes through vector_search.VectorSearch: a Neo4j vector index instead of Graphiti's
  linear cosine scan where that provably gives the same answer, and no embeddings shipped
  back with the hits;
- telemetry is switched off before graphiti_core is imported.
"""

import os

os.environ.setdefault("GRAPHITI_TELEMETRY_ENABLED", "false")

import asyncio
import logging
from collections.abc import Awaitable, Callable, Iterable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from types import SimpleNamespace
from typing import Any, Literal, TypeVar

from graphiti_core import Graphiti
from graphiti_core.cross_encoder.client import CrossEncoderClient
from graphiti_core.cross_encoder.openai_reranker_client import OpenAIRerankerClient
from graphiti_core.driver.neo4j_driver import Neo4jDriver
from graphiti_core.embedder.client import EmbedderClient
from graphiti_core.embedder.openai import OpenAIEmbedder, OpenAIEmbedderConfig
from graphiti_core.llm_client.client import LLMClient
from graphiti_core.llm_client.config import LLMConfig, ModelSize
from graphiti_core.llm_client.errors import RateLimitError
from graphiti_core.llm_client.openai_client import OpenAIClient
from graphiti_core.llm_client.openai_generic_client import OpenAIGenericClient
from graphiti_core.llm_client.token_tracker import TokenUsageTracker
from graphiti_core.nodes import EntityNode, EpisodeType
from graphiti_core.prompts.models import Message
from graphiti_core.search.search_config import SearchConfig
from graphiti_core.search.search_config_recipes import (
    EDGE_HYBRID_SEARCH_RRF,
    NODE_HYBRID_SEARCH_RRF,
)
from neo4j import AsyncGraphDatabase, AsyncManagedTransaction, unit_of_work
from neo4j.exceptions import Neo4jError
from openai import APIConnectionError, APIStatusError, AsyncOpenAI
from openai import RateLimitError as ModelRateLimitError
from openai.types import CompletionUsage
from pydantic import BaseModel, Field

from service.errors import DependencyUnavailable, ModelUnavailable
from service.graph import fencing, offline_llm, passages
from service.graph.embedders import EmbeddingShapeError, InputType, OpenAICompatibleEmbedder
from service.graph.fencing import (
    AlreadyProcessed,
    FencedNeo4jDriver,
    FencedWrite,
    check_fence,
    claim_episode,
    fenced,
    purge_tombstones,
)
from service.graph.fencing import StaleWriter as StaleWriter  # the flusher catches it
from service.graph.hybrid import HybridQuery
from service.graph.keywords import keywords
from service.graph.narrative import NARRATIVE_ENTITY_TYPES, NARRATIVE_EXTRACTION_INSTRUCTIONS
from service.graph.tracing import create_tracer
from service.graph.vector_search import VectorSearch, VectorSearchStats
from service.settings import Settings

logger = logging.getLogger(__name__)

T = TypeVar("T")

# --- usage metering ---------------------------------------------------------------------------


@dataclass(slots=True)
class Usage:
    """LLM calls and tokens spent inside one metered block (e.g. one episode)."""

    calls: int = 0
    input_tokens: int = 0
    output_tokens: int = 0


# Graphiti fans out with asyncio tasks, which copy the context: the Usage object they see is
# the one the metered block set, so concurrent episodes in one process never mix their counts.
_current_usage: ContextVar[Usage | None] = ContextVar("synapse_llm_usage", default=None)


@contextmanager
def metered() -> Iterator[Usage]:
    usage = Usage()
    token = _current_usage.set(usage)
    try:
        yield usage
    finally:
        _current_usage.reset(token)


class _AttributingTracker(TokenUsageTracker):
    """Graphiti's tracker, also charging the tokens to the current metered block."""

    def record(self, prompt_name: str | None, input_tokens: int, output_tokens: int) -> None:
        super().record(prompt_name, input_tokens, output_tokens)
        usage = _current_usage.get()
        if usage is not None:
            usage.input_tokens += input_tokens
            usage.output_tokens += output_tokens


def _estimate_tokens(text: str) -> int:
    return max(1, len(text) // 4)


class _CallCounting(LLMClient):
    """Counts every LLM call; mixed in ahead of a concrete client."""

    async def generate_response(self, *args: Any, **kwargs: Any) -> dict[str, Any]:
        result: dict[str, Any] = await super().generate_response(*args, **kwargs)
        usage = _current_usage.get()
        if usage is not None:
            usage.calls += 1
        return result


class MeteredOpenAIClient(_CallCounting, OpenAIClient):
    """OpenAI Responses API; token usage comes from the API via Graphiti's tracker."""


# The `usage` of the last chat completion answered in this task (MeteredGenericClient).
_completion_usage: ContextVar[CompletionUsage | None] = ContextVar(
    "synapse_completion_usage", default=None
)


class MeteredGenericClient(_CallCounting, OpenAIGenericClient):
    """OpenAI-compatible chat completions. Graphiti records no usage for it (#1266), so the
    SDK's completions are wrapped to keep each response's `usage`, and those are the tokens
    recorded; a server that sends no `usage` is estimated at four characters a token.

    In json_object mode (LLM_STRUCTURED_OUTPUT) the schema also goes in response_format's own
    `schema` key: llama.cpp's server rejects json_schema (with a 500) but enforces that key;
    servers that do not know it answer plain JSON guided by the schema in the prompt."""

    def __init__(
        self,
        config: LLMConfig,
        client: AsyncOpenAI,
        structured_output_mode: Literal["json_schema", "json_object"] = "json_schema",
    ) -> None:
        completions = client.chat.completions

        async def create(**request: Any) -> Any:
            response = await completions.create(**request)
            _completion_usage.set(getattr(response, "usage", None))
            return response

        # All that OpenAIGenericClient uses of the SDK: chat.completions.create.
        keeping_usage = SimpleNamespace(
            chat=SimpleNamespace(completions=SimpleNamespace(create=create))
        )
        super().__init__(
            config=config, client=keeping_usage, structured_output_mode=structured_output_mode
        )

    def _build_response_format(self, response_model: type[BaseModel] | None) -> dict[str, Any]:
        response_format = super()._build_response_format(response_model)
        if response_model is not None and response_format.get("type") == "json_object":
            response_format["schema"] = response_model.model_json_schema()
        return response_format

    async def _generate_response(
        self,
        messages: list[Message],
        response_model: type[BaseModel] | None = None,
        max_tokens: int = 16384,
        model_size: ModelSize = ModelSize.medium,
        *,
        model: str | None = None,
    ) -> dict[str, Any]:
        _completion_usage.set(None)
        result: dict[str, Any] | None = None
        try:
            result = await super()._generate_response(
                messages, response_model, max_tokens, model_size, model=model
            )
            return result
        finally:
            # An answer that failed to parse was still paid for: it is counted too.
            usage = _completion_usage.get()
            if usage is not None:
                self.token_tracker.record(None, usage.prompt_tokens, usage.completion_tokens)
            elif result is not None:
                prompt = sum(_estimate_tokens(m.content) for m in messages)
                self.token_tracker.record(None, prompt, _estimate_tokens(str(result)))


class OfflineLLMClient(_CallCounting, LLMClient):
    """Rule-based structured outputs with no network: a low-quality fallback, never a model.
    Token counts are what the same prompts would roughly cost on a real model."""

    async def _generate_response(
        self,
        messages: list[Message],
        response_model: type[BaseModel] | None = None,
        max_tokens: int = 0,
        model_size: ModelSize = ModelSize.medium,
        *,
        model: str | None = None,
    ) -> dict[str, Any]:
        chat = [{"role": message.role, "content": message.content} for message in messages]
        if response_model is None:
            result: dict[str, Any] = {"content": offline_llm.text_response(chat)}
        else:
            result = offline_llm.structured_response(
                response_model.__name__, chat, response_model.model_json_schema()
            )
        prompt = sum(_estimate_tokens(m.content) for m in messages)
        self.token_tracker.record(None, prompt, _estimate_tokens(str(result)))
        return result


class HashingEmbedder(EmbedderClient):
    """Feature-hashing embeddings: lexical similarity only, computed in-process."""

    def __init__(self, dim: int) -> None:
        self._dim = dim

    async def create(
        self, input_data: str | list[str] | Iterable[int] | Iterable[Iterable[int]]
    ) -> list[float]:
        text = input_data if isinstance(input_data, str) else " ".join(map(str, input_data))
        return offline_llm.hashing_embedding(text, self._dim)

    async def create_batch(self, input_data_list: list[str]) -> list[list[float]]:
        return [offline_llm.hashing_embedding(text, self._dim) for text in input_data_list]


class LexicalCrossEncoder(CrossEncoderClient):
    """Word-overlap ranking. Search uses RRF, so this only satisfies Graphiti's constructor
    without an API key; the service's own queries never ask it to rank."""

    async def rank(self, query: str, passages: list[str]) -> list[tuple[str, float]]:
        words = set(query.lower().split())
        scored = [
            (passage, len(words & set(passage.lower().split())) / (len(words) or 1))
            for passage in passages
        ]
        return sorted(scored, key=lambda pair: pair[1], reverse=True)


@dataclass(frozen=True, slots=True)
class Clients:
    llm: LLMClient
    embedder: EmbedderClient
    cross_encoder: CrossEncoderClient
    # /memory/query's own embedder: a short timeout and no retry (QUERY_EMBEDDING_TIMEOUT_SECONDS)
    # on the orchestrator's critical path, where the janitor's calls may take minutes.
    query_embedder: EmbedderClient
    # Every HTTP client built here; Graphiti never closes them, GraphMemory.close does.
    sdks: tuple[AsyncOpenAI, ...] = ()


def _embedding_sdks(settings: Settings, *, api_key: str, base_url: str | None) -> list[AsyncOpenAI]:
    """Two clients of one endpoint: for what is stored (the janitor's budget and retries) and
    for the query path (QUERY_EMBEDDING_TIMEOUT_SECONDS, no retry)."""
    return [
        AsyncOpenAI(api_key=api_key, base_url=base_url, timeout=timeout, max_retries=retries)
        for timeout, retries in (
            (float(settings.llm_timeout_seconds), settings.llm_max_retries),
            (settings.query_embedding_timeout_seconds, 0),
        )
    ]


def _embedders(
    settings: Settings, llm_key: str
) -> tuple[EmbedderClient, EmbedderClient, list[AsyncOpenAI]]:
    """The embedder for what is stored and the query path's own, and their HTTP clients."""
    if settings.embedding_base_url is not None:
        sdks = _embedding_sdks(
            settings,
            api_key=settings.embedding_api_key or "not-needed",
            base_url=settings.embedding_base_url,
        )
        kinds: tuple[InputType | None, InputType | None] = (
            ("passage", "query") if settings.embedding_input_type else (None, None)
        )
        stored, query = (
            OpenAICompatibleEmbedder(
                sdk, model=settings.embedding_model, dim=settings.embedding_dim, input_type=kind
            )
            for sdk, kind in zip(sdks, kinds, strict=True)
        )
        return stored, query, sdks
    if settings.llm_provider == "offline":
        hashing = HashingEmbedder(settings.embedding_dim)
        return hashing, hashing, []
    sdks = _embedding_sdks(settings, api_key=llm_key, base_url=settings.openai_base_url)
    openai_stored, openai_query = (
        OpenAIEmbedder(
            OpenAIEmbedderConfig(
                api_key=llm_key,
                base_url=settings.openai_base_url,
                embedding_model=settings.embedding_model,
                embedding_dim=settings.embedding_dim,
            ),
            client=sdk,
        )
        for sdk in sdks
    )
    return openai_stored, openai_query, sdks


def build_clients(settings: Settings) -> Clients:
    config = LLMConfig(
        api_key=settings.openai_api_key or "not-needed",
        base_url=settings.openai_base_url,
        model=settings.llm_model,
        small_model=settings.llm_small_model,
    )
    embedder, query_embedder, sdks = _embedders(settings, config.api_key or "not-needed")
    llm: LLMClient
    if settings.llm_provider == "offline":
        llm = OfflineLLMClient(config)
        cross_encoder: CrossEncoderClient = LexicalCrossEncoder()
    else:
        sdk = AsyncOpenAI(
            api_key=config.api_key,
            base_url=settings.openai_base_url,
            timeout=float(settings.llm_timeout_seconds),
            max_retries=settings.llm_max_retries,
        )
        sdks.append(sdk)
        if settings.llm_provider == "openai":
            llm = MeteredOpenAIClient(config=config, client=sdk)
        else:
            llm = MeteredGenericClient(
                config=config,
                client=sdk,
                structured_output_mode=settings.llm_structured_output,
            )
        cross_encoder = OpenAIRerankerClient(config=config, client=sdk)
    llm.token_tracker = _AttributingTracker()  # type: ignore[no-untyped-call]  # untyped upstream
    return Clients(llm, embedder, cross_encoder, query_embedder, tuple(sdks))


# --- results --------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class FactHit:
    text: str
    relevance: float
    # "graphiti": a fact of the graph; "episode": a dated passage of the user's own turns.
    source: Literal["graphiti", "episode"] = "graphiti"


@dataclass(frozen=True, slots=True)
class EntityHit:
    name: str
    summary: str
    type: str
    uuid: str


@dataclass(frozen=True, slots=True)
class SearchHits:
    facts: list[FactHit]
    entities: list[EntityHit]


@dataclass(frozen=True, slots=True)
class EpisodeDigest:
    reference_time: datetime
    facts: list[str]
    content: str


@dataclass(frozen=True, slots=True)
class OpenLoop:
    description: str
    status: str


@dataclass(frozen=True, slots=True)
class Narrative:
    episodes: list[EpisodeDigest]
    open_loops: list[OpenLoop]
    mood: str | None = None
    energy_level: str | None = None
    location_type: str | None = None
    vibe: str | None = None


@dataclass(frozen=True, slots=True)
class EpisodeOutcome:
    uuid: str
    skipped: bool
    usage: Usage = field(default_factory=Usage)


class RollingSummary(BaseModel):
    """A running summary of a user's conversations, and the user's own name if they gave it."""

    summary: str = Field(description="What the user and assistant discussed, most recent last.")
    user_name: str | None = Field(
        default=None, description="The user's own name, only if the user stated it."
    )


class LlmRateLimited(Exception):
    """The LLM said to slow down; `retry_after_seconds` is its Retry-After, when it sent one."""

    def __init__(self, retry_after_seconds: float | None) -> None:
        super().__init__("LLM rate limited")
        self.retry_after_seconds = retry_after_seconds


def _retry_after(exc: BaseException) -> float | None:
    """The Retry-After an OpenAI-compatible server sent, dug out of Graphiti's wrapping."""
    cause: BaseException | None = exc
    while cause is not None:
        if isinstance(cause, APIStatusError):
            value = cause.response.headers.get("retry-after")
            try:
                return float(value) if value is not None else None
            except ValueError:
                return None
        cause = cause.__cause__
    return None


def _valid_at(
    moment: datetime,
    valid_at: datetime | None,
    invalid_at: datetime | None,
    expired_at: datetime | None,
) -> bool:
    """Had begun (valid_at unset or not after `moment`) and not ended: neither invalid_at nor
    expired_at is at or before it. The same test as Graphiti's SearchFilters on the three
    dates, and as service/graph/hybrid.py's WHERE."""
    if valid_at is not None and valid_at > moment:
        return False
    return all(end is None or end > moment for end in (invalid_at, expired_at))


def _merged(
    ranked: list[passages.RankedFact], quotes: list[passages.Passage], limit: int
) -> list[FactHit]:
    return [
        FactHit(
            text=item.text,
            relevance=item.relevance,
            source="graphiti" if isinstance(item, passages.RankedFact) else "episode",
        )
        for item in passages.merge(ranked, quotes, limit)
    ]


def _entity_hit(node: EntityNode) -> EntityHit:
    return EntityHit(
        name=node.name,
        summary=node.summary or node.name,
        type=_entity_type(node.labels),
        uuid=node.uuid,
    )


def _entity_type(labels: list[str]) -> str:
    """The most specific label, snake_case lower (`Entity`, `MentalState` -> `mental_state`)."""
    specific = [label for label in labels if label != "Entity"]
    label = sorted(specific)[0] if specific else "Entity"
    return "".join(f"_{c.lower()}" if c.isupper() and i else c.lower() for i, c in enumerate(label))


def _as_datetime(value: Any) -> datetime | None:
    if value is None:
        return None
    native = value.to_native() if hasattr(value, "to_native") else value
    if isinstance(native, datetime):
        return native if native.tzinfo else native.replace(tzinfo=UTC)
    return None


# How long one Neo4j query may keep retrying while the database is unreachable, and how long a
# connection attempt may take. Beyond that the API answers 503 and the janitor backs off.
NEO4J_RETRY_SECONDS = 3.0
NEO4J_CONNECT_SECONDS = 3.0

# Each configured search method contributes at most 1/rank to an RRF score, so the best
# possible score is the number of methods; relevance divides by it to land in [0, 1].
_RRF_METHODS = 2
# Facts are over-fetched this many times, so that filtering out facts not valid at the
# reference time still leaves `limit` of them.
_OVERFETCH = 3


class GraphMemory:
    """Owns the Graphiti client and its Neo4j driver for the life of a process."""

    def __init__(
        self,
        graphiti: Graphiti,
        driver: Neo4jDriver,
        clients: Clients,
        vectors: VectorSearch,
        *,
        tombstone_ms: int,
        query_timeout_seconds: float,
        query_passages: bool = True,
    ) -> None:
        self._graphiti = graphiti
        self._query_passages = query_passages
        self._tombstone_ms = tombstone_ms
        self._query_timeout_seconds = query_timeout_seconds
        self._driver = driver
        self._clients = clients
        self._llm = clients.llm
        self._vectors = vectors
        self._hybrid = HybridQuery(driver, vectors)
        self._prepared = False

    @classmethod
    async def create(cls, settings: Settings) -> "GraphMemory":
        driver = FencedNeo4jDriver(
            settings.neo4j_uri, settings.neo4j_user, settings.neo4j_password, database="neo4j"
        )
        # The driver starts an unawaited index build when a loop is running; with Neo4j down it
        # retries for half a minute and blocks shutdown. Indices are built by prepare() instead.
        if driver._init_task is not None:
            driver._init_task.cancel()
            driver._init_task = None
        # Graphiti builds its Neo4j client with the defaults: a query retries for 30 s while
        # Neo4j is down, so /memory/query would hang instead of answering 503. Same client,
        # bounded budgets.
        await driver.client.close()
        driver.client = AsyncGraphDatabase.driver(
            settings.neo4j_uri,
            auth=(settings.neo4j_user, settings.neo4j_password),
            max_transaction_retry_time=NEO4J_RETRY_SECONDS,
            connection_timeout=NEO4J_CONNECT_SECONDS,
            connection_acquisition_timeout=NEO4J_CONNECT_SECONDS * 2,
        )
        # After the client swap: the interface's view of the driver shares the final client.
        vectors = VectorSearch.install(driver, dimensions=settings.embedding_dim)
        clients = build_clients(settings)
        graphiti = Graphiti(
            graph_driver=driver,
            llm_client=clients.llm,
            embedder=clients.embedder,
            cross_encoder=clients.cross_encoder,
            # Optional OpenTelemetry spans (service/graph/tracing.py). Graphiti wraps the raw
            # OpenTelemetry tracer itself; its annotation names its own wrapper type.
            tracer=create_tracer(os.environ, default_service_name="synapse"),  # type: ignore[arg-type]
        )
        return cls(
            graphiti,
            driver,
            clients,
            vectors,
            tombstone_ms=settings.deletion_tombstone_seconds * 1000,
            query_timeout_seconds=settings.query_embedding_timeout_seconds,
            query_passages=settings.query_passages,
        )

    async def prepare(self) -> None:
        """Create Graphiti's indices and the vector indexes if missing. Idempotent; never
        deletes or replaces existing ones."""
        await self._graphiti.build_indices_and_constraints(delete_existing=False)
        for statement in fencing.SCHEMA:
            await self._driver.execute_query(statement)
        await self._vectors.ensure_indexes()
        self._prepared = True

    @property
    def vector_search_stats(self) -> VectorSearchStats:
        """How this process's similarity searches were answered (index, exact scan, library)."""
        return self._vectors.stats

    async def reachable(self, within_seconds: float) -> bool:
        """One quick connection attempt; unlike queries, it does not retry for half a minute."""
        try:
            await asyncio.wait_for(self._driver.client.verify_connectivity(), within_seconds)
        except Exception:  # refused, timed out, auth: all mean "not usable now"
            return False
        return True

    async def _ensure_prepared(self) -> None:
        if not self._prepared:
            await self.prepare()

    def search_mode(self) -> str:
        """How /memory/query reads the graph now (contracts.health.ReadyResponse)."""
        return self._vectors.mode() if self._prepared else "unknown"

    def search_warning(self) -> str | None:
        """What an operator should act on about the search path, if anything."""
        if self._prepared and self._vectors.filtering and self._vectors.mode() == "index":
            return (
                "the vector indexes predate filtered vector search (made before an upgrade "
                "from Neo4j 5): drop and rebuild them for the faster path (deploy/README.md)"
            )
        return None

    async def ping(self) -> None:
        await self._driver.execute_query("RETURN 1")

    async def close(self) -> None:
        await self._vectors.close()
        await self._graphiti.close()  # type: ignore[no-untyped-call]  # untyped upstream
        for sdk in self._clients.sdks:
            await sdk.close()

    # --- writing ----------------------------------------------------------------------------

    async def _write(self, work: Callable[[AsyncManagedTransaction], Awaitable[T]]) -> T:
        """One fenced write transaction, with the fenced writes' server-side time limit.

        A transaction that waited on the group's lock past that limit (a writer stalled inside
        its own transaction held it) is ended by the server; by then the stalled one has been
        ended too, so it is tried once more before the answer is "busy" (a 503)."""
        limited = unit_of_work(timeout=fencing.WRITE_TIMEOUT_SECONDS)(work)
        for attempt in (1, 2):
            try:
                async with self._driver.client.session(database=self._driver._database) as session:
                    result: T = await session.execute_write(limited)
                    return result
            except Neo4jError as exc:
                if exc.code not in fencing.TIMED_OUT_CODES:
                    raise
                if attempt == 2:
                    raise DependencyUnavailable(
                        "the graph database is busy with this user; retry shortly"
                    ) from exc
        raise AssertionError("unreachable")

    async def add_transcript_episode(
        self,
        *,
        uuid: str,
        group_id: str,
        name: str,
        body: str,
        reference_time: datetime,
        source_description: str,
        previous_episode_uuids: list[str],
        fence: int,
        still_held: Callable[[], bool],
    ) -> EpisodeOutcome:
        """Add one episode exactly once under `uuid`, however often this is retried and
        whichever janitor tries, as long as it holds the user's lease (`fence` is its token).

        The bare node is claimed first (saved under `uuid` if absent), then Graphiti extracts
        and writes everything in one transaction that is fenced (service/graph/fencing.py): a
        crash before it leaves only the bare node and a retry processes it; an episode already
        processed, with or without entities, is never processed again; a writer whose lease
        was taken over raises StaleWriter and writes nothing.
        """
        await self._ensure_prepared()
        write = FencedWrite(
            group_id=group_id,
            episode_uuid=uuid,
            fence=fence,
            still_held=still_held,
            max_age_ms=self._tombstone_ms,
        )
        created_at = datetime.now(UTC)

        async def claim(tx: AsyncManagedTransaction) -> str:
            return await claim_episode(
                tx,
                write,
                name=name,
                body=body,
                source_description=source_description,
                reference_time=reference_time,
                created_at=created_at,
            )

        if await self._write(claim) == "processed":
            return EpisodeOutcome(uuid=uuid, skipped=True)
        # The turns' embeddings are computed before the extraction's transaction and written in
        # it (service/graph/passages.py), so no lock is held while the embedder answers.
        try:
            rows = await passages.embed_passages(self._clients.embedder, uuid, body)
        except ModelRateLimitError as exc:
            raise LlmRateLimited(_retry_after(exc)) from exc
        write = replace(write, also=rows.write)
        with metered() as usage, fenced(write):
            try:
                await self._graphiti.add_episode(
                    name=name,
                    episode_body=body,
                    source_description=source_description,
                    reference_time=reference_time,
                    source=EpisodeType.message,
                    group_id=group_id,
                    uuid=uuid,
                    entity_types=NARRATIVE_ENTITY_TYPES,
                    previous_episode_uuids=previous_episode_uuids,
                    custom_extraction_instructions=NARRATIVE_EXTRACTION_INSTRUCTIONS,
                )
            except AlreadyProcessed:
                # Another holder of a valid lease wrote it first; its cost is its own.
                return EpisodeOutcome(uuid=uuid, skipped=True)
            except RateLimitError as exc:
                raise LlmRateLimited(_retry_after(exc)) from exc
        return EpisodeOutcome(uuid=uuid, skipped=False, usage=usage)

    async def count_episodes(self, group_id: str) -> int:
        result = await self._driver.execute_query(
            "MATCH (e:Episodic {group_id: $group}) RETURN count(e) AS episodes",
            params={"group": group_id},
            routing_="r",
        )
        count: int = result.records[0]["episodes"]
        return count

    async def summarize(
        self, previous: str | None, lines: list[str], max_chars: int
    ) -> RollingSummary:
        """Fold new transcript lines into the running summary (the small model)."""
        prompt = (
            f"<PREVIOUS SUMMARY>\n{previous or ''}\n</PREVIOUS SUMMARY>\n"
            "<NEW LINES>\n" + "\n".join(lines) + "\n</NEW LINES>\n"
            f"Fold the new lines into the summary, in at most {max_chars} characters. "
            "Set user_name only if the user stated their own name."
        )
        messages = [
            Message(role="system", content="You keep a concise running summary of a conversation."),
            Message(role="user", content=prompt),
        ]
        try:
            raw = await self._llm.generate_response(
                messages, response_model=RollingSummary, model_size=ModelSize.small
            )
        except RateLimitError as exc:
            raise LlmRateLimited(_retry_after(exc)) from exc
        result = RollingSummary.model_validate(raw)
        return RollingSummary(summary=result.summary[:max_chars], user_name=result.user_name)

    # --- reading ----------------------------------------------------------------------------

    async def search(
        self, *, group_id: str, query: str, limit: int, reference_time: datetime
    ) -> SearchHits:
        await self._ensure_prepared()
        vector = await self._embed_query(query)
        words = keywords(query)
        # Neo4j 2026.01+ with filtered indexes: one statement (service/graph/hybrid.py).
        answer = await self._hybrid.search(
            group_id=group_id,
            query=words,
            vector=vector,
            limit=limit,
            reference_time=reference_time,
            with_passages=self._query_passages,
        )
        if answer is not None:
            ranked = [
                passages.RankedFact(
                    text=edge.fact,
                    relevance=min(1.0, score / _RRF_METHODS),
                    episodes=tuple(edge.episodes),
                )
                for edge, score in answer.facts
            ]
            return SearchHits(
                facts=_merged(ranked, answer.passages, limit),
                entities=[_entity_hit(node) for node, _ in answer.entities],
            )
        return await self._search_per_method(
            group_id=group_id,
            query=words,
            vector=vector,
            limit=limit,
            reference_time=reference_time,
        )

    async def _search_per_method(
        self,
        *,
        group_id: str,
        query: str,
        vector: list[float],
        limit: int,
        reference_time: datetime,
    ) -> SearchHits:
        """Neo4j 5.x (or indexes without group filters): Graphiti's own search_, four round
        trips, over-fetching facts 3x to filter them by validity afterwards."""
        edge_config = EDGE_HYBRID_SEARCH_RRF.edge_config
        node_config = NODE_HYBRID_SEARCH_RRF.node_config
        config = SearchConfig(
            edge_config=edge_config.model_copy(deep=True) if edge_config else None,
            node_config=node_config.model_copy(deep=True) if node_config else None,
            limit=limit * _OVERFETCH,
        )
        facts_search = self._graphiti.search_(
            query, config=config, group_ids=[group_id], query_vector=vector
        )
        quotes: list[passages.Passage] = []
        if self._query_passages:
            # The episodes' own words (service/graph/passages.py) are searched alongside.
            results, quotes = await asyncio.gather(
                facts_search,
                passages.search(
                    self._driver,
                    self._vectors,
                    group_id=group_id,
                    query=query,
                    vector=vector,
                    limit=limit,
                    reference_time=reference_time,
                ),
            )
        else:
            results = await facts_search
        ranked = [
            passages.RankedFact(
                text=edge.fact,
                relevance=min(1.0, score / _RRF_METHODS),
                episodes=tuple(edge.episodes),
            )
            for edge, score in zip(results.edges, results.edge_reranker_scores, strict=False)
            if _valid_at(reference_time, edge.valid_at, edge.invalid_at, edge.expired_at)
        ][:limit]
        return SearchHits(
            facts=_merged(ranked, quotes, limit),
            entities=[_entity_hit(node) for node in results.nodes][:limit],
        )

    async def _embed_query(self, query: str) -> list[float]:
        """The query's embedding, as Graphiti's search would compute it, within the query
        path's own budget. A model that is down, slow or rate limiting is a ModelUnavailable
        (503 with Retry-After), never a 500 and never minutes on the orchestrator's path."""
        embedder = self._clients.query_embedder
        text = query.replace("\n", " ")
        try:
            # The SDK's timeout bounds each phase of the request; this bounds the whole call.
            return await asyncio.wait_for(
                embedder.create(input_data=[text]), self._query_timeout_seconds + 1
            )
        except ModelRateLimitError as exc:
            wait = _retry_after(exc)
            raise ModelUnavailable(
                "the model endpoint is rate limiting queries",
                retry_after_seconds=max(1, int(wait)) if wait is not None else 5,
            ) from exc
        except (APIConnectionError, APIStatusError, TimeoutError, EmbeddingShapeError) as exc:
            logger.warning("query embedding failed: %s", type(exc).__name__)
            raise ModelUnavailable(
                f"the model endpoint did not answer the query's embedding ({type(exc).__name__})",
                retry_after_seconds=5,
            ) from exc

    async def narrative(self, *, group_id: str, episodes: int, loops: int) -> Narrative:
        latest = await self._driver.execute_query(
            "MATCH (e:Episodic {group_id: $group}) "
            "WITH e ORDER BY e.valid_at DESC, e.created_at DESC LIMIT $episodes "
            "CALL (e) { "
            "  UNWIND coalesce(e.entity_edges, []) AS edge_uuid "
            "  MATCH ()-[r:RELATES_TO {uuid: edge_uuid}]->() "
            "  RETURN collect(r.fact) AS facts "
            "} "
            "RETURN e.valid_at AS at, e.content AS content, facts "
            "ORDER BY at DESC",
            params={"group": group_id, "episodes": episodes},
            routing_="r",
        )
        tensions = await self._driver.execute_query(
            "MATCH (e:Episodic {group_id: $group})-[:MENTIONS]->(n:Entity:Tension) "
            "WITH n, max(e.valid_at) AS seen "
            "WHERE coalesce(toLower(n.status), 'unresolved') <> 'resolved' "
            "RETURN coalesce(n.description, n.name) AS description, "
            "coalesce(n.status, 'unresolved') AS status "
            "ORDER BY seen DESC LIMIT $loops",
            params={"group": group_id, "loops": loops},
            routing_="r",
        )
        mind = await self._latest_mentioned(group_id, "MentalState", "mood", "energy_level")
        place = await self._latest_mentioned(group_id, "Environment", "location_type", "vibe")
        return Narrative(
            episodes=[
                EpisodeDigest(
                    reference_time=_as_datetime(row["at"]) or datetime.now(UTC),
                    facts=list(row["facts"]),
                    content=row["content"] or "",
                )
                for row in latest.records
            ],
            open_loops=[OpenLoop(row["description"], row["status"]) for row in tensions.records],
            mood=mind[0] if mind else None,
            energy_level=mind[1] if mind else None,
            location_type=place[0] if place else None,
            vibe=place[1] if place else None,
        )

    async def _latest_mentioned(
        self, group_id: str, label: Literal["MentalState", "Environment"], first: str, second: str
    ) -> tuple[str | None, str | None] | None:
        # Labels cannot be query parameters; `label` is one of two constants, never input.
        result = await self._driver.execute_query(
            f"MATCH (e:Episodic {{group_id: $group}})-[:MENTIONS]->(n:Entity:{label}) "
            f"RETURN coalesce(n.{first}, n.name) AS first, n.{second} AS second "
            "ORDER BY e.valid_at DESC, e.created_at DESC LIMIT 1",
            params={"group": group_id},
            routing_="r",
        )
        if not result.records:
            return None
        row = result.records[0]
        return row["first"], row["second"]

    # --- data rights ------------------------------------------------------------------------

    async def export_group(self, group_id: str) -> "GroupExport":
        episodes = await self._driver.execute_query(
            "MATCH (e:Episodic {group_id: $group}) "
            "RETURN e.uuid AS uuid, e.name AS name, e.content AS content, e.valid_at AS at "
            "ORDER BY e.valid_at",
            params={"group": group_id},
            routing_="r",
        )
        entities = await self._driver.execute_query(
            "MATCH (n:Entity {group_id: $group}) "
            "RETURN n.uuid AS uuid, n.name AS name, labels(n) AS labels, n.summary AS summary "
            "ORDER BY n.name",
            params={"group": group_id},
            routing_="r",
        )
        facts = await self._driver.execute_query(
            "MATCH (:Entity)-[r:RELATES_TO {group_id: $group}]->(:Entity) "
            "RETURN r.uuid AS uuid, r.fact AS fact, r.valid_at AS valid_at, "
            "r.invalid_at AS invalid_at ORDER BY r.created_at",
            params={"group": group_id},
            routing_="r",
        )
        return GroupExport(
            episodes=[
                ExportedEpisode(
                    uuid=row["uuid"],
                    name=row["name"] or "",
                    content=row["content"] or "",
                    reference_time=_as_datetime(row["at"]),
                )
                for row in episodes.records
            ],
            entities=[
                EntityHit(
                    name=row["name"] or "",
                    summary=row["summary"] or "",
                    type=_entity_type(list(row["labels"])),
                    uuid=row["uuid"],
                )
                for row in entities.records
            ],
            facts=[
                ExportedFact(
                    uuid=row["uuid"],
                    fact=row["fact"] or "",
                    valid_at=_as_datetime(row["valid_at"]),
                    invalid_at=_as_datetime(row["invalid_at"]),
                )
                for row in facts.records
            ],
        )

    async def fence_out(self, group_id: str, *, fence: int) -> None:
        """Record a deletion of the group under lease token `fence`: from now on no writer
        holding an older token can write to it (service/graph/fencing.py)."""
        await self._ensure_prepared()
        write = FencedWrite(
            group_id=group_id,
            episode_uuid="",
            fence=fence,
            still_held=lambda: True,
            max_age_ms=self._tombstone_ms,
        )

        async def mark(tx: AsyncManagedTransaction) -> None:
            await check_fence(tx, write, deleting=True)

        await self._write(mark)

    async def delete_group(self, group_id: str) -> int:
        """Delete every node of the group and its relationships, in bounded batches so a large
        group never needs one huge transaction. Returns how many nodes were deleted. The
        group's SynapseGroup node stays behind as the deletion's tombstone (fence_out)."""
        deleted = 0
        for label in ("Episodic", "Entity", "Community", "Saga", "SynapsePassage"):
            while True:
                # Labels cannot be parameters; these are constants, never input.
                result = await self._driver.execute_query(
                    f"MATCH (n:{label} {{group_id: $group}}) WITH n LIMIT $batch "
                    "DETACH DELETE n RETURN count(*) AS removed",
                    params={"group": group_id, "batch": _DELETE_BATCH},
                )
                removed = int(result.records[0]["removed"])
                deleted += removed
                if removed < _DELETE_BATCH:
                    break
        return deleted

    async def purge_tombstones(self) -> int:
        """Forget deletions older than the tombstone retention (tokens that old are refused
        by age anyway). Returns how many were purged."""
        return await purge_tombstones(self._driver, retention_ms=self._tombstone_ms)


_DELETE_BATCH = 1000


@dataclass(frozen=True, slots=True)
class ExportedEpisode:
    uuid: str
    name: str
    content: str
    reference_time: datetime | None


@dataclass(frozen=True, slots=True)
class ExportedFact:
    uuid: str
    fact: str
    valid_at: datetime | None
    invalid_at: datetime | None


@dataclass(frozen=True, slots=True)
class GroupExport:
    episodes: list[ExportedEpisode]
    entities: list[EntityHit]
    facts: list[ExportedFact]
