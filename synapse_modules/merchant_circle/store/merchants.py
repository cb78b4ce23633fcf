"""SQL of merchants and the creation of their circles (``wangxin_merchants``,
``wangxin_circle_creations``)."""

from __future__ import annotations

from typing import Any

import attrs


@attrs.frozen
class Merchant:
    user_id: str
    name: str
    avatar_url: str | None
    circle_room_id: str


def _merchant(row: Any) -> Merchant | None:
    return Merchant(row[0], row[1], row[2], row[3]) if row else None


def get_merchant_txn(txn: Any, user_id: str) -> Merchant | None:
    txn.execute(
        "SELECT user_id, name, avatar_url, circle_room_id FROM wangxin_merchants WHERE user_id = ?", (user_id,)
    )
    return _merchant(txn.fetchone())


def get_merchant_by_room_txn(txn: Any, room_id: str) -> Merchant | None:
    txn.execute(
        "SELECT user_id, name, avatar_url, circle_room_id FROM wangxin_merchants WHERE circle_room_id = ?",
        (room_id,),
    )
    return _merchant(txn.fetchone())


def all_circles_txn(txn: Any) -> list[tuple[str, str]]:
    txn.execute("SELECT user_id, circle_room_id FROM wangxin_merchants")
    return [(r[0], r[1]) for r in txn.fetchall()]


def insert_merchant_txn(txn: Any, merchant: Merchant, now: int) -> Merchant:
    """Insert unless the merchant exists already; returns the stored row (the first one wins).
    The circle's creation is over: its marker goes."""
    txn.execute(
        "INSERT INTO wangxin_merchants (user_id, name, avatar_url, circle_room_id, created_ts)"
        " VALUES (?, ?, ?, ?, ?) ON CONFLICT (user_id) DO NOTHING",
        (merchant.user_id, merchant.name, merchant.avatar_url, merchant.circle_room_id, now),
    )
    txn.execute("DELETE FROM wangxin_circle_creations WHERE merchant_id = ?", (merchant.user_id,))
    stored = get_merchant_txn(txn, merchant.user_id)
    assert stored is not None
    return stored


def start_circle_creation_txn(txn: Any, merchant_id: str, now: int) -> bool:
    """Mark that a circle is being made for ``merchant_id``; returns whether an earlier attempt
    was marked and never finished (its room, if it got that far, is to be found and reused)."""
    txn.execute("SELECT 1 FROM wangxin_circle_creations WHERE merchant_id = ?", (merchant_id,))
    if txn.fetchone() is not None:
        return True
    txn.execute("INSERT INTO wangxin_circle_creations (merchant_id, started_ts) VALUES (?, ?)", (merchant_id, now))
    return False


def update_merchant_profile_txn(txn: Any, user_id: str, name: str, avatar_url: str | None) -> None:
    txn.execute("UPDATE wangxin_merchants SET name = ?, avatar_url = ? WHERE user_id = ?", (name, avatar_url, user_id))


def merchant_ids_among_txn(txn: Any, user_ids: list[str]) -> set[str]:
    if not user_ids:
        return set()
    marks = ", ".join("?" for _ in user_ids)
    txn.execute(f"SELECT user_id FROM wangxin_merchants WHERE user_id IN ({marks})", tuple(user_ids))
    return {r[0] for r in txn.fetchall()}
