"""The membership watcher: reads Synapse's membership delta stream every ``membership_poll_ms``.

It sees what no spam check does: a user's own leave of a circle (an unfollow, remembered; the
circle leaves their space) and a merchant that got into a moments room past the spam checks
(server admins, knocks, upgrades: queued to be evicted). The position read is stored, so a change
is seen even across a restart.
"""

from __future__ import annotations

import logging

from synapse.module_api import ModuleApi

from synapse_modules._internals import MembershipInternals
from synapse_modules.merchant_circle.config import MerchantCircleConfig
from synapse_modules.merchant_circle.lookups import CircleLookups
from synapse_modules.merchant_circle.moments import IN_ROOM
from synapse_modules.merchant_circle.queue import FollowQueue
from synapse_modules.merchant_circle.rules import MOMENTS_ROOM_TYPE
from synapse_modules.merchant_circle.store import MerchantCircleStore
from synapse_modules.merchant_circle.store.follows import enqueue_job_txn, record_leave_txn
from synapse_modules.merchant_circle.store.positions import get_position_txn, set_position_txn

logger = logging.getLogger(__name__)

POSITION = "memberships"  # the watcher's row in the positions table
IDLE_SAVE_MS = 60_000  # while only messages move the stream, the position is stored this often
READ_LIMIT = 1000  # membership changes read per transaction


class MembershipWatcher:
    def __init__(self, api: ModuleApi, config: MerchantCircleConfig, store: MerchantCircleStore,
                 lookups: CircleLookups, members: MembershipInternals, queue: FollowQueue):
        self._api = api
        self._config = config
        self._store = store
        self._lookups = lookups
        self._members = members
        self._queue = queue
        self._watching = False
        self._position: int | None = None
        self._saved_ms = 0

    async def watch(self) -> None:
        """Read what changed in memberships since the last look (a cheap indexed read, no
        per-event hook, and no read at all while no room's current state changed). The position
        is stored after every change handled, so a change is seen even across a restart; while
        only messages move the stream it is stored at most once a minute (a restart then re-reads
        that minute, which holds no membership change)."""
        if self._watching:
            return
        self._watching = True
        try:
            if self._position is None:
                position = await self._store.run(get_position_txn, POSITION)
                if position is None:
                    position = self._members.events_position()
                    await self._store.run(set_position_txn, POSITION, position)
                self._position = position
                self._saved_ms = self._api.get_current_time_msec()
            while True:
                position, changes = await self._members.membership_deltas(self._position, READ_LIMIT)
                await self._on_changes(changes)
                now = self._api.get_current_time_msec()
                if position != self._position and (changes or now - self._saved_ms >= IDLE_SAVE_MS):
                    await self._store.run(set_position_txn, POSITION, position)
                    self._saved_ms = now
                self._position = position
                if position >= self._members.events_position():
                    return
        except Exception:
            logger.exception("Reading membership changes failed; retrying on the next tick")
        finally:
            self._watching = False

    async def _on_changes(self, changes: list[tuple[str, str, str | None]]) -> None:
        now = self._api.get_current_time_msec()
        service = self._lookups.service_users()
        entering: list[tuple[str, str]] = []
        queued = False
        for user_id, room_id, membership in changes:
            if user_id == self._lookups.owner or not self._api.is_mine(user_id):
                continue  # the owner's join comes before the room is known as a circle
            merchant_id = await self._lookups.circle_merchant(room_id)
            if merchant_id is not None:
                if membership == "leave" and user_id != merchant_id and user_id not in service:
                    # Only the user's own leave is an unfollow (a kick or ban by an admin is not the
                    # user's choice), and only if it is still current: a stale leave must not undo
                    # a re-join.
                    if await self._members.left_by_self(user_id, room_id):
                        queued |= await self._store.run(record_leave_txn, merchant_id, user_id, room_id, now)
            elif membership in IN_ROOM:
                entering.append((user_id, room_id))
        merchants: set[str] = set()
        users = sorted({u for u, _ in entering})
        for start in range(0, len(users), 500):
            merchants |= await self._lookups.merchants_among(users[start : start + 500])
        if self._config.merchant_bot in users:  # the merchants' agent, held to their rules
            merchants.add(self._config.merchant_bot)
        for user_id, room_id in entering:
            if user_id in merchants and await self._lookups.type_of_room(room_id) == MOMENTS_ROOM_TYPE:
                logger.warning("Merchant %s got into moments room %s past the spam checks; removing it",
                               user_id, room_id)
                await self._store.run(enqueue_job_txn, "evict", user_id, None, room_id, "entered moments", now)
                queued = True
        if queued:
            self._queue.kick()
