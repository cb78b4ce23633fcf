"""The follow queue's bookkeeping, through the store's SQL on a real SQLite database."""

from __future__ import annotations

import sqlite3
from typing import Any

from synapse_modules.merchant_circle.store.follows import (
    any_job_due_txn,
    due_jobs_txn,
    finish_follow_txn,
    follow_state_txn,
    follow_states_txn,
    record_purchase_txn,
    retry_job_txn,
    set_follow_state_txn,
)
from synapse_modules.merchant_circle.store.schema import create_schema_txn


def _txn() -> Any:
    txn = sqlite3.connect(":memory:").cursor()
    create_schema_txn(txn)
    return txn


def test_a_finished_follow_is_recorded_queues_its_filing_and_leaves_the_queue_at_once() -> None:
    txn = _txn()
    assert record_purchase_txn(txn, "order-1", "@buyer:hs", "@shop:hs", [], 1000) == (True, "queued")
    (job,) = due_jobs_txn(txn, ("follow",), 2000, 10)
    finish_follow_txn(txn, job.job_id, "@shop:hs", "@buyer:hs", "!circle", 3000)
    assert follow_state_txn(txn, "@shop:hs", "@buyer:hs") == "following"
    assert due_jobs_txn(txn, ("follow",), 4000, 10) == []
    (filing,) = due_jobs_txn(txn, ("file",), 4000, 10)
    assert (filing.user_id, filing.merchant_id, filing.room_id, filing.reason) == (
        "@buyer:hs", "@shop:hs", "!circle", "follow")
    # A replayed purchase queues nothing new.
    assert record_purchase_txn(txn, "order-1", "@buyer:hs", "@shop:hs", [], 5000) == (False, "replay")
    assert due_jobs_txn(txn, ("follow",), 6000, 10) == []


def test_an_idle_queue_says_so_in_one_read_and_a_job_backing_off_is_not_due() -> None:
    txn = _txn()
    assert not any_job_due_txn(txn, 1000)
    record_purchase_txn(txn, "order-1", "@buyer:hs", "@shop:hs", [], 1000)
    assert any_job_due_txn(txn, 1000)
    assert not any_job_due_txn(txn, 999)  # queued "now": not due before it was queued
    (job,) = due_jobs_txn(txn, ("follow",), 2000, 10)
    retry_job_txn(txn, job.job_id, 1, 60_000, "the circle is busy")
    assert not any_job_due_txn(txn, 59_999)
    assert any_job_due_txn(txn, 60_000)


def test_follow_states_of_many_users_come_in_one_read_even_past_one_chunk() -> None:
    txn = _txn()
    users = [f"@u{i}:hs" for i in range(1200)]
    set_follow_state_txn(txn, "@shop:hs", users[3], "following", 1)
    set_follow_state_txn(txn, "@shop:hs", users[1100], "unfollowed", 1)
    set_follow_state_txn(txn, "@other:hs", users[5], "following", 1)
    assert follow_states_txn(txn, "@shop:hs", users) == {users[3]: "following", users[1100]: "unfollowed"}
    assert follow_states_txn(txn, "@shop:hs", []) == {}
