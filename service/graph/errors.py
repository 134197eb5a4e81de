"""What the graph raises while Neo4j is down, named for the code outside this package (which
never imports the driver): unreachable, no connection to be had within the budget, or a
database still starting (TransientError covers DatabaseUnavailable). Each is a 503 with
Retry-After at the HTTP edge, never a 500."""

from neo4j.exceptions import ConnectionPoolError, ServiceUnavailable, SessionExpired, TransientError

GRAPH_UNAVAILABLE: tuple[type[Exception], ...] = (
    ServiceUnavailable,
    SessionExpired,
    ConnectionPoolError,
    TransientError,
)
