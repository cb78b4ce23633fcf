"""Read receipts of a room, counted per position (used by the accounts module's stats).

The module API has no way to read receipts. Synapse keeps each user's latest receipt per room,
type and thread in ``receipts_linearized``, with the stream position of the event it points at
(``event_stream_ordering``; Synapse ignores a receipt older than the one it has,
``synapse/storage/databases/main/receipts.py:ReceiptsWorkerStore._insert_linearized_receipt_txn``),
so "who has read up to post P" is "whose latest receipt is at P's position or later". Only public
``m.read`` receipts of the main timeline (no thread, or ``main``) count: a private receipt
(``m.read.private``) is the reader's wish not to be seen reading, and is not counted either.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any


def event_positions_txn(txn: Any, event_ids: Sequence[str]) -> dict[str, int]:
    """The stream position (``events.stream_ordering``) of each of these events Synapse has."""
    found: dict[str, int] = {}
    for start in range(0, len(event_ids), 500):
        chunk = list(event_ids[start : start + 500])
        marks = ", ".join("?" for _ in chunk)
        txn.execute(f"SELECT event_id, stream_ordering FROM events WHERE event_id IN ({marks})", chunk)
        found.update({r[0]: int(r[1]) for r in txn.fetchall() if r[1] is not None})
    return found


def read_positions_txn(txn: Any, room_id: str, excluded: Sequence[str]) -> list[tuple[int, int]]:
    """``(position, readers)``: how many users' latest public read receipt in ``room_id`` points
    at the event at each position (users in ``excluded`` left out). One pass over the room's
    ``m.read`` rows, a range of the ``(room_id, receipt_type, user_id)`` unique index; the answer
    has a row per event read last by someone, not per reader."""
    leave_out = f" AND user_id NOT IN ({', '.join('?' for _ in excluded)})" if excluded else ""
    txn.execute(
        "SELECT position, COUNT(*) FROM (SELECT user_id, MAX(event_stream_ordering) AS position"
        " FROM receipts_linearized WHERE room_id = ? AND receipt_type = 'm.read'"
        " AND (thread_id IS NULL OR thread_id = 'main') AND event_stream_ordering IS NOT NULL"
        f"{leave_out} GROUP BY user_id) AS latest GROUP BY position",
        (room_id, *excluded),
    )
    return [(int(r[0]), int(r[1])) for r in txn.fetchall()]
