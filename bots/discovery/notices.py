"""Telling people about their requests: someone said hi, a pairing (a shake, 你我36.8度, 面对面)
matched them, a bottle of theirs got a reply, a pairing's partner accepted, a chat opened.

The bot reads the module's feed of changed requests (``GET /requests/changes``, the service
secret only), one page after another from where it stopped, and tells each person concerned
who chats with it, in the DM where they last wrote to it. This costs one indexed query per poll
for the whole server, however many people talk to the bot; polling each person's ``GET
/requests`` would cost one call per person per poll (docs/discovery.md, "How the bot tells you").
A notice of a new request asks the server for the person's open requests (as them), so it shows
only what they may see (nothing from someone who has left discovery, blocked them or was
reported since) and numbers it for ``accept <n>``.

Each notice is given once: ``BotMemory.mark_told`` records it, also when a command's own answer
was the news (a shake's pairing, an accept that opened the chat). The cursor is saved after each
page, so a restart goes on from there. (Coupons have a feed of their own: ``coupon_notices.py``.)
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from bots.discovery.api import ApiError
from bots.discovery.commands import DiscoveryServices, answer_hint, entry_of, number_of, numbered_requests
from bots.discovery.text import (
    PAIRING_KINDS,
    Notice,
    accepted_text,
    clean,
    notices_for,
    other_of,
    pairing_name,
    pairing_news,
    requests_text,
)

logger = logging.getLogger(__name__)

PAGE = 500
CURSOR = "request_changes"
PRUNE_EVERY_S = 3600.0
MAX_NOTICE_TEXT_CHARS = 1000

# (room id, text, a seed for the message's transaction id) -> whether it was sent.
Tell = Callable[[str, str, str], Awaitable[bool]]


class ReadAgain(Exception):
    """A page of a feed was read but not all of it could be told yet: it is read again after a
    wait (what was told of it is skipped then)."""


async def follow_feed(poll_once: Callable[[], Awaitable[int]], interval_s: float, feed: str,
                      waited: Callable[[float], None] | None = None) -> None:
    """Read a feed for ever: ``poll_once`` every ``interval_s``, and after failures in a row up to
    30 times less often, so a server that is down is not hammered; ``waited`` hears of each wait."""
    failures = 0
    while True:
        try:
            await poll_once()
            failures = 0
        except asyncio.CancelledError:
            raise
        except ReadAgain as e:
            failures += 1
            logger.warning("The feed of %s: %s (%d in a row)", feed, e, failures)
        except Exception:
            failures += 1
            logger.exception("Reading the feed of %s failed (%d in a row); trying again", feed, failures)
        delay = interval_s * min(2 ** failures, 30)
        await asyncio.sleep(delay)
        if waited is not None:
            waited(delay)


class Notifier:
    def __init__(self, services: DiscoveryServices, tell: Tell, interval_s: float):
        self._s = services
        self._tell = tell
        self._interval_s = interval_s
        self._since_prune = PRUNE_EVERY_S

    async def run_forever(self) -> None:
        await follow_feed(self.poll_once, self._interval_s, "requests", self._waited)

    def _waited(self, delay: float) -> None:
        self._since_prune += delay
        if self._since_prune >= PRUNE_EVERY_S:
            self._s.memory.prune()
            self._since_prune = 0.0

    async def poll_once(self) -> int:
        """Read the feed from the saved cursor to its end, telling whom it concerns; how many
        changes were read."""
        read = 0
        since = self._s.memory.cursor(CURSOR)
        while True:
            page = await self._s.api.changes(since, PAGE)
            changes = list(page["changes"])
            for change in changes:
                await self._handle(change)
            unchanged = str(page["next"]) == since
            since = str(page["next"])
            self._s.memory.set_cursor(CURSOR, since)
            read += len(changes)
            # A full page of changes too recent to pass (the feed's cursor stays behind them): the next poll.
            if len(changes) < PAGE or unchanged:
                return read

    async def _handle(self, change: Mapping[str, Any]) -> None:
        for notice in notices_for(change):
            room_id = self._s.memory.dm_room(notice.user_id)
            request_id = str(change["request_id"])
            if room_id is None or self._s.memory.was_told(notice.user_id, request_id, notice.what):
                continue
            try:
                text = await self._text(notice, change)
            except ApiError as e:  # they left discovery meanwhile, or are under review: nothing to tell
                logger.info("No notice for %s about %s: %s", notice.user_id, request_id, e)
                continue
            if text is None or not self._s.memory.mark_told(notice.user_id, request_id, notice.what):
                continue
            await self._tell(room_id, text, f"notice:{notice.user_id}:{request_id}:{notice.what}")

    async def _text(self, notice: Notice, change: Mapping[str, Any]) -> str | None:
        other_id, other_name = other_of(change, notice.user_id)
        kind = change.get("kind")
        if notice.what == "accepted":
            return accepted_text(other_id, other_name, change.get("room_id"), kind=kind)
        entries, numbers = await numbered_requests(self._s, notice.user_id)
        request_id = str(change["request_id"])
        entry = entry_of(entries, request_id)
        if entry is None:  # no longer open, or not for them to see
            return None
        name = clean(str(entry.get("display_name") or other_name))
        text = clean(str(entry.get("text") or ""), max_chars=MAX_NOTICE_TEXT_CHARS)
        said = f": “{text}”" if text else "."
        if notice.what == "accepted_by_other":
            news = f"{name} ({other_id}) accepted your {pairing_name(kind)}: the chat opens when you accept too."
        elif kind in PAIRING_KINDS:
            news = pairing_news(kind, f"{name} ({other_id})")
        elif kind == "bottle":
            news = f"{name} ({other_id}) replied to your drift bottle{said}"
        else:
            news = f"{name} ({other_id}) says hi{said}"
        lines = [news, answer_hint(number_of(numbers, request_id))]
        if len(numbers) > 1:
            lines += ["", requests_text(entries, numbers, self._s.now_ms())]
        return "\n".join(lines)
