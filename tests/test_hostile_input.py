"""Hostile input: a property-based run over the OpenAPI document, and injection-shaped ids.

schemathesis generates requests from /schema/openapi.json (valid and invalid ones) against the
real API on the real Redis and Neo4j; every response must be documented, match its schema, and
never be a 5xx.
"""

from collections.abc import Iterator

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis.checks import positive_data_acceptance
from schemathesis.generation import GenerationMode

from contracts import MemoryQueryRequest
from service.memory.episodes import group_id
from tests.support.api import RunningApi, base_env
from tests.support.builders import turn
from tests.support.graph_probe import GraphProbe
from tests.support.services import BackingServices
from tests.support.stack import StackFactory
from tests.support.waiting import eventually


@pytest.fixture(scope="module")
def fuzzed_api(backing_services: BackingServices) -> Iterator[RunningApi]:
    api = RunningApi(base_env(backing_services.redis_url, backing_services.neo4j_uri)).start()
    yield api
    api.stop()


@pytest.mark.parametrize("mode", [GenerationMode.POSITIVE, GenerationMode.NEGATIVE])
def test_no_request_the_schema_allows_or_forbids_gets_a_5xx_or_an_undocumented_answer(
    fuzzed_api: RunningApi, mode: GenerationMode
) -> None:
    # The document declares no servers: requests go to where it was loaded from.
    schema = schemathesis.openapi.from_url(f"{fuzzed_api.base_url}/schema/openapi.json")
    operations = [result.ok() for result in schema.get_all_operations()]
    assert {op.path for op in operations} >= {"/ingest", "/brief", "/memory/query"}
    unsatisfiable: list[str] = []
    for operation in operations:

        @given(case=operation.as_strategy(generation_mode=mode))
        @settings(
            max_examples=25,
            deadline=None,
            database=None,
            suppress_health_check=list(HealthCheck),
        )
        def check(case: schemathesis.Case) -> None:
            # Schema-valid bodies may still break rules JSON Schema cannot state (messages in
            # time order, a real IANA zone): those are documented 422s, not acceptance bugs.
            case.call_and_validate(excluded_checks=[positive_data_acceptance])

        try:
            check()
        except Unsatisfiable:
            unsatisfiable.append(f"{operation.method.upper()} {operation.path}")
    # Only operations with nothing to break (no parameters, no body) may have no negative case.
    assert set(unsatisfiable) <= _NOTHING_TO_BREAK[mode], unsatisfiable


_NOTHING_TO_BREAK = {
    GenerationMode.POSITIVE: set(),
    GenerationMode.NEGATIVE: {"GET /health", "GET /ready"},
}

INJECTIONS = [
    "x' OR 1=1 //",
    "}) MATCH (n) DETACH DELETE n //",
    "$group_id",
    "`Entity`:Tension",
]


@pytest.mark.parametrize("shape", INJECTIONS)
async def test_injection_shaped_ids_and_text_are_plain_data(
    stack_factory: StackFactory, tenant: str, graph_probe: GraphProbe, shape: str
) -> None:
    stack = await stack_factory()
    bystander = f"{tenant}-bystander"
    await stack.client.ingest(turn(bystander, "I need to water the plants"))
    await stack.close(bystander)
    user, session = f"{shape} user", f"{shape} session"
    await stack.client.ingest(turn(tenant, f"I need to test {shape}", user=user, session=session))
    await stack.close(tenant, user, session)
    for who, whom in ((tenant, user), (bystander, "user-1")):
        await eventually(
            lambda t=who, u=whom: graph_probe.processed_episode_count(group_id(t, u)),
            lambda n: n == 1,
            what="episode",
        )

    answer = await stack.client.memory_query(
        MemoryQueryRequest(tenant_id=tenant, user_id=user, query=shape)
    )
    episodes = await graph_probe.episodes(group_id(tenant, user))
    async with httpx.AsyncClient(base_url=stack.api.base_url) as http:
        export = await http.get("/users/export", params={"tenantId": tenant, "userId": user})

    assert episodes[0]["content"] == f"user: I need to test {shape}"
    assert answer.metadata.query == shape
    assert export.json()["userId"] == user
    # The bystander's graph is intact.
    assert await graph_probe.processed_episode_count(group_id(bystander, "user-1")) == 1
