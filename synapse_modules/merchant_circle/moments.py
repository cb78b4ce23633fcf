"""Merchants out of moments rooms: what the spam checks cannot refuse is undone here.

The spam checks keep merchants (and the merchant bot, their agent) from being invited to or
joining friends-only moments rooms. A user who becomes a merchant, and a merchant who got in by a
path no spam check sees (server admins, knocks, upgrades; found by the membership watcher), leaves
the room and forgets it; what fails now is an ``evict`` job of the follow queue.
"""

from __future__ import annotations

import logging

from synapse.module_api import ModuleApi

from synapse_modules._internals import MembershipInternals
from synapse_modules.merchant_circle.config import MerchantCircleConfig
from synapse_modules.merchant_circle.lookups import CircleLookups
from synapse_modules.merchant_circle.queue import FollowQueue
from synapse_modules.merchant_circle.rules import MOMENTS_ROOM_TYPE
from synapse_modules.merchant_circle.store import MerchantCircleStore
from synapse_modules.merchant_circle.store.follows import Job, enqueue_job_txn
from synapse_modules.merchant_circle.store.positions import get_position_txn, set_position_txn

logger = logging.getLogger(__name__)

IN_ROOM = ("join", "invite", "knock")
BOT_LEFT_MOMENTS = "bot_left_moments"  # the marker (in the positions table) that this ran once


class Moments:
    def __init__(self, api: ModuleApi, config: MerchantCircleConfig, store: MerchantCircleStore,
                 lookups: CircleLookups, members: MembershipInternals, queue: FollowQueue):
        self._api = api
        self._config = config
        self._store = store
        self._lookups = lookups
        self._members = members
        self._queue = queue

    async def evict_job(self, job: Job) -> None:
        """The ``evict`` job."""
        if job.room_id is not None:
            await self.evict(job.user_id, job.room_id)

    async def evict(self, user_id: str, room_id: str) -> None:
        """A merchant leaves a moments room (or its invite or knock is withdrawn) and forgets it,
        so not even the history from before can be paged any more."""
        membership = await self._members.local_membership(user_id, room_id)
        if membership in IN_ROOM:
            await self._api.update_room_membership(user_id, user_id, room_id, "leave")
            logger.info("Removed merchant %s from moments room %s (was %s)", user_id, room_id, membership)
        if membership is not None:
            await self._members.forget(user_id, room_id)

    async def evict_bot_once(self) -> None:
        """The merchant bot is held to the merchants' rules; a bot that got into moments rooms
        before it was (it joins whatever it is invited to) leaves them, once per deployment."""
        bot = self._config.merchant_bot
        if not bot or await self._store.run(get_position_txn, BOT_LEFT_MOMENTS) is not None:
            return
        if await self._lookups.user_exists(bot):
            await self.evict_from_moments(bot)
        await self._store.run(set_position_txn, BOT_LEFT_MOMENTS, 1)

    async def evict_from_moments(self, user_id: str) -> None:
        """A new merchant leaves every moments room it was in (or invited to, or knocking at)."""
        now = self._api.get_current_time_msec()
        for room_id in await self._members.rooms_of(user_id, IN_ROOM):
            if await self._lookups.type_of_room(room_id) != MOMENTS_ROOM_TYPE:
                continue
            try:
                await self.evict(user_id, room_id)
            except Exception as e:
                logger.warning("Could not remove merchant %s from moments %s yet (%s); queued", user_id, room_id, e)
                await self._store.run(enqueue_job_txn, "evict", user_id, None, room_id, "became a merchant", now)
                self._queue.kick()
