"""Every SQL statement of the contact-import module, run through ``api.run_db_interaction``.

Synapse's cursor turns ``?`` into the engine's placeholder, so one text serves SQLite and PostgreSQL.
"""

from __future__ import annotations

import time
from typing import Any

from synapse_modules._store import Schema

DISCOVERABLE_TABLE = "wangxin_import_discoverable"

STATEMENTS = (
    # Users who let other people's imports find them by their phone numbers (off by default).
    f"""CREATE TABLE IF NOT EXISTS {DISCOVERABLE_TABLE} (
        user_id TEXT NOT NULL PRIMARY KEY,
        since_ts BIGINT NOT NULL
    )""",
    # Numbers looked up per importer per UTC day, for the per-importer lookup limit.
    """CREATE TABLE IF NOT EXISTS wangxin_import_lookup_quota (
        user_id TEXT NOT NULL,
        day BIGINT NOT NULL,
        used BIGINT NOT NULL,
        PRIMARY KEY (user_id, day)
    )""",
    # Numbers an inviter texted a personal SMS invitation to (msisdn digits): their sign-up is
    # told to the bridge for those inviters even when the new user is not discoverable.
    """CREATE TABLE IF NOT EXISTS wangxin_import_invited (
        inviter TEXT NOT NULL,
        address TEXT NOT NULL,
        created_ts BIGINT NOT NULL,
        PRIMARY KEY (inviter, address)
    )""",
    "CREATE INDEX IF NOT EXISTS wangxin_import_invited_address ON wangxin_import_invited (address)",
    # Phone numbers bound to accounts, waiting to be told to the bridge (durable outbox).
    """CREATE TABLE IF NOT EXISTS wangxin_import_arrivals (
        user_id TEXT NOT NULL,
        address TEXT NOT NULL,
        created_ts BIGINT NOT NULL,
        PRIMARY KEY (user_id, address)
    )""",
)
SCHEMA = Schema(STATEMENTS)

DAY_MS = 24 * 3600 * 1000


def now_ms() -> int:
    return int(time.time() * 1000)


create_schema_txn = SCHEMA.create_txn


def is_discoverable_txn(txn: Any, user_id: str) -> bool:
    txn.execute(f"SELECT 1 FROM {DISCOVERABLE_TABLE} WHERE user_id = ?", (user_id,))
    return txn.fetchone() is not None


def set_discoverable_txn(txn: Any, user_id: str, on: bool) -> None:
    if on:
        txn.execute(
            f"INSERT INTO {DISCOVERABLE_TABLE} (user_id, since_ts) VALUES (?, ?) ON CONFLICT (user_id) DO NOTHING",
            (user_id, now_ms()),
        )
    else:
        txn.execute(f"DELETE FROM {DISCOVERABLE_TABLE} WHERE user_id = ?", (user_id,))
        txn.execute("DELETE FROM wangxin_import_arrivals WHERE user_id = ?", (user_id,))


def take_lookup_quota_txn(txn: Any, user_id: str, count: int, limit: int) -> int:
    """Reserve ``count`` lookups for today; returns 0 if granted, else ms until the quota resets."""
    now = now_ms()
    day = now // DAY_MS
    txn.execute("SELECT used FROM wangxin_import_lookup_quota WHERE user_id = ? AND day = ?", (user_id, day))
    row = txn.fetchone()
    used = int(row[0]) if row else 0
    if used + count > limit:
        return int((day + 1) * DAY_MS - now)
    if row:
        txn.execute(
            "UPDATE wangxin_import_lookup_quota SET used = used + ? WHERE user_id = ? AND day = ?",
            (count, user_id, day),
        )
    else:
        txn.execute(
            "INSERT INTO wangxin_import_lookup_quota (user_id, day, used) VALUES (?, ?, ?)", (user_id, day, count)
        )
    txn.execute("DELETE FROM wangxin_import_lookup_quota WHERE day < ?", (day - 1,))
    return 0


def ms_until_next_day() -> int:
    """Until the lookup quota renews (00:00 UTC)."""
    now = now_ms()
    return int((now // DAY_MS + 1) * DAY_MS - now)


def lookups_used_today_txn(txn: Any, user_id: str) -> int:
    txn.execute("SELECT used FROM wangxin_import_lookup_quota WHERE user_id = ? AND day = ?",
                (user_id, now_ms() // DAY_MS))
    row = txn.fetchone()
    return int(row[0]) if row else 0


def reset_lookups_today_txn(txn: Any, user_id: str) -> None:
    txn.execute("DELETE FROM wangxin_import_lookup_quota WHERE user_id = ? AND day = ?",
                (user_id, now_ms() // DAY_MS))


def add_arrivals_txn(txn: Any, user_id: str, addresses: list[str]) -> None:
    for address in addresses:
        txn.execute(
            "INSERT INTO wangxin_import_arrivals (user_id, address, created_ts) VALUES (?, ?, ?)"
            " ON CONFLICT (user_id, address) DO NOTHING",
            (user_id, address, now_ms()),
        )


def pending_arrivals_txn(txn: Any, limit: int) -> list[tuple[str, str, list[str] | None]]:
    """``(user_id, address, invited_by)``: arrivals of discoverable users (``invited_by`` None), and
    of other users whose number someone invited by SMS (told for those inviters only). Other
    arrivals are dropped (turning ``discoverable on`` queues the user's numbers again)."""
    txn.execute(
        f"DELETE FROM wangxin_import_arrivals WHERE user_id NOT IN (SELECT user_id FROM {DISCOVERABLE_TABLE})"
        " AND address NOT IN (SELECT address FROM wangxin_import_invited)"
    )
    txn.execute(
        f"SELECT a.user_id, a.address, d.user_id FROM wangxin_import_arrivals AS a"
        f" LEFT JOIN {DISCOVERABLE_TABLE} AS d ON d.user_id = a.user_id ORDER BY a.created_ts LIMIT ?",
        (limit,),
    )
    rows = [(str(r[0]), str(r[1]), r[2] is not None) for r in txn.fetchall()]
    result: list[tuple[str, str, list[str] | None]] = []
    for user_id, address, discoverable in rows:
        invited_by: list[str] | None = None
        if not discoverable:
            txn.execute("SELECT inviter FROM wangxin_import_invited WHERE address = ? ORDER BY inviter", (address,))
            invited_by = [str(r[0]) for r in txn.fetchall() if r[0] != user_id]
        result.append((user_id, address, invited_by))
    return result


def set_invited_txn(txn: Any, inviter: str, address: str, invited: bool) -> None:
    if invited:
        txn.execute(
            "INSERT INTO wangxin_import_invited (inviter, address, created_ts) VALUES (?, ?, ?)"
            " ON CONFLICT (inviter, address) DO NOTHING",
            (inviter, address, now_ms()),
        )
    else:
        txn.execute("DELETE FROM wangxin_import_invited WHERE inviter = ? AND address = ?", (inviter, address))


def invited_any_txn(txn: Any, inviter: str, addresses: list[str]) -> bool:
    for address in addresses:
        txn.execute("SELECT 1 FROM wangxin_import_invited WHERE inviter = ? AND address = ?", (inviter, address))
        if txn.fetchone() is not None:
            return True
    return False


def delete_arrivals_txn(txn: Any, arrivals: list[tuple[str, str]]) -> None:
    for user_id, address in arrivals:
        txn.execute("DELETE FROM wangxin_import_arrivals WHERE user_id = ? AND address = ?", (user_id, address))
