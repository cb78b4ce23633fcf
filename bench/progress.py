"""Progress lines on stderr for long benchmarks, and running two sides at the same time."""

from __future__ import annotations

import sys
import threading
import time
from concurrent.futures import FIRST_EXCEPTION, ThreadPoolExecutor, wait
from typing import Any


class Progress:
    """Counts finished items per side (or holds a status text); a thread prints them every ``every_s``."""

    def __init__(self, label: str, totals: dict[str, int], every_s: float = 30.0):
        self.label, self.totals, self.every_s = label, totals, every_s
        self.done: dict[str, int | str] = dict.fromkeys(totals, 0)
        # Every side's count when the first side reached its total (None until then).
        self.at_first_completion: dict[str, int | str] | None = None
        self.started = time.perf_counter()
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._report, daemon=True)

    def __enter__(self) -> Progress:
        self._thread.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self._stop.set()
        self._thread.join()
        self.print()

    def tick(self, side: str, n: int = 1) -> None:
        with self._lock:
            self.done[side] = int(self.done[side]) + n
            self._note_completion(side)

    def set(self, side: str, n: int | str) -> None:
        with self._lock:
            self.done[side] = n
            self._note_completion(side)

    def _note_completion(self, side: str) -> None:
        value, total = self.done[side], self.totals[side]
        if self.at_first_completion is None and total and isinstance(value, int) and value >= total:
            self.at_first_completion = dict(self.done)

    def print(self) -> None:
        elapsed = time.perf_counter() - self.started
        parts = [f"{side} {self.done[side]}" + (f"/{total}" if total else "") for side, total in self.totals.items()]
        print(f"[{self.label} {elapsed:6.0f} s] " + " · ".join(parts), file=sys.stderr, flush=True)

    def _report(self) -> None:
        while not self._stop.wait(self.every_s):
            self.print()


def both(a: Any, b: Any) -> tuple[Any, Any]:
    """Run two callables at the same time; both sides share the machine alike."""
    ra, rb = together(a, b)
    return ra, rb


def together(*fns: Any) -> list[Any]:
    """Run callables at the same time and return their results in order; all share the machine alike."""
    pool = ThreadPoolExecutor(len(fns))
    futures = [pool.submit(fn) for fn in fns]
    try:
        # Wait in short steps: a signal handler (SIGTERM from `timeout`) then runs within a second
        # rather than whenever every side returns. A side that fails ends the wait at once.
        while True:
            wait(futures, timeout=1.0, return_when=FIRST_EXCEPTION)
            for f in futures:
                if f.done() and f.exception() is not None:
                    raise f.exception()  # type: ignore[misc]
            if all(f.done() for f in futures):
                return [f.result() for f in futures]
    finally:
        # On SIGTERM/Ctrl-C do not wait for the sides: the caller's `finally` blocks stop the
        # stacks, which ends their requests. (A `with` block would wait here for hours.)
        pool.shutdown(wait=False, cancel_futures=True)
