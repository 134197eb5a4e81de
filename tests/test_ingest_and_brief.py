"""POST /ingest then POST /brief against the real API and the real Redis."""

import asyncio

from contracts import SynapseClient
from tests.support.api import ApiFactory
from tests.support.builders import at, brief, turn

NOW = at("2026-02-03T18:35:00Z")


async def test_ingested_turns_come_back_as_working_memory(
    client: SynapseClient, tenant: str
) -> None:
    first = await client.ingest(
        turn(tenant, "Let's plan tomorrow", timestamp="2026-02-03T18:34:12Z")
    )
    await client.ingest(
        turn(tenant, "Got it. What time?", role="assistant", timestamp="2026-02-03T18:34:18Z")
    )

    seed = await client.brief(brief(tenant, now=NOW))

    assert first.status == "ingested"
    assert first.session_id == "session-1"
    assert first.graphiti_added is False
    assert [(t.role, t.text, t.timestamp) for t in seed.working_memory] == [
        ("user", "Let's plan tomorrow", "2026-02-03T18:34:12Z"),
        ("assistant", "Got it. What time?", "2026-02-03T18:34:18Z"),
    ]
    assert seed.metadata.buffer_size == 2
    assert seed.rolling_summary is None
    assert seed.metadata.has_rolling_summary is False
    assert seed.identity.name is None
    assert seed.identity.is_default is True
    assert seed.semantic_context == []
    assert seed.entities == []


async def test_retrying_the_same_turn_stores_it_once(client: SynapseClient, tenant: str) -> None:
    request = turn(tenant, "I need to book the dentist")
    answers = [await client.ingest(request) for _ in range(3)]
    # Same instant spelled with an offset instead of Z is the same turn.
    await client.ingest(
        turn(tenant, "I need to book the dentist", timestamp="2026-02-03T19:34:12+01:00")
    )

    seed = await client.brief(brief(tenant, now=NOW))

    assert all(answer.status == "ingested" for answer in answers)
    assert [t.text for t in seed.working_memory] == ["I need to book the dentist"]
    assert seed.metadata.buffer_size == 1


async def test_message_id_makes_a_retry_idempotent_even_if_text_differs(
    client: SynapseClient, tenant: str
) -> None:
    await client.ingest(turn(tenant, "first try", message_id="m-1"))
    await client.ingest(turn(tenant, "first try, resent with edits", message_id="m-1"))
    await client.ingest(turn(tenant, "first try", timestamp="2026-02-03T18:40:00Z"))

    seed = await client.brief(brief(tenant, now=NOW))

    assert [t.text for t in seed.working_memory] == ["first try", "first try"]
    assert seed.metadata.buffer_size == 2


async def test_concurrent_ingest_keeps_every_turn_and_no_duplicate(
    api_factory: ApiFactory, tenant: str
) -> None:
    api = api_factory(WORKING_MEMORY_TURNS="50")
    async with SynapseClient(api.base_url) as synapse:
        distinct = [
            turn(tenant, f"turn {n}", timestamp=f"2026-02-03T18:{n // 60:02d}:{n % 60:02d}Z")
            for n in range(40)
        ]
        duplicated = [turn(tenant, "the same turn", timestamp="2026-02-03T19:00:00Z")] * 10
        await asyncio.gather(*(synapse.ingest(r) for r in distinct + duplicated))

        seed = await synapse.brief(brief(tenant, now=NOW))

    texts = [t.text for t in seed.working_memory]
    assert seed.metadata.buffer_size == 41
    assert sorted(texts) == sorted([f"turn {n}" for n in range(40)] + ["the same turn"])


async def test_working_memory_is_the_last_configured_number_of_turns(
    api_factory: ApiFactory, tenant: str
) -> None:
    api = api_factory(WORKING_MEMORY_TURNS="2")
    async with SynapseClient(api.base_url) as synapse:
        for n in range(5):
            await synapse.ingest(turn(tenant, f"turn {n}", timestamp=f"2026-02-03T18:0{n}:00Z"))
        seed = await synapse.brief(brief(tenant, now=NOW))

    assert [t.text for t in seed.working_memory] == ["turn 3", "turn 4"]
    assert seed.metadata.buffer_size == 5


