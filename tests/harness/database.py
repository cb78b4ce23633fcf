"""Read a running stack's Synapse database directly, as an auditor would: for tests that check
what is (and is not) stored. The connection settings come from the stack's homeserver.yaml, so
this works on SQLite (``homeserver.db``) and PostgreSQL alike. Read-only."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import yaml

from wangxin_stack.running import RunningStack


def _database_config(stack: RunningStack) -> dict[str, Any]:
    with open(stack.info["homeserver_config"], encoding="utf-8") as f:
        return dict(yaml.safe_load(f)["database"])


@contextmanager
def _cursor(stack: RunningStack) -> Iterator[tuple[Any, str]]:
    """A cursor and the engine's placeholder."""
    config = _database_config(stack)
    if config["name"] == "sqlite3":
        import sqlite3

        conn = sqlite3.connect(f"file:{config['args']['database']}?mode=ro", uri=True, timeout=30)
        try:
            yield conn.cursor(), "?"
        finally:
            conn.close()
        return
    import psycopg2

    args = {k: v for k, v in config["args"].items() if k in ("dbname", "user", "password", "host", "port")}
    conn = psycopg2.connect(**args)
    conn.set_session(readonly=True, autocommit=True)
    try:
        yield conn.cursor(), "%s"
    finally:
        conn.close()


def query(stack: RunningStack, sql: str, args: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
    """Run one SELECT (``?`` placeholders) on the stack's Synapse database."""
    with _cursor(stack) as (cursor, mark):
        cursor.execute(sql.replace("?", mark), tuple(args))
        return [tuple(r) for r in cursor.fetchall()]


def tables(stack: RunningStack) -> list[str]:
    with _cursor(stack) as (cursor, _):
        if _database_config(stack)["name"] == "sqlite3":
            cursor.execute("SELECT name FROM sqlite_master WHERE type = 'table'")
        else:
            cursor.execute("SELECT table_name FROM information_schema.tables"
                           " WHERE table_schema = current_schema() AND table_type = 'BASE TABLE'")
        return sorted(r[0] for r in cursor.fetchall())


def rows_containing(stack: RunningStack, needles: Sequence[str]) -> list[tuple[str, str]]:
    """Every row, of every table, whose text holds one of ``needles``: (table, the row as text).
    Each value is read as text (bytes decoded leniently), so numbers and JSON count too."""
    found = []
    with _cursor(stack) as (cursor, _):
        for table in tables(stack):
            cursor.execute(f'SELECT * FROM "{table}"')
            for row in cursor.fetchall():
                text = " ".join(_as_text(v) for v in row)
                if any(n in text for n in needles):
                    found.append((table, text[:300]))
    return found


def _as_text(value: Any) -> str:
    if isinstance(value, (bytes, bytearray, memoryview)):
        return bytes(value).decode("utf-8", "replace")
    return str(value)
