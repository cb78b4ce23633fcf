"""Auto-follow: purchases queue follows, and a follow job mutes the circle and joins the follower.

Joins go in without rate limits (the admin API's path, in ``_internals``); the follow is then
recorded (following, the filing in the follower's space queued, the job done) in the background,
shared with the follows that end at about the same time. A follow started by a chat goes ahead
only once the invite between the two people landed (:func:`check_chat`).
"""

from __future__ import annotations

import logging
from typing import Any

from synapse.module_api import ModuleApi

from synapse_modules._group_commit import GroupCommit
from synapse_modules._internals import MembershipInternals
from synapse_modules.merchant_circle.lookups import CircleLookups
from synapse_modules.merchant_circle.mutes import Mutes
from synapse_modules.merchant_circle.queue import FollowQueue, NotYet, Permanent
from synapse_modules.merchant_circle.shards import Shards
from synapse_modules.merchant_circle.store import MerchantCircleStore
from synapse_modules.merchant_circle.store.follows import (
    Job,
    finish_follows_txn,
    follow_state_txn,
    record_leave_txn,
    record_purchases_txn,
)

logger = logging.getLogger(__name__)

OWNER_CHECK_MS = 60_000
FINISH_LINGER_S = 0.5  # finished follows wait at most this long to share a commit

Purchase = tuple[str, str, str, list[Any], int]  # order id, buyer, merchant, items, received
FinishedFollow = tuple[str, str, str, str, int]  # job id, merchant, user, circle room, when


async def check_user_active(api: ModuleApi, user_id: str) -> None:
    info = await api.get_userinfo_by_id(user_id)
    if info is None:
        raise Permanent(f"{user_id} does not exist")
    if info.is_deactivated:
        raise Permanent(f"{user_id} is deactivated")


async def check_chat(members: MembershipInternals, user_id: str, merchant_id: str, room_id: str) -> None:
    """A chat counts once the invite between the two landed: user_may_invite, which queued
    the job, runs before Synapse's own checks (power levels, bans), which may still refuse it."""
    for member in (user_id, merchant_id):
        if await members.local_membership(member, room_id) not in ("invite", "join"):
            raise NotYet(f"no invite between {user_id} and {merchant_id} in {room_id}: "
                         "the invite that would start the chat was refused or rejected")


