"""Fenced graph writes: a janitor that lost its user's lease can no longer write the graph.

A lease in Redis keeps each user's episodes serial across janitors, but a lease is only a
promise about time: a janitor paused past it (GC, a stalled VM, a Redis timeout during renewal)
resumes believing it still owns the user. So every graph write of an episode carries the
lease's fencing token, a number that grows with every acquisition of that user's lease
(service/store/outbox.py), and checks it inside its own Neo4j transaction against the highest token
the user's group has seen, kept on one `SynapseGroup` node per group:

- a token lower than the group's is stale: the transaction rolls back (StaleWriter);
- otherwise the group's token is raised to it, and the node's write lock, held until commit,
  serialises every writer of the group;
- the episode's `synapse_processed_at` marker, set in the same transaction as its extraction,
  makes a second extraction of one episode impossible (AlreadyProcessed), even between two
  holders of valid tokens, and marks an episode with no entities as done.
- Synapse's own writes for the episode (its passages, `FencedWrite.also`) run in that same
  transaction, so they share its fate: written once, by a valid holder, or not at all.

Graphiti writes an extraction in one managed transaction (`session.execute_write`, in
graphiti_core.utils.bulk_utils). `FencedNeo4jDriver` wraps exactly that: while a `FencedWrite`
is active in the current context, the transaction function it is given first checks the token
and the episode, then runs Graphiti's own writes unchanged, then marks the episode processed.

A user's deletion takes the lease with a new token and raises the group's token before it
deletes anything, so a janitor that held the lease earlier never writes that user back. Tokens
are Redis's clock in microseconds (kept strictly growing per user), so a token also says when
its lease was taken: the `SynapseGroup` node of a deleted group (a hashed id, a number and a
time, no content) is the tombstone, purged after the retention, and a token older than the
retention is refused by age, so the purge cannot let a stale writer back in.
"""

from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal, LiteralString

from graphiti_core.driver.driver import GraphProvider
from graphiti_core.driver.neo4j_driver import Neo4jDriver
from graphiti_core.models.nodes.node_db_queries import get_episode_node_save_query
from graphiti_core.nodes import EpisodeType
from neo4j import AsyncManagedTransaction, unit_of_work

from service.graph.passages import SCHEMA as PASSAGE_SCHEMA


class StaleWriter(Exception):
    """This writer's lease was taken over (or the user deleted): nothing was written."""


class AlreadyProcessed(Exception):
    """The episode's extraction is already in the graph: nothing was written."""


@dataclass(frozen=True, slots=True)
class FencedWrite:
    """One writer's right to write one episode of one group."""

    group_id: str
    episode_uuid: str
    fence: int
    # Refusing without a round trip when the lease is known lost; the token check in Neo4j
    # is what makes the refusal certain.
    still_held: Callable[[], bool]
    max_age_ms: int
    # Synapse's own writes for the episode (its passages, service/graph/passages.py): run in
    # the extraction's transaction, after Graphiti's writes, so they land exactly when it does.
    also: Callable[[AsyncManagedTransaction], Awaitable[None]] | None = None


_active: ContextVar[FencedWrite | None] = ContextVar("synapse_fenced_write", default=None)

# Every fenced transaction holds its group's lock until it ends. A writer paused inside one (a
# stalled VM keeps its connection open) would otherwise block the group's other writers and its
# deletion for as long as the server lets a transaction live (unlimited by default). One
# episode's write takes well under a second; past this the server ends the transaction (the
# paused writer's commit then fails, and the waiting one proceeds or answers 503).
WRITE_TIMEOUT_SECONDS = 30.0
# What the server says to a transaction it ended at that limit, whether it was working or
# waiting for a lock.
TIMED_OUT_CODES = frozenset(
    {
        "Neo.ClientError.Transaction.TransactionTimedOut",
        "Neo.ClientError.Transaction.TransactionTimedOutClientConfiguration",
        "Neo.ClientError.Transaction.LockClientStopped",
    }
)

SCHEMA = (
    "CREATE CONSTRAINT synapse_group_id IF NOT EXISTS "
    "FOR (g:SynapseGroup) REQUIRE g.group_id IS UNIQUE",
    # The tombstone purge finds old deletions through this index, not a scan of every group.
    "CREATE INDEX synapse_group_deleted_at IF NOT EXISTS FOR (g:SynapseGroup) ON (g.deleted_at)",
    # The episodes' passages, written in the fenced transaction (see FencedWrite.also).
    *PASSAGE_SCHEMA,
)

# The first SET takes the node's write lock before its token is read; the lock is held until
# the transaction ends, so the check and everything written after it are one atomic step.
_CHECK_FENCE: LiteralString = (
    "MERGE (g:SynapseGroup {group_id: $group}) "
    "ON CREATE SET g.fence = $fence "
    "SET g.locked_at = timestamp() "
    "WITH g "
    "WITH g, g.fence AS current "
    "WHERE current <= $fence AND $fence >= (timestamp() - $max_age_ms) * 1000 "
    "SET g.fence = $fence, g.deleted_at = CASE WHEN $deleting THEN timestamp() END "
    "RETURN current"
)

