"""graphiti-core as a user of the library would set it up for search: its own Graphiti client
on its own Neo4j driver, none of Synapse's search code. The hashing embedder stands in for the
model so the query's embedding is the one Synapse computes; the LLM and cross-encoder clients
are never called by the RRF recipes and only need placeholder keys to be built."""

from graphiti_core import Graphiti
from graphiti_core.cross_encoder.openai_reranker_client import OpenAIRerankerClient
from graphiti_core.llm_client.config import LLMConfig
from graphiti_core.llm_client.openai_client import OpenAIClient

from service.graph import HashingEmbedder


async def plain_graphiti(uri: str, dimensions: int) -> Graphiti:
    unused = LLMConfig(api_key="unused-by-search")
    graphiti = Graphiti(
        uri,
        "neo4j",
        "",
        llm_client=OpenAIClient(config=unused),
        embedder=HashingEmbedder(dimensions),
        cross_encoder=OpenAIRerankerClient(config=unused),
    )
    # Built in a running loop, the driver schedules its index creation as a task; closing it
    # half-way leaves coroutines never awaited. Let it finish (the indexes exist: it is quick).
    init = graphiti.driver._init_task  # type: ignore[attr-defined]
    if init is not None:
        await init
    return graphiti
