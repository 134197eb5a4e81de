"""Pytest fixtures for the OpenAI stand-in and a Graphiti wired to it on the real Neo4j.

Register with ``pytest_plugins = ["tests.standin.plugin"]`` (or ``-p tests.standin.plugin``).

* ``standin`` (session): the running ``StandinServer``.
* ``standin_fresh``: the same server, reset (no latency, no failures, empty log) around a test.
* ``neo4j_uri`` (session): the session's real Neo4j (tests/support/services.py).
* ``make_graphiti``: async factory building a Graphiti on Neo4j whose LLM, embedder and
  reranker all talk to the stand-in; ``llm="responses"`` uses ``OpenAIClient``
  (``/v1/responses``), ``llm="chat"`` uses ``OpenAIGenericClient`` (``/v1/chat/completions``).
  Everything it builds is closed afterwards, and the groups it handed out are deleted.
* ``graphiti``: ``make_graphiti()`` with the defaults.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass
from typing import Any, Literal

import pytest

# Graphiti also disables telemetry when pytest is imported; say so explicitly anyway.
os.environ.setdefault("GRAPHITI_TELEMETRY_ENABLED", "false")

from graphiti_core import Graphiti
from graphiti_core.cross_encoder.openai_reranker_client import OpenAIRerankerClient
from graphiti_core.driver.neo4j_driver import Neo4jDriver
from graphiti_core.embedder.openai import OpenAIEmbedder, OpenAIEmbedderConfig
from graphiti_core.llm_client import LLMConfig, OpenAIClient
from graphiti_core.llm_client.openai_generic_client import OpenAIGenericClient

from tests.standin.server import StandinServer
from tests.support.services import BackingServices

STANDIN_EMBEDDING_DIM = 256  # the embedder must truncate to the dimension the server emits
LARGE_MODEL = "standin-large"
SMALL_MODEL = "standin-small"
RERANK_MODEL = "standin-rerank"


@pytest.fixture(scope="session")
def standin() -> Iterator[StandinServer]:
    with StandinServer(embedding_dim=STANDIN_EMBEDDING_DIM) as server:
        yield server


@pytest.fixture
def standin_fresh(standin: StandinServer) -> Iterator[StandinServer]:
    standin.reset()
    yield standin
    standin.reset()


@pytest.fixture(scope="session")
def neo4j_uri(backing_services: BackingServices) -> str:
    """The session's real Neo4j (started by tests/support/services.py)."""
    return backing_services.neo4j_uri


@dataclass
class GraphitiHandle:
    """A Graphiti wired to the stand-in, plus what the test needs to reach around it."""

    graphiti: Graphiti
    group_id: str
    llm_client: Any  # OpenAIClient or OpenAIGenericClient, for its token_tracker


MakeGraphiti = Callable[..., Awaitable[GraphitiHandle]]


@pytest.fixture
async def make_graphiti(standin: StandinServer, neo4j_uri: str) -> AsyncIterator[MakeGraphiti]:
    # Every resource is registered for closing the moment it exists, so a failure half-way
    # through building (say, the index build) still closes what was opened. Closed in
    # reverse: group data first, then the Neo4j driver, then the HTTP clients.
    closers: list[Callable[[], Awaitable[None]]] = []

    async def make(
        llm: Literal["responses", "chat"] = "responses",
        structured_output_mode: Literal["json_schema", "json_object"] = "json_schema",
    ) -> GraphitiHandle:
        config = LLMConfig(
            api_key="test", base_url=standin.base_url, model=LARGE_MODEL, small_model=SMALL_MODEL
        )
        llm_client: Any
        if llm == "responses":
            llm_client = OpenAIClient(config=config)
        else:
            llm_client = OpenAIGenericClient(
                config=config, structured_output_mode=structured_output_mode
            )
        closers.append(llm_client.client.close)
        embedder = OpenAIEmbedder(
            OpenAIEmbedderConfig(
                api_key="test", base_url=standin.base_url, embedding_dim=STANDIN_EMBEDDING_DIM
            )
        )
        closers.append(embedder.client.close)
        reranker = OpenAIRerankerClient(
            config=LLMConfig(api_key="test", base_url=standin.base_url, model=RERANK_MODEL)
        )
        closers.append(reranker.client.close)
        driver = Neo4jDriver(neo4j_uri, "neo4j", "", database="neo4j")
        closers.append(driver.close)
        group_id = f"standin_{uuid.uuid4().hex[:12]}"

        async def drop_group() -> None:
            await driver.execute_query(
                "MATCH (n) WHERE n.group_id = $group_id DETACH DELETE n", group_id=group_id
            )

        closers.append(drop_group)
        # Neo4jDriver schedules its own index build when a loop is running; let it finish
        # before ours so the two do not race on the same schema operations.
        init_task = getattr(driver, "_init_task", None)
        if init_task is not None:
            await init_task
        graphiti = Graphiti(
            graph_driver=driver, llm_client=llm_client, embedder=embedder, cross_encoder=reranker
        )
        await graphiti.build_indices_and_constraints()
        return GraphitiHandle(graphiti, group_id, llm_client)

    yield make

    errors: list[BaseException] = []
    for close in reversed(closers):
        try:
            await close()
        except Exception as exc:  # keep closing the rest; report the first failure
            errors.append(exc)
    if errors:
        raise errors[0]


@pytest.fixture
async def graphiti(make_graphiti: MakeGraphiti) -> GraphitiHandle:
    return await make_graphiti()
