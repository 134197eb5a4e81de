"""After the run: read Redis and Neo4j directly and check every invariant over the history."""

from collections import Counter, defaultdict
from typing import Any

from neo4j import AsyncDriver
from redis.asyncio import Redis

from service.memory.episodes import group_id
from service.store.layout import UserKeys
from tests.chaos.load import Load, User
from tests.chaos.timeline import API_KINDS, DEPENDENCY_KINDS, Op, Timeline

MAX_DETAILS = 8  # examples listed per violation kind


class Violations:
    def __init__(self) -> None:
        self.items: list[tuple[str, str]] = []

    def add(self, invariant: str, detail: str) -> None:
        self.items.append((invariant, detail))

    def __bool__(self) -> bool:
        return bool(self.items)

    def render(self) -> str:
        by_kind: dict[str, list[str]] = defaultdict(list)
        for kind, detail in self.items:
            by_kind[kind].append(detail)
        out = []
        for kind, details in by_kind.items():
            out.append(f"[{kind}] {len(details)} violation(s)")
            out.extend(f"    - {d}" for d in details[:MAX_DETAILS])
            if len(details) > MAX_DETAILS:
                out.append(f"    ... and {len(details) - MAX_DETAILS} more")
        return "\n".join(out)


def _who(user: User) -> str:
    group = group_id(user.tenant.tenant_id, user.user_id)
    return f"{user.tenant.tenant_id}/{user.user_id!r} (group {group})"


async def check_turns(driver: AsyncDriver, load: Load, v: Violations) -> None:
    """1. Every acknowledged turn of a live user is in exactly one of its group's episodes; no
    turn sent (acknowledged or not) is in two, nor in another user's group."""
    records, _, _ = await driver.execute_query(
        "MATCH (e:Episodic) RETURN e.group_id AS g, e.uuid AS uuid, e.name AS name, "
        "e.content AS content"
    )
    where: dict[str, list[tuple[str, str, str]]] = defaultdict(list)  # line -> [(g, uuid, name)]
    for r in records:
        for line in (r["content"] or "").splitlines():
            where[line].append((r["g"], r["uuid"], r["name"]))
    for user in load.users:
        group = group_id(user.tenant.tenant_id, user.user_id)
        for text, role in user.sent.items():
            places = where.get(f"{role}: {text}", [])
            foreign = [p for p in places if p[0] != group]
            if foreign:
                v.add(
                    "1 turn in another user's group",
                    f"{_who(user)} turn {text!r} found in {foreign}",
                )
            if user.delete_acked:
                continue
            if len(places) > 1:
                v.add(
                    "1 turn written more than once",
                    f"{_who(user)} turn {text!r} is in {len(places)} episodes: {places}",
                )
            if text in user.acked and not places:
                v.add(
                    "1 acknowledged turn lost",
                    f"{_who(user)} acknowledged turn {text!r} ({role}) is in no episode",
                )


async def check_no_double_extraction(driver: AsyncDriver, v: Violations) -> None:
    """2. No extraction written twice."""
    records, _, _ = await driver.execute_query(
        "MATCH (n:Entity) WITH n.group_id AS g, n.name AS name, collect(n.uuid) AS uuids "
        "WHERE size(uuids) > 1 RETURN g, name, uuids"
    )
    for r in records:
        v.add(
            "2 duplicate entity name in a group",
            f"group {r['g']}: {r['name']!r} x{len(r['uuids'])} {r['uuids']}",
        )
    records, _, _ = await driver.execute_query(
        "MATCH (e:Episodic)-[m:MENTIONS]->(n) WITH e, n, count(m) AS c WHERE c > 1 "
        "RETURN e.group_id AS g, e.uuid AS episode, e.name AS name, n.name AS target, c"
    )
    for r in records:
        v.add(
            "2 episode mentions an entity more than once",
            f"group {r['g']}: episode {r['episode']} ({r['name']}) -> {r['target']!r} x{r['c']}",
        )
    records, _, _ = await driver.execute_query(
        "MATCH (a)-[r:RELATES_TO]->(b) RETURN r.group_id AS g, r.uuid AS uuid, r.fact AS fact, "
        "r.episodes AS episodes, a.name AS source, b.name AS target"
    )
    facts: dict[tuple[str, str], list[str]] = defaultdict(list)  # (group, fact) -> edges
    for r in records:
        episodes = list(r["episodes"] or [])
        repeated = [e for e, c in Counter(episodes).items() if c > 1]
        if repeated:
            v.add(
                "2 fact lists an episode twice",
                f"group {r['g']}: fact {r['fact']!r} ({r['uuid']}) episodes {episodes}",
            )
        facts[(r["g"], r["fact"])].append(
            f"{r['uuid']} ({r['source']!r}->{r['target']!r}, episodes {episodes})"
        )
    for (group, fact), uuids in facts.items():
        if len(uuids) > 1:
            v.add(
                "2 same fact written twice in a group",
                f"group {group}: {fact!r} x{len(uuids)}: {'; '.join(uuids)}",
            )


