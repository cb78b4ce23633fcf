"""How far the module has read Synapse's streams, and one-off markers (``wangxin_circle_positions``)."""

from __future__ import annotations

from typing import Any


def get_position_txn(txn: Any, name: str) -> int | None:
    txn.execute("SELECT position FROM wangxin_circle_positions WHERE name = ?", (name,))
    row = txn.fetchone()
    return int(row[0]) if row else None


def set_position_txn(txn: Any, name: str, position: int) -> None:
    txn.execute(
        "INSERT INTO wangxin_circle_positions (name, position) VALUES (?, ?)"
        " ON CONFLICT (name) DO UPDATE SET position = excluded.position",
        (name, position),
    )
