"""Every SQL statement of contact import, each in a small ``*_txn`` function, by section:

- ``jobs``: uploads and import jobs;
- ``rooms``: rooms and their members, placeholders, direct chats, contacts invitable by SMS;
- ``arrivals``: people who arrived (bound a number) and claims of ids in their own exports.

The tables (``bridges/database.py``, migration 2) are the import's journal: each step of an
import checks them before acting and records itself when done, so a resumed or repeated import
never repeats a step. :class:`ImportStore` runs them all; forgetting a user spans every table.
"""

from __future__ import annotations

from bridges.contact_import.store.arrivals import ArrivalStore
from bridges.contact_import.store.jobs import JobStore
from bridges.contact_import.store.rooms import RoomStore
from bridges.database import Database, Txn


class ImportStore(JobStore, RoomStore, ArrivalStore):
    def __init__(self, db: Database) -> None:
        self.db = db

    async def forget(self, user_id: str) -> tuple[list[str], list[tuple[str, str]]]:
        """Delete everything held about ``user_id``'s imports; returns the placeholders and
        ``(room_id, ghost)`` memberships that should be taken out of Synapse too."""
        return await self.db.run("forget", _forget_txn, user_id)


def _forget_txn(txn: Txn, user_id: str) -> tuple[list[str], list[tuple[str, str]]]:
    ghosts = [r[0] for r in txn.execute(
        "SELECT ghost_id FROM import_placeholders WHERE importer = ?", (user_id,)
    ).fetchall()]
    memberships = [(r[0], r[1]) for r in txn.execute(
        "SELECT room_id, user_id FROM import_room_members WHERE importer = ? AND kind = 'placeholder'"
        " AND state IN ('invited', 'joined')",
        (user_id,),
    ).fetchall()]
    # One statement: the table is keyed by phone, so a DELETE per ghost scanned it once per
    # placeholder (2.2 s for 5,000 placeholders on SQLite, holding the bridge's one connection).
    txn.execute(
        "DELETE FROM import_placeholder_phones WHERE ghost_id IN"
        " (SELECT ghost_id FROM import_placeholders WHERE importer = ?)",
        (user_id,),
    )
    for table, column in (
        ("import_placeholders", "importer"),
        ("import_room_members", "importer"),
        ("import_rooms", "importer"),
        ("import_dms", "importer"),
        ("import_invitable", "importer"),
        ("import_uploads", "user_id"),
        ("import_jobs", "user_id"),
    ):
        txn.execute(f"DELETE FROM {table} WHERE {column} = ?", (user_id,))
    # The user's claims of ids in their own exports (pending arrivals of their numbers stay).
    txn.execute("DELETE FROM import_arrivals WHERE user_id = ? AND source_key IS NOT NULL", (user_id,))
    return ghosts, memberships