async def check_deleted(redis: Redis, driver: AsyncDriver, load: Load, v: Violations) -> None:
    """3. Nothing of an acknowledged-deleted user remains (a `...:fence` key and a
    SynapseGroup node are allowed tombstones)."""
    deleted = [u for u in load.users if u.delete_acked]
    if not deleted:
        return
    keys = [key async for key in redis.scan_iter(count=1000)]
    for user in deleted:
        keys_of = UserKeys(user.tenant.tenant_id, user.user_id)
        # The user's prefix, or its encoded ids anywhere in a key (an entry id, say).
        ids = keys_of.ref.replace(" ", ":")
        left = [
            k
            for k in keys
            if (k.startswith(f"{keys_of.prefix}:") or f":{ids}:" in k) and k != keys_of.fence
        ]
        if left:
            v.add(
                "3 deleted user's Redis keys remain",
                f"{_who(user)}: {sorted(left)[:12]}{' ...' if len(left) > 12 else ''}",
            )
        group = group_id(user.tenant.tenant_id, user.user_id)
        records, _, _ = await driver.execute_query(
            "MATCH (n {group_id: $g}) WHERE NOT n:SynapseGroup "
            "RETURN labels(n) AS labels, count(*) AS c",
            g=group,
        )
        nodes = {"/".join(sorted(r["labels"])): r["c"] for r in records}
        records, _, _ = await driver.execute_query(
            "MATCH ()-[r {group_id: $g}]->() RETURN type(r) AS t, count(*) AS c", g=group
        )
        edges = {r["t"]: r["c"] for r in records}
        if nodes or edges:
            v.add(
                "3 deleted user's graph remains",
                f"{_who(user)}: nodes {nodes} edges {edges}",
            )


def check_leaks(load: Load, v: Violations) -> None:
    """4. No response for tenant X carried another tenant's marker."""
    for leak in load.leaks:
        v.add("4 cross-tenant leak", leak)


def _describe(op: Op, timeline: Timeline) -> str:
    what = f"{op.status} {op.body[:200]!r}" if op.status is not None else op.error
    return (
        f"{op.kind} {op.tenant}/{op.user!r} at {timeline.rel(op.start)}..{timeline.rel(op.end)}"
        f" {op.detail[:60]!r}: {what}"
    )


def check_statuses(load: Load, timeline: Timeline, v: Violations) -> None:
    """5. No 5xx for a valid request unless it overlapped a dependency fault or an API
    restart (with grace); transport errors only while the API was killed or stopped (or, for
    timeouts, during any dependency fault). Every request here is valid: a 4xx is a bug too."""
    for op in load.ops:
        if op.status is not None:
            if op.status >= 500:
                if op.status == 503 and timeline.covering(DEPENDENCY_KINDS, op.start, op.end):
                    continue
                v.add("5 server error outside a fault window", _describe(op, timeline))
            elif op.status >= 400:
                v.add("5 client error for a valid request", _describe(op, timeline))
            continue
        if timeline.covering(API_KINDS, op.start, op.end):
            continue
        if "Timeout" in (op.error or "") and timeline.covering(DEPENDENCY_KINDS, op.start, op.end):
            continue
        v.add("5 transport error outside an API outage", _describe(op, timeline))


async def run_checks(
    redis: Redis, driver: AsyncDriver, load: Load, timeline: Timeline, v: Violations
) -> dict[str, Any]:
    await check_turns(driver, load, v)
    await check_no_double_extraction(driver, v)
    await check_deleted(redis, driver, load, v)
    check_leaks(load, v)
    check_statuses(load, timeline, v)
    records, _, _ = await driver.execute_query(
        "MATCH (e:Episodic) OPTIONAL MATCH (e)-[m:MENTIONS]->() "
        "RETURN count(DISTINCT e) AS episodes, count(m) AS mentions"
    )
    return {"episodes": records[0]["episodes"], "mentions": records[0]["mentions"]}
