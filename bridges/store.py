"""Every SQL statement of the bridge's core, each in a small ``*_txn`` function."""

from __future__ import annotations

import hashlib
import json
import time
from typing import Any

import attrs

from bridges.database import Database, Txn


def now_ms() -> int:
    return int(time.time() * 1000)


@attrs.frozen
class InboxEvent:
    seq: int
    event: dict[str, Any]


class BridgeStore:
    def __init__(self, db: Database):
        self.db = db

    # -- transactions from Synapse -------------------------------------------------------

    async def accept_transaction(self, txn_id: str, events: list[dict[str, Any]]) -> bool:
        """Record a transaction and queue its events, atomically.

        Returns:
            False if this transaction id was already accepted (a retry or a replay).
        """
        return await self.db.run("accept_transaction", _accept_transaction_txn, txn_id, events)

    async def pending_events(self, limit: int = 100) -> list[InboxEvent]:
        return await self.db.run("pending_events", _pending_events_txn, limit)

    async def mark_processed(self, seq: int, error: str | None = None) -> None:
        await self.db.run("mark_processed", _mark_processed_txn, seq, error)

    async def prune_old(self, older_than_ms: int) -> None:
        await self.db.run("prune_old", _prune_txn, now_ms() - older_than_ms)

    # -- management rooms ---------------------------------------------------------------

    async def add_management_room(self, room_id: str, user_id: str) -> None:
        await self.db.run("add_management_room", _add_management_room_txn, room_id, user_id)

    async def management_room_owner(self, room_id: str) -> str | None:
        return await self.db.run("management_room_owner", _management_room_owner_txn, room_id)

    async def remove_management_room(self, room_id: str) -> None:
        await self.db.run("remove_management_room", _remove_management_room_txn, room_id)

    # -- ghosts -------------------------------------------------------------------------

    async def is_ghost_registered(self, user_id: str) -> bool:
        return await self.db.run("is_ghost_registered", _ghost_registered_txn, user_id)

    async def add_ghost(self, user_id: str, kind: str) -> None:
        await self.db.run("add_ghost", _add_ghost_txn, user_id, kind)


def event_ids_hash(events: list[dict[str, Any]]) -> str:
    ids = sorted(str(e.get("event_id")) for e in events)
    return hashlib.sha256("\n".join(ids).encode("utf-8")).hexdigest()


def _accept_transaction_txn(txn: Txn, txn_id: str, events: list[dict[str, Any]]) -> bool:
    # Synapse retries a transaction with the same id and the same events (their JSON may differ,
    # e.g. unsigned.age, so the event ids are compared). The same id with other events is a new
    # transaction: Synapse on SQLite reuses ids after a restart.
    digest = event_ids_hash(events)
    row = txn.execute("SELECT event_ids_hash FROM appservice_txns WHERE txn_id = ?", (txn_id,)).fetchone()
    if row is not None and (row[0] is None or row[0] == digest):
        return False
    if row is None:
        txn.execute(
            "INSERT INTO appservice_txns (txn_id, received_ts, event_ids_hash) VALUES (?, ?, ?)",
            (txn_id, now_ms(), digest),
        )
    else:
        txn.execute(
            "UPDATE appservice_txns SET received_ts = ?, event_ids_hash = ? WHERE txn_id = ?",
            (now_ms(), digest, txn_id),
        )
    for event in events:
        event_id = event.get("event_id")
        room_id = event.get("room_id")
        if not isinstance(event_id, str) or not isinstance(room_id, str):
            continue
        # An event may reach us in two transactions (e.g. after Synapse lost our 200): queue it once.
        txn.execute(
            "INSERT INTO inbox (event_id, room_id, event_json, received_ts) VALUES (?, ?, ?, ?)"
            " ON CONFLICT (event_id) DO NOTHING",
            (event_id, room_id, json.dumps(event), now_ms()),
        )
    return True


def _pending_events_txn(txn: Txn, limit: int) -> list[InboxEvent]:
    rows = txn.execute(
        "SELECT seq, event_json FROM inbox WHERE processed_ts IS NULL ORDER BY seq LIMIT ?", (limit,)
    ).fetchall()
    return [InboxEvent(seq=row[0], event=json.loads(row[1])) for row in rows]


def _mark_processed_txn(txn: Txn, seq: int, error: str | None) -> None:
    txn.execute("UPDATE inbox SET processed_ts = ?, error = ? WHERE seq = ?", (now_ms(), error, seq))


def _prune_txn(txn: Txn, before_ts: int) -> None:
    # Keep transaction ids long enough to outlive Synapse's longest retry back-off (512 s) by far.
    txn.execute("DELETE FROM appservice_txns WHERE received_ts < ?", (before_ts,))
    txn.execute("DELETE FROM inbox WHERE processed_ts IS NOT NULL AND processed_ts < ?", (before_ts,))


def _add_management_room_txn(txn: Txn, room_id: str, user_id: str) -> None:
    txn.execute(
        "INSERT INTO management_rooms (room_id, user_id, created_ts) VALUES (?, ?, ?)"
        " ON CONFLICT (room_id) DO NOTHING",
        (room_id, user_id, now_ms()),
    )


def _management_room_owner_txn(txn: Txn, room_id: str) -> str | None:
    row = txn.execute("SELECT user_id FROM management_rooms WHERE room_id = ?", (room_id,)).fetchone()
    return row[0] if row else None


def _remove_management_room_txn(txn: Txn, room_id: str) -> None:
    txn.execute("DELETE FROM management_rooms WHERE room_id = ?", (room_id,))


def _ghost_registered_txn(txn: Txn, user_id: str) -> bool:
    return txn.execute("SELECT 1 FROM ghosts WHERE user_id = ?", (user_id,)).fetchone() is not None


def _add_ghost_txn(txn: Txn, user_id: str, kind: str) -> None:
    txn.execute(
        "INSERT INTO ghosts (user_id, kind, registered_ts) VALUES (?, ?, ?) ON CONFLICT (user_id) DO NOTHING",
        (user_id, kind, now_ms()),
    )
