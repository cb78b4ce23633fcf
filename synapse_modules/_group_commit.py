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

import attrs
from synapse.module_api import make_deferred_yieldable
from twisted.internet import defer

from synapse_modules._internals import resolve_outside_log_context

logger = logging.getLogger(__name__)

T = TypeVar("T")
R = TypeVar("R")

# Sent to a waiting caller instead of a result: it writes the next batch.
_LEAD = object()


@attrs.define(eq=False)
class _Waiter:
    item: Any
    done: Any  # the Deferred the caller waits on
    leading: bool = False  # writing a batch itself: reads its outcome, nothing fires its Deferred
    finished: bool = False
    result: Any = None
    error: BaseException | None = None


class GroupCommit(Generic[T, R]):
    """Batches are written by their callers, one at a time: the caller that finds no batch being
    written writes one with everything waiting (its own item first), and hands the next batch to
    the oldest caller still waiting. So every write runs in the log context of a caller that is
    waiting for it (a request, a background process), never in one that has finished."""

    def __init__(self, run_batch: Callable[[list[T]], Awaitable[list[R]]], max_batch: int = 100,
                 linger: Callable[[], Awaitable[Any]] | None = None):
        if max_batch < 1:
            raise ValueError("max_batch must be at least 1")
        self._run_batch = run_batch
        self._max_batch = max_batch
        self._linger = linger
        self._pending: list[_Waiter] = []
        self._writing = False

    async def submit(self, item: T) -> R:
        """Write ``item`` (with whatever else is waiting) and return its result."""
        me = _Waiter(item, defer.Deferred())
        self._pending.append(me)
        if self._writing:
            outcome = await make_deferred_yieldable(me.done)
            if outcome is not _LEAD:
                return outcome  # type: ignore[no-any-return]
        self._writing = me.leading = True
        try:
            # My item is the oldest waiting: it is in the first batch I write.
            while not me.finished:
                await self._write_next()
        finally:
            self._hand_over()
        if me.error is not None:
            raise me.error
        return me.result  # type: ignore[no-any-return]

    async def _write_next(self) -> None:
        if self._linger is not None and len(self._pending) < self._max_batch:
            await self._linger()
        batch = self._pending[: self._max_batch]
        del self._pending[: self._max_batch]
        try:
            await self._write(batch)
        except BaseException as e:  # the writer was cancelled: its batch's callers must not wait forever
            for waiter in batch:
                if not waiter.finished:
                    _finish(waiter, error=e)
            raise

    def _hand_over(self) -> None:
        while self._pending:
            nxt = self._pending[0]
            if not nxt.done.called:
                resolve_outside_log_context(nxt.done, _LEAD)
                return
            del self._pending[0]  # its caller was cancelled while it waited: nothing to write for it
        self._writing = False

    async def _write(self, batch: list[_Waiter]) -> None:
        try:
            results = await self._run_batch([w.item for w in batch])
            if len(results) != len(batch):
                raise RuntimeError(f"a batch of {len(batch)} gave {len(results)} results")
        except Exception as e:
            if len(batch) == 1:
                _finish(batch[0], error=e)
                return
            logger.warning("A batch of %d writes failed (%s); writing them one by one", len(batch), e)
            for one in batch:
                await self._write([one])
            return
        for waiter, result in zip(batch, results, strict=True):
            _finish(waiter, result=result)


def _finish(waiter: _Waiter, result: Any = None, error: BaseException | None = None) -> None:
    """Record a caller's outcome; a caller waiting for it is woken in its own log context (the
    writing caller reads its own outcome when its batch is done)."""
    waiter.finished, waiter.result, waiter.error = True, result, error
    if not waiter.leading and not waiter.done.called:
        resolve_outside_log_context(waiter.done, result, error)