async def test_a_new_session_starts_from_the_users_most_recent_session(
    client: SynapseClient, tenant: str
) -> None:
    await client.ingest(
        turn(tenant, "old session", session="s-old", timestamp="2026-02-01T10:00:00Z")
    )
    await client.ingest(turn(tenant, "last time we spoke", session="s-prev"))
    await client.ingest(turn(tenant, "another user", user="someone-else", session="s-other"))

    seed = await client.brief(brief(tenant, session="s-new", now=NOW))
    no_session = await client.brief(brief(tenant, session=None, now=NOW))

    assert [t.text for t in seed.working_memory] == ["last time we spoke"]
    assert seed.metadata.buffer_size == 0
    assert [t.text for t in no_session.working_memory] == ["last time we spoke"]
    assert no_session.metadata.buffer_size == 1


async def test_a_user_never_seen_gets_an_empty_seed(client: SynapseClient, tenant: str) -> None:
    seed = await client.brief(brief(tenant, now=NOW))

    assert seed.working_memory == []
    assert seed.metadata.buffer_size == 0
    assert seed.temporal_authority.time_since_last_interaction is None


async def test_time_context_is_rendered_in_utc_by_default(
    client: SynapseClient, tenant: str
) -> None:
    await client.ingest(turn(tenant, "hello", timestamp="2026-02-03T18:25:00Z"))

    seed = await client.brief(brief(tenant, now=NOW))

    authority = seed.temporal_authority
    assert (authority.current_time, authority.current_day, authority.time_of_day) == (
        "06:35 PM",
        "Tuesday",
        "evening",
    )
    assert authority.time_since_last_interaction == "10 minutes ago"


async def test_timezone_renders_local_time_and_is_remembered(
    client: SynapseClient, tenant: str
) -> None:
    tokyo = await client.brief(brief(tenant, now=NOW, timezone="Asia/Tokyo"))
    later = await client.brief(brief(tenant, now=at("2026-02-03T23:10:00Z")))
    other_user = await client.brief(brief(tenant, user="user-2", now=NOW))

    # 18:35 UTC is 03:35 next morning in Tokyo (UTC+9).
    assert tokyo.temporal_authority.current_time == "03:35 AM"
    assert tokyo.temporal_authority.current_day == "Wednesday"
    assert tokyo.temporal_authority.time_of_day == "night"
    assert later.temporal_authority.current_time == "08:10 AM"
    assert later.temporal_authority.time_of_day == "morning"
    assert other_user.temporal_authority.current_time == "06:35 PM"


async def test_brief_without_now_uses_the_server_clock(client: SynapseClient, tenant: str) -> None:
    seed = await client.brief(brief(tenant))

    assert seed.temporal_authority.current_time.endswith(("AM", "PM"))
    assert seed.temporal_authority.time_of_day in {"morning", "afternoon", "evening", "night"}


async def test_time_since_last_interaction_spans_hours_and_days(
    client: SynapseClient, tenant: str
) -> None:
    await client.ingest(turn(tenant, "hello", timestamp="2026-02-01T16:35:00Z"))

    two_days = await client.brief(brief(tenant, now=NOW))
    one_hour = await client.brief(brief(tenant, now=at("2026-02-01T17:40:00Z")))
    earlier = await client.brief(brief(tenant, now=at("2026-02-01T16:00:00Z")))

    assert two_days.temporal_authority.time_since_last_interaction == "2 days ago"
    assert one_hour.temporal_authority.time_since_last_interaction == "1 hour ago"
    assert earlier.temporal_authority.time_since_last_interaction == "just now"


async def test_tenants_users_and_odd_ids_never_share_state(
    client: SynapseClient, tenant: str
) -> None:
    # Pairs that would collide under naive "tenant:user" concatenation.
    await client.ingest(turn(f"{tenant}:x", "from tenant-colon", user="y"))
    await client.ingest(turn(tenant, "from user-colon", user="x:y"))
    await client.ingest(turn(tenant, "unicode and spaces", user="Zoë Smith 🙂", session="s 1/2"))

    colon_tenant = await client.brief(brief(f"{tenant}:x", user="y", now=NOW))
    colon_user = await client.brief(brief(tenant, user="x:y", now=NOW))
    unicode_user = await client.brief(brief(tenant, user="Zoë Smith 🙂", session="s 1/2", now=NOW))
    other_tenant = await client.brief(brief(f"{tenant}-b", user="y", now=NOW))

    assert [t.text for t in colon_tenant.working_memory] == ["from tenant-colon"]
    assert [t.text for t in colon_user.working_memory] == ["from user-colon"]
    assert [t.text for t in unicode_user.working_memory] == ["unicode and spaces"]
    assert other_tenant.working_memory == []
