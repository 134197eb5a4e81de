"""The rolling summary behind /brief: new turns folded into a bounded per-user summary.

Runs in the janitor (never on /brief's path) every few turns and at every close. The user's own
name, when the summariser hears them state it, becomes /brief's identity.
"""

from redis.asyncio import Redis

from service import redis_scripts
from service.graph import GraphMemory
from service.keys import UserKeys
from service.redaction import Redactor
from service.session_store import decode_turn

# Turns folded into the summary per model call.
BATCH_TURNS = 200
_MAX_NAME_CHARS = 64


def _clean_name(name: str | None) -> str:
    if not name:
        return ""
    name = " ".join(name.split())
    if not name.isprintable() or len(name) > _MAX_NAME_CHARS:
        return ""
    return name


class Summarizer:
    def __init__(
        self, redis: "Redis", graph: GraphMemory, redactor: Redactor, *, max_chars: int
    ) -> None:
        self._redis = redis
        self._graph = graph
        self._redactor = redactor
        self._max_chars = max_chars
        self._read = redis.register_script(redis_scripts.READ_SUMMARY_INPUT)
        self._consume = redis.register_script(redis_scripts.CONSUME_SUMMARY_LINES)

    async def refresh(self, user: UserKeys) -> bool:
        """Fold the user's pending turns into their summary; False when nothing was pending.
        A summary begun before the user was deleted is never written (the profile's `life`
        changed), and only the turns it folded in leave the pending list."""
        life, head, previous, *raw = await self._read(
            keys=[user.summary_pending, user.profile], args=[BATCH_TURNS]
        )
        if not raw:
            return False
        turns = [decode_turn(item) for item in raw]
        result = await self._graph.summarize(
            previous or None,
            [self._redactor.redact(f"{turn.role}: {turn.text}") for turn in turns],
            self._max_chars,
        )
        await self._consume(
            keys=[user.summary_pending, user.profile],
            args=[life, int(head) + len(raw), result.summary, _clean_name(result.user_name)],
        )
        return True
