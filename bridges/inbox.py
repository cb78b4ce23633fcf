"""Handles the events Synapse delivered, in order, from the durable inbox.

The transaction endpoint only stores events and answers 200, so a slow command never holds
up Synapse's single in-flight transaction; this loop does the work. After a crash, events
that were stored but not yet handled are picked up again at start.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Any

from bridges.drain import DrainLoop, each_item
from bridges.store import BridgeStore, InboxEvent

logger = logging.getLogger(__name__)

EventHandler = Callable[[dict[str, Any]], Awaitable[None]]


class InboxProcessor:
    def __init__(self, store: BridgeStore, handle: EventHandler) -> None:
        self._store = store
        self._handle = handle
        self.processed = 0
        # A bad event is recorded with its error and skipped: it must not wedge the inbox.
        self._loop = DrainLoop(
            each_item(store.pending_events, self._handle_item, self._done, log=logger,
                      what=lambda item: f"event {item.event.get('event_id')}"),
            log=logger, failed="Inbox drain stopped; it resumes on the next transaction",
        )

    def wake(self) -> None:
        """Start draining the inbox, or make a running drain look again when it ends."""
        self._loop.wake()

    async def _handle_item(self, item: InboxEvent) -> None:
        await self._handle(item.event)

    async def _done(self, item: InboxEvent, error: str | None) -> None:
        await self._store.mark_processed(item.seq, error)
        self.processed += 1
