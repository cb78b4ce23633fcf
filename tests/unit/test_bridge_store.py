"""The bridge's SQL, run against SQLite directly (the e2e tests run it on PostgreSQL too)."""

from __future__ import annotations

import sqlite3

from bridges.database import MIGRATIONS, Txn, _migrate_txn, adapt_sql
from bridges.store import _accept_transaction_txn, _mark_processed_txn, _pending_events_txn


def _txn() -> Txn:
    conn = sqlite3.connect(":memory:")
    return Txn(conn.cursor(), "sqlite")


def test_migrations_are_idempotent() -> None:
    txn = _txn()
    assert _migrate_txn(txn) == len(MIGRATIONS)
    assert _migrate_txn(txn) == len(MIGRATIONS)
    assert txn.execute("SELECT version FROM schema_version").fetchall() == [(len(MIGRATIONS),)]


def test_a_transaction_is_accepted_once_and_its_events_queued_once() -> None:
    txn = _txn()
    _migrate_txn(txn)
    e1 = {"event_id": "$1", "room_id": "!r", "type": "m.room.message"}
    e2 = {"event_id": "$2", "room_id": "!r", "type": "m.room.message"}
    assert _accept_transaction_txn(txn, "t1", [e1]) is True
    assert _accept_transaction_txn(txn, "t1", [dict(e1, unsigned={"age": 5})]) is False  # a retry
    # The same event in a new transaction is not queued twice.
    assert _accept_transaction_txn(txn, "t2", [e1, e2, {"no": "ids"}]) is True
    pending = _pending_events_txn(txn, 10)
    assert [p.event["event_id"] for p in pending] == ["$1", "$2"]
    _mark_processed_txn(txn, pending[0].seq, None)
    assert [p.event["event_id"] for p in _pending_events_txn(txn, 10)] == ["$2"]


def test_sql_is_adapted_per_engine() -> None:
    sql = "CREATE TABLE x (id {serial}, ts {bigint}); SELECT * FROM x WHERE a = ? AND b = ?"
    assert "%s" in adapt_sql(sql, "postgres") and "BIGSERIAL" in adapt_sql(sql, "postgres")
    assert "?" in adapt_sql(sql, "sqlite") and "AUTOINCREMENT" in adapt_sql(sql, "sqlite")


def test_a_reused_transaction_id_with_other_events_is_a_new_transaction() -> None:
    """Synapse on SQLite numbers transactions from 1 again after a restart."""
    txn = _txn()
    _migrate_txn(txn)
    assert _accept_transaction_txn(txn, "1", [{"event_id": "$a", "room_id": "!r"}]) is True
    assert _accept_transaction_txn(txn, "1", [{"event_id": "$b", "room_id": "!r"}]) is True
    assert _accept_transaction_txn(txn, "1", [{"event_id": "$b", "room_id": "!r"}]) is False
    assert [p.event["event_id"] for p in _pending_events_txn(txn, 10)] == ["$a", "$b"]
