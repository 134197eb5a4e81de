"""/memory/query when the model endpoint is down, slow or rate limiting: a 503
`model_unavailable` with Retry-After within the query's own budget
(QUERY_EMBEDDING_TIMEOUT_SECONDS), never a 500 and never the janitor's minutes of retries."""

import httpx
import pytest

from tests.standin.server import StandinServer
from tests.support.api import ApiFactory, free_port

QUERY = {"tenantId": "t", "userId": "u", "query": "what does the user like?"}


async def _query(base_url: str) -> httpx.Response:
    # Far longer than the query's budget and far shorter than the model's own timeout (120 s)
    # with retries: a request still running at this point means the budget was not applied.
    async with httpx.AsyncClient(base_url=base_url, timeout=30) as http:
        return await http.post("/memory/query", json=QUERY)


async def test_an_unreachable_model_is_a_503_model_unavailable(
    api_factory: ApiFactory, llm_env: dict[str, str]
) -> None:
    api = api_factory(**{**llm_env, "OPENAI_BASE_URL": f"http://127.0.0.1:{free_port()}/v1"})

    response = await _query(api.base_url)

    assert response.status_code == 503
    assert response.json()["error"] == "model_unavailable"
    assert int(response.headers["Retry-After"]) >= 1


async def test_a_stalled_model_is_a_503_within_the_query_budget(
    api_factory: ApiFactory, llm_env: dict[str, str], standin_fresh: StandinServer
) -> None:
    api = api_factory(**llm_env, QUERY_EMBEDDING_TIMEOUT_SECONDS="1")
    standin_fresh.set_latency(60)

    response = await _query(api.base_url)

    assert response.status_code == 503
    assert response.json()["error"] == "model_unavailable"


@pytest.mark.parametrize("status", [429, 500])
async def test_a_rate_limiting_or_failing_model_is_a_503_with_its_retry_after(
    api_factory: ApiFactory, llm_env: dict[str, str], standin_fresh: StandinServer, status: int
) -> None:
    api = api_factory(**llm_env)
    standin_fresh.fail_forever(status, retry_after=7, paths="embeddings")

    response = await _query(api.base_url)

    assert response.status_code == 503
    assert response.json()["error"] == "model_unavailable"
    assert response.headers["Retry-After"] == ("7" if status == 429 else "5")


async def test_an_embeddings_endpoint_answering_the_wrong_shape_is_a_503(
    api_factory: ApiFactory, standin_fresh: StandinServer
) -> None:
    # The stand-in answers 256 numbers a vector; a deployment configured for 512 must not
    # store or search with short vectors, nor answer a 500.
    api = api_factory(
        EMBEDDING_BASE_URL=standin_fresh.base_url, EMBEDDING_DIM="512", LLM_PROVIDER="offline"
    )

    response = await _query(api.base_url)

    assert response.status_code == 503
    assert response.json()["error"] == "model_unavailable"
    assert "EmbeddingShapeError" in response.json()["message"]
