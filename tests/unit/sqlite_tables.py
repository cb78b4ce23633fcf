"""An in-memory SQLite cursor with the merchant circle's tables and any other module's on top,
each created twice (every process runs the creation: it must be idempotent)."""

from __future__ import annotations

import contextlib
import sqlite3
from collections.abc import Iterator
from typing import Any

from synapse_modules.merchant_circle.store.schema import create_schema_txn


@contextlib.contextmanager
def tables(*schemas: Any) -> Iterator[Any]:
    conn = sqlite3.connect(":memory:")
    cur: Any = conn.cursor()
    for _ in range(2):
        create_schema_txn(cur)
        for schema in schemas:
            schema.create_txn(cur)
    try:
        yield cur
    finally:
        conn.close()
