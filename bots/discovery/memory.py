"""What the discovery bot remembers about the people who chat with it, in one SQLite file in its
``store_dir`` (``memory.db``): the DM where each one talks to it (where notices go), the numbers
of the last lists it showed them, the bottle each one last picked, which notices it already gave
(so none is given twice, also across a restart), and its position in the feed of changes.

Nothing here is a copy of discovery's state: that stays on the server, and every command asks
the server again. The bot is one process; each call is a short local transaction.
"""

from __future__ import annotations

import json
import os
import sqlite3
import time

DAY_MS = 24 * 3600 * 1000
# How long a notice given, a list's numbers and the bottle picked last are remembered: longer
# than a request stays open (3 days by default) and a bottle floats (a week).
KEEP_MS = 8 * DAY_MS

_SCHEMA = (
    "CREATE TABLE IF NOT EXISTS dm_rooms (user_id TEXT PRIMARY KEY, room_id TEXT NOT NULL, ts INTEGER NOT NULL)",
    """CREATE TABLE IF NOT EXISTS lists (user_id TEXT NOT NULL, kind TEXT NOT NULL, numbers TEXT NOT NULL,
       ts INTEGER NOT NULL, PRIMARY KEY (user_id, kind))""",
    "CREATE TABLE IF NOT EXISTS picked (user_id TEXT PRIMARY KEY, bottle_id TEXT NOT NULL, ts INTEGER NOT NULL)",
    """CREATE TABLE IF NOT EXISTS told (user_id TEXT NOT NULL, request_id TEXT NOT NULL, what TEXT NOT NULL,
       ts INTEGER NOT NULL, PRIMARY KEY (user_id, request_id, what))""",
    "CREATE INDEX IF NOT EXISTS told_ts ON told (ts)",
    "CREATE TABLE IF NOT EXISTS cursors (name TEXT PRIMARY KEY, value TEXT NOT NULL)",
)


def _now() -> int:
    return int(time.time() * 1000)


class BotMemory:
    def __init__(self, directory: str):
        os.makedirs(directory, exist_ok=True)
        path = os.path.join(directory, "memory.db")
        self._db = sqlite3.connect(path, isolation_level=None)
        os.chmod(path, 0o600)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        for statement in _SCHEMA:
            self._db.execute(statement)

    def close(self) -> None:
        self._db.close()

    # -- where each person talks to the bot ---------------------------------------------------

    def set_dm_room(self, user_id: str, room_id: str) -> None:
        self._db.execute("INSERT INTO dm_rooms (user_id, room_id, ts) VALUES (?, ?, ?)"
                         " ON CONFLICT (user_id) DO UPDATE SET room_id = excluded.room_id, ts = excluded.ts",
                         (user_id, room_id, _now()))

    def dm_room(self, user_id: str) -> str | None:
        row = self._db.execute("SELECT room_id FROM dm_rooms WHERE user_id = ?", (user_id,)).fetchone()
        return str(row[0]) if row else None

    def forget_dm_room(self, room_id: str) -> None:
        self._db.execute("DELETE FROM dm_rooms WHERE room_id = ?", (room_id,))

    # -- numbered lists ------------------------------------------------------------------------

    def set_list(self, user_id: str, kind: str, numbers: dict[int, str]) -> None:
        self._db.execute("INSERT INTO lists (user_id, kind, numbers, ts) VALUES (?, ?, ?, ?)"
                         " ON CONFLICT (user_id, kind) DO UPDATE SET numbers = excluded.numbers, ts = excluded.ts",
                         (user_id, kind, json.dumps({str(n): i for n, i in numbers.items()}), _now()))

    def list_of(self, user_id: str, kind: str) -> dict[int, str]:
        row = self._db.execute("SELECT numbers FROM lists WHERE user_id = ? AND kind = ?", (user_id, kind)).fetchone()
        if not row:
            return {}
        return {int(n): str(i) for n, i in json.loads(row[0]).items()}

    # -- the bottle last picked ------------------------------------------------------------------

    def set_picked(self, user_id: str, bottle_id: str) -> None:
        self._db.execute("INSERT INTO picked (user_id, bottle_id, ts) VALUES (?, ?, ?)"
                         " ON CONFLICT (user_id) DO UPDATE SET bottle_id = excluded.bottle_id, ts = excluded.ts",
                         (user_id, bottle_id, _now()))

    def picked(self, user_id: str) -> str | None:
        row = self._db.execute("SELECT bottle_id FROM picked WHERE user_id = ?", (user_id,)).fetchone()
        return str(row[0]) if row else None

    def forget_person(self, user_id: str) -> None:
        """They left discovery: their lists and the bottle they picked mean nothing any more."""
        self._db.execute("DELETE FROM picked WHERE user_id = ?", (user_id,))
        self._db.execute("DELETE FROM lists WHERE user_id = ?", (user_id,))

    # -- notices given ---------------------------------------------------------------------------

    def mark_told(self, user_id: str, request_id: str, what: str) -> bool:
        """Record that ``user_id`` heard ``what`` of the request; False if they already had."""
        cursor = self._db.execute("INSERT INTO told (user_id, request_id, what, ts) VALUES (?, ?, ?, ?)"
                                  " ON CONFLICT DO NOTHING", (user_id, request_id, what, _now()))
        return cursor.rowcount == 1

    def was_told(self, user_id: str, request_id: str, what: str) -> bool:
        row = self._db.execute("SELECT 1 FROM told WHERE user_id = ? AND request_id = ? AND what = ?",
                               (user_id, request_id, what)).fetchone()
        return row is not None

    def prune(self) -> None:
        for table in ("told", "lists", "picked"):
            self._db.execute(f"DELETE FROM {table} WHERE ts < ?", (_now() - KEEP_MS,))

    # -- the feed's cursor -----------------------------------------------------------------------

    def cursor(self, name: str) -> str | None:
        row = self._db.execute("SELECT value FROM cursors WHERE name = ?", (name,)).fetchone()
        return str(row[0]) if row else None

    def set_cursor(self, name: str, value: str) -> None:
        self._db.execute("INSERT INTO cursors (name, value) VALUES (?, ?)"
                         " ON CONFLICT (name) DO UPDATE SET value = excluded.value", (name, value))
