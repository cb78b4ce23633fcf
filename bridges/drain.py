"""The drain loop of a durable queue: wake it; it drains; woken while draining, it goes again.

The bridge keeps its work in tables (events Synapse delivered, inbound and outbound SMS,
contact-import arrivals), so nothing is lost in a crash. What is stored is handled by a loop
that one ``wake()`` starts: it drains the queue one batch at a time until a batch finds nothing.
A wake while it runs is not lost and starts no second loop: the running one looks again before
it stops. Only one drain of a queue runs at a time, so items are handled in order.

A queue whose items can fail on their own (a bad event, an unreadable text) drains with
:func:`each_item`: the failing item is logged and recorded as handled with its error, so one bad
item never wedges the queue. A queue whose failures are the world's (the homeserver is down)
lets the error stop the drain and tries again after ``retry_after_s``, the item still pending.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, TypeVar

from twisted.internet import defer, reactor

T = TypeVar("T")

# Drains one batch: True when it found work (the loop drains again), False when the queue was empty.
DrainOnce = Callable[[], Awaitable[bool]]


class DrainLoop:
    """Runs ``drain_once`` until the queue is empty and no wake came in meanwhile.

    - ``failed``: logged (with the traceback) when a drain raises; the drain stops there.
    - ``retry_after_s``: after a failed drain, wake again this much later (otherwise the next
      ``wake()`` from outside, e.g. the next item stored, drains again).
    - ``when_drained``: awaited when the queue is empty (e.g. to schedule a timer for work that
      becomes due later); a wake during it drains again.
    """

    def __init__(self, drain_once: DrainOnce, *, log: logging.Logger, failed: str,
                 retry_after_s: float | None = None, when_drained: Callable[[], Awaitable[None]] | None = None,
                 clock: Any = reactor) -> None:
        self._drain_once = drain_once
        self._log = log
        self._failed = failed
        self._retry_after_s = retry_after_s
        self._when_drained = when_drained
        self._clock = clock
        self._draining = False
        self._again = False
        self._stopped = False
        self._retry: Any = None  # the delayed call of a retry after a failure
        self._idle: list[defer.Deferred[None]] = []

    @property
    def draining(self) -> bool:
        return self._draining

    def wake(self) -> None:
        """Start draining, or make the running drain look again before it stops."""
        if self._stopped:
            return
        if self._draining:
            self._again = True
            return
        defer.ensureDeferred(self._drain())

    def idle(self) -> defer.Deferred[None]:
        """Fires when no drain is running (at once if none is)."""
        if not self._draining:
            return defer.succeed(None)
        d: defer.Deferred[None] = defer.Deferred()
        self._idle.append(d)
        return d

    async def stop(self) -> None:
        """No drain starts any more; returns when the running one (if any) has ended. The running
        one stops after its current batch."""
        self._stopped = True
        if self._retry is not None and self._retry.active():
            self._retry.cancel()
        await self.idle()

    async def _drain(self) -> None:
        self._draining = True
        try:
            while not self._stopped:
                self._again = False
                if await self._drain_once() or self._again:
                    continue
                if self._when_drained is None:
                    break
                await self._when_drained()
                if not self._again:
                    break
        except Exception:
            self._log.exception(self._failed)
            if self._retry_after_s is not None and not self._stopped:
                self._retry = self._clock.callLater(self._retry_after_s, self.wake)
        finally:
            self._draining = False
            waiters, self._idle = self._idle, []
            for d in waiters:
                d.callback(None)


def each_item(next_batch: Callable[[], Awaitable[Sequence[T]]], handle: Callable[[T], Awaitable[None]],
              done: Callable[[T, str | None], Awaitable[None]], *, log: logging.Logger,
              what: Callable[[T], str]) -> DrainOnce:
    """A ``drain_once`` that handles a batch item by item, in order, and records each as done,
    with the error text of a failed one (logged as "Failed to handle {what(item)}") so that
    one bad item never wedges the queue. Errors of ``next_batch`` and ``done`` stop the drain."""

    async def drain_once() -> bool:
        batch = await next_batch()
        for item in batch:
            error = None
            try:
                await handle(item)
            except Exception as e:  # one bad item must not wedge the queue
                log.exception("Failed to handle %s", what(item))
                error = f"{type(e).__name__}: {e}"[:1000]
            await done(item, error)
        return bool(batch)

    return drain_once
