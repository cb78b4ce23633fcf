"""Group commit: what arrives while a batch is written goes into the next batch together; a lone
caller is written at once; a failing batch is retried item by item so only the bad item fails."""

from __future__ import annotations

from typing import Any

from synapse.logging.context import SENTINEL_CONTEXT, current_context, make_deferred_yieldable
from twisted.internet import defer

from synapse_modules._group_commit import GroupCommit
from synapse_modules.merchant_circle.store.follows import (
    due_jobs_txn,
    finish_follows_txn,
    follow_state_txn,
    record_purchases_txn,
)
from tests.unit.test_merchant_circle_jobs import _txn


class Writer:
    """Batches block until the test releases them; items named 'bad' make a batch fail."""

    def __init__(self) -> None:
        self.batches: list[list[str]] = []
        self.gates: list[defer.Deferred] = []
        self.contexts: list[Any] = []  # the log context each batch went on in after its wait

    async def run(self, items: list[str]) -> list[str]:
        self.batches.append(list(items))
        gate: defer.Deferred = defer.Deferred()
        self.gates.append(gate)
        await make_deferred_yieldable(gate)
        self.contexts.append(current_context())
        if "bad" in items:
            raise ValueError("bad item")
        return [item.upper() for item in items]

    def release(self, n: int) -> None:
        self.gates[n].callback(None)


def test_items_arriving_during_a_write_share_the_next_commit() -> None:
    writer = Writer()
    commit: GroupCommit[str, str] = GroupCommit(writer.run)
    first = defer.ensureDeferred(commit.submit("a"))
    assert writer.batches == [["a"]]  # a lone caller is written at once, no waiting for company
    later = [defer.ensureDeferred(commit.submit(x)) for x in ("b", "c", "d")]
    assert writer.batches == [["a"]]
    writer.release(0)
    assert first.result == "A"
    assert writer.batches == [["a"], ["b", "c", "d"]]
    writer.release(1)
    assert [d.result for d in later] == ["B", "C", "D"]


def test_a_failing_batch_is_retried_one_by_one_and_only_the_bad_item_fails() -> None:
    writer = Writer()
    commit: GroupCommit[str, str] = GroupCommit(writer.run)
    head = defer.ensureDeferred(commit.submit("a"))
    rest = [defer.ensureDeferred(commit.submit(x)) for x in ("b", "bad", "c")]
    writer.release(0)
    writer.release(1)  # ["b", "bad", "c"] fails
    for n in range(2, 5):
        writer.release(n)
    assert writer.batches[2:] == [["b"], ["bad"], ["c"]]
    assert head.result == "A" and rest[0].result == "B" and rest[2].result == "C"
    failures: list[Any] = []
    rest[1].addErrback(lambda f: failures.append(f.value))
    assert len(failures) == 1 and isinstance(failures[0], ValueError)


def test_batches_are_capped() -> None:
    writer = Writer()
    commit: GroupCommit[str, str] = GroupCommit(writer.run, max_batch=2)
    done = [defer.ensureDeferred(commit.submit(x)) for x in "abcde"]
    for n in range(4):
        if n < len(writer.gates):
            writer.release(n)
    assert writer.batches == [["a"], ["b", "c"], ["d", "e"]]
    assert [d.result for d in done] == ["A", "B", "C", "D", "E"]


def test_purchases_and_finished_follows_in_one_transaction_each_keep_their_own_outcome() -> None:
    txn = _txn()
    results = record_purchases_txn(txn, [
        ("o1", "@a:hs", "@shop:hs", [], 1000),
        ("o2", "@b:hs", "@shop:hs", [], 1000),
        ("o1", "@a:hs", "@shop:hs", [], 1000),  # the same order twice in one batch: a replay
        ("o1", "@c:hs", "@shop:hs", [], 1000),  # the same order id for another buyer: a conflict
    ])
    assert results == [(True, "queued"), (True, "queued"), (False, "replay"), (False, "conflict")]
    jobs = due_jobs_txn(txn, ("follow",), 2000, 10)
    assert sorted(j.user_id for j in jobs) == ["@a:hs", "@b:hs"]
    finish_follows_txn(txn, [(j.job_id, "@shop:hs", j.user_id, "!circle", 3000) for j in jobs])
    assert follow_state_txn(txn, "@shop:hs", "@a:hs") == follow_state_txn(txn, "@shop:hs", "@b:hs") == "following"
    assert due_jobs_txn(txn, ("follow",), 4000, 10) == []
    assert len(due_jobs_txn(txn, ("file",), 4000, 10)) == 2


