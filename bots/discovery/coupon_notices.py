"""Telling each person about their 你我36.8度 coupon, privately: on its way (the shop is slow),
the coupon itself (title, code, expiry), or why this pairing earned none.

The bot reads the module's feed of changed coupons (``GET /coupons/changes``, the service secret
only; one entry per person and pairing) from its own saved cursor, as it reads the feed of
requests (``notices.py``), and tells each person in a chat of only them and the bot
(``private.py``), opened for them if they never wrote to it.

A coupon is told exactly once, also across a restart:

* each notice is recorded in ``BotMemory`` (``told``: the person, the pairing, ``coupon:<state>``)
  once sent, and is never sent again once recorded;
* it is sent with a transaction id made of the person, the pairing and the state, so if the bot
  stops between sending and recording, the notice sent again after the restart is the same
  request to Synapse, which answers it without sending a second message;
* a notice that could not be sent (the server failing, a room that could not be opened) is
  recorded nowhere: the page's cursor is not saved, the page is read again after a wait, and
  what was told in it meanwhile is skipped. A notice that still fails after ``MAX_TRIES`` reads
  is given up (logged), so one person's trouble does not hold up everyone's coupons; the coupon
  itself stays in their ``coupons``.

Codes are never logged.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from bots.discovery.api import DiscoveryApi
from bots.discovery.coupon_text import TOLD_STATES, coupon_notice_text
from bots.discovery.memory import BotMemory
from bots.discovery.notices import ReadAgain, follow_feed

logger = logging.getLogger(__name__)

PAGE = 500
CURSOR = "coupon_changes"
MAX_TRIES = 8

# (user id, text, a seed for the message's transaction id) -> whether it was sent to them alone.
TellPrivately = Callable[[str, str, str], Awaitable[bool]]


def coupon_seed(user_id: str, pairing_id: str, state: str) -> str:
    """The seed of a coupon notice's transaction id: the same notice is the same request to Synapse."""
    return f"coupon:{user_id}:{pairing_id}:{state}"


class CouponNotifier:
    def __init__(self, api: DiscoveryApi, memory: BotMemory, tell: TellPrivately, interval_s: float):
        self._api = api
        self._memory = memory
        self._tell = tell
        self._interval_s = interval_s
        self._tries: dict[str, int] = {}  # failed sends of a notice, by seed (since the bot started)

    async def run_forever(self) -> None:
        await follow_feed(self.poll_once, self._interval_s, "coupons")

    async def poll_once(self) -> int:
        """Read the feed from the saved cursor to its end, telling each person theirs; how many
        changes were read. Raises ``ReadAgain`` (the cursor kept) if some could not be told."""
        read = 0
        since = self._memory.cursor(CURSOR)
        while True:
            page = await self._api.coupon_changes(since, PAGE)
            changes = list(page["changes"])
            undelivered = 0
            for change in changes:
                if not await self._handle(change):
                    undelivered += 1
            if undelivered:
                raise ReadAgain(f"{undelivered} coupon notice(s) could not be sent yet")
            unchanged = str(page["next"]) == since
            since = str(page["next"])
            self._memory.set_cursor(CURSOR, since)
            read += len(changes)
            if len(changes) < PAGE or unchanged:  # a full page too recent to pass: the next poll
                return read

    async def _handle(self, change: Mapping[str, Any]) -> bool:
        """Tell the person of ``change`` if it is news to them; False to try again later."""
        state = str(change.get("state"))
        user_id, pairing_id = str(change["user_id"]), str(change["pairing_id"])
        what = f"coupon:{state}"
        if state not in TOLD_STATES or self._memory.was_told(user_id, pairing_id, what):
            return True
        if state == "delayed" and self._memory.was_told(user_id, pairing_id, "coupon:issued"):
            return True  # it came meanwhile: "on its way" is no news any more
        text = coupon_notice_text(change)
        if text is None:
            return True
        seed = coupon_seed(user_id, pairing_id, state)
        if await self._tell(user_id, text, seed):
            self._memory.mark_told(user_id, pairing_id, what)
            self._tries.pop(seed, None)
            return True
        tries = self._tries[seed] = self._tries.get(seed, 0) + 1
        if tries >= MAX_TRIES:
            logger.error("Gave up telling %s of their coupon (%s) for pairing %s after %d tries",
                         user_id, state, pairing_id, tries)
            self._tries.pop(seed, None)
            return True
        logger.warning("Could not tell %s of their coupon (%s) for pairing %s (try %d); trying again later",
                       user_id, state, pairing_id, tries)
        return False
