"""SQL of each follower's "Merchant Circle" space and what is filed in it (``wangxin_circle_spaces``,
``wangxin_circle_space_children``)."""

from __future__ import annotations

from typing import Any


def get_space_txn(txn: Any, user_id: str) -> str | None:
    txn.execute("SELECT space_room_id FROM wangxin_circle_spaces WHERE user_id = ?", (user_id,))
    row = txn.fetchone()
    return row[0] if row else None


def set_space_txn(txn: Any, user_id: str, space_room_id: str) -> str:
    txn.execute(
        "INSERT INTO wangxin_circle_spaces (user_id, space_room_id) VALUES (?, ?) ON CONFLICT (user_id) DO NOTHING",
        (user_id, space_room_id),
    )
    stored = get_space_txn(txn, user_id)
    assert stored is not None
    return stored


def is_filed_txn(txn: Any, user_id: str, room_id: str) -> bool:
    txn.execute(
        "SELECT 1 FROM wangxin_circle_space_children WHERE user_id = ? AND room_id = ?", (user_id, room_id)
    )
    return txn.fetchone() is not None


def set_filed_txn(txn: Any, user_id: str, room_id: str, filed: bool) -> None:
    if filed:
        txn.execute(
            "INSERT INTO wangxin_circle_space_children (user_id, room_id) VALUES (?, ?) ON CONFLICT DO NOTHING",
            (user_id, room_id),
        )
    else:
        txn.execute(
            "DELETE FROM wangxin_circle_space_children WHERE user_id = ? AND room_id = ?", (user_id, room_id)
        )
