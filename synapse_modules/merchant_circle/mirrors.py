"""Posts of a circle past one room: made in its first room, mirrored into the others.

Whoever posts (the merchant's client, the merchant bot, the accounts module's posting API or a
scheduled post), the post is an event in the circle's first room. For a circle with further rooms
(``shards``), ``check_event_for_spam`` of that event, once the quota has admitted it, records a
fan-out (one row, only for such circles) and starts a background task in the same process that
sends a copy from the same sender into every further room, ``fanout_concurrency`` rooms at a time,
beside the first room's event (so the last room does not wait for the first), and records each
copy. An edit or a removal is copied once its event is persisted (it needs the copies of its post
recorded). A post refused after the quota (nothing in Synapse does that to a circle's poster
today) would leave copies: the sweep removes them. An edit is mirrored as an edit of each room's
copy, a removal as a removal of it. A copy carries ``org.wangxin.mirror_of`` (the first room's
event id); the quota does not count it: a copy is recognised only if this process is sending it at
that moment (a client that writes the key itself gets no exemption).

A fan-out cut short (Synapse stopped) is finished by the background-tasks process, which looks
every ``SWEEP_INTERVAL_MS`` for fan-outs older than ``SWEEP_AFTER_MS``: a room whose copy was sent
but not recorded gets a second copy (at least once, like scheduled posts). A post that was never
persisted within ``GIVE_UP_MS`` has its copies removed by the rooms' creator.
"""

from __future__ import annotations

import logging
from typing import Any

from synapse.module_api import EventBase, ModuleApi, make_deferred_yieldable, run_in_background
from twisted.internet import defer

from synapse_modules._internals import MembershipInternals, persisted_event_ids_txn
from synapse_modules.merchant_circle.config import MerchantCircleConfig
from synapse_modules.merchant_circle.lookups import BoundedCache
from synapse_modules.merchant_circle.rules import MIRROR_KEY
from synapse_modules.merchant_circle.shards import Shards
from synapse_modules.merchant_circle.store import MerchantCircleStore
from synapse_modules.merchant_circle.store.shards import (
    add_fanout_txn,
    add_mirror_txn,
    drop_fanout_txn,
    finish_fanout_txn,
    latest_posts_txn,
    mirrors_of_txn,
    open_fanouts_txn,
)

logger = logging.getLogger(__name__)

# After the spam check the event is persisted: checked after each of these waits (seconds). A
# post into a room of thousands spends a few hundred milliseconds on push rules before that.
PERSIST_WAITS_S = (0.01, 0.02, 0.05, 0.05, 0.1, 0.1, 0.2, 0.2, 0.5, 0.5, 1, 2, 4, 8)
SWEEP_INTERVAL_MS = 30_000
SWEEP_AFTER_MS = 60_000
GIVE_UP_MS = 10 * 60_000
SWEEP_BATCH = 100
BACKFILL_POSTS = 20  # a new further room starts with this many of the circle's latest posts


