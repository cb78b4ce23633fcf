"""Each person's commands in order, different people's at the same time.

A shake answers only when its window closes (seconds): answered inline, one person's shake
would hold up everyone's commands. Each sender gets a chain of tasks instead: their commands
run one after another, in the order they were sent ("pick" before "reply"), while other
people's run meanwhile. A sender with more than ``MAX_WAITING`` commands waiting has the
newest ones dropped (and logged): sending a hundred commands at once gains nothing.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

logger = logging.getLogger(__name__)

MAX_WAITING = 20


class SenderQueues:
    def __init__(self) -> None:
        self._tails: dict[str, asyncio.Task[None]] = {}
        self._waiting: dict[str, int] = {}

    def submit(self, sender: str, work: Callable[[], Awaitable[object]]) -> bool:
        """Run ``work`` after the sender's earlier work; False if too much is waiting already."""
        if self._waiting.get(sender, 0) >= MAX_WAITING:
            logger.warning("Dropped a command of %s: %d are waiting already", sender, MAX_WAITING)
            return False
        previous = self._tails.get(sender)
        self._waiting[sender] = self._waiting.get(sender, 0) + 1

        async def run() -> None:
            try:
                if previous is not None:
                    await asyncio.wait([previous])  # its outcome is its own (logged there)
                await work()
            except asyncio.CancelledError:
                raise
            except Exception:
                logger.exception("A command of %s failed", sender)
            finally:
                left = self._waiting.get(sender, 1) - 1
                if left:
                    self._waiting[sender] = left
                else:
                    self._waiting.pop(sender, None)

        task = asyncio.create_task(run())
        self._tails[sender] = task
        task.add_done_callback(lambda t: self._tails.pop(sender) if self._tails.get(sender) is t else None)
        return True

    def pending(self) -> list[asyncio.Task[None]]:
        """The last task of each sender: when these are done, everything submitted so far is."""
        return list(self._tails.values())

    async def drain(self) -> None:
        """Wait for everything submitted so far (tests, and a clean stop)."""
        while self._tails:
            await asyncio.wait(list(self._tails.values()))

    def cancel(self) -> None:
        for task in list(self._tails.values()):
            task.cancel()
