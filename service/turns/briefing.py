"""POST /brief: a cheap start-of-session seed built from Redis alone (never the LLM)."""

from datetime import datetime

from contracts import (
    BriefMetadata,
    BriefRequest,
    BriefResponse,
    Identity,
    TemporalAuthority,
    Turn,
)
from service import clock
from service.store.layout import UserKeys
from service.store.sessions import SessionStore


async def build_brief(
    store: SessionStore, request: BriefRequest, *, working_memory_turns: int, now: datetime
) -> BriefResponse:
    # Validate the zone before anything is written or read: a bad zone changes nothing.
    zone = clock.resolve_zone(request.timezone) if request.timezone is not None else None
    user = UserKeys(request.tenant_id, request.user_id)
    state = await store.read_brief(user, request.session_id, turns=working_memory_turns)
    if request.timezone is not None and request.timezone != state.timezone:
        await store.remember_timezone(user, request.timezone)
    if zone is None:
        remembered = (
            state.timezone if state.timezone and clock.is_valid_zone(state.timezone) else None
        )
        zone = clock.resolve_zone(remembered)

    moment = (request.now or now).astimezone(zone)
    last_turn = clock.from_millis(state.last_turn_ms) if state.last_turn_ms is not None else None
    return BriefResponse(
        identity=Identity(name=state.name, is_default=state.name is None),
        temporal_authority=TemporalAuthority(
            current_time=clock.clock_time(moment),
            current_day=clock.weekday(moment),
            time_of_day=clock.time_of_day(moment),
            time_since_last_interaction=clock.ago(last_turn, moment) if last_turn else None,
        ),
        working_memory=[
            Turn(role=turn.role, text=turn.text, timestamp=turn.timestamp)
            for turn in state.recent_turns
        ],
        rolling_summary=state.rolling_summary,
        semantic_context=[],
        entities=[],
        metadata=BriefMetadata(
            buffer_size=state.buffer_size, has_rolling_summary=state.rolling_summary is not None
        ),
    )
