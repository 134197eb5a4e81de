"""The rolling summary behind /brief: new turns folded into a bounded per-user summary.

Runs in the janitor (never on /brief's path) every few turns and at every close. The user's own
name, when the summariser hears them state it, becomes /brief's identity.
"""

from service.graph import GraphMemory
from service.memory.redaction import Redactor
from service.store.layout import UserKeys
from service.store.summaries import SummaryStore

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
        self, store: SummaryStore, graph: GraphMemory, redactor: Redactor, *, max_chars: int
    ) -> None:
        self._store = store
        self._graph = graph
        self._redactor = redactor
        self._max_chars = max_chars

    async def refresh(self, user: UserKeys) -> bool:
        """Fold the user's pending turns into their summary; False when nothing was pending.
        A summary begun before the user was deleted is never written (the profile's `life`
        changed), and only the turns it folded in leave the pending list."""
        pending = await self._store.read(user, batch=BATCH_TURNS)
        if not pending.turns:
            return False
        result = await self._graph.summarize(
            pending.previous,
            [self._redactor.redact(f"{turn.role}: {turn.text}") for turn in pending.turns],
            self._max_chars,
        )
        await self._store.write(user, pending, result.summary, _clean_name(result.user_name))
        return True
