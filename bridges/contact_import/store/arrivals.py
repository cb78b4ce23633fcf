"""SQL of arrivals (``import_arrivals``): people who bound a number, or claimed an id of their
own export, queued durably until handled; and of the claims ``import accept`` confirms.
"""

from __future__ import annotations

import json
from typing import Any

from bridges.contact_import.store.rooms import Placeholder
from bridges.database import Database, Txn
from bridges.store import now_ms

# (user_id, phone, source_key) or (user_id, phone, source_key, only_importers)
Arrival = tuple[Any, ...]


class ArrivalStore:
    db: Database

    # -- arrivals ------------------------------------------------------------------------

    async def add_arrivals(self, arrivals: list[Arrival]) -> None:
        """``(user_id, phone E.164, source_key[, only_importers])`` of people who arrived, queued
        durably. ``only_importers`` (a list) limits what the arrival does to those importers: a
        user who is not discoverable arrives only for whoever invited their number by SMS."""
        await self.db.run("add_arrivals", _add_arrivals_txn, arrivals)

    async def pending_arrivals(
        self, limit: int = 100
    ) -> list[tuple[int, str, str | None, str | None, list[str] | None]]:
        return await self.db.run("pending_arrivals", _pending_arrivals_txn, limit)

    async def arrival_done(self, seq: int) -> None:
        await self.db.run("arrival_done", _arrival_done_txn, seq)

    # -- claims: "this id in my own export is me" ----------------------------------------

    async def claimed_before(self, user_id: str, source_key: str, seq: int) -> bool:
        """Whether ``user_id`` already claimed ``source_key`` (an earlier, handled arrival row)."""
        return await self.db.run("claimed_before", _claimed_before_txn, user_id, source_key, seq)

    async def claimed_placeholders(self, importer: str, claimant: str) -> list[Placeholder]:
        """``importer``'s placeholders, not yet replaced, whose network id ``claimant`` claimed."""
        return await self.db.run("claimed_placeholders", _claimed_placeholders_txn, importer, claimant)

    async def management_room(self, user_id: str) -> str | None:
        """The user's newest direct chat with the bridge bot, where notices about imports go."""
        return await self.db.run("management_room", _management_room_txn, user_id)


# -- arrivals ------------------------------------------------------------------------------


def _add_arrivals_txn(txn: Txn, arrivals: list[Arrival]) -> None:
    for user_id, phone, source_key, *rest in arrivals:
        only = json.dumps(sorted(rest[0])) if rest and rest[0] is not None else None
        txn.execute(
            "INSERT INTO import_arrivals (user_id, phone, source_key, received_ts, only_importers)"
            " VALUES (?, ?, ?, ?, ?)",
            (user_id, phone, source_key, now_ms(), only),
        )


def _pending_arrivals_txn(txn: Txn, limit: int) -> list[tuple[int, str, str | None, str | None, list[str] | None]]:
    rows = txn.execute(
        "SELECT seq, user_id, phone, source_key, only_importers FROM import_arrivals WHERE processed_ts IS NULL"
        " ORDER BY seq LIMIT ?",
        (limit,),
    )
    return [(int(r[0]), r[1], r[2], r[3], json.loads(r[4]) if r[4] else None) for r in rows.fetchall()]


def _arrival_done_txn(txn: Txn, seq: int) -> None:
    # A handled number is gone for good; a claim (source_key) stays: "import accept" reads it.
    txn.execute("DELETE FROM import_arrivals WHERE seq = ? AND source_key IS NULL", (seq,))
    txn.execute("UPDATE import_arrivals SET processed_ts = ? WHERE seq = ?", (now_ms(), seq))


def _claimed_before_txn(txn: Txn, user_id: str, source_key: str, seq: int) -> bool:
    row = txn.execute(
        "SELECT 1 FROM import_arrivals WHERE user_id = ? AND source_key = ? AND seq < ? AND processed_ts IS NOT NULL",
        (user_id, source_key, seq),
    ).fetchone()
    return row is not None


def _claimed_placeholders_txn(txn: Txn, importer: str, claimant: str) -> list[Placeholder]:
    rows = txn.execute(
        "SELECT DISTINCT p.ghost_id, p.importer, p.name, p.source_label FROM import_placeholders AS p"
        " JOIN import_arrivals AS a ON a.source_key = p.source_key"
        " WHERE a.user_id = ? AND a.processed_ts IS NOT NULL AND p.importer = ? AND p.arrived_user_id IS NULL"
        " ORDER BY p.ghost_id",
        (claimant, importer),
    ).fetchall()
    return [Placeholder(*r) for r in rows]


def _management_room_txn(txn: Txn, user_id: str) -> str | None:
    row = txn.execute(
        "SELECT room_id FROM management_rooms WHERE user_id = ? ORDER BY created_ts DESC LIMIT 1", (user_id,)
    ).fetchone()
    return row[0] if row else None
