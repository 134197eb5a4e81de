"""A user's whole footprint in Redis, as the store defines it, and its deletion.

The footprint is every key under the user's prefix that the layout names (UserKeys.own_keys,
each listed session's SessionKeys.all_keys, each entry's EntryKeys.all_keys) and the user's
members in its bucket's indexes. Deletion walks that list, so a new per-user key is deleted
as soon as the layout lists it (tests/test_data_rights.py scans for leftovers).
"""

from dataclasses import dataclass

from service.store import scripts
from service.store.layout import SessionKeys, UserKeys
from service.store.outbox import Outbox
from service.store.scripts import Scripts
from service.store.sessions import SessionStore


@dataclass(frozen=True, slots=True)
class Footprint:
    user: UserKeys
    sessions: list[SessionKeys]
    entry_ids: list[str]

    def keys(self) -> list[str]:
        keys = list(self.user.own_keys())
        for session in self.sessions:
            keys += session.all_keys()
        for entry_id in self.entry_ids:
            keys += self.user.entry(entry_id).all_keys()
        return keys


class UserFootprints:
    def __init__(self, sessions: SessionStore, outbox: Outbox, scripts: Scripts) -> None:
        self._sessions = sessions
        self._outbox = outbox
        self._scripts = scripts

    async def footprint(self, user: UserKeys) -> Footprint:
        listed = [session for session, _ in await self._sessions.sessions_by_activity(user)]
        return Footprint(user, listed, await self._outbox.user_entry_ids(user))

    async def delete(self, user: UserKeys) -> int:
        """Delete the user's footprint in one atomic step; returns how many keys existed."""
        footprint = await self.footprint(user)
        bucket = user.bucket
        removed = await self._scripts[scripts.DELETE_USER](
            {
                "idle": bucket.idle,
                "due": bucket.outbox_due,
                "dead": bucket.outbox_dead,
                "tenant_entries": user.tenant_entries,
            },
            {"sessions": len(footprint.sessions)},
            [user.ref, *(s.idle_member for s in footprint.sessions), *footprint.entry_ids],
            rest=footprint.keys(),
        )
        return int(removed)