_EPISODE_STATE: LiteralString = (
    "OPTIONAL MATCH (e:Episodic {uuid: $uuid}) "
    "RETURN e IS NOT NULL AS present, "
    # Episodes written before the marker existed count as processed once they mention anything.
    "e.synapse_processed_at IS NOT NULL OR COUNT { (e)-[:MENTIONS]->() } > 0 AS processed"
)

_MARK_PROCESSED: LiteralString = (
    "MATCH (e:Episodic {uuid: $uuid}) "
    "SET e.synapse_processed_at = datetime(), e.synapse_fence = $fence"
)

_PURGE_TOMBSTONES: LiteralString = (
    "MATCH (g:SynapseGroup) WHERE g.deleted_at < timestamp() - $retention_ms "
    "WITH g LIMIT 1000 DELETE g RETURN count(*) AS purged"
)

EpisodeState = Literal["absent", "saved", "processed"]


async def check_fence(
    tx: AsyncManagedTransaction, write: FencedWrite, *, deleting: bool = False
) -> None:
    if not write.still_held():
        raise StaleWriter("the lease expired before the write")
    result = await tx.run(
        _CHECK_FENCE,
        group=write.group_id,
        fence=write.fence,
        max_age_ms=write.max_age_ms,
        deleting=deleting,
    )
    if await result.single() is None:
        raise StaleWriter("a newer lease holder or a deletion fenced this writer out")


async def episode_state(tx: AsyncManagedTransaction, uuid: str) -> EpisodeState:
    record = await (await tx.run(_EPISODE_STATE, uuid=uuid)).single()
    if record is None or not record["present"]:
        return "absent"
    return "processed" if record["processed"] else "saved"


async def claim_episode(
    tx: AsyncManagedTransaction,
    write: FencedWrite,
    *,
    name: str,
    body: str,
    source_description: str,
    reference_time: datetime,
    created_at: datetime,
) -> EpisodeState:
    """Check the token and save the bare episode node if it is not there yet, with Graphiti's
    own save query (it cannot create an episode under a chosen uuid, #1646). Returns the
    episode's state before the call."""
    await check_fence(tx, write)
    state = await episode_state(tx, write.episode_uuid)
    if state == "absent":
        result = await tx.run(
            get_episode_node_save_query(GraphProvider.NEO4J),
            uuid=write.episode_uuid,
            name=name,
            group_id=write.group_id,
            source_description=source_description,
            content=body,
            entity_edges=[],
            created_at=created_at,
            valid_at=reference_time,
            source=EpisodeType.message.value,
        )
        await result.consume()
    return state


async def purge_tombstones(driver: Neo4jDriver, *, retention_ms: int) -> int:
    result = await driver.execute_query(_PURGE_TOMBSTONES, params={"retention_ms": retention_ms})
    purged: int = result.records[0]["purged"]
    return purged


@contextmanager
def fenced(write: FencedWrite) -> Iterator[None]:
    """Every Graphiti write transaction started inside this block is fenced by `write`."""
    token = _active.set(write)
    try:
        yield
    finally:
        _active.reset(token)


TxFunction = Callable[..., Awaitable[Any]]


def _fence_around(work: TxFunction, write: FencedWrite) -> TxFunction:
    async def fenced_work(tx: AsyncManagedTransaction, *args: Any, **kwargs: Any) -> Any:
        await check_fence(tx, write)
        state = await episode_state(tx, write.episode_uuid)
        if state == "processed":
            raise AlreadyProcessed(write.episode_uuid)
        if state == "absent":
            # Claimed before extraction began: gone now means deleted with its user.
            raise StaleWriter("the episode was deleted during extraction")
        result = await work(tx, *args, **kwargs)
        if write.also is not None:
            await write.also(tx)
        mark = await tx.run(_MARK_PROCESSED, uuid=write.episode_uuid, fence=write.fence)
        await mark.consume()
        return result

    return unit_of_work(timeout=WRITE_TIMEOUT_SECONDS)(fenced_work)


class _FencedSession:
    """A Neo4j session whose write transactions are fenced; everything else is delegated."""

    def __init__(self, session: Any, write: FencedWrite) -> None:
        self._session = session
        self._write = write

    async def execute_write(self, work: TxFunction, *args: Any, **kwargs: Any) -> Any:
        return await self._session.execute_write(_fence_around(work, self._write), *args, **kwargs)

    async def __aenter__(self) -> "_FencedSession":
        await self._session.__aenter__()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self._session.__aexit__(*exc)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._session, name)


class FencedNeo4jDriver(Neo4jDriver):
    """Graphiti's Neo4j driver, with write transactions fenced while a FencedWrite is active."""

    def session(self, database: str | None = None) -> Any:
        session = super().session(database)
        write = _active.get()
        return session if write is None else _FencedSession(session, write)
