"""SQL of each person's Parcels room (``wangxin_parcels_rooms``)."""

from __future__ import annotations

from typing import Any

import attrs

from synapse_modules.parcels.store.shipments import redo_cards_elsewhere_txn


@attrs.frozen
class RoomRecord:
    user_id: str
    room_id: str | None
    state: str  # 'creating' or 'ready'


def get_room_txn(txn: Any, user_id: str) -> RoomRecord | None:
    txn.execute("SELECT user_id, room_id, state FROM wangxin_parcels_rooms WHERE user_id = ?", (user_id,))
    row = txn.fetchone()
    return RoomRecord(row[0], row[1], row[2]) if row else None


def start_room_txn(txn: Any, user_id: str, now: int) -> None:
    """A room is about to be made for the person (a first one, or a new one after they left)."""
    txn.execute(
        "INSERT INTO wangxin_parcels_rooms (user_id, room_id, state, updated_ts) VALUES (?, NULL, 'creating', ?)"
        " ON CONFLICT (user_id) DO UPDATE SET room_id = NULL, state = 'creating', updated_ts = excluded.updated_ts",
        (user_id, now),
    )


def set_room_id_txn(txn: Any, user_id: str, room_id: str, now: int) -> None:
    """The room exists: recorded before it is completed, so a retry completes this one."""
    txn.execute(
        "UPDATE wangxin_parcels_rooms SET room_id = ?, updated_ts = ? WHERE user_id = ?", (room_id, now, user_id)
    )


def room_ready_txn(txn: Any, user_id: str, room_id: str, now: int, recent_since: int) -> int:
    """The person is in the room and it is closed: it is their Parcels room now. Their recent
    parcels whose cards are elsewhere (in a room they left) get a card here; returns how many."""
    txn.execute(
        "UPDATE wangxin_parcels_rooms SET state = 'ready', updated_ts = ? WHERE user_id = ? AND room_id = ?",
        (now, user_id, room_id),
    )
    return redo_cards_elsewhere_txn(txn, user_id, room_id, recent_since)
