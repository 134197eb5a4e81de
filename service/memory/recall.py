"""POST /memory/query and GET /session/brief: reads from the user's own Graphiti group."""

from datetime import UTC, datetime

from contracts import (
    ActiveLoop,
    CurrentVibe,
    Fact,
    MemoryEntity,
    MemoryQueryMetadata,
    MemoryQueryRequest,
    MemoryQueryResponse,
    NarrativeItem,
    SessionBriefResponse,
)
from service import clock
from service.graph import EpisodeDigest, GraphMemory
from service.memory.episodes import group_id
from service.store.layout import UserKeys
from service.store.sessions import SessionStore

NARRATIVE_EPISODES = 5
ACTIVE_LOOPS = 10
_SUMMARY_FACTS = 3
_SUMMARY_CHARS = 240


async def query_memory(
    graph: GraphMemory, request: MemoryQueryRequest, *, now: datetime
) -> MemoryQueryResponse:
    hits = await graph.search(
        group_id=group_id(request.tenant_id, request.user_id),
        query=request.query,
        limit=request.limit,
        reference_time=request.reference_time or now,
    )
    # Graph facts ("graphiti") and dated passages of the user's own turns ("episode"),
    # already merged within `limit` and ordered by relevance (service/graph/passages.py).
    facts = [
        Fact(text=f.text, relevance=round(f.relevance, 4), source=f.source) for f in hits.facts
    ]
    entities = [MemoryEntity(summary=e.summary, type=e.type, uuid=e.uuid) for e in hits.entities]
    return MemoryQueryResponse(
        facts=facts,
        entities=entities,
        metadata=MemoryQueryMetadata(query=request.query, facts=len(facts), entities=len(entities)),
    )


def _episode_summary(episode: EpisodeDigest) -> str:
    """What an episode was about: its first facts, else its first user line."""
    if episode.facts:
        text = "; ".join(episode.facts[:_SUMMARY_FACTS])
    else:
        lines = episode.content.splitlines()
        user_lines = [line.removeprefix("user: ") for line in lines if line.startswith("user: ")]
        text = (user_lines or lines or [""])[0]
    return text if len(text) <= _SUMMARY_CHARS else text[: _SUMMARY_CHARS - 1] + "…"


async def session_brief(
    graph: GraphMemory, store: SessionStore, *, tenant_id: str, user_id: str, now: datetime
) -> SessionBriefResponse:
    user = UserKeys(tenant_id, user_id)
    narrative = await graph.narrative(
        group_id=group_id(tenant_id, user_id), episodes=NARRATIVE_EPISODES, loops=ACTIVE_LOOPS
    )
    last_turn_ms = await store.last_turn_ms(user)
    if last_turn_ms is not None:
        last_spoke: datetime | None = datetime.fromtimestamp(last_turn_ms / 1000, tz=UTC)
    else:
        last_spoke = narrative.episodes[0].reference_time if narrative.episodes else None
    return SessionBriefResponse(
        time_gap_description=clock.since_last_spoke(last_spoke, now) if last_spoke else None,
        narrative_summary=[
            NarrativeItem(
                summary=_episode_summary(episode),
                reference_time=clock.iso_utc(episode.reference_time),
            )
            for episode in narrative.episodes
        ],
        active_loops=[
            ActiveLoop(description=loop.description, status=loop.status)
            for loop in narrative.open_loops
        ],
        current_vibe=CurrentVibe(
            mood=narrative.mood,
            energy_level=narrative.energy_level,
            location_type=narrative.location_type,
            vibe=narrative.vibe,
        ),
    )
