"""Circle rooms: made for a merchant by the owner account, completed, and only then recorded.

Who may post and that nobody turns encryption on are the room's power levels (stock auth): the
room is created by a service user no one can log in as (in room version 12 its creator has
unlimited power); merchant and bot sit at 50, posting needs 50, and power levels, encryption and
every other state event need 100.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Any

import attrs
from synapse.module_api import ModuleApi

from synapse_modules._internals import MembershipInternals
from synapse_modules.merchant_circle.config import MerchantCircleConfig
from synapse_modules.merchant_circle.lookups import CircleLookups
from synapse_modules.merchant_circle.rules import CIRCLE_ROOM_TYPE, SHARD_KEY
from synapse_modules.merchant_circle.store import MerchantCircleStore
from synapse_modules.merchant_circle.store.merchants import (
    Merchant,
    all_circles_txn,
    get_merchant_txn,
    insert_merchant_txn,
    start_circle_creation_txn,
    update_merchant_profile_txn,
)
from synapse_modules.merchant_circle.store.shards import shards_of_txn

logger = logging.getLogger(__name__)

POSTER_LEVEL = 50
ADMIN_LEVEL = 100
CREATING_POLL_S = 0.1  # an overlapping PUT for the same merchant checks this often whether the first is done

# Told of each merchant whose circle this process has just made (in the background, after the PUT).
NewMerchantListener = Callable[[Merchant], Awaitable[None]]


def circle_name(name: str) -> str:
    return f"{name} · 商家圈"


class Circles:
    def __init__(self, api: ModuleApi, config: MerchantCircleConfig, store: MerchantCircleStore,
                 lookups: CircleLookups, members: MembershipInternals):
        self._api = api
        self._config = config
        self._store = store
        self._lookups = lookups
        self._members = members
        self._owner = lookups.owner
        self._creating: set[str] = set()  # merchants whose circle this process is making
        self._new_merchant_listeners: list[NewMerchantListener] = []

    def on_new_merchant(self, listener: NewMerchantListener) -> None:
        """Call ``listener`` in the background for every merchant made here from now on (the
        accounts module makes each new merchant an account). Its failure is logged, and changes
        nothing for the merchant."""
        self._new_merchant_listeners.append(listener)

    async def put_merchant(self, user_id: str, name: str, avatar_url: str | None) -> Merchant:
        """Make ``user_id`` a merchant with this profile (its circle made), or update its profile."""
        merchant = await self._store.run(get_merchant_txn, user_id)
        if merchant is None:
            merchant = await self._make_circle(user_id, name, avatar_url)
            for listener in self._new_merchant_listeners:
                self._api.run_as_background_process("wangxin_circle_new_merchant", listener, merchant)
        else:
            merchant = await self._update_profile(merchant, name, avatar_url)
        self._lookups.remember_circle(merchant.circle_room_id, user_id)
        return merchant

    async def seat_posters(self, merchant: Merchant) -> None:
        """(Re-)ensure the merchant and its bot are in the circle: a crash between the steps of a
        PUT is repaired by a retried PUT."""
        await self.seat_posters_in(merchant.user_id, merchant.circle_room_id)

    async def _make_circle(self, user_id: str, name: str, avatar_url: str | None) -> Merchant:
        """Make the circle room, complete it, then record the merchant. A failure before the
        record leaves a room only its owner is in; the retried PUT (told by the creation marker
        to look) finds that room and finishes it instead of making a second one."""
        # Overlapping PUTs for one merchant in this process go one after the other (the later
        # ones then find the merchant); across processes the marker below sorts them out.
        while user_id in self._creating:
            await self._api.sleep(CREATING_POLL_S)
        self._creating.add(user_id)  # no await between the check and this
        try:
            recorded = await self._store.run(get_merchant_txn, user_id)
            if recorded is not None:
                return await self._update_profile(recorded, name, avatar_url)
            now = self._api.get_current_time_msec()
            earlier_attempt = await self._store.run(start_circle_creation_txn, user_id, now)
            room_id = await self._unfinished_circle(user_id) if earlier_attempt else None
            if room_id is None:
                room_id = await self._create_circle(user_id)
            await self._apply_profile(room_id, name, avatar_url)
            merchant = await self._store.run(insert_merchant_txn, Merchant(user_id, name, avatar_url, room_id), now)
        finally:
            self._creating.discard(user_id)
        if merchant.circle_room_id != room_id:
            # Another process recorded its circle first: ours is left empty (nobody else is in it yet).
            await self._api.update_room_membership(self._owner, self._owner, room_id, "leave")
        return merchant

    async def _update_profile(self, merchant: Merchant, name: str, avatar_url: str | None) -> Merchant:
        """The room first: if that fails, the old name stays in the room and in the record."""
        await self._apply_profile(merchant.circle_room_id, name, avatar_url)
        for _, shard_room, _ in await self._store.run(shards_of_txn, merchant.user_id):
            if shard_room is not None:
                await self._apply_profile(shard_room, name, avatar_url)
        if (merchant.name, merchant.avatar_url) != (name, avatar_url):
            await self._store.run(update_merchant_profile_txn, merchant.user_id, name, avatar_url)
        return attrs.evolve(merchant, name=name, avatar_url=avatar_url)

    async def _unfinished_circle(self, user_id: str) -> str | None:
        """The circle room an earlier, failed PUT made for ``user_id`` (its owner is in it, no
        merchant record names it), completed; extra ones are left empty. Reads the owner's rooms:
        only ever after a failure."""
        recorded = {room_id for _, room_id in await self._store.run(all_circles_txn)}
        found = None
        for room_id in await self._members.rooms_of(self._owner, ("join",)):
            if room_id in recorded:
                continue
            create = (await self._api.get_room_state(room_id, [("m.room.create", "")])).get(("m.room.create", ""))
            if create is None or create.content.get("type") != CIRCLE_ROOM_TYPE \
                    or create.content.get("org.wangxin.merchant") != user_id \
                    or SHARD_KEY in create.content:  # a further room of the circle, not its first
                continue
            if found is None:
                found = room_id
            else:
                await self._api.update_room_membership(self._owner, self._owner, room_id, "leave")
        if found is not None:
            logger.info("Reusing circle room %s that an earlier attempt made for %s", found, user_id)
            # ``createRoom`` may have stopped before its last state events: send what is missing.
            config = self._circle_config(user_id)
            fixed: dict[str, Any] = {
                "m.room.power_levels": config["power_level_content_override"],
                "m.room.join_rules": {"join_rule": "public"},
                **{state["type"]: state["content"] for state in config["initial_state"]},
            }
            present = await self._api.get_room_state(found, [(t, "") for t in fixed])
            for event_type, content in fixed.items():
                current = present.get((event_type, ""))
                if current is None or any(current.content.get(k) != v for k, v in content.items()):
                    await self._owner_state(found, event_type, content)
        return found

    async def make_shard_room(self, merchant: Merchant, shard_no: int) -> str:
        """A further room of the circle (docs/merchant-circle.md, "Circles past one room"): made
        like the first, marked with its number, with the merchant's profile. Its posters are
        seated by :meth:`seat_posters_in` once the room is recorded (a join before that would find
        a room not known as a circle)."""
        config = self._circle_config(merchant.user_id)
        config["creation_content"][SHARD_KEY] = shard_no
        room_id, _ = await self._api.create_room(self._owner, config, ratelimit=False)
        await self._apply_profile(str(room_id), merchant.name, merchant.avatar_url)
        return str(room_id)

    async def seat_posters_in(self, merchant_id: str, room_id: str) -> None:
        for poster in [merchant_id] + ([self._config.merchant_bot] if self._config.merchant_bot else []):
            if poster != merchant_id and not await self._lookups.user_exists(poster):
                continue
            if await self._members.local_membership(poster, room_id) != "join":
                await self._members.set_membership(poster, room_id, "join")

    def _circle_config(self, user_id: str) -> dict[str, Any]:
        """What a circle is made of, apart from its name, topic and avatar (the merchant's
        profile, set after: :meth:`_apply_profile`)."""
        users = {user_id: POSTER_LEVEL}
        if self._config.merchant_bot:
            users[self._config.merchant_bot] = POSTER_LEVEL
        return {
            # Version 12 on purpose: its creator (the owner) outranks every power level, and
            # the owner is an account nobody can log in as.
            "room_version": "12",
            "preset": "public_chat",  # followers join without an invite
            "visibility": "private",  # but it is not listed in the room directory
            "creation_content": {"type": CIRCLE_ROOM_TYPE, "org.wangxin.merchant": user_id},
            "initial_state": [
                {"type": "m.room.history_visibility", "state_key": "", "content": {"history_visibility": "shared"}},
                {"type": "m.room.guest_access", "state_key": "", "content": {"guest_access": "forbidden"}},
            ],
            "power_level_content_override": {
                "users": users,
                "users_default": 0,
                "events_default": POSTER_LEVEL,
                "state_default": ADMIN_LEVEL,
                "invite": ADMIN_LEVEL,
                "kick": ADMIN_LEVEL,
                "ban": ADMIN_LEVEL,
                "redact": POSTER_LEVEL,
                "notifications": {"room": ADMIN_LEVEL},
                "events": {
                    "m.room.encryption": ADMIN_LEVEL,
                    "m.room.power_levels": ADMIN_LEVEL,
                    "m.room.name": ADMIN_LEVEL,
                    "m.room.avatar": ADMIN_LEVEL,
                    "m.room.topic": ADMIN_LEVEL,
                    "m.room.history_visibility": ADMIN_LEVEL,
                    "m.room.join_rules": ADMIN_LEVEL,
                    "m.room.canonical_alias": ADMIN_LEVEL,
                    "m.room.tombstone": ADMIN_LEVEL,
                    "m.room.server_acl": ADMIN_LEVEL,
                },
            },
        }

    async def _create_circle(self, user_id: str) -> str:
        if not await self._lookups.user_exists(self._owner):
            try:
                await self._api.register_user(self._config.owner_localpart, "Wangxin merchant circles")
            except Exception:
                if not await self._lookups.user_exists(self._owner):  # else another PUT registered it just now
                    raise
        room_id, _ = await self._api.create_room(self._owner, self._circle_config(user_id), ratelimit=False)
        return str(room_id)

    async def _apply_profile(self, room_id: str, name: str, avatar_url: str | None) -> None:
        """The circle's name, topic and avatar from the merchant's profile (only what differs)."""
        wanted = {
            "m.room.name": ("name", circle_name(name)),
            "m.room.topic": ("topic", f"Posts from {name}. Followers read, only the merchant posts."),
            "m.room.avatar": ("url", avatar_url),
        }
        state = await self._api.get_room_state(room_id, [(t, "") for t in wanted])
        for event_type, (key, value) in wanted.items():
            current = state.get((event_type, ""))
            if (current.content.get(key) if current is not None else None) != value:
                await self._owner_state(room_id, event_type, {key: value} if value is not None else {})

    async def _owner_state(self, room_id: str, event_type: str, content: dict[str, Any]) -> None:
        await self._api.create_and_send_event_into_room(
            {"type": event_type, "room_id": room_id, "sender": self._owner, "state_key": "", "content": content}
        )
