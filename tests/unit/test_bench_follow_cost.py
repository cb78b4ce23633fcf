"""The follow-cost benchmark's accounting: transactions from Synapse's log, CPU from /proc."""

from __future__ import annotations

import os
import time

from bench.follow_cost import _by_name, cpu_seconds, parse_transactions

LOG = """\
2026-12-03 12:00:00,001 - synapse.storage.txn - 814 - DEBUG - POST-1 - [TXN START] {get_user_by_id-1a}
2026-12-03 12:00:00,002 - synapse.storage.txn - 934 - DEBUG - POST-1 - [TXN END] {get_user_by_id-1a} 0.000500 sec
2026-12-03 12:00:00,003 - synapse.storage.txn - 934 - DEBUG - POST-2 - [TXN END] {persist_events-1b} 0.010000 sec
2026-12-03 12:00:00,004 - synapse.storage.txn - 934 - DEBUG - POST-3 - [TXN END] {get_user_by_id-1c} 0.001500 sec
2026-12-03 12:00:00,005 - synapse.storage.txn - 934 - DEBUG - bg - [TXN END] {wangxin_due_jobs-ff} 0.002000 sec
"""


def test_transactions_are_counted_and_timed_by_name_without_their_id() -> None:
    got = parse_transactions(LOG)
    assert set(got) == {"get_user_by_id", "persist_events", "wangxin_due_jobs"}
    count, seconds = got["get_user_by_id"]
    assert count == 2 and abs(seconds - 0.002) < 1e-9
    assert got["persist_events"][0] == 1


def test_a_log_without_transaction_lines_gives_nothing() -> None:
    assert parse_transactions("2026-12-03 12:00:00,001 - synapse.app - INFO - started\n") == {}


def test_differences_per_join_come_largest_first_and_count_names_on_one_side_only() -> None:
    a = {"persist_events": (100, 1.0), "wangxin_due_jobs": (50, 0.5)}
    b = {"persist_events": (100, 0.9), "get_user_by_id": (10, 0.01)}
    rows = _by_name(a, b, joins=100)
    assert [r["name"] for r in rows] == ["wangxin_due_jobs", "persist_events", "get_user_by_id"]
    assert rows[0] == {"name": "wangxin_due_jobs", "db_ms_per_join": 5.0, "count_per_join": 0.5}
    assert rows[2]["count_per_join"] == -0.1


def test_cpu_seconds_grow_while_this_process_works() -> None:
    before = cpu_seconds(os.getpid())
    deadline = time.process_time() + 0.2
    while time.process_time() < deadline:
        pass
    assert cpu_seconds(os.getpid()) - before >= 0.1
