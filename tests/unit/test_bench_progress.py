"""``bench.progress.both`` / ``together``: sides at once, a failing side ends the wait, signals are not held up."""

from __future__ import annotations

import os
import signal
import threading
import time

import pytest

from bench.progress import both, together


def test_returns_both_results_in_order() -> None:
    assert both(lambda: (time.sleep(0.05), "a")[1], lambda: "b") == ("a", "b")


def test_together_runs_any_number_of_sides_at_once_and_keeps_their_order() -> None:
    started = threading.Barrier(3, timeout=10)  # each side waits until all three have started

    def side(name: str) -> str:
        started.wait()
        return name

    assert together(lambda: side("a"), lambda: side("b"), lambda: side("c")) == ["a", "b", "c"]


def test_a_failing_side_ends_the_wait_without_waiting_for_the_other() -> None:
    release = threading.Event()
    finished: list[str] = []

    def slow() -> None:
        release.wait(30)
        finished.append("a")

    def fails() -> None:
        raise ValueError("side b broke")

    with pytest.raises(ValueError, match="side b broke"):
        both(slow, fails)
    assert finished == []  # side a is released only now
    release.set()


def test_a_signal_handler_runs_while_both_sides_are_still_busy() -> None:
    release = threading.Event()

    class Stopped(Exception):
        pass

    def handler(*_: object) -> None:
        raise Stopped()

    previous = signal.signal(signal.SIGUSR1, handler)
    timer = threading.Timer(0.2, lambda: os.kill(os.getpid(), signal.SIGUSR1))
    timer.start()
    try:
        with pytest.raises(Stopped):
            both(lambda: release.wait(30), lambda: release.wait(30))
    finally:
        release.set()
        timer.cancel()
        signal.signal(signal.SIGUSR1, previous)


def test_progress_keeps_every_sides_count_from_when_the_first_side_completed() -> None:
    from bench.progress import Progress

    progress = Progress("t", {"stock": 3, "wangxin": 3}, every_s=3600)
    progress.tick("stock")
    progress.set("wangxin", 2)
    progress.tick("stock", 2)
    progress.set("wangxin", 3)
    assert progress.at_first_completion == {"stock": 3, "wangxin": 2}
