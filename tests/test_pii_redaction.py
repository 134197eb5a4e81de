"""Optional PII redaction before text reaches the LLM (off by default)."""

import pytest

from service.memory.episodes import group_id
from service.memory.redaction import Redactor, build_redactor
from tests.support.builders import turn
from tests.support.graph_probe import GraphProbe
from tests.support.stack import StackFactory
from tests.support.waiting import eventually

PII = "Mail jane.doe@example.com or call +1 (415) 555-0100; card 4111 1111 1111 1111."


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("write to jane.doe@example.com today", "write to [EMAIL] today"),
        ("call +44 20 7946 0958 now", "call [PHONE] now"),
        ("call 415-555-0100", "call [PHONE]"),
        ("card 4111-1111-1111-1111 ok", "card [CARD] ok"),
        ("card 5500 0000 0000 0004", "card [CARD]"),
        # Not PII: a date, a short number, an order number failing the card checksum.
        ("on 2026-02-03 at 18:34", "on 2026-02-03 at 18:34"),
        ("room 42", "room 42"),
    ],
)
def test_builtin_patterns(text: str, expected: str) -> None:
    assert Redactor().redact(text) == expected


def test_extra_patterns_and_the_off_switch() -> None:
    redactor = build_redactor(True, [r"\bEMP-\d{6}\b"])

    assert redactor.redact("badge EMP-123456") == "badge [REDACTED]"
    assert build_redactor(False, [r"\bEMP-\d{6}\b"]).redact(PII) == PII


async def _episode_content(
    stack_factory: StackFactory, tenant: str, probe: GraphProbe, **env: str
) -> str:
    stack = await stack_factory(**env)
    await stack.client.ingest(turn(tenant, PII))
    await stack.close(tenant)
    await eventually(
        lambda: probe.episode_count(group_id(tenant, "user-1")), lambda n: n == 1, what="episode"
    )
    await eventually(
        lambda: stack.debug("user", tenantId=tenant, userId="user-1"),
        lambda r: r.json()["outbox"] == [],
        what="the flush to finish",
    )
    episodes = await probe.episodes(group_id(tenant, "user-1"))
    facts = await probe.facts(group_id(tenant, "user-1"))
    return str(episodes[0]["content"]) + "\n" + "\n".join(facts)


async def test_with_redaction_on_no_pii_reaches_the_model_or_the_graph(
    stack_factory: StackFactory, tenant: str, graph_probe: GraphProbe
) -> None:
    stored = await _episode_content(stack_factory, tenant, graph_probe, PII_REDACTION="on")

    assert "jane.doe@example.com" not in stored
    assert "555-0100" not in stored
    assert "4111" not in stored
    assert "[EMAIL]" in stored
    assert "[PHONE]" in stored
    assert "[CARD]" in stored


async def test_redaction_is_off_by_default(
    stack_factory: StackFactory, tenant: str, graph_probe: GraphProbe
) -> None:
    stored = await _episode_content(stack_factory, tenant, graph_probe)

    assert "jane.doe@example.com" in stored