class Follows:
    def __init__(self, api: ModuleApi, store: MerchantCircleStore, lookups: CircleLookups,
                 members: MembershipInternals, mutes: Mutes, queue: FollowQueue, shards: Shards):
        self._api = api
        self._shards = shards
        self._store = store
        self._lookups = lookups
        self._members = members
        self._mutes = mutes
        self._queue = queue
        # A follow wave's purchases and finished follows: one commit for all that arrive together.
        self._purchases: GroupCommit[Purchase, tuple[bool, str]] = GroupCommit(self._record_purchases)
        # Finished follows are recorded in the background, a batch at most twice a second: joins
        # into one room end one at a time, so without the wait each would be a commit of its own.
        self._finished_follows: GroupCommit[FinishedFollow, None] = GroupCommit(
            self._finish_follows, linger=lambda: self._api.sleep(FINISH_LINGER_S))
        self._joining: set[tuple[str, str]] = set()
        # circle room -> when its owner was last seen joined (a follow checks the room is alive)
        self._owner_seen: dict[str, int] = {}

    def is_joining(self, user_id: str, room_id: str) -> bool:
        """Whether this join is one of ours (a follow), not the user's own."""
        return (user_id, room_id) in self._joining

    async def purchase(self, order_id: str, buyer: str, merchant_id: str, items: list[Any]) -> tuple[bool, str]:
        """Store a purchase and queue its follow (one transaction, shared with purchases that
        arrive together): ``(new, follow)``; a replayed ``order_id`` changes nothing."""
        new, follow = await self._purchases.submit(
            (order_id, buyer, merchant_id, items, self._api.get_current_time_msec())
        )
        if new:
            self._queue.kick()
        return new, follow

    async def _record_purchases(self, purchases: list[Purchase]) -> list[tuple[bool, str]]:
        return await self._store.run(record_purchases_txn, purchases)

    async def _finish_follows(self, follows: list[FinishedFollow]) -> list[None]:
        return await self._store.run(finish_follows_txn, follows)

    async def run(self, job: Job) -> bool:
        """The ``follow`` job: true when it finishes the job itself (recorded in the background)."""
        merchant_id = job.merchant_id
        # The room of the circle the user is (or was) in, else the one new followers go into.
        room_id, placed = await self._shards.room_for_follow(merchant_id, job.user_id) if merchant_id else (None, False)
        if merchant_id is None or room_id is None:
            raise Permanent(f"{merchant_id} is not a merchant")
        try:
            return await self._follow(job, merchant_id, room_id)
        finally:
            self._mutes.forget_ahead(job.user_id, room_id)
            if placed:
                self._shards.joined(room_id)

    async def _follow(self, job: Job, merchant_id: str, room_id: str) -> bool:
        await check_user_active(self._api, job.user_id)
        if job.reason.startswith("chat:"):
            await check_chat(self._members, job.user_id, merchant_id, job.reason.removeprefix("chat:"))
        state = await self._store.run(follow_state_txn, merchant_id, job.user_id)
        membership = await self._members.local_membership(job.user_id, room_id)
        if state == "unfollowed":
            return False
        if membership == "join":
            if state is None:
                # Joined by an earlier run of this job that stopped before recording it (a crash
                # or restart between the join and the bookkeeping): record and file it now.
                self._record_follow(job, merchant_id, room_id)
                return True
            return False
        if membership == "leave" and await self._members.left_by_self(job.user_id, room_id):
            # They left the circle themselves (the membership watcher has not got there yet):
            # that is an unfollow; remember it.
            await self._store.run(record_leave_txn, merchant_id, job.user_id, room_id,
                                  self._api.get_current_time_msec())
            return False
        if not await self._circle_alive(room_id):
            raise Permanent(f"the circle room {room_id} of {merchant_id} is gone (shut down or purged)")
        # Mute first, so not even the first post after the join can notify (done already when the
        # claim muted its batch ahead).
        if not self._mutes.muted_ahead(job.user_id, room_id):
            await self._mutes.mute(job.user_id, room_id)
        self._joining.add((job.user_id, room_id))
        try:
            await self._members.set_membership(job.user_id, room_id, "join")
        finally:
            self._joining.discard((job.user_id, room_id))
        self._record_follow(job, merchant_id, room_id)
        return True

    def _record_follow(self, job: Job, merchant_id: str, room_id: str) -> None:
        """Following, filing queued and the job done: one transaction, shared with the follows
        that end at about the same time, written in the background (the job's slot goes to the
        next follow at once). Until it is written the job stays queued: if Synapse stops first,
        the job runs again, finds the user joined, and records it then."""
        follow = (job.job_id, merchant_id, job.user_id, room_id, self._api.get_current_time_msec())

        async def record() -> None:
            try:
                await self._finished_follows.submit(follow)
            except Exception as e:
                logger.warning("Recording %s's follow of %s failed (%s); the job will record it when it runs again",
                               job.user_id, merchant_id, e)
            finally:
                self._queue.release(job.job_id)

        self._queue.hold(job.job_id)
        self._api.run_as_background_process("wangxin_circle_record_follow", record)

    async def _circle_alive(self, room_id: str) -> bool:
        """Whether the circle's owner is still in it (not shut down or purged). Checked once a
        minute per circle, not on each of a follow wave's thousands of joins; a join into a
        circle that went away in between fails and is retried until this says so."""
        now = self._api.get_current_time_msec()
        seen = self._owner_seen.get(room_id)
        if seen is not None and now - seen < OWNER_CHECK_MS:
            return True
        if await self._members.local_membership(self._lookups.owner, room_id) != "join":
            self._owner_seen.pop(room_id, None)
            return False
        self._owner_seen[room_id] = now
        return True
