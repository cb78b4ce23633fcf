"""SQL of auto-reply settings and support rooms (``wangxin_account_autoreplies``,
``wangxin_account_support_rooms``; see ``schema``)."""

from __future__ import annotations

from typing import Any

import attrs


@attrs.frozen
class SupportRoom:
    room_id: str
    account_id: str
    user_id: str  # the follower
    menu_ts: int  # when the server last sent the menu (or a notice) there by itself
    person_ts: int  # when a person of the account last wrote there


def get_autoreply_txn(txn: Any, account_id: str) -> tuple[str, int] | None:
    """``(settings as JSON, updated_ts)``, or ``None`` when the account has none."""
    txn.execute("SELECT config, updated_ts FROM wangxin_account_autoreplies WHERE account_id = ?", (account_id,))
    row = txn.fetchone()
    return (row[0], int(row[1])) if row else None


def autoreply_if_changed_txn(txn: Any, account_id: str, known_ts: int | None) -> tuple[int, str | None] | None:
    """``(updated_ts, settings)`` with the settings left out (``None``) when ``known_ts`` is
    still current: a process that parsed them reads one small row per message, not the JSON."""
    txn.execute("SELECT updated_ts FROM wangxin_account_autoreplies WHERE account_id = ?", (account_id,))
    row = txn.fetchone()
    if row is None:
        return None
    if int(row[0]) == known_ts:
        return known_ts, None
    stored = get_autoreply_txn(txn, account_id)
    return (stored[1], stored[0]) if stored else None


def set_autoreply_txn(txn: Any, account_id: str, config: str, now: int) -> int:
    """Store the settings; returns their ``updated_ts`` (always later than the one replaced, so
    every process sees the change even within one millisecond)."""
    txn.execute("SELECT updated_ts FROM wangxin_account_autoreplies WHERE account_id = ?", (account_id,))
    row = txn.fetchone()
    updated = max(now, int(row[0]) + 1) if row else now
    txn.execute(
        "INSERT INTO wangxin_account_autoreplies (account_id, config, updated_ts) VALUES (?, ?, ?)"
        " ON CONFLICT (account_id) DO UPDATE SET config = excluded.config, updated_ts = excluded.updated_ts",
        (account_id, config, updated),
    )
    return updated


def support_room_of_txn(txn: Any, account_id: str, user_id: str) -> str | None:
    txn.execute("SELECT room_id FROM wangxin_account_support_rooms WHERE account_id = ? AND user_id = ?",
                (account_id, user_id))
    row = txn.fetchone()
    return str(row[0]) if row else None


def insert_support_room_txn(txn: Any, room_id: str, account_id: str, user_id: str, now: int) -> str:
    """Record ``room_id`` as the follower's support room unless one is recorded already (made at
    the same time by another process); returns the recorded one."""
    txn.execute(
        "INSERT INTO wangxin_account_support_rooms (room_id, account_id, user_id, created_ts) VALUES (?, ?, ?, ?)"
        " ON CONFLICT DO NOTHING",
        (room_id, account_id, user_id, now),
    )
    stored = support_room_of_txn(txn, account_id, user_id)
    assert stored is not None
    return stored


def get_support_room_txn(txn: Any, room_id: str) -> SupportRoom | None:
    txn.execute(
        "SELECT room_id, account_id, user_id, menu_ts, person_ts FROM wangxin_account_support_rooms WHERE room_id = ?",
        (room_id,),
    )
    row = txn.fetchone()
    return SupportRoom(row[0], row[1], row[2], int(row[3]), int(row[4])) if row else None


def claim_menu_txn(txn: Any, room_id: str, now: int, quiet_ms: int) -> bool:
    """Take the room's turn for an automatic menu (or notice): true for one caller per
    ``quiet_ms``, however many messages arrive at once."""
    txn.execute("UPDATE wangxin_account_support_rooms SET menu_ts = ? WHERE room_id = ? AND menu_ts <= ?",
                (now, room_id, now - quiet_ms))
    return bool(txn.rowcount == 1)


def set_person_wrote_txn(txn: Any, room_id: str, now: int) -> None:
    txn.execute("UPDATE wangxin_account_support_rooms SET person_ts = ? WHERE room_id = ? AND person_ts < ?",
                (now, room_id, now))


def support_room_count_txn(txn: Any, account_id: str) -> int:
    txn.execute("SELECT COUNT(*) FROM wangxin_account_support_rooms WHERE account_id = ?", (account_id,))
    return int(txn.fetchone()[0])