class Mirrors:
    def __init__(self, api: ModuleApi, config: MerchantCircleConfig, store: MerchantCircleStore,
                 members: MembershipInternals, shards: Shards, owner: str):
        self._api = api
        self._owner = owner  # the circles' service account, creator of every room of a circle
        self._config = config
        self._store = store
        self._members = members
        self._shards = shards
        self._sending: set[tuple[str, str]] = set()  # (room, first room's event) copies being sent here
        self._running: set[str] = set()  # first room's events being mirrored by this process
        self._done = BoundedCache(1000)  # ... and the last ones it mirrored
        self._sweeping = False

    def is_mirror(self, event: EventBase) -> bool:
        """A copy this process is sending now (only those: the key alone proves nothing)."""
        of = event.content.get(MIRROR_KEY)
        return isinstance(of, str) and (event.room_id, of) in self._sending

    async def is_further_room(self, merchant_id: str, room_id: str) -> bool:
        rooms = await self._shards.rooms(merchant_id)
        return bool(rooms) and room_id != rooms[0]

    async def admitted(self, merchant_id: str, event: EventBase) -> None:
        """A post, edit or removal the quota admitted in one of the merchant's circle rooms."""
        rooms = await self._shards.rooms(merchant_id)
        if len(rooms) < 2 or event.room_id != rooms[0]:
            return
        await self._store.run(add_fanout_txn, event.event_id, merchant_id, self._api.get_current_time_msec())
        if event.type == "m.room.redaction" or isinstance(event.content.get("m.relates_to"), dict):
            # An edit or removal names a post whose copies must be recorded first: after persistence.
            self._api.run_as_background_process("wangxin_circle_fanout", self._when_persisted, merchant_id, event)
        else:
            # A post: its copies go out beside it, so the last room does not wait for the first.
            # Nothing after this check refuses a post the quota admitted from a poster of the
            # circle; if it were refused anyway, the sweep removes the copies.
            self._api.run_as_background_process("wangxin_circle_fanout", self.fan_out, merchant_id, event)

    async def _when_persisted(self, merchant_id: str, event: EventBase) -> None:
        if await self._persisted(event.event_id):
            await self.fan_out(merchant_id, event)
        # Not persisted after half a minute: the sweep decides (it may still come, or never).

    async def _persisted(self, event_id: str) -> bool:
        for wait in PERSIST_WAITS_S:
            if await self._store.run_named("wangxin_circle_fanout_persisted", persisted_event_ids_txn, [event_id]):
                return True
            await self._api.sleep(wait)
        return False

    def persisted(self, merchant_id: str, event: EventBase) -> None:
        """The poster knows ``event`` is persisted (the module's own posts): mirror it now, without
        waiting for the check above to notice."""
        if self._done.get(event.event_id) is ... and event.event_id not in self._running:
            self._api.run_as_background_process("wangxin_circle_fanout", self.fan_out, merchant_id, event)

    async def fan_out(self, merchant_id: str, event: EventBase) -> None:
        """Copy ``event`` into every further room that has no copy yet; recorded as done when all have."""
        if event.event_id in self._running:
            return
        self._running.add(event.event_id)
        try:
            known = await self._shards.rooms(merchant_id)  # cached: most posts are in circles of one room
            if len(known) < 2 or event.room_id != known[0]:
                return
            rooms = (await self._shards.rooms(merchant_id, fresh=True))[1:]
            done = await self._store.run(mirrors_of_txn, event.event_id)
            todo = [room for room in rooms if room not in done]
            failed = 0
            for start in range(0, len(todo), self._config.fanout_concurrency):
                batch = todo[start : start + self._config.fanout_concurrency]
                results = await _gather([self._mirror_into(event, room) for room in batch])
                for room, error in zip(batch, results, strict=True):
                    if error is not None:
                        failed += 1
                        logger.warning("Mirroring %s into %s failed (%s); the sweep tries again", event.event_id,
                                       room, error)
            # Done once every room has its copy and the first room has the post (copies may be
            # sent before it is stored: a post never stored stays open, and the sweep removes them).
            if not failed and await self._persisted(event.event_id):
                await self._store.run(finish_fanout_txn, event.event_id, self._api.get_current_time_msec())
                self._done.put(event.event_id, True)
        except Exception:
            logger.exception("Mirroring %s of %s's circle failed; the sweep tries again", event.event_id, merchant_id)
        finally:
            self._running.discard(event.event_id)

    async def _mirror_into(self, event: EventBase, room_id: str) -> None:
        content: dict[str, Any] = dict(event.content)
        content[MIRROR_KEY] = event.event_id
        event_dict: dict[str, Any] = {"type": event.type, "room_id": room_id, "sender": event.sender}
        if event.type == "m.room.redaction":
            target = await self._copy_in(getattr(event, "redacts", None) or content.get("redacts"), room_id)
            if target is None:
                return  # removes a post that has no copy there: nothing to remove
            content["redacts"] = target
            event_dict["redacts"] = target
        else:
            relates = content.get("m.relates_to")
            if isinstance(relates, dict) and isinstance(relates.get("event_id"), str):
                target = await self._copy_in(relates["event_id"], room_id)
                if target is None:
                    return  # an edit of a post from before this room existed
                content["m.relates_to"] = {**relates, "event_id": target}
        event_dict["content"] = content
        self._sending.add((room_id, event.event_id))
        try:
            sent = await self._api.create_and_send_event_into_room(event_dict)
        finally:
            self._sending.discard((room_id, event.event_id))
        await self._store.run(add_mirror_txn, event.event_id, room_id, str(sent.event_id))

    async def backfill(self, merchant_id: str, room_id: str) -> None:
        """A new further room starts with copies of the circle's latest ``BACKFILL_POSTS`` posts
        (as posted; removed ones are left out), so its followers have something to scroll back
        to as the first room's have."""
        copied = 0
        for event_id in await self._store.run(latest_posts_txn, merchant_id, BACKFILL_POSTS):
            event = await self._members.event(event_id)
            if event is None or event.room_id == room_id or not event.content.get("body"):
                continue  # never stored, or removed since (a redacted event has no body)
            try:
                await self._mirror_into(event, room_id)
                copied += 1
            except Exception as e:
                logger.warning("Copying %s into the new room %s failed (%s)", event_id, room_id, e)
        logger.info("New room %s of %s's circle starts with its %d latest posts", room_id, merchant_id, copied)

    async def _copy_in(self, event_id: Any, room_id: str) -> str | None:
        if not isinstance(event_id, str):
            return None
        return (await self._store.run(mirrors_of_txn, event_id)).get(room_id)

    async def _withdraw(self, event_id: str) -> None:
        """A post never stored in the first room: its copies are removed (by the rooms' creator)."""
        for room_id, copy in (await self._store.run(mirrors_of_txn, event_id)).items():
            await self._api.create_and_send_event_into_room({
                "type": "m.room.redaction", "room_id": room_id, "sender": self._owner, "redacts": copy,
                "content": {"redacts": copy, "reason": "the post was not stored"}})
        await self._store.run(drop_fanout_txn, event_id)
        logger.warning("Post %s was never stored in its circle's first room: its copies were removed", event_id)

    async def sweep(self) -> None:
        """Finish fan-outs a stopped process left (the background-tasks process)."""
        if self._sweeping:
            return
        self._sweeping = True
        try:
            now = self._api.get_current_time_msec()
            for event_id, merchant_id, created in await self._store.run(open_fanouts_txn, now - SWEEP_AFTER_MS,
                                                                        SWEEP_BATCH):
                event = await self._members.event(event_id)
                if event is None:
                    if now - created > GIVE_UP_MS:
                        await self._withdraw(event_id)
                    continue
                await self.fan_out(merchant_id, event)
        except Exception:
            logger.exception("Finishing the circles' fan-outs failed; trying again in %d s", SWEEP_INTERVAL_MS // 1000)
        finally:
            self._sweeping = False


async def _gather(calls: list[Any]) -> list[Exception | None]:
    """Run the coroutines side by side (in Synapse's log contexts); each one's exception, or ``None``."""

    async def wrap(call: Any) -> Exception | None:
        try:
            await call
        except Exception as e:
            return e
        return None

    gathered: defer.Deferred[list[Exception | None]] = defer.gatherResults(
        [run_in_background(wrap, c) for c in calls], consumeErrors=True)
    return await make_deferred_yieldable(gathered)
