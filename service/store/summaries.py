"""The rolling summary's input and output: the user's pending turns and their summary."""

from dataclasses import dataclass

from service.store import scripts
from service.store.layout import UserKeys
from service.store.scripts import Scripts
from service.store.sessions import StoredTurn, decode_turn


@dataclass(frozen=True, slots=True)
class SummaryInput:
    # The user's incarnation when read: a deletion in between makes the write a no-op.
    life: str
    # Absolute position, among every turn ever pending, just past the last one read.
    until_seq: int
    previous: str | None
    turns: list[StoredTurn]


class SummaryStore:
    def __init__(self, scripts: Scripts) -> None:
        self._scripts = scripts

    async def read(self, user: UserKeys, *, batch: int) -> SummaryInput:
        life, head, previous, *raw = await self._scripts[scripts.READ_SUMMARY_INPUT](
            {"pending": user.summary_pending, "profile": user.profile}, {"batch": batch}
        )
        return SummaryInput(
            life=life,
            until_seq=int(head) + len(raw),
            previous=previous or None,
            turns=[decode_turn(item) for item in raw],
        )

    async def write(self, user: UserKeys, read: SummaryInput, summary: str, name: str) -> bool:
        """Store the new summary and drop the turns it folded in, unless the user was deleted
        since `read` (then nothing is written and False is returned)."""
        return bool(
            await self._scripts[scripts.CONSUME_SUMMARY_LINES](
                {"pending": user.summary_pending, "profile": user.profile},
                {
                    "life": read.life,
                    "consumed_until_seq": read.until_seq,
                    "summary": summary,
                    "name": name,
                },
            )
        )
