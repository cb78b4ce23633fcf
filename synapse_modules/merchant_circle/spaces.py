"""Each follower's "Merchant Circle / 商家圈" space: the circles they follow and their chats with
merchants, filed in it by ``file`` jobs after the join and taken out by ``unfile`` jobs after a leave."""

from __future__ import annotations

from typing import Any

from synapse.module_api import ModuleApi

from synapse_modules._internals import MembershipInternals
from synapse_modules.merchant_circle.config import MerchantCircleConfig
from synapse_modules.merchant_circle.follows import check_chat, check_user_active
from synapse_modules.merchant_circle.lookups import CircleLookups
from synapse_modules.merchant_circle.mutes import Mutes
from synapse_modules.merchant_circle.queue import NotYet
from synapse_modules.merchant_circle.store import MerchantCircleStore
from synapse_modules.merchant_circle.store.follows import Job, follow_state_txn
from synapse_modules.merchant_circle.store.spaces import get_space_txn, is_filed_txn, set_filed_txn, set_space_txn


class Spaces:
    def __init__(self, api: ModuleApi, config: MerchantCircleConfig, store: MerchantCircleStore,
                 lookups: CircleLookups, members: MembershipInternals, mutes: Mutes):
        self._api = api
        self._config = config
        self._store = store
        self._lookups = lookups
        self._members = members
        self._mutes = mutes

    async def space_of(self, user_id: str) -> str | None:
        return await self._store.run(get_space_txn, user_id)

    async def file(self, job: Job) -> None:
        """The ``file`` job: put ``job.room_id`` (a circle, or a chat with a merchant) into the user's space."""
        if job.room_id is None or await self._store.run(is_filed_txn, job.user_id, job.room_id):
            return
        await check_user_active(self._api, job.user_id)
        merchant_id = job.merchant_id
        # One of the merchant's circle rooms (its first, or a further one: ``shards``)?
        is_circle = merchant_id is not None and await self._lookups.circle_merchant(job.room_id) == merchant_id
        if merchant_id and is_circle:
            if await self._store.run(follow_state_txn, merchant_id, job.user_id) == "unfollowed":
                return
            if await self._members.local_membership(job.user_id, job.room_id) != "join":
                if job.reason == "joined":
                    # Queued by user_may_join_room, before the join itself is persisted (and, on
                    # workers, replicated here): wait for it as a chat's follow waits for its
                    # invite. A leave since then is recorded as an unfollow, which ends it above.
                    raise NotYet(f"the join of {job.user_id} into {job.room_id} is not seen here (yet)")
                return  # left again before it was filed
            if job.reason == "joined":
                await self._mutes.mute(job.user_id, job.room_id)
        elif merchant_id:
            await check_chat(self._members, job.user_id, merchant_id, job.room_id)
        if not self._config.space_filing:
            return  # the operator keeps circles out of spaces (docs/merchant-circle.md, "Configuration")
        child = {"via": [self._api.server_name], "order": "1" if is_circle else "0"}
        space_id = await self.space_of(job.user_id)
        if space_id is None:
            # The user's first filing makes the space with the room already in it: one event and
            # one state group fewer per follower than creating it and then adding the child.
            await self._create_space(job.user_id, job.room_id, child)
        else:
            await self._set_child(job.user_id, space_id, job.room_id, child)
        await self._store.run(set_filed_txn, job.user_id, job.room_id, True)

    async def unfile_job(self, job: Job) -> None:
        """The ``unfile`` job: the user unfollowed; take the circle out of their space."""
        if job.merchant_id and await self._store.run(follow_state_txn, job.merchant_id, job.user_id) != "unfollowed":
            return  # followed again since
        if job.room_id is not None:
            await self.unfile(job.user_id, job.room_id)

    async def unfile(self, user_id: str, room_id: str) -> None:
        """Take a room out of the user's space (an ``m.space.child`` with empty content)."""
        space_id = await self.space_of(user_id)
        if not space_id:
            return
        if await self._store.run(is_filed_txn, user_id, room_id):
            await self._set_child(user_id, space_id, room_id, {})
            await self._store.run(set_filed_txn, user_id, room_id, False)

    async def _set_child(self, user_id: str, space_id: str, room_id: str, content: dict[str, Any]) -> None:
        """The user's ``m.space.child`` for ``room_id`` in their space (empty content removes it)."""
        await self._api.create_and_send_event_into_room(
            {"type": "m.space.child", "room_id": space_id, "sender": user_id, "state_key": room_id,
             "content": content}
        )

    async def _create_space(self, user_id: str, first_room_id: str, child: dict[str, Any]) -> str:
        room_id, _ = await self._api.create_room(
            user_id,
            {
                "name": self._config.space_name,
                "topic": "Merchants you follow and your chats with them (muted by default)",
                "preset": "private_chat",
                "visibility": "private",
                "creation_content": {"type": "m.space"},
                "power_level_content_override": {"events_default": 100, "invite": 100},
                "initial_state": [{"type": "m.space.child", "state_key": first_room_id, "content": child}],
            },
            ratelimit=False,
        )
        stored = await self._store.run(set_space_txn, user_id, room_id)
        if stored != room_id:  # another space was recorded first: file the room there instead
            await self._set_child(user_id, stored, first_room_id, child)
        return stored
