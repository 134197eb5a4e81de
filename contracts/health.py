"""Liveness and readiness: GET /health and GET /ready."""

from typing import Literal

from contracts._base import Outbound

LlmProvider = Literal["openai", "openai-compatible", "offline"]


class HealthResponse(Outbound):
    status: Literal["ok"]
    llm_provider: LlmProvider
    # True when memory extraction runs on the rule-based offline fallback (no real LLM).
    offline_fallback: bool
    # What extracts facts from transcripts, and what embeds facts, entities and queries.
    extractor: str = ""
    embedder: str = ""


class DependencyStatus(Outbound):
    ok: bool
    detail: str | None = None


class ReadyResponse(Outbound):
    # Serving: Redis is reachable (without it nothing works).
    ready: bool
    # Serving without the graph: Neo4j is unreachable, so /memory/query and /session/brief
    # answer 503 while turns keep being buffered and closed into the outbox.
    degraded: bool
    redis: DependencyStatus
    neo4j: DependencyStatus
    llm_provider: LlmProvider
    offline_fallback: bool
    warnings: list[str]
    extractor: str = ""
    embedder: str = ""
    # How /memory/query reads the graph (service/graph/vector_search.py, VectorSearch.mode):
    # "filtered" (Neo4j 2026.01+: one statement, vector indexes searched inside the user's
    # group), "index" (Neo4j 5.x, or indexes made before an upgrade: Graphiti's searches on
    # indexes of every user), "exact" (an index missing or populating: exact scans), or
    # "unknown" (the graph not reached yet).
    graph_search: str = "unknown"
    # The Redis deployment (REDIS_MODE): "standalone", "cluster" or "sentinel"; and how many
    # replicas every acknowledged write waits for (REDIS_WAIT_REPLICAS; 0: none).
    redis_mode: str = "standalone"
    redis_wait_replicas: int = 0
