"""The durable queues' drain loop (bridges/drain.py): a wake while draining drains again, wakes
coalesce into one drain, a bad item is recorded with its error and the rest go on, a failing
drain backs off, and stop() waits for the drain that is running."""

from __future__ import annotations

import logging

import pytest
from twisted.internet import defer, task

from bridges.drain import DrainLoop, each_item

log = logging.getLogger("tests.drain")


class Queue:
    """A queue whose batches block until the test releases them."""

    def __init__(self, batches: list[list[str]] | None = None) -> None:
        self.batches = list(batches or [])
        self.gates: list[defer.Deferred[None]] = []
        self.calls = 0
        self.running = 0
        self.most_at_once = 0

    async def drain_once(self) -> bool:
        self.calls += 1
        self.running += 1
        self.most_at_once = max(self.most_at_once, self.running)
        gate: defer.Deferred[None] = defer.Deferred()
        self.gates.append(gate)
        try:
            await gate
        finally:
            self.running -= 1
        return bool(self.batches and self.batches.pop(0))

    def release(self) -> None:
        gate = next(g for g in self.gates if not g.called)
        gate.callback(None)


def test_a_wake_while_draining_drains_again() -> None:
    queue = Queue()
    loop = DrainLoop(queue.drain_once, log=log, failed="drain failed")
    loop.wake()
    assert queue.calls == 1 and loop.draining
    loop.wake()  # an item was stored after this drain read the (empty) queue
    queue.release()
    assert queue.calls == 2  # it looks again instead of stopping
    queue.release()
    assert queue.calls == 2 and not loop.draining


def test_concurrent_wakes_coalesce_into_one_drain() -> None:
    queue = Queue()
    loop = DrainLoop(queue.drain_once, log=log, failed="drain failed")
    loop.wake()
    loop.wake()
    loop.wake()
    loop.wake()
    assert queue.calls == 1
    queue.release()
    assert queue.calls == 2  # one more look for all the wakes together
    queue.release()
    assert queue.calls == 2 and queue.most_at_once == 1 and not loop.draining


def test_a_drain_goes_on_while_batches_find_work_and_stops_at_an_empty_one() -> None:
    queue = Queue([["a"], ["b"]])
    loop = DrainLoop(queue.drain_once, log=log, failed="drain failed")
    loop.wake()
    for _ in range(3):
        queue.release()
    assert queue.calls == 3 and not loop.draining
    loop.wake()  # woken later, when idle: a new drain
    assert queue.calls == 4


def test_a_failing_item_is_recorded_with_its_error_and_the_rest_are_handled(
        caplog: pytest.LogCaptureFixture) -> None:
    batches = [["a", "bad", "c"], ["d"], []]
    handled: list[str] = []
    done: list[tuple[str, str | None]] = []

    async def next_batch() -> list[str]:
        return batches.pop(0)

    async def handle(item: str) -> None:
        if item == "bad":
            raise ValueError("cannot read it")
        handled.append(item)

    async def record(item: str, error: str | None) -> None:
        done.append((item, error))

    loop = DrainLoop(each_item(next_batch, handle, record, log=log, what=lambda item: f"item {item}"),
                     log=log, failed="drain failed")
    with caplog.at_level(logging.ERROR, logger="tests.drain"):
        loop.wake()
    assert handled == ["a", "c", "d"]
    assert done == [("a", None), ("bad", "ValueError: cannot read it"), ("c", None), ("d", None)]
    assert "Failed to handle item bad" in caplog.text and "drain failed" not in caplog.text
    assert not batches and not loop.draining


def test_a_failing_drain_stops_and_backs_off_when_asked_to(caplog: pytest.LogCaptureFixture) -> None:
    clock = task.Clock()
    attempts: list[int] = []

    async def drain_once() -> bool:
        attempts.append(1)
        if len(attempts) == 1:
            raise RuntimeError("homeserver down")
        return False

    loop = DrainLoop(drain_once, log=log, failed="drain failed; retrying", retry_after_s=30, clock=clock)
    with caplog.at_level(logging.ERROR, logger="tests.drain"):
        loop.wake()
    assert "drain failed; retrying" in caplog.text and not loop.draining
    clock.advance(29)
    assert len(attempts) == 1
    clock.advance(1)
    assert len(attempts) == 2  # the item is still pending: the retry drains it

    # Without a back-off, a failed drain waits for the next wake.
    attempts.clear()
    plain = DrainLoop(drain_once, log=log, failed="drain failed", clock=clock)
    plain.wake()
    clock.advance(3600)
    assert len(attempts) == 1
    plain.wake()
    assert len(attempts) == 2


def test_stop_waits_for_the_running_drain_and_no_drain_starts_after_it() -> None:
    queue = Queue([["a"], ["b"]])
    loop = DrainLoop(queue.drain_once, log=log, failed="drain failed")
    loop.wake()
    stopped = defer.ensureDeferred(loop.stop())
    assert not stopped.called  # the batch being handled is finished first
    queue.release()
    assert stopped.called and queue.calls == 1  # and no further batch is started
    loop.wake()
    assert queue.calls == 1 and not loop.draining


def test_stop_cancels_a_pending_retry() -> None:
    clock = task.Clock()
    attempts: list[int] = []

    async def drain_once() -> bool:
        attempts.append(1)
        raise RuntimeError("homeserver down")

    loop = DrainLoop(drain_once, log=log, failed="drain failed", retry_after_s=30, clock=clock)
    loop.wake()
    assert defer.ensureDeferred(loop.stop()).called  # nothing was running
    clock.advance(60)
    assert len(attempts) == 1 and not clock.getDelayedCalls()


def test_when_drained_runs_once_the_queue_is_empty_and_a_wake_during_it_drains_again() -> None:
    queue = Queue([["a"]])
    scheduled: list[defer.Deferred[None]] = []

    async def when_drained() -> None:
        gate: defer.Deferred[None] = defer.Deferred()
        scheduled.append(gate)
        await gate

    loop = DrainLoop(queue.drain_once, log=log, failed="drain failed", when_drained=when_drained)
    loop.wake()
    queue.release()  # found work
    assert not scheduled
    queue.release()  # empty
    assert len(scheduled) == 1
    loop.wake()  # something was stored while the next wake-up was being scheduled
    scheduled[0].callback(None)
    assert queue.calls == 3 and loop.draining
    queue.release()
    scheduled[1].callback(None)
    assert len(scheduled) == 2 and not loop.draining


def test_idle_fires_when_the_drain_ends() -> None:
    queue = Queue()
    loop = DrainLoop(queue.drain_once, log=log, failed="drain failed")
    assert loop.idle().called
    loop.wake()
    idle = loop.idle()
    assert not idle.called
    queue.release()
    assert idle.called
