"""Every SQL statement of the mute-exemptions module, run through ``api.run_db_interaction``.

Synapse's cursor turns ``?`` into the engine's placeholder, so one text serves SQLite and PostgreSQL.
"""

from __future__ import annotations

import json
import time
from typing import Any

import attrs

from synapse_modules._store import Schema
from synapse_modules.mute_rules import MuteSettings

STATEMENTS = (
    """CREATE TABLE IF NOT EXISTS wangxin_mute_settings (
        user_id TEXT NOT NULL,
        room_id TEXT NOT NULL,
        settings TEXT NOT NULL,
        dormant BOOLEAN NOT NULL DEFAULT FALSE,
        updated_ts BIGINT NOT NULL,
        PRIMARY KEY (user_id, room_id)
    )""",
    "CREATE INDEX IF NOT EXISTS wangxin_mute_settings_room ON wangxin_mute_settings (room_id)",
    # owns_mute_rule: Wangxin wrote the room's mute rule (no client mute was there), so leaving
    # the room removes it; a client's own mute rule is left alone.
    """CREATE TABLE IF NOT EXISTS wangxin_vips (
        user_id TEXT NOT NULL PRIMARY KEY,
        vips TEXT NOT NULL,
        updated_ts BIGINT NOT NULL
    )""",
)
# Columns added after the first release: (table, column, definition); added where missing. Rows
# from before owns_mute_rule keep their room's mute rule on leave, as they always did.
ADDED_COLUMNS = (
    ("wangxin_mute_settings", "owns_mute_rule", "BOOLEAN NOT NULL DEFAULT FALSE"),
)


@attrs.frozen
class StoredMute:
    settings: MuteSettings
    dormant: bool
    owns_mute_rule: bool


def _now() -> int:
    return int(time.time() * 1000)


SCHEMA = Schema(STATEMENTS, ADDED_COLUMNS)


def settings_from_row(room_id: str, data: str) -> MuteSettings:
    raw = json.loads(data)
    return MuteSettings(
        room_id=room_id,
        exempt_users=tuple(raw.get("exempt_users", [])),
        exempt_moderators=bool(raw.get("exempt_moderators")),
        exempt_mentions=bool(raw.get("exempt_mentions")),
        exempt_replies=bool(raw.get("exempt_replies")),
    )


def upsert_settings_txn(txn: Any, user_id: str, settings: MuteSettings, owns_mute_rule: bool) -> None:
    txn.execute(
        "INSERT INTO wangxin_mute_settings (user_id, room_id, settings, dormant, owns_mute_rule, updated_ts)"
        " VALUES (?, ?, ?, ?, ?, ?)"
        " ON CONFLICT (user_id, room_id) DO UPDATE SET settings = excluded.settings, dormant = excluded.dormant,"
        " owns_mute_rule = excluded.owns_mute_rule, updated_ts = excluded.updated_ts",
        (user_id, settings.room_id, json.dumps(settings.to_json()), False, owns_mute_rule, _now()),
    )


def _stored(room_id: str, row: Any) -> StoredMute:
    return StoredMute(settings_from_row(room_id, row[0]), bool(row[1]), bool(row[2]))


def get_settings_txn(txn: Any, user_id: str, room_id: str) -> StoredMute | None:
    txn.execute(
        "SELECT settings, dormant, owns_mute_rule FROM wangxin_mute_settings WHERE user_id = ? AND room_id = ?",
        (user_id, room_id),
    )
    row = txn.fetchone()
    return _stored(room_id, row) if row else None


def list_settings_txn(txn: Any, user_id: str) -> list[StoredMute]:
    txn.execute(
        "SELECT room_id, settings, dormant, owns_mute_rule FROM wangxin_mute_settings WHERE user_id = ?", (user_id,)
    )
    return [_stored(r[0], r[1:]) for r in txn.fetchall()]


def set_dormant_txn(txn: Any, user_id: str, room_id: str, dormant: bool) -> None:
    txn.execute(
        "UPDATE wangxin_mute_settings SET dormant = ?, updated_ts = ? WHERE user_id = ? AND room_id = ?",
        (dormant, _now(), user_id, room_id),
    )


def disown_mute_rule_txn(txn: Any, user_id: str, room_id: str) -> None:
    """The room's mute rule is gone (a client unmuted): a mute rule written later is the client's."""
    txn.execute(
        "UPDATE wangxin_mute_settings SET owns_mute_rule = ?, updated_ts = ? WHERE user_id = ? AND room_id = ?",
        (False, _now(), user_id, room_id),
    )


def delete_settings_txn(txn: Any, user_id: str, room_id: str) -> bool:
    txn.execute("DELETE FROM wangxin_mute_settings WHERE user_id = ? AND room_id = ?", (user_id, room_id))
    return bool(txn.rowcount)


def get_vips_txn(txn: Any, user_id: str) -> tuple[str, ...]:
    txn.execute("SELECT vips FROM wangxin_vips WHERE user_id = ?", (user_id,))
    row = txn.fetchone()
    return tuple(json.loads(row[0])) if row else ()


def set_vips_txn(txn: Any, user_id: str, vips: tuple[str, ...]) -> None:
    if not vips:
        txn.execute("DELETE FROM wangxin_vips WHERE user_id = ?", (user_id,))
        return
    txn.execute(
        "INSERT INTO wangxin_vips (user_id, vips, updated_ts) VALUES (?, ?, ?)"
        " ON CONFLICT (user_id) DO UPDATE SET vips = excluded.vips, updated_ts = excluded.updated_ts",
        (user_id, json.dumps(list(vips)), _now()),
    )


def users_with_rules_txn(txn: Any, candidates: list[str] | None) -> set[str]:
    """Users who have mute settings or VIPs; among ``candidates`` if given, else all of them."""
    found: set[str] = set()
    if candidates is None:
        txn.execute("SELECT DISTINCT user_id FROM wangxin_mute_settings")
        found.update(r[0] for r in txn.fetchall())
        txn.execute("SELECT user_id FROM wangxin_vips")
        found.update(r[0] for r in txn.fetchall())
        return found
    for start in range(0, len(candidates), 100):
        chunk = candidates[start : start + 100]
        marks = ",".join("?" for _ in chunk)
        txn.execute(f"SELECT DISTINCT user_id FROM wangxin_mute_settings WHERE user_id IN ({marks})", chunk)
        found.update(r[0] for r in txn.fetchall())
        txn.execute(f"SELECT user_id FROM wangxin_vips WHERE user_id IN ({marks})", chunk)
        found.update(r[0] for r in txn.fetchall())
    return found


def settings_pairs_txn(txn: Any, pairs: list[tuple[str, str]]) -> list[tuple[str, str]]:
    """Which of these ``(user_id, room_id)`` pairs have mute settings."""
    hits = []
    for user_id, room_id in pairs:
        txn.execute(
            "SELECT 1 FROM wangxin_mute_settings WHERE user_id = ? AND room_id = ?", (user_id, room_id)
        )
        if txn.fetchone():
            hits.append((user_id, room_id))
    return hits
