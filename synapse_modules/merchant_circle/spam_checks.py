"""The spam-checker callbacks: circle posts within their quota, circles made only by the server,
moments friends-only, and a chat with a merchant starting a follow.

None of these uses ``check_event_allowed`` / ``on_new_event``, which load a room's whole state for
every event on the server (docs/synapse.md, "Module callbacks and their cost"):

- **Post quota and repost cooldown**: ``check_event_for_spam``, which sees only the event. For a
  room that is not a circle it answers from an in-process cache; for a post it runs one short
  transaction. Over the limit it raises 429 ``M_LIMIT_EXCEEDED`` with ``retry_after_ms`` and the
  limit's name. An admitted post counts once its event is persisted (later checks may still
  refuse it). Every event type the merchant or bot sends is a post, an edit of one, a removal of
  one, or refused (``rules.classify_circle_event``).
- **Circle rooms are made only by the server**: ``user_may_create_room`` refuses the room type.
- **Moments are friends-only**: ``user_may_invite`` / ``user_may_join_room`` refuse merchants
  (and the merchant bot) in moments rooms; ``user_may_create_room`` / ``user_may_send_state_event``
  keep them from becoming world-readable or public, and ``user_may_publish_room`` from being listed.
- **Auto-follow from a chat**: an invite between a user and a merchant queues a follow (not for
  users whose chats another module answers: ``CircleLookups.set_chat_router``).
"""

from __future__ import annotations

import logging
from typing import Literal

from synapse.module_api import NOT_SPAM, EventBase, JsonDict, ModuleApi, errors

from synapse_modules._internals import sending_device
from synapse_modules.merchant_circle.config import MerchantCircleConfig
from synapse_modules.merchant_circle.follows import Follows
from synapse_modules.merchant_circle.lookups import CircleLookups
from synapse_modules.merchant_circle.mirrors import Mirrors
from synapse_modules.merchant_circle.queue import FollowQueue
from synapse_modules.merchant_circle.rules import (
    CIRCLE_ROOM_TYPE,
    MOMENTS_ROOM_TYPE,
    NOT_FRIENDS_ONLY,
    CircleEvent,
    classify_circle_event,
    edit_product_error,
    not_friends_only_reason,
    world_readable,
)
from synapse_modules.merchant_circle.store import MerchantCircleStore
from synapse_modules.merchant_circle.store.follows import enqueue_follow_txn, enqueue_job_txn, set_follow_state_txn
from synapse_modules.merchant_circle.store.posts import is_circle_post_txn, record_edit_txn, record_post_txn

logger = logging.getLogger(__name__)

Decision = Literal["NOT_SPAM"] | tuple[errors.Codes, JsonDict]


