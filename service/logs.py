"""Process logging: one line per record, never message text or secrets (callers log ids only)."""

import logging

_FORMAT = "%(asctime)s %(levelname)s %(name)s %(message)s"


def configure_logging(level: str) -> None:
    logging.basicConfig(level=level, format=_FORMAT)
    # httpx logs every request line at INFO, which floods logs with LLM calls.
    logging.getLogger("httpx").setLevel(logging.WARNING)
    # Neo4j turns schema notes ("index already exists", "property key does not exist yet" on a
    # new database) into log records; none of them is actionable.
    logging.getLogger("neo4j.notifications").setLevel(logging.ERROR)
