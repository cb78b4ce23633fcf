"""Group commit: many callers' small writes in one transaction.

Every write transaction ends in a commit, and on SQLite (Synapse's one connection) and on
PostgreSQL alike a commit waits for the disk. A follow wave makes three small writes of ours per
follower (the purchase, the push rule, the finished follow): profiled against stock joins, the
extra commits were most of the difference. Items submitted while a batch is being written wait
and go into the next batch together: no timer, so a lone caller pays nothing extra, and under
load one commit serves many callers.

If a batch fails, each of its items is tried alone, so one bad item fails only its own caller.

``linger`` (an awaitable factory, e.g. a short sleep) is awaited before each batch that is not
full: for writes no caller waits on, where arrivals one at a time would otherwise make a batch
each.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Any, Generic, TypeVar

logger = logging.getLogger(__name__)

T = TypeVar("T")
R = TypeVar("R")


class GroupCommit(Generic[T, R]):
    def __init__(self, run_batch: Callable[[list[T]], Awaitable[list[R]]], max_batch: int = 100,
                 linger: Callable[[], Awaitable[Any]] | None = None):
        if max_batch < 1:
            raise ValueError("max_batch must be at least 1")
        self._run_batch = run_batch
        self._max_batch = max_batch
        self._linger = linger
        self._pending: list[tuple[T, Any]] = []
        self._writing = False

    async def submit(self, item: T) -> R:
        """Write ``item`` (with whatever else is waiting) and return its result."""
        from synapse.logging.context import make_deferred_yieldable, run_in_background
        from twisted.internet import defer

        done: defer.Deferred = defer.Deferred()
        self._pending.append((item, done))
        if not self._writing:
            self._writing = True
            run_in_background(self._write_all)
        return await make_deferred_yieldable(done)

    async def _write_all(self) -> None:
        try:
            while self._pending:
                if self._linger is not None and len(self._pending) < self._max_batch:
                    await self._linger()
                batch = self._pending[: self._max_batch]
                del self._pending[: self._max_batch]
                await self._write(batch)
        finally:
            self._writing = False

    async def _write(self, batch: list[tuple[T, Any]]) -> None:
        try:
            results = await self._run_batch([item for item, _ in batch])
            if len(results) != len(batch):
                raise RuntimeError(f"a batch of {len(batch)} gave {len(results)} results")
        except Exception as e:
            if len(batch) == 1:
                _fire(batch[0][1], error=e)
                return
            logger.warning("A batch of %d writes failed (%s); writing them one by one", len(batch), e)
            for one in batch:
                await self._write([one])
            return
        for (_, done), result in zip(batch, results, strict=True):
            _fire(done, result=result)


def _fire(done: Any, result: Any = None, error: Exception | None = None) -> None:
    """Resolve a caller's Deferred outside any log context (Synapse's rule for handing results
    between contexts: the caller's ``make_deferred_yieldable`` restores its own)."""
    from synapse.logging.context import PreserveLoggingContext
    from twisted.python.failure import Failure

    with PreserveLoggingContext():
        if error is not None:
            done.errback(Failure(error))
        else:
            done.callback(result)
