"""Domain errors. They carry no HTTP knowledge: service/http/errors.py maps them to answers."""


class SynapseError(Exception):
    """Base of every error the domain raises on purpose."""

    def __init__(self, message: str, *, field: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.field = field


class InvalidInput(SynapseError):
    """The request is well-formed but asks for something impossible (e.g. an unknown zone)."""


class NotFound(SynapseError):
    """The named session or user does not exist."""


class DependencyUnavailable(SynapseError):
    """A backing service (Redis, Neo4j, the LLM) cannot be reached right now."""


class ModelUnavailable(DependencyUnavailable):
    """The model endpoint (embeddings on the query path) is down, slow or rate limiting us."""

    def __init__(self, message: str, *, retry_after_seconds: int) -> None:
        super().__init__(message)
        self.retry_after_seconds = retry_after_seconds


class Unauthorized(SynapseError):
    """No API key, or one that belongs to no tenant."""


class Forbidden(SynapseError):
    """The key is valid but belongs to another tenant than the request names."""


class RateLimited(SynapseError):
    """A tenant's request rate or daily turn quota is used up. Nothing was written."""

    def __init__(
        self, message: str, *, limit: int, remaining: int, retry_after_seconds: int
    ) -> None:
        super().__init__(message)
        self.limit = limit
        self.remaining = remaining
        self.retry_after_seconds = retry_after_seconds
