"""SQL of a circle's further rooms (``wangxin_circle_shards``) and of the mirrors of its posts
(``wangxin_circle_fanouts``, ``wangxin_circle_mirrors``)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any


def shards_of_txn(txn: Any, merchant_id: str) -> list[tuple[int, str | None, int]]:
    """``(shard_no, room_id or None while being made, started_ts)``, in order."""
    txn.execute(
        "SELECT shard_no, room_id, started_ts FROM wangxin_circle_shards WHERE merchant_id = ? ORDER BY shard_no",
        (merchant_id,),
    )
    return [(int(r[0]), r[1], int(r[2])) for r in txn.fetchall()]


def all_shard_rooms_txn(txn: Any) -> list[tuple[str, str]]:
    txn.execute("SELECT merchant_id, room_id FROM wangxin_circle_shards WHERE room_id IS NOT NULL")
    return [(r[0], r[1]) for r in txn.fetchall()]


def merchant_of_shard_txn(txn: Any, room_id: str) -> str | None:
    txn.execute("SELECT merchant_id FROM wangxin_circle_shards WHERE room_id = ?", (room_id,))
    row = txn.fetchone()
    return row[0] if row else None


def claim_shard_txn(txn: Any, merchant_id: str, shard_no: int, now: int, stale_before: int) -> bool:
    """Claim the making of shard ``shard_no``: true if this caller makes it (a new claim, or one
    left unfinished since before ``stale_before`` by a process that stopped)."""
    txn.execute(
        "SELECT room_id, started_ts FROM wangxin_circle_shards WHERE merchant_id = ? AND shard_no = ?",
        (merchant_id, shard_no),
    )
    row = txn.fetchone()
    if row is None:
        txn.execute(
            "INSERT INTO wangxin_circle_shards (merchant_id, shard_no, room_id, started_ts) VALUES (?, ?, NULL, ?)",
            (merchant_id, shard_no, now),
        )
        return True
    if row[0] is None and int(row[1]) < stale_before:
        txn.execute(
            "UPDATE wangxin_circle_shards SET started_ts = ? WHERE merchant_id = ? AND shard_no = ?"
            " AND room_id IS NULL AND started_ts = ?",
            (now, merchant_id, shard_no, row[1]),
        )
        return bool(txn.rowcount == 1)
    return False


def set_shard_room_txn(txn: Any, merchant_id: str, shard_no: int, room_id: str) -> None:
    txn.execute(
        "UPDATE wangxin_circle_shards SET room_id = ? WHERE merchant_id = ? AND shard_no = ?",
        (room_id, merchant_id, shard_no),
    )


def add_fanout_txn(txn: Any, event_id: str, merchant_id: str, now: int) -> None:
    txn.execute(
        "INSERT INTO wangxin_circle_fanouts (event_id, merchant_id, created_ts) VALUES (?, ?, ?)"
        " ON CONFLICT (event_id) DO NOTHING",
        (event_id, merchant_id, now),
    )


def open_fanouts_txn(txn: Any, created_before: int, limit: int) -> list[tuple[str, str, int]]:
    """Fan-outs not finished that began before ``created_before``: ``(event_id, merchant, created)``."""
    txn.execute(
        "SELECT event_id, merchant_id, created_ts FROM wangxin_circle_fanouts"
        " WHERE done_ts IS NULL AND created_ts < ? ORDER BY created_ts LIMIT ?",
        (created_before, limit),
    )
    return [(r[0], r[1], int(r[2])) for r in txn.fetchall()]


def finish_fanout_txn(txn: Any, event_id: str, now: int) -> None:
    txn.execute("UPDATE wangxin_circle_fanouts SET done_ts = ? WHERE event_id = ?", (now, event_id))


def drop_fanout_txn(txn: Any, event_id: str) -> None:
    """The event never got persisted (a later check refused it): nothing to mirror."""
    txn.execute("DELETE FROM wangxin_circle_fanouts WHERE event_id = ?", (event_id,))


def mirrors_of_txn(txn: Any, event_id: str) -> dict[str, str]:
    """room id -> the mirror of ``event_id`` there."""
    txn.execute("SELECT room_id, mirror_event_id FROM wangxin_circle_mirrors WHERE event_id = ?", (event_id,))
    return {r[0]: r[1] for r in txn.fetchall()}


def add_mirror_txn(txn: Any, event_id: str, room_id: str, mirror_event_id: str) -> None:
    txn.execute(
        "INSERT INTO wangxin_circle_mirrors (event_id, room_id, mirror_event_id) VALUES (?, ?, ?)"
        " ON CONFLICT (event_id, room_id) DO NOTHING",
        (event_id, room_id, mirror_event_id),
    )


def copies_by_room_txn(txn: Any, event_ids: Sequence[str]) -> dict[str, dict[str, str]]:
    """room -> {copy's event id: the first room's event} for these first-room events (stats: the
    readers of a copy are readers of the post)."""
    if not event_ids:
        return {}
    marks = ", ".join("?" for _ in event_ids)
    txn.execute(
        f"SELECT room_id, mirror_event_id, event_id FROM wangxin_circle_mirrors WHERE event_id IN ({marks})",
        tuple(event_ids),
    )
    rooms: dict[str, dict[str, str]] = {}
    for room_id, copy, original in txn.fetchall():
        rooms.setdefault(room_id, {})[copy] = original
    return rooms


def latest_posts_txn(txn: Any, merchant_id: str, limit: int) -> list[str]:
    """The event ids of the circle's latest posts (first-room events), oldest first."""
    txn.execute(
        "SELECT event_id FROM wangxin_circle_posts WHERE merchant_id = ? ORDER BY ts DESC LIMIT ?",
        (merchant_id, limit),
    )
    return [r[0] for r in txn.fetchall()][::-1]
