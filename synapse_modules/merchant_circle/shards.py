"""A circle past one room (docs/merchant-circle.md, "Circles past one room").

A Matrix room does not carry millions of members: every join adds to its state, its membership
reads grow with it, and one room is one event persister's work. So a circle is a list of rooms:
its first room (the merchant's ``circle_room_id``, the one its address names) and further rooms,
"shards", each made by the service like the first. A new follower goes into the last room until
that room has ``shard_size`` followers (a bound, not exact: follows on other processes at the
moment a room fills may pass it by a few), then into a new one. A follower stays in the room they were put in. Posts are
made in the first room and mirrored into the others (``mirrors``).

The list of a circle's rooms is cached here for ``ROOMS_TTL_MS``: a process that has not seen a
new room yet places followers in the room before it for that long.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Iterable, Sequence

from synapse.module_api import ModuleApi

from synapse_modules._internals import MembershipInternals
from synapse_modules.merchant_circle.circles import Circles
from synapse_modules.merchant_circle.config import MerchantCircleConfig
from synapse_modules.merchant_circle.lookups import CircleLookups
from synapse_modules.merchant_circle.store import MerchantCircleStore
from synapse_modules.merchant_circle.store.merchants import get_merchant_txn
from synapse_modules.merchant_circle.store.shards import claim_shard_txn, set_shard_room_txn, shards_of_txn

logger = logging.getLogger(__name__)

ROOMS_TTL_MS = 5_000
# A room claimed by a process that has not recorded it after this long is made by the next one
# that needs it (the first process stopped; the room it may have made stays empty but its owner's).
STALE_CLAIM_MS = 10 * 60_000
# Past this many rooms a follower's room is found from the rooms they are in (cached by Synapse),
# not by asking each room.
MANY_ROOMS = 8
MAKING_POLL_S = 0.05
MAX_PLACING_ROUNDS = 4

# Told of each further room this process has just made (the accounts module adds its state).
NewShardListener = Callable[[str, str], Awaitable[None]]  # merchant id, room id


class Shards:
    def __init__(self, api: ModuleApi, config: MerchantCircleConfig, store: MerchantCircleStore,
                 lookups: CircleLookups, members: MembershipInternals, circles: Circles):
        self._api = api
        self._config = config
        self._store = store
        self._lookups = lookups
        self._members = members
        self._circles = circles
        self._rooms: dict[str, tuple[int, list[str]]] = {}  # merchant -> (read at, rooms)
        self._making: set[str] = set()  # merchants whose next room this process is making
        self._listeners: list[NewShardListener] = []
        # room -> follows this process has placed there whose join is not done yet: counted with
        # the room's members, so a wave of follows running side by side fills a room exactly.
        self._placed: dict[str, int] = {}

    def on_new_shard(self, listener: NewShardListener) -> None:
        self._listeners.append(listener)

    async def rooms(self, merchant_id: str, fresh: bool = False) -> list[str]:
        """The circle's rooms, its first room first; empty for no merchant."""
        now = self._api.get_current_time_msec()
        cached = self._rooms.get(merchant_id)
        if cached is not None and not fresh and now - cached[0] < ROOMS_TTL_MS:
            return cached[1]
        first = await self._lookups.circle_room_of(merchant_id)
        if first is None:
            return []
        rooms = [first] + [room for _, room, _ in await self._store.run(shards_of_txn, merchant_id) if room]
        self._rooms[merchant_id] = (now, rooms)
        return rooms

    async def room_of(self, user_id: str, merchant_id: str,
                      memberships: Sequence[str] = ("join",)) -> str | None:
        """The room of the circle where the user's membership is one of ``memberships``."""
        rooms = await self.rooms(merchant_id)
        if len(rooms) > MANY_ROOMS:
            theirs = set(await self._members.rooms_of(user_id, memberships))
            return next((room for room in rooms if room in theirs), None)
        for room in rooms:
            if await self._members.local_membership(user_id, room) in memberships:
                return room
        return None

    async def room_for_follow(self, merchant_id: str, user_id: str) -> tuple[str | None, bool]:
        """Where a follow puts the user: the room of the circle they are (or were) in, else the
        last room while it has room, else a new one (``None`` for no merchant); and whether the
        place was taken in a room for new followers: then the caller calls :meth:`joined` once
        the join is done (or failed)."""
        known = await self.room_of(user_id, merchant_id, ("join", "invite", "leave", "ban"))
        if known is not None:
            return known, False
        for _ in range(MAX_PLACING_ROUNDS):
            rooms = await self.rooms(merchant_id)
            if not rooms:
                return None, False
            last = rooms[-1]
            if self._config.shard_size == 0:
                return last, False
            followers = await self._followers_in(merchant_id, last)
            if followers + self._placed.get(last, 0) < self._config.shard_size:
                break
            if await self._add_room(merchant_id, len(rooms)) is None:
                break  # another process is making the next room: this one overfills the last a little
        # No await since the count: the place is this follow's.
        self._placed[last] = self._placed.get(last, 0) + 1
        return last, True

    def joined(self, room_id: str) -> None:
        """The join of a follow placed by :meth:`room_for_follow` is done (or failed)."""
        left = self._placed.get(room_id, 0) - 1
        if left > 0:
            self._placed[room_id] = left
        else:
            self._placed.pop(room_id, None)

    async def open_room(self, merchant_id: str, make: bool = True) -> str | None:
        """The room new followers go into (made when the last one is full, if ``make``)."""
        rooms = await self.rooms(merchant_id)
        if not rooms:
            return None
        last = rooms[-1]
        if self._config.shard_size == 0:
            return last
        followers = await self._followers_in(merchant_id, last)
        if followers + self._placed.get(last, 0) < self._config.shard_size or not make:
            return last
        return await self._add_room(merchant_id, len(rooms)) or last

    async def followers(self, merchant_id: str, not_followers: Iterable[str]) -> int:
        """Joined members of all the circle's rooms, less ``not_followers`` (posters, service)."""
        posters = set(not_followers)
        total = 0
        for room in await self.rooms(merchant_id):
            total += await self._followers_in(merchant_id, room, posters)
        return total

    async def _followers_in(self, merchant_id: str, room_id: str, posters: set[str] | None = None) -> int:
        if posters is None:
            posters = {merchant_id} | self._lookups.service_users()
        joined = await self._members.joined_member_count(room_id)  # cached by Synapse
        seated = 0
        for user_id in posters:
            if await self._members.local_membership(user_id, room_id) == "join":
                seated += 1
        return max(0, joined - seated)

    async def _add_room(self, merchant_id: str, shard_no: int) -> str | None:
        """Make the circle's room number ``shard_no`` (the first is 0), unless another follow or
        process is making it: then ``None`` (the caller overfills the last room a little) or the
        room another process has just made."""
        if merchant_id in self._making:
            # Made by another follow in this process right now: wait for it (a room is made in
            # well under a second), so the follows of a wave do not all overfill the last room.
            while merchant_id in self._making:
                await self._api.sleep(MAKING_POLL_S)
            rooms = await self.rooms(merchant_id)
            return rooms[shard_no] if len(rooms) > shard_no else None
        self._making.add(merchant_id)  # no await between the check and this
        try:
            now = self._api.get_current_time_msec()
            if not await self._store.run(claim_shard_txn, merchant_id, shard_no, now, now - STALE_CLAIM_MS):
                rooms = await self.rooms(merchant_id, fresh=True)
                return rooms[shard_no] if len(rooms) > shard_no else None
            merchant = await self._store.run(get_merchant_txn, merchant_id)
            if merchant is None:
                return None
            room_id = await self._circles.make_shard_room(merchant, shard_no)
            # Known as the merchant's circle before anyone but its owner joins it.
            self._lookups.remember_circle(room_id, merchant_id)
            await self._store.run(set_shard_room_txn, merchant_id, shard_no, room_id)
            await self._circles.seat_posters_in(merchant_id, room_id)
            logger.info("Made room %d (%s) of %s's circle: the last one has %d followers", shard_no, room_id,
                        merchant_id, self._config.shard_size)
            for listener in self._listeners:
                self._api.run_as_background_process("wangxin_circle_new_shard", listener, merchant_id, room_id)
            await self.rooms(merchant_id, fresh=True)
            return room_id
        finally:
            self._making.discard(merchant_id)