def test_a_lingering_commit_waits_for_company_before_each_batch_that_is_not_full() -> None:
    writer = Writer()
    lingers: list[defer.Deferred] = []

    def linger() -> Any:
        d: defer.Deferred = defer.Deferred()
        lingers.append(d)
        return make_deferred_yieldable(d)

    commit: GroupCommit[str, str] = GroupCommit(writer.run, max_batch=3, linger=linger)
    first = defer.ensureDeferred(commit.submit("a"))
    assert writer.batches == [] and len(lingers) == 1  # a lone item waits
    more = [defer.ensureDeferred(commit.submit(x)) for x in "bcd"]
    lingers[0].callback(None)
    assert writer.batches == [["a", "b", "c"]]  # full: the next batch would not wait, but this one writes
    writer.release(0)
    assert first.result == "A" and [d.result for d in more[:2]] == ["B", "C"]
    assert len(lingers) == 2  # "d" alone: waits again
    lingers[1].callback(None)
    writer.release(1)
    assert writer.batches[1] == ["d"] and more[2].result == "D"


def test_a_follow_finished_twice_is_recorded_once() -> None:
    txn = _txn()
    record_purchases_txn(txn, [("o1", "@a:hs", "@shop:hs", [], 1000)])
    (job,) = due_jobs_txn(txn, ("follow",), 2000, 10)
    finish = (job.job_id, "@shop:hs", "@a:hs", "!circle", 3000)
    finish_follows_txn(txn, [finish, finish])  # a re-run's finish in the same batch as the first
    finish_follows_txn(txn, [finish])  # ... or in a later one
    assert follow_state_txn(txn, "@shop:hs", "@a:hs") == "following"
    assert len(due_jobs_txn(txn, ("file",), 4000, 10)) == 1


def test_an_unfollow_between_the_join_and_its_record_stays() -> None:
    from synapse_modules.merchant_circle.store.follows import record_leave_txn

    txn = _txn()
    record_purchases_txn(txn, [("o1", "@a:hs", "@shop:hs", [], 1000)])
    (job,) = due_jobs_txn(txn, ("follow",), 2000, 10)
    record_leave_txn(txn, "@shop:hs", "@a:hs", "!circle", 2500)
    finish_follows_txn(txn, [(job.job_id, "@shop:hs", "@a:hs", "!circle", 3000)])
    assert follow_state_txn(txn, "@shop:hs", "@a:hs") == "unfollowed"
    assert due_jobs_txn(txn, ("follow",), 4000, 10) == []
    assert due_jobs_txn(txn, ("file",), 4000, 10) == []


def test_each_batch_is_written_in_the_log_context_of_a_caller_waiting_for_it(caplog: Any) -> None:
    """Callers are background processes (a follow's record) and requests, each with its own
    log context; the first caller's ends when its own item is written. A later batch written in
    that finished context makes Synapse log "Background process re-entered without a proc"."""
    from synapse.metrics.background_process_metrics import run_as_background_process

    writer = Writer()
    commit: GroupCommit[str, str] = GroupCommit(writer.run)
    results: dict[str, str] = {}

    async def record(item: str) -> None:
        results[item] = await commit.submit(item)

    caplog.set_level("WARNING")
    for item in "abc":
        run_as_background_process("wangxin_test_record", "hs.test", record, item)
    assert writer.batches == [["a"]] and current_context() is SENTINEL_CONTEXT
    writer.release(0)  # "a" is done and its process ends; "b" writes the next batch for "b" and "c"
    assert writer.batches == [["a"], ["b", "c"]]
    writer.release(1)
    assert results == {"a": "A", "b": "B", "c": "C"}
    assert [r.getMessage() for r in caplog.records] == []
    first, second = (str(c) for c in writer.contexts)
    assert first.startswith("wangxin_test_record-") and second.startswith("wangxin_test_record-")
    assert first != second
    assert current_context() is SENTINEL_CONTEXT


def test_a_caller_cancelled_while_waiting_neither_writes_nor_holds_up_the_others() -> None:
    writer = Writer()
    commit: GroupCommit[str, str] = GroupCommit(writer.run)
    first = defer.ensureDeferred(commit.submit("a"))
    gone = defer.ensureDeferred(commit.submit("b"))
    last = defer.ensureDeferred(commit.submit("c"))
    gone.cancel()
    gone.addErrback(lambda f: f.trap(defer.CancelledError))
    writer.release(0)
    assert first.result == "A"
    assert writer.batches == [["a"], ["c"]]
    writer.release(1)
    assert last.result == "C"
    # Nothing is being written now: the next caller writes at once.
    after = defer.ensureDeferred(commit.submit("d"))
    assert writer.batches[-1] == ["d"]
    writer.release(2)
    assert after.result == "D"
