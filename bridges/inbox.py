"""Handles the events Synapse delivered, in order, from the durable inbox.

The transaction endpoint only stores events and answers 200, so a slow command never holds
up Synapse's single in-flight transaction; this loop does the work. After a crash, events
that were stored but not yet handled are picked up again at start.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Any

from twisted.internet import defer

from bridges.store import BridgeStore

logger = logging.getLogger(__name__)

EventHandler = Callable[[dict[str, Any]], Awaitable[None]]


class InboxProcessor:
    def __init__(self, store: BridgeStore, handle: EventHandler):
        self._store = store
        self._handle = handle
        self._running = False
        self._again = False
        self.processed = 0
        self._idle: list[defer.Deferred[None]] = []

    def wake(self) -> None:
        """Start draining the inbox, or make a running drain look again when it ends."""
        if self._running:
            self._again = True
            return
        defer.ensureDeferred(self._drain())

    async def _drain(self) -> None:
        self._running = True
        try:
            while True:
                self._again = False
                batch = await self._store.pending_events()
                for item in batch:
                    error = None
                    try:
                        await self._handle(item.event)
                    except Exception as e:  # one bad event must not wedge the queue
                        logger.exception("Failed to handle event %s", item.event.get("event_id"))
                        error = f"{type(e).__name__}: {e}"[:1000]
                    await self._store.mark_processed(item.seq, error)
                    self.processed += 1
                if not batch and not self._again:
                    break
        except Exception:
            logger.exception("Inbox drain stopped; it resumes on the next transaction")
        finally:
            self._running = False
            waiters, self._idle = self._idle, []
            for d in waiters:
                d.callback(None)
