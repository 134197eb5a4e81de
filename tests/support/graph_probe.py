"""Reads the test Neo4j directly, to check what Graphiti really stored."""

from neo4j import AsyncDriver, AsyncGraphDatabase


class GraphProbe:
    def __init__(self, driver: AsyncDriver) -> None:
        self._driver = driver

    async def episodes(self, group: str) -> list[dict[str, object]]:
        records, _, _ = await self._driver.execute_query(
            "MATCH (e:Episodic {group_id: $group}) "
            "OPTIONAL MATCH (e)-[m:MENTIONS]->() "
            "WITH e, count(m) AS mentions "
            "RETURN e.uuid AS uuid, e.name AS name, e.content AS content, "
            "e.source_description AS source, e.created_at AS created_at, mentions "
            "ORDER BY e.created_at",
            group=group,
        )
        return [dict(record) for record in records]

    async def episode_count(self, group: str) -> int:
        return len(await self.episodes(group))

    async def processed_episode_count(self, group: str) -> int:
        """Episodes whose extraction was written (a bare pre-saved node does not count)."""
        return sum(1 for e in await self.episodes(group) if int(str(e["mentions"])) > 0)

    async def entity_names(self, group: str) -> list[str]:
        records, _, _ = await self._driver.execute_query(
            "MATCH (n:Entity {group_id: $group}) RETURN n.name AS name ORDER BY name",
            group=group,
        )
        return [record["name"] for record in records]

    async def facts(self, group: str) -> list[str]:
        records, _, _ = await self._driver.execute_query(
            "MATCH (:Entity)-[r:RELATES_TO {group_id: $group}]->(:Entity) RETURN r.fact AS fact",
            group=group,
        )
        return [record["fact"] for record in records]


async def neo4j_version(uri: str) -> str:
    """The server's kernel version, e.g. "2026.08.1" or "5.26.16"."""
    driver = AsyncGraphDatabase.driver(uri, auth=("neo4j", ""))
    try:
        records, _, _ = await driver.execute_query(
            "CALL dbms.components() YIELD name, versions WHERE name = 'Neo4j Kernel' "
            "RETURN versions[0] AS version"
        )
    finally:
        await driver.close()
    return str(records[0]["version"])
