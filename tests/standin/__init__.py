"""OpenAI-compatible stand-in server for tests (see ``server.StandinServer``).

Content comes from ``service.graph.offline_llm``, so tests exercise the real ``openai`` SDK and
Graphiti's real clients over loopback HTTP with deterministic answers.
"""

from tests.standin.server import RequestRecord, StandinServer

__all__ = ["RequestRecord", "StandinServer"]