def limit_exceeded(limit: str, reason: str, retry_after_ms: int) -> Exception:
    """429 ``M_LIMIT_EXCEEDED`` saying which limit (``org.wangxin.limit``, the option that sets
    it) and when the next try is allowed (``retry_after_ms`` and ``Retry-After``)."""
    return errors.SynapseError(
        429, f"{reason[:1].upper()}{reason[1:]}: the next one is allowed in {_duration(retry_after_ms)}",
        errors.Codes.LIMIT_EXCEEDED, additional_fields={"retry_after_ms": retry_after_ms, "org.wangxin.limit": limit},
        headers={"Retry-After": str(-(-retry_after_ms // 1000))},
    )


def _duration(ms: int) -> str:
    minutes = -(-ms // 60_000)
    if minutes < 60:
        return f"{minutes} min"
    hours, minutes = divmod(minutes, 60)
    if hours < 48:
        return f"{hours} h {minutes} min" if minutes else f"{hours} h"
    return f"{hours // 24} days {hours % 24} h"


def _forbidden(message: str) -> Decision:
    return errors.Codes.FORBIDDEN, {"error": message}


class SpamChecks:
    def __init__(self, api: ModuleApi, config: MerchantCircleConfig, store: MerchantCircleStore,
                 lookups: CircleLookups, follows: Follows, queue: FollowQueue, mirrors: Mirrors):
        self._api = api
        self._mirrors = mirrors
        self._config = config
        self._store = store
        self._lookups = lookups
        self._follows = follows
        self._queue = queue

    def register(self) -> None:
        self._api.register_spam_checker_callbacks(
            check_event_for_spam=self.check_event_for_spam,
            user_may_invite=self.user_may_invite,
            user_may_join_room=self.user_may_join_room,
            user_may_create_room=self.user_may_create_room,
            user_may_send_state_event=self.user_may_send_state_event,
            user_may_publish_room=self.user_may_publish_room,
        )

    # -- circle posts -------------------------------------------------------------------------

    async def check_event_for_spam(self, event: EventBase) -> str:
        if event.is_state() or not self._api.is_mine(event.sender):
            return NOT_SPAM
        merchant_id = await self._lookups.circle_merchant(event.room_id)  # in-process cache
        if merchant_id is None:
            return NOT_SPAM
        if event.sender not in (merchant_id, self._config.merchant_bot):
            return NOT_SPAM  # the power levels refuse it; it must not use up the merchant's quota
        if self._mirrors.is_mirror(event):
            return NOT_SPAM  # a copy of a post of the circle's first room, counted there
        if await self._mirrors.is_further_room(merchant_id, event.room_id):
            raise errors.SynapseError(
                403, "This room is one of the circle's rooms for its followers, where posts are copied: "
                "post in the circle's first room (or through the merchant bot)", errors.Codes.FORBIDDEN)
        circle_event = classify_circle_event(event.type, event.content, getattr(event, "redacts", None))
        await self._admit_circle_event(merchant_id, event, circle_event)
        await self._mirrors.admitted(merchant_id, event)
        return NOT_SPAM

    async def _admit_circle_event(self, merchant_id: str, event: EventBase, circle_event: CircleEvent) -> None:
        """Everything a follower's client shows counts: a post takes a slot of the daily quota
        (and a product's cooldown), an edit of one of the sender's posts one of that post's edits
        of the day, a removal must be of one of the circle's posts; anything else is refused."""
        now = self._api.get_current_time_msec()
        if circle_event.kind == "refused":
            raise errors.SynapseError(403, circle_event.reason or "Not allowed in a circle", errors.Codes.FORBIDDEN)
        if circle_event.kind == "redaction":
            if circle_event.target is None or not await self._store.run(
                    is_circle_post_txn, merchant_id, circle_event.target):
                raise errors.SynapseError(403, "In a circle you can remove its posts only", errors.Codes.FORBIDDEN)
            return
        if circle_event.kind == "edit" and circle_event.target is not None:
            edit = await self._store.run(
                record_edit_txn, merchant_id, event.event_id, event.sender, sending_device(event), circle_event.target,
                now, self._config.edits_per_post_per_day,
            )
            if not edit.not_a_post:
                error = edit_product_error(circle_event, edit.post_product_id)
                if error is not None:
                    raise error
                if edit.retry_after_ms is not None:
                    logger.info("Refused an edit in %s's circle: too many edits of %s", merchant_id,
                                circle_event.target)
                    raise limit_exceeded("edits_per_post_per_day", f"the limit of "
                                         f"{self._config.edits_per_post_per_day} edits per post a day is reached",
                                         edit.retry_after_ms)
                return
            # Not an edit of one of the sender's posts: whatever it shows is a new post.
        product = circle_event.product
        limit = await self._lookups.post_limit(merchant_id)
        decision = await self._store.run(
            record_post_txn, merchant_id, event.event_id, event.sender, sending_device(event),
            product["id"] if product else None, product, now, limit.posts, self._config.cooldown_ms,
            limit.window_ms,
        )
        if decision.retry_after_ms is not None:
            logger.info("Refused a post in %s's circle: %s", merchant_id, decision.reason)
            option = limit.option if decision.limit in (None, "posts_per_day") else decision.limit
            raise limit_exceeded(option, decision.reason or "over the limit", decision.retry_after_ms)

    # -- rooms --------------------------------------------------------------------------------

    async def user_may_create_room(self, user_id: str, room_config: JsonDict) -> Decision:
        creation = room_config.get("creation_content") or {}
        room_type = creation.get("type") if isinstance(creation, dict) else None
        if room_type == CIRCLE_ROOM_TYPE and user_id != self._lookups.owner:
            return _forbidden("Merchant circles are created by the server, not by clients")
        if room_type == MOMENTS_ROOM_TYPE:
            if await self._lookups.is_merchant_like(user_id):
                return _forbidden("Moments are for friends; merchants have a circle instead")
            invited = [u for u in room_config.get("invite") or [] if isinstance(u, str)]
            if self._config.merchant_bot in invited or await self._lookups.merchants_among(invited):
                return _forbidden("Merchants cannot be invited to moments")
            for state in room_config.get("initial_state") or []:
                if isinstance(state, dict) and world_readable(state.get("type"), state.get("content")):
                    return _forbidden("Moments cannot be world-readable")
            reason = not_friends_only_reason(room_config)
            if reason:
                return _forbidden(reason)
        return NOT_SPAM

    async def user_may_send_state_event(
        self, user_id: str, room_id: str, event_type: str, state_key: str, content: JsonDict
    ) -> Decision:
        if event_type == "m.room.history_visibility" and world_readable(event_type, content):
            if await self._lookups.type_of_room(room_id) == MOMENTS_ROOM_TYPE:
                return _forbidden("Moments cannot be world-readable")
        if event_type == "m.room.join_rules" and isinstance(content, dict):
            rule = content.get("join_rule")
            if rule in NOT_FRIENDS_ONLY and await self._lookups.type_of_room(room_id) == MOMENTS_ROOM_TYPE:
                return _forbidden(f"Moments are friends-only: the join rule cannot be '{rule}'")
        return NOT_SPAM

    async def user_may_publish_room(self, user_id: str, room_id: str) -> Decision:
        """The room directory lists rooms for anyone to find: never moments."""
        if await self._lookups.type_of_room(room_id) == MOMENTS_ROOM_TYPE:
            return _forbidden("Moments are friends-only: they cannot be listed in the room directory")
        return NOT_SPAM

    # -- memberships --------------------------------------------------------------------------

    async def user_may_invite(self, inviter: str, invitee: str, room_id: str) -> Decision:
        room_type = await self._lookups.type_of_room(room_id)
        if room_type == MOMENTS_ROOM_TYPE:
            if await self._lookups.is_merchant_like(invitee):
                return _forbidden("Merchants cannot be invited to moments")
            return NOT_SPAM
        if room_type == CIRCLE_ROOM_TYPE or room_type == "m.space":
            return NOT_SPAM
        await self._follow_on_conversation(inviter, invitee, room_id)
        return NOT_SPAM

    async def user_may_join_room(self, user_id: str, room_id: str, is_invited: bool) -> Decision:
        room_type = await self._lookups.type_of_room(room_id)
        if room_type == MOMENTS_ROOM_TYPE and await self._lookups.is_merchant_like(user_id):
            return _forbidden("Merchants cannot join moments")
        if room_type == CIRCLE_ROOM_TYPE and not self._follows.is_joining(user_id, room_id):
            merchant_id = await self._lookups.circle_merchant(room_id)
            if merchant_id and user_id != merchant_id and user_id not in self._lookups.service_users():
                # An explicit follow by the user: it undoes an earlier unfollow; file and mute it.
                now = self._api.get_current_time_msec()
                await self._store.run(set_follow_state_txn, merchant_id, user_id, "following", now)
                await self._store.run(enqueue_job_txn, "file", user_id, merchant_id, room_id, "joined", now)
        return NOT_SPAM

    async def _follow_on_conversation(self, inviter: str, invitee: str, room_id: str) -> None:
        service = self._lookups.service_users()
        if inviter in service or invitee in service or inviter == invitee:
            return
        if self._lookups.routes_chats(invitee) or self._lookups.routes_chats(inviter):
            return  # another module answers chats with them (an account's support room)
        local = [u for u in (inviter, invitee) if self._api.is_mine(u)]
        merchants = await self._lookups.merchants_among(local)
        if not merchants:
            return
        now = self._api.get_current_time_msec()
        for merchant_id in merchants:
            other = invitee if merchant_id == inviter else inviter
            if not self._api.is_mine(other) or other in merchants:
                continue
            await self._store.run(enqueue_follow_txn, other, merchant_id, f"chat:{room_id}", now)
            # The chat itself goes in the buyer's merchant space, apart from friends' chats.
            await self._store.run(enqueue_job_txn, "file", other, merchant_id, room_id, "chat", now)
        self._queue.kick()
