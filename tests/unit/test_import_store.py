"""Contact-import SQL (bridges/contact_import/store/) against SQLite directly; the e2e tests run it on
PostgreSQL too."""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from typing import Any

from bridges.contact_import.store import _forget_txn
from bridges.contact_import.store.arrivals import (
    _add_arrivals_txn,
    _arrival_done_txn,
    _claimed_before_txn,
    _claimed_placeholders_txn,
    _pending_arrivals_txn,
)
from bridges.contact_import.store.jobs import _create_preview_txn, _job_txn, _record_lookups_txn, _set_imported_upto_txn
from bridges.contact_import.store.rooms import _add_placeholder_txn, _mark_arrived_txn, _placeholders_for_txn
from bridges.database import Txn, _migrate_txn


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


def test_a_claim_is_kept_and_matches_only_that_importers_placeholders_not_yet_replaced() -> None:
    txn = _txn()
    _placeholders(txn, "@alice:x", 3)  # wechat:wxid_0..2
    _placeholders(txn, "@bob:x", 2)
    _add_arrivals_txn(txn, [("@erin:x", None, "wechat:wxid_1"), ("@erin:x", "+8613800000009", None)])
    pending = _pending_arrivals_txn(txn, 10)
    assert [(p[2], p[3]) for p in pending] == [(None, "wechat:wxid_1"), ("+8613800000009", None)]
    # Not announced yet: nothing to accept.
    assert _claimed_placeholders_txn(txn, "@alice:x", "@erin:x") == []
    for seq, *_ in pending:
        _arrival_done_txn(txn, seq)
    # A handled number is deleted; the claim stays for "import accept".
    assert txn.execute("SELECT phone, source_key FROM import_arrivals").fetchall() == [(None, "wechat:wxid_1")]
    assert [p.ghost_id for p in _claimed_placeholders_txn(txn, "@alice:x", "@erin:x")] == ["@wx_p_a1:x"]
    assert [p.ghost_id for p in _claimed_placeholders_txn(txn, "@bob:x", "@erin:x")] == ["@wx_p_b1:x"]
    assert _claimed_placeholders_txn(txn, "@alice:x", "@mallory:x") == []
    # A second claim of the same id is not announced again.
    _add_arrivals_txn(txn, [("@erin:x", None, "wechat:wxid_1")])
    (seq, *_), = _pending_arrivals_txn(txn, 10)
    assert _claimed_before_txn(txn, "@erin:x", "wechat:wxid_1", seq)
    assert not _claimed_before_txn(txn, "@mallory:x", "wechat:wxid_1", seq)
    # Once replaced, a placeholder is no longer offered; forget drops the user's claims.
    _mark_arrived_txn(txn, "@wx_p_a1:x", "@erin:x")
    assert _claimed_placeholders_txn(txn, "@alice:x", "@erin:x") == []
    _forget_txn(txn, "@erin:x")
    assert _claimed_placeholders_txn(txn, "@bob:x", "@erin:x") == []


def test_a_job_imported_in_parts_keeps_its_lookups_and_how_far_it_got() -> None:
    txn = _txn()
    job_id = _create_preview_txn(txn, "@a:x", "!dm:x", "big.vcf", b"data", {}, 0)
    job = _job_txn(txn, job_id)
    assert job is not None and job.looked_up == 0 and job.imported_upto is None and job.matches == {}
    _record_lookups_txn(txn, job_id, {"8613800000001": "@b:x"}, 1000)
    _record_lookups_txn(txn, job_id, {"8613800000002": "@c:x"}, 1500)
    _set_imported_upto_txn(txn, job_id, 1500, {"invited": 2, "invitable_by_sms": 400})
    job = _job_txn(txn, job_id)
    assert job is not None and job.looked_up == 1500 and job.imported_upto == 1500
    assert job.counts == {"invited": 2, "invitable_by_sms": 400}
    assert job.matches == {"8613800000001": "@b:x", "8613800000002": "@c:x"}
    # A file that fit in the day's lookups was looked up whole at the preview.
    whole = _job_txn(txn, _create_preview_txn(txn, "@d:x", "!dm2:x", "small.vcf", b"d", {"86139": "@e:x"}, 7))
    assert whole is not None and whole.looked_up == 7 and whole.imported_upto is None
