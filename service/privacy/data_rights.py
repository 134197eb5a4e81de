"""A user's right to their data: export everything Synapse holds on them, or delete it all.

A deletion takes the user's outbox lease from whoever holds it, with a fresh fencing token, and
records that token on the user's graph group before it deletes anything (service/graph/
fencing.py). From then on a janitor that was flushing the user (even one paused mid-write that
resumes later) can neither acknowledge anything in Redis nor write to the graph, and the rolling
summary job refuses to write back a summary it began before the deletion
(service/memory/summaries.py). So nothing of the user that existed when the deletion answered
can reappear; what the orchestrator sends for the same ids afterwards is new data.
"""

from datetime import datetime

from contracts import (
    ExportedEpisode,
    ExportedFact,
    ExportedOutboxEntry,
    ExportedSession,
    MemoryEntity,
    Turn,
    UserDeletion,
    UserExport,
)
from service.clock import iso_utc
from service.graph import GraphMemory
from service.memory.episodes import group_id
from service.store.layout import UserKeys
from service.store.outbox import Outbox
from service.store.sessions import SessionStore, StoredTurn
from service.store.users import UserFootprints


def _turns(stored: list[StoredTurn]) -> list[Turn]:
    return [Turn(role=t.role, text=t.text, timestamp=t.timestamp) for t in stored]


def _iso(moment: datetime | None) -> str | None:
    return iso_utc(moment) if moment else None


class UserData:
    def __init__(
        self,
        store: SessionStore,
        outbox: Outbox,
        footprints: UserFootprints,
        graph: GraphMemory,
        *,
        lease_ms: int,
    ) -> None:
        self._store = store
        self._outbox = outbox
        self._footprints = footprints
        self._graph = graph
        self._lease_ms = lease_ms

    async def export(self, user: UserKeys) -> UserExport:
        profile = await self._store.profile(user)
        sessions = []
        for session, _ in await self._store.sessions_by_activity(user):
            meta = await self._store.session_meta(session)
            sessions.append(
                ExportedSession(
                    session_id=session.session_id,
                    state=meta.get("state", "unknown"),
                    buffered=_turns(await self._store.buffered_turns(session)),
                    recent=_turns(await self._store.recent_turns(session)),
                )
            )
        entries = []
        for entry in await self._outbox.load(await self._outbox.user_entry_ids(user)):
            transcript = await self._outbox.transcript(entry)
            entries.append(
                ExportedOutboxEntry(
                    entry_id=entry.entry_id,
                    session_id=entry.session_id,
                    state=entry.state,
                    turns=[
                        Turn(role=t.role, text=t.text, timestamp=t.timestamp) for t in transcript
                    ],
                )
            )
        graph = await self._graph.export_group(group_id(user.tenant_id, user.user_id))
        return UserExport(
            tenant_id=user.tenant_id,
            user_id=user.user_id,
            name=profile.get("name"),
            timezone=profile.get("timezone"),
            rolling_summary=profile.get("summary"),
            sessions=sessions,
            outbox=entries,
            episodes=[
                ExportedEpisode(
                    uuid=e.uuid,
                    name=e.name,
                    content=e.content,
                    reference_time=_iso(e.reference_time),
                )
                for e in graph.episodes
            ],
            entities=[
                MemoryEntity(summary=e.summary or e.name, type=e.type, uuid=e.uuid)
                for e in graph.entities
            ],
            facts=[
                ExportedFact(
                    uuid=f.uuid,
                    text=f.fact,
                    valid_at=_iso(f.valid_at),
                    invalid_at=_iso(f.invalid_at),
                )
                for f in graph.facts
            ],
        )

    async def delete(self, user: UserKeys) -> UserDeletion:
        """Remove the user's Redis state, outbox entries and graph group. Idempotent."""
        lease = await self._outbox.take_over(user, ttl_ms=self._lease_ms)
        group = group_id(user.tenant_id, user.user_id)
        try:
            # Fence the graph first: if Neo4j is down this fails (503) before anything is gone.
            await self._graph.fence_out(group, fence=lease.fence)
            keys = await self._footprints.delete(user)
            nodes = await self._graph.delete_group(group)
        finally:
            await self._outbox.release(lease)
        return UserDeletion(
            tenant_id=user.tenant_id,
            user_id=user.user_id,
            deleted=True,
            redis_keys=keys,
            graph_nodes=nodes,
        )
