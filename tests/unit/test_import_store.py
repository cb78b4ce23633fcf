"""Contact-import SQL (bridges/import_store.py) against SQLite directly; the e2e tests run it on
PostgreSQL too."""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from typing import Any

from bridges.database import Txn, _migrate_txn
from bridges.import_store import _add_placeholder_txn, _forget_txn, _placeholders_for_txn


class CountingTxn(Txn):
    def __init__(self, cursor: Any):
        super().__init__(cursor, "sqlite")
        self.statements = 0

    def execute(self, sql: str, params: Sequence[Any] = ()) -> Txn:
        self.statements += 1
        return super().execute(sql, params)


def _txn() -> CountingTxn:
    txn = CountingTxn(sqlite3.connect(":memory:").cursor())
    _migrate_txn(txn)
    return txn


def _placeholders(txn: Txn, importer: str, count: int) -> None:
    for n in range(count):
        _add_placeholder_txn(txn, f"@wx_p_{importer[1]}{n}:x", importer, f"tel:+86138{n:08d}", f"P{n}",
                             f"wechat:wxid_{n}", "WeChat", [f"+86138{n:08d}"])


def test_forget_deletes_only_the_users_records_in_a_fixed_number_of_statements() -> None:
    # The bridge has one SQLite connection: forget used to delete each placeholder's numbers in
    # a statement of its own, scanning the phone-keyed table once per placeholder (2.2 s for
    # 5,000) while the inbox waited. Counted in statements, not seconds.
    txn = _txn()
    _placeholders(txn, "@alice:x", 300)
    _placeholders(txn, "@bob:x", 3)
    txn.statements = 0
    ghosts, _ = _forget_txn(txn, "@alice:x")
    assert len(ghosts) == 300
    assert txn.statements < 20
    assert txn.execute("SELECT COUNT(*) FROM import_placeholder_phones").fetchone() == (3,)
    assert [p.importer for p in _placeholders_for_txn(txn, "+8613800000001", None)] == ["@bob:x"]
