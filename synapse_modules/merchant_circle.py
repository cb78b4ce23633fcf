"""The merchant circle (商家圈): merchants' broadcast feeds, auto-follow, and friends-only moments.

Where each rule is enforced (all without ``check_event_allowed`` / ``on_new_event``, which load
a room's whole state for every event on the server; docs/synapse.md, "Module callbacks and their cost"):

- **Who may post in a circle, and that nobody turns encryption on**: the circle room's power
  levels (stock auth). The room is created by a service user no one can log in as (in room
  version 12 its creator has unlimited power); merchant and bot sit at 50, posting needs 50,
  and power levels, encryption and every other state event need 100.
- **Circle rooms are made only here**: ``user_may_create_room`` refuses the room type to clients.
- **Post quota and repost cooldown**: ``check_event_for_spam``, which sees only the event. For a
  room that is not a circle it answers from an in-process cache; for a post it runs one short
  transaction. Over the limit it raises 429 ``M_LIMIT_EXCEEDED`` with ``retry_after_ms`` and the
  limit's name. An admitted post counts once its event is persisted (later checks may still
  refuse it). Every event type the merchant or bot sends is a post (messages, stickers, polls),
  an edit of one (no quota slot, a few per post a day), a removal of one, or refused
  (``merchant_circle_rules.classify_circle_event``).
- **Moments are friends-only**: ``user_may_invite`` / ``user_may_join_room`` refuse merchants in
  ``org.wangxin.moments`` rooms; ``user_may_create_room`` / ``user_may_send_state_event`` keep
  moments rooms from becoming world-readable or public (nor ``user_may_publish_room`` listed), so
  nobody reads or sees them without being let in. The merchant bot counts as a merchant. What skips
  those checks (server admins, knocks, upgrades) is undone by the membership watcher, and a user
  who becomes a merchant leaves (and forgets) the moments rooms it was in.
- **Auto-follow**: an invite between a user and a merchant (``user_may_invite``) or a purchase
  webhook writes a job to a durable queue (``wangxin_circle_jobs``) in the same transaction as
  its cause. The push-rules writer drains it: mute the circle for the follower (an
  Element-style override rule), join them without rate limits, then file the circle (and the
  chat) in the follower's "Merchant Circle / 商家圈" space. Failed jobs stay queued with back-off,
  across restarts; a job that can never succeed ends in ``wangxin_circle_failed_jobs`` (the
  status of a purchase). Circle rooms are exempt from ``rc_joins_per_room`` so bulk follows never
  make a real user's join fail with 429.
- **Unfollow by leaving**: the membership watcher reads Synapse's membership delta stream every
  second (from a stored position) and remembers a user's own leave of a circle at once.

HTTP (``/_synapse/client/wangxin/v1``): ``PUT|GET /merchants/{userId}``,
``GET /merchants/{userId}/products``, ``POST /purchases``, ``GET /purchases/{orderId}``, ``GET /circle``,
``DELETE /circle/{merchantId}``. See ``docs/merchant-circle.md``.
"""

from __future__ import annotations

import hmac
import logging
import re
from collections import OrderedDict
from typing import Any

import attrs

from synapse_modules import _features
from synapse_modules._config import (
    ModuleConfigError,
    get_int,
    get_str,
    get_user_id,
    reject_unknown,
    require_mapping,
    to_synapse_config_error,
)
from synapse_modules._group_commit import GroupCommit
from synapse_modules._http import USER_ID_RE, parse_json_object
from synapse_modules._job_pool import JobPool
from synapse_modules.merchant_circle_rules import (
    NOT_FRIENDS_ONLY,
    CircleEvent,
    bad_json,
    classify_circle_event,
    edit_product_error,
    not_friends_only_reason,
    validate_items,
    validate_order_id,
    validate_profile,
)
from synapse_modules.merchant_circle_store import Merchant, MerchantCircleStore

logger = logging.getLogger(__name__)

CIRCLE_ROOM_TYPE = "org.wangxin.merchant_circle"
MOMENTS_ROOM_TYPE = "org.wangxin.moments"
API_PREFIX = "/_synapse/client/wangxin/v1"
DEFAULT_SPACE_NAME = "Merchant Circle / 商家圈"
POSTER_LEVEL = 50
ADMIN_LEVEL = 100
MAX_JOB_ATTEMPTS = 40  # with back-off capped at 5 minutes: about three hours of retries
# A follow started by a chat waits for the invite to be persisted (it is queued from
# user_may_invite, before Synapse's own checks): ``chat_follow_wait_s`` (default 30 s) in
# growing steps, then the invite never happened.
DEFAULT_CHAT_FOLLOW_WAIT_S = 30


def chat_confirm_delays(wait_s: int) -> tuple[int, ...]:
    """Steps 1, 1, 2, 2, 4, 4, 8, 8, ... adding up to ``wait_s`` (30 gives exactly those eight)."""
    delays: list[int] = []
    step = 1
    while sum(delays) < wait_s:
        delays.append(min(step, wait_s - sum(delays)))
        if len(delays) % 2 == 0:
            step *= 2
    return tuple(delays)
IN_ROOM = ("join", "invite", "knock")
OWNER_CHECK_MS = 60_000
FINISH_LINGER_S = 0.5  # finished follows wait at most this long to share a commit
_LOCALPART_RE = re.compile(r"^[a-z0-9._=/+-]+$")


@attrs.frozen
class MerchantCircleConfig:
    platform_secret: str
    merchant_bot: str | None
    owner_localpart: str
    posts_per_day: int
    repost_cooldown_hours: int
    space_name: str
    follow_batch_size: int
    chat_follow_wait_s: int = DEFAULT_CHAT_FOLLOW_WAIT_S
    follow_concurrency: int = 16
    edits_per_post_per_day: int = 5

    @staticmethod
    def from_dict(raw: Any) -> MerchantCircleConfig:
        config = require_mapping(raw)
        reject_unknown(
            config,
            ("platform_secret", "merchant_bot", "owner_localpart", "posts_per_day", "repost_cooldown_hours",
             "space_name", "follow_batch_size", "chat_follow_wait_s", "follow_concurrency",
             "edits_per_post_per_day"),
        )
        secret = get_str(config, "platform_secret")
        if len(secret) < 16:
            raise ModuleConfigError("expected a secret of at least 16 characters", ("platform_secret",))
        owner = get_str(config, "owner_localpart", "wangxin-circles")
        if not _LOCALPART_RE.match(owner):
            raise ModuleConfigError(f"expected a lower-case Matrix localpart, found {owner!r}", ("owner_localpart",))
        return MerchantCircleConfig(
            platform_secret=secret,
            merchant_bot=get_user_id(config, "merchant_bot", None),
            owner_localpart=owner,
            posts_per_day=get_int(config, "posts_per_day", 3, minimum=1),
            repost_cooldown_hours=get_int(config, "repost_cooldown_hours", 7 * 24, minimum=0),
            space_name=get_str(config, "space_name", DEFAULT_SPACE_NAME),
            follow_batch_size=get_int(config, "follow_batch_size", 200, minimum=1),
            chat_follow_wait_s=get_int(config, "chat_follow_wait_s", DEFAULT_CHAT_FOLLOW_WAIT_S, minimum=1),
            follow_concurrency=get_int(config, "follow_concurrency", 16, minimum=1),
            edits_per_post_per_day=get_int(config, "edits_per_post_per_day", 5, minimum=0),
        )


class _BoundedCache:
    """A small LRU map for facts that never change once known (a room's type or circle owner)."""

    def __init__(self, size: int = 100_000):
        self._size = size
        self._data: OrderedDict[str, Any] = OrderedDict()

    def get(self, key: str) -> Any:
        if key in self._data:
            self._data.move_to_end(key)
            return self._data[key]
        return ...

    def put(self, key: str, value: Any) -> None:
        self._data[key] = value
        self._data.move_to_end(key)
        if len(self._data) > self._size:
            self._data.popitem(last=False)


class _Permanent(Exception):
    """A job that no retry can make succeed (the buyer is deactivated, the circle is gone, ...)."""


class _NotYet(Exception):
    """What a chat-started job waits for (the invite) is not in the database (yet)."""


def _validate_user_id(body: dict[str, Any], key: str) -> str:
    value = body.get(key)
    if not isinstance(value, str) or not USER_ID_RE.match(value) or len(value) > 255:
        raise bad_json(f"'{key}' must be a Matrix user id like @name:server")
    return value


def _limit_exceeded(limit: str, reason: str, retry_after_ms: int) -> Exception:
    """429 ``M_LIMIT_EXCEEDED`` saying which limit (``org.wangxin.limit``, the option that sets
    it) and when the next try is allowed (``retry_after_ms`` and ``Retry-After``)."""
    from synapse.module_api import errors

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


class MerchantCircle:
    """Synapse module: ``synapse_modules.merchant_circle.MerchantCircle``."""

    def __init__(self, config: MerchantCircleConfig, api: Any):
        _features.loaded("merchant_circle")
        from synapse_modules._http import RoutedJsonResource
        from synapse_modules._internals import MembershipInternals, SynapseInternals

        self._config = config
        self._api = api
        self._store = MerchantCircleStore(api)
        self._push = SynapseInternals(api)
        self._members = MembershipInternals(api)
        self._owner = f"@{config.owner_localpart}:{api.server_name}"
        self._cooldown_ms = config.repost_cooldown_hours * 3600 * 1000
        # room id -> merchant id (circle) or None (any other room); a room's circle-ness is fixed
        # before anyone but the owner is in it, so a cached answer never goes stale.
        self._circle_of_room = _BoundedCache()
        # merchant id -> circle room id: a merchant is never removed and its circle never changes
        # (only positive answers are kept: a user may become a merchant on another process).
        self._circle_of_merchant = _BoundedCache()
        self._room_type = _BoundedCache()
        self._joining: set[tuple[str, str]] = set()
        self._creating: set[str] = set()  # merchants whose circle this process is making
        self._processing = False
        self._rerun = False
        # Different users' jobs at once (``follow_concurrency``), each user's in order: joins into
        # one room that arrive together are persisted by Synapse in one batch, as concurrent
        # admin-API joins are; one at a time, a big follow wave would take far longer.
        self._pool = JobPool(config.follow_concurrency, self._claim_jobs, self._run_job)
        # A follow wave's purchases and finished follows: one commit for all that arrive together.
        self._purchases: GroupCommit[Any, tuple[bool, str]] = GroupCommit(self._store.record_purchases)
        # Finished follows are recorded in the background, a batch at most twice a second: joins
        # into one room end one at a time, so without the wait each would be a commit of its own.
        self._finished_follows: GroupCommit[Any, None] = GroupCommit(
            self._store.finish_follows, linger=lambda: self._api.sleep(FINISH_LINGER_S))
        # ... and the mute rules of the followers joining together.
        self._mutes: GroupCommit[tuple[str, str], None] = GroupCommit(self._write_mutes)
        # (user, circle) pairs whose mute rule was written ahead, with the rest of their claim
        self._premuted: set[tuple[str, str]] = set()
        # follow jobs done whose bookkeeping is still being written: not claimed again meanwhile
        self._recording: set[str] = set()
        # circle room -> when its owner was last seen joined (a follow checks the room is alive)
        self._owner_seen: dict[str, int] = {}
        self._watching = False
        self._members_pos: int | None = None
        self._members_saved_ms = 0

        api.register_spam_checker_callbacks(
            check_event_for_spam=self.check_event_for_spam,
            user_may_invite=self.user_may_invite,
            user_may_join_room=self.user_may_join_room,
            user_may_create_room=self.user_may_create_room,
            user_may_send_state_event=self.user_may_send_state_event,
            user_may_publish_room=self.user_may_publish_room,
        )
        self._members.refund_per_room_joins(self._is_known_circle)

        merchants = RoutedJsonResource()
        merchants.route("PUT", r"/(?P<user_id>[^/]+)", self._put_merchant)
        merchants.route("GET", r"/(?P<user_id>[^/]+)", self._get_merchant)
        merchants.route("GET", r"/(?P<user_id>[^/]+)/products", self._get_products)
        purchases = RoutedJsonResource()
        purchases.route("POST", r"/", self._post_purchase)
        purchases.route("GET", r"/(?P<order_id>[^/]+)", self._get_purchase)
        circle = RoutedJsonResource()
        circle.route("GET", r"/", self._get_circle)
        circle.route("DELETE", r"/(?P<merchant_id>[^/]+)", self._delete_follow)
        api.register_web_resource(f"{API_PREFIX}/merchants", merchants)
        api.register_web_resource(f"{API_PREFIX}/purchases", purchases)
        api.register_web_resource(f"{API_PREFIX}/circle", circle)

        # Every process keeps the set of circle rooms warm: the join-limit refund runs inside
        # Synapse's (synchronous) join notification and can only consult memory.
        api.looping_background_call(self._refresh_circles, 10_000, desc="wangxin_circle_rooms",
                                     run_on_all_instances=True)
        api.run_as_background_process("wangxin_circle_rooms", self._refresh_circles)

        # The follow queue needs push-rule writes, so it runs where both background tasks and
        # push rules live (the main process by default); a deployment that splits them is refused.
        self._runs_queue = api.should_run_background_tasks()
        if self._runs_queue:
            if not self._push.is_push_rules_writer:
                raise RuntimeError(
                    "synapse_modules.merchant_circle: the instance that runs background tasks "
                    "(run_background_tasks_on) must also be the push-rules writer (stream_writers.push_rules)"
                )
            api.looping_background_call(self._process_queue, 1000, desc="wangxin_circle_follow_queue")
            # Leaves of circles (remembered unfollows) and merchants who got into a moments
            # room by a path no spam check sees (server admins, knocks, upgrades).
            api.looping_background_call(self._watch_memberships, 1000, desc="wangxin_circle_memberships")
            api.run_as_background_process("wangxin_circle_bot_moments", self._evict_bot_from_moments_once)

    @staticmethod
    def parse_config(config: Any) -> MerchantCircleConfig:
        try:
            return MerchantCircleConfig.from_dict(config)
        except ModuleConfigError as e:
            raise to_synapse_config_error(e) from None

    # -- lookups ----------------------------------------------------------------------------

    async def _refresh_circles(self) -> None:
        for merchant_id, room_id in await self._store.all_circles():
            self._circle_of_room.put(room_id, merchant_id)

    def _is_known_circle(self, room_id: str) -> bool:
        """Synchronous and cache-only (used inside Synapse's join notification)."""
        value = self._circle_of_room.get(room_id)
        return value is not ... and value is not None

    async def _circle_merchant(self, room_id: str) -> str | None:
        cached = self._circle_of_room.get(room_id)
        if cached is not ...:
            return cached
        merchant = await self._store.get_merchant_by_room(room_id)
        value = merchant.user_id if merchant else None
        self._circle_of_room.put(room_id, value)
        return value

    async def _type_of_room(self, room_id: str) -> str | None:
        cached = self._room_type.get(room_id)
        if cached is not ...:
            return cached
        state = await self._api.get_room_state(room_id, [("m.room.create", "")])
        create = state.get(("m.room.create", ""))
        if create is None:
            return None  # not known here (yet): do not cache
        value = create.content.get("type")
        self._room_type.put(room_id, value if isinstance(value, str) else None)
        return self._room_type.get(room_id)

    async def _circle_room_of(self, merchant_id: str) -> str | None:
        cached = self._circle_of_merchant.get(merchant_id)
        if cached is not ...:
            return cached
        merchant = await self._store.get_merchant(merchant_id)
        if merchant is None:
            return None
        self._circle_of_merchant.put(merchant_id, merchant.circle_room_id)
        return merchant.circle_room_id

    async def _user_exists(self, user_id: str) -> bool:
        """A local user exists (an exact, cached lookup; ``check_user_exists`` compares
        case-insensitively with a query no index serves, a full scan of ``users`` each time)."""
        return self._api.is_mine(user_id) and await self._api.get_userinfo_by_id(user_id) is not None

    async def _is_merchant(self, user_id: str) -> bool:
        return bool(await self._store.merchant_ids_among([user_id]))

    def _service_users(self) -> set[str]:
        return {self._owner} | ({self._config.merchant_bot} if self._config.merchant_bot else set())

    async def _is_merchant_like(self, user_id: str) -> bool:
        """A merchant, or the merchant bot (the merchants' agent, held to their rules)."""
        return user_id == self._config.merchant_bot or await self._is_merchant(user_id)

    async def _is_service_account(self, user_id: str) -> bool:
        """Accounts that act for the service, not people: the circles' owner, the merchant bot,
        the bridge bot and every other user an application service registered (Synapse records
        which one in ``UserInfo.appservice_id``), and Synapse's own support or bot accounts."""
        if user_id in self._service_users():
            return True
        info = await self._api.get_userinfo_by_id(user_id)
        return info is not None and (info.appservice_id is not None or info.user_type in ("support", "bot"))

    # -- spam-checker callbacks ---------------------------------------------------------------

    async def check_event_for_spam(self, event: Any) -> Any:
        from synapse.module_api import NOT_SPAM

        if event.is_state() or not self._api.is_mine(event.sender):
            return NOT_SPAM
        merchant_id = await self._circle_merchant(event.room_id)  # in-process cache
        if merchant_id is None:
            return NOT_SPAM
        if event.sender not in (merchant_id, self._config.merchant_bot):
            return NOT_SPAM  # the power levels refuse it; it must not use up the merchant's quota
        circle_event = classify_circle_event(event.type, event.content, getattr(event, "redacts", None))
        await self._admit_circle_event(merchant_id, event, circle_event)
        return NOT_SPAM

    async def _admit_circle_event(self, merchant_id: str, event: Any, circle_event: CircleEvent) -> None:
        """Everything a follower's client shows counts: a post takes a slot of the daily quota
        (and a product's cooldown), an edit of one of the sender's posts one of that post's edits
        of the day, a removal must be of one of the circle's posts; anything else is refused."""
        from synapse.module_api import errors

        from synapse_modules._internals import sending_device

        now = self._api.get_current_time_msec()
        if circle_event.kind == "refused":
            raise errors.SynapseError(403, circle_event.reason or "Not allowed in a circle", errors.Codes.FORBIDDEN)
        if circle_event.kind == "redaction":
            if circle_event.target is None or not await self._store.is_circle_post(merchant_id, circle_event.target):
                raise errors.SynapseError(403, "In a circle you can remove its posts only", errors.Codes.FORBIDDEN)
            return
        if circle_event.kind == "edit" and circle_event.target is not None:
            edit = await self._store.record_edit(
                merchant_id, event.event_id, event.sender, sending_device(event), circle_event.target, now,
                self._config.edits_per_post_per_day,
            )
            if not edit.not_a_post:
                error = edit_product_error(circle_event, edit.post_product_id)
                if error is not None:
                    raise error
                if edit.retry_after_ms is not None:
                    logger.info("Refused an edit in %s's circle: too many edits of %s", merchant_id,
                                circle_event.target)
                    raise _limit_exceeded("edits_per_post_per_day", f"the limit of "
                                          f"{self._config.edits_per_post_per_day} edits per post a day is reached",
                                          edit.retry_after_ms)
                return
            # Not an edit of one of the sender's posts: whatever it shows is a new post.
        product = circle_event.product
        decision = await self._store.record_post(
            merchant_id, event.event_id, event.sender, sending_device(event), product["id"] if product else None,
            product, now, self._config.posts_per_day, self._cooldown_ms,
        )
        if decision.retry_after_ms is not None:
            logger.info("Refused a post in %s's circle: %s", merchant_id, decision.reason)
            raise _limit_exceeded(decision.limit or "posts_per_day", decision.reason or "over the limit",
                                  decision.retry_after_ms)

    async def user_may_create_room(self, user_id: str, room_config: dict[str, Any]) -> Any:
        from synapse.module_api import NOT_SPAM, errors

        creation = room_config.get("creation_content") or {}
        room_type = creation.get("type") if isinstance(creation, dict) else None
        if room_type == CIRCLE_ROOM_TYPE and user_id != self._owner:
            return errors.Codes.FORBIDDEN, {"error": "Merchant circles are created by the server, not by clients"}
        if room_type == MOMENTS_ROOM_TYPE:
            if await self._is_merchant_like(user_id):
                return errors.Codes.FORBIDDEN, {"error": "Moments are for friends; merchants have a circle instead"}
            invited = [u for u in room_config.get("invite") or [] if isinstance(u, str)]
            if self._config.merchant_bot in invited or await self._store.merchant_ids_among(invited):
                return errors.Codes.FORBIDDEN, {"error": "Merchants cannot be invited to moments"}
            for state in room_config.get("initial_state") or []:
                if isinstance(state, dict) and _world_readable(state.get("type"), state.get("content")):
                    return errors.Codes.FORBIDDEN, {"error": "Moments cannot be world-readable"}
            reason = not_friends_only_reason(room_config)
            if reason:
                return errors.Codes.FORBIDDEN, {"error": reason}
        return NOT_SPAM

    async def user_may_send_state_event(
        self, user_id: str, room_id: str, event_type: str, state_key: str, content: Any
    ) -> Any:
        from synapse.module_api import NOT_SPAM, errors

        if event_type == "m.room.history_visibility" and _world_readable(event_type, content):
            if await self._type_of_room(room_id) == MOMENTS_ROOM_TYPE:
                return errors.Codes.FORBIDDEN, {"error": "Moments cannot be world-readable"}
        if event_type == "m.room.join_rules" and isinstance(content, dict):
            rule = content.get("join_rule")
            if rule in NOT_FRIENDS_ONLY and await self._type_of_room(room_id) == MOMENTS_ROOM_TYPE:
                return errors.Codes.FORBIDDEN, {"error": f"Moments are friends-only: the join rule cannot be '{rule}'"}
        return NOT_SPAM

    async def user_may_publish_room(self, user_id: str, room_id: str) -> Any:
        """The room directory lists rooms for anyone to find: never moments."""
        from synapse.module_api import NOT_SPAM, errors

        if await self._type_of_room(room_id) == MOMENTS_ROOM_TYPE:
            return errors.Codes.FORBIDDEN, {"error": "Moments are friends-only: they cannot be listed in the room "
                                                     "directory"}
        return NOT_SPAM

    async def user_may_invite(self, inviter: str, invitee: str, room_id: str) -> Any:
        from synapse.module_api import NOT_SPAM, errors

        room_type = await self._type_of_room(room_id)
        if room_type == MOMENTS_ROOM_TYPE:
            if await self._is_merchant_like(invitee):
                return errors.Codes.FORBIDDEN, {"error": "Merchants cannot be invited to moments"}
            return NOT_SPAM
        if room_type == CIRCLE_ROOM_TYPE or room_type == "m.space":
            return NOT_SPAM
        await self._follow_on_conversation(inviter, invitee, room_id)
        return NOT_SPAM

    async def user_may_join_room(self, user_id: str, room_id: str, is_invited: bool) -> Any:
        from synapse.module_api import NOT_SPAM, errors

        room_type = await self._type_of_room(room_id)
        if room_type == MOMENTS_ROOM_TYPE and await self._is_merchant_like(user_id):
            return errors.Codes.FORBIDDEN, {"error": "Merchants cannot join moments"}
        if room_type == CIRCLE_ROOM_TYPE and (user_id, room_id) not in self._joining:
            merchant_id = await self._circle_merchant(room_id)
            if merchant_id and user_id != merchant_id and user_id not in self._service_users():
                # An explicit follow by the user: it undoes an earlier unfollow; file and mute it.
                now = self._api.get_current_time_msec()
                await self._store.set_follow_state(merchant_id, user_id, "following", now)
                await self._store.enqueue_job("file", user_id, merchant_id, room_id, "joined", now)
        return NOT_SPAM

    async def _follow_on_conversation(self, inviter: str, invitee: str, room_id: str) -> None:
        service = self._service_users()
        if inviter in service or invitee in service or inviter == invitee:
            return
        local = [u for u in (inviter, invitee) if self._api.is_mine(u)]
        merchants = await self._store.merchant_ids_among(local)
        if not merchants:
            return
        now = self._api.get_current_time_msec()
        for merchant_id in merchants:
            other = invitee if merchant_id == inviter else inviter
            if not self._api.is_mine(other) or other in merchants:
                continue
            await self._store.enqueue_follow(other, merchant_id, f"chat:{room_id}", now)
            # The chat itself goes in the buyer's merchant space, apart from friends' chats.
            await self._store.enqueue_job("file", other, merchant_id, room_id, "chat", now)
        self._kick_queue()

    # -- the job queue ------------------------------------------------------------------------

    def _kick_queue(self) -> None:
        if self._runs_queue:
            self._api.run_as_background_process("wangxin_circle_follow_queue", self._process_queue)

    async def _process_queue(self) -> None:
        if self._processing:
            self._rerun = True
            return
        self._processing = True
        try:
            while True:
                self._rerun = False
                # One read when nothing is due, instead of the drain's read per kind of job.
                if await self._store.any_job_due(self._api.get_current_time_msec()):
                    await self._pool.drain()
                if not self._rerun:
                    return
        finally:
            self._processing = False

    async def _claim_jobs(self, exclude: frozenset[str]) -> list[Any]:
        """Due jobs not already claimed: evictions from moments first; then follows, so a
        follower is in the circle before the slower filing in spaces; then filings. While jobs of
        a kind are due or running, the next kind waits (a follow wave's last joins do not share
        the server with the first space creations)."""
        now = self._api.get_current_time_msec()
        exclude = exclude | self._recording
        for kinds, limit in ((("evict",), 20), (("follow",), self._config.follow_batch_size),
                             (("file", "unfile"), 20)):
            due = await self._store.due_jobs(kinds, now, limit + len(exclude))
            if due:
                jobs = [j for j in due if j.job_id not in exclude][:limit]
                if kinds == ("follow",):
                    await self._premute(jobs)
                return jobs
        return []

    async def _premute(self, jobs: list[Any]) -> None:
        """Write the mute rules of a claimed batch of new follows in one transaction, before any
        of them joins. Joins into one room run one at a time in Synapse, so follows that each
        muted just before their own join wrote one rule per commit (and Synapse answers each
        push-rule change with a write of its own); a follow wave now writes one per claim. A
        rule for a follow that then does not happen (the user was deactivated meanwhile, or the
        join fails for good) mutes a room the user is not in, which nothing shows. If the batch
        fails, each follow mutes itself before its join, as before."""
        by_merchant: dict[str, list[Any]] = {}
        for job in jobs:
            if not job.reason.startswith("chat:"):  # a chat's invite may still be refused
                by_merchant.setdefault(job.merchant_id, []).append(job)
        todo: list[tuple[str, str]] = []
        try:
            for merchant_id, merchant_jobs in by_merchant.items():
                room_id = await self._circle_room_of(merchant_id)
                if room_id is None:
                    continue
                users = [j.user_id for j in merchant_jobs if (j.user_id, room_id) not in self._premuted]
                states = await self._store.follow_states(merchant_id, users)
                # Only users who never followed: a follower is muted already, and an unfollow stays.
                todo += [(user_id, room_id) for user_id in dict.fromkeys(users) if user_id not in states]
            if todo:
                await self._write_mutes(todo)
        except Exception as e:
            logger.warning("Could not mute %d new followers ahead (%s); each mutes before its join", len(todo), e)
            return
        self._premuted.update(todo)

    async def _run_job(self, job: Any) -> None:
        handlers = {"follow": self._do_follow, "file": self._do_file, "unfile": self._do_unfile,
                    "evict": self._do_evict}
        now = self._api.get_current_time_msec()
        try:
            finished = await handlers[job.kind](job)  # true: the handler finished the job itself
        except _Permanent as e:
            await self._fail_job(job, str(e))
            return
        except _NotYet as e:
            delays = chat_confirm_delays(self._config.chat_follow_wait_s)
            if job.attempts >= len(delays):
                await self._fail_job(job, str(e))
                return
            delay_s = delays[job.attempts]
            logger.debug("Circle job %s waits %ss: %s", job.job_id, delay_s, e)
            await self._store.retry_job(job.job_id, job.attempts + 1, now + delay_s * 1000, str(e))
            return
        except Exception as e:
            if job.attempts >= MAX_JOB_ATTEMPTS:
                await self._fail_job(job, f"gave up after {job.attempts + 1} attempts: {e!r}", unexpected=True)
                return
            delay_s = min(2 ** min(job.attempts, 8), 300)
            logger.warning("Circle job %s (%s %s) failed, retrying in %ss: %s", job.job_id, job.kind,
                           job.user_id, delay_s, e)
            await self._store.retry_job(job.job_id, job.attempts + 1, now + delay_s * 1000, repr(e))
            return
        if not finished:
            await self._store.finish_job(job.job_id)

    async def _fail_job(self, job: Any, error: str, unexpected: bool = False) -> None:
        # A deactivated buyer, a circle shut down or an invite refused is an outcome (its status
        # is shown to the platform and the merchant), not a fault; giving up on retries is.
        log = logger.error if unexpected else logger.warning
        log("Circle job %s (%s of %s, %s, merchant %s) failed for good: %s", job.job_id, job.kind,
            job.user_id, job.reason, job.merchant_id, error)
        await self._store.fail_job(job.job_id, job.attempts + 1, error, self._api.get_current_time_msec())

    async def _check_user_active(self, user_id: str) -> None:
        info = await self._api.get_userinfo_by_id(user_id)
        if info is None:
            raise _Permanent(f"{user_id} does not exist")
        if info.is_deactivated:
            raise _Permanent(f"{user_id} is deactivated")

    async def _check_chat(self, user_id: str, merchant_id: str, room_id: str) -> None:
        """A chat counts once the invite between the two landed: user_may_invite, which queued
        the job, runs before Synapse's own checks (power levels, bans), which may still refuse it."""
        for member in (user_id, merchant_id):
            if await self._members.local_membership(member, room_id) not in ("invite", "join"):
                raise _NotYet(f"no invite between {user_id} and {merchant_id} in {room_id}: "
                              "the invite that would start the chat was refused or rejected")

    async def _do_follow(self, job: Any) -> bool:
        merchant_id = job.merchant_id
        room_id = await self._circle_room_of(merchant_id)
        if room_id is None:
            raise _Permanent(f"{merchant_id} is not a merchant")
        try:
            return await self._follow(job, merchant_id, room_id)
        finally:
            # Muted ahead or not, a later follow of the pair (after a kick, say) mutes again.
            self._premuted.discard((job.user_id, room_id))

    async def _follow(self, job: Any, merchant_id: str, room_id: str) -> bool:
        await self._check_user_active(job.user_id)
        if job.reason.startswith("chat:"):
            await self._check_chat(job.user_id, merchant_id, job.reason.removeprefix("chat:"))
        state = await self._store.follow_state(merchant_id, job.user_id)
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
            await self._store.record_leave(merchant_id, job.user_id, room_id, self._api.get_current_time_msec())
            return False
        if not await self._circle_alive(room_id):
            raise _Permanent(f"the circle room {room_id} of {merchant_id} is gone (shut down or purged)")
        # Mute first, so not even the first post after the join can notify (done already when the
        # claim muted its batch ahead).
        if (job.user_id, room_id) not in self._premuted:
            await self._mute(job.user_id, room_id)
        self._joining.add((job.user_id, room_id))
        try:
            await self._members.set_membership(job.user_id, room_id, "join")
        finally:
            self._joining.discard((job.user_id, room_id))
        self._record_follow(job, merchant_id, room_id)
        return True

    def _record_follow(self, job: Any, merchant_id: str, room_id: str) -> None:
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
                self._recording.discard(job.job_id)

        self._recording.add(job.job_id)
        self._api.run_as_background_process("wangxin_circle_record_follow", record)

    async def _circle_alive(self, room_id: str) -> bool:
        """Whether the circle's owner is still in it (not shut down or purged). Checked once a
        minute per circle, not on each of a follow wave's thousands of joins; a join into a
        circle that went away in between fails and is retried until this says so."""
        now = self._api.get_current_time_msec()
        seen = self._owner_seen.get(room_id)
        if seen is not None and now - seen < OWNER_CHECK_MS:
            return True
        if await self._members.local_membership(self._owner, room_id) != "join":
            self._owner_seen.pop(room_id, None)
            return False
        self._owner_seen[room_id] = now
        return True

    async def _mute(self, user_id: str, room_id: str) -> None:
        """Element's "Mute room" for this user: an override rule named after the room
        (docs/synapse.md, "Element's mute"). Follows that mute at the same time share one transaction."""
        await self._mutes.submit((user_id, room_id))

    async def _write_mutes(self, mutes: list[tuple[str, str]]) -> list[None]:
        from synapse_modules._internals import NewPushRule

        await self._push.put_push_rules_at_top([
            NewPushRule(user_id, "override", room_id, [{"kind": "event_match", "key": "room_id", "pattern": room_id}],
                        ["dont_notify"])
            for user_id, room_id in mutes
        ])
        return [None] * len(mutes)

    async def _do_file(self, job: Any) -> None:
        """Put ``job.room_id`` (a circle, or a chat with a merchant) into the user's space."""
        if job.room_id is None or await self._store.is_filed(job.user_id, job.room_id):
            return
        await self._check_user_active(job.user_id)
        circle_room = await self._circle_room_of(job.merchant_id) if job.merchant_id else None
        is_circle = circle_room == job.room_id
        if is_circle:
            if await self._store.follow_state(job.merchant_id, job.user_id) == "unfollowed":
                return
            if await self._members.local_membership(job.user_id, job.room_id) != "join":
                return  # left again before it was filed
            if job.reason == "joined":
                await self._mute(job.user_id, job.room_id)
        elif job.merchant_id:
            await self._check_chat(job.user_id, job.merchant_id, job.room_id)
        child = {"via": [self._api.server_name], "order": "1" if is_circle else "0"}
        space_id = await self._store.get_space(job.user_id)
        if space_id is None:
            # The user's first filing makes the space with the room already in it: one event and
            # one state group fewer per follower than creating it and then adding the child.
            await self._create_space(job.user_id, job.room_id, child)
        else:
            await self._set_child(job.user_id, space_id, job.room_id, child)
        await self._store.set_filed(job.user_id, job.room_id, True)

    async def _do_unfile(self, job: Any) -> None:
        if job.merchant_id and await self._store.follow_state(job.merchant_id, job.user_id) != "unfollowed":
            return  # followed again since
        await self._unfile(job.user_id, job.room_id)

    async def _unfile(self, user_id: str, room_id: str) -> None:
        """Take a room out of the user's space (an ``m.space.child`` with empty content)."""
        space_id = await self._store.get_space(user_id)
        if space_id and await self._store.is_filed(user_id, room_id):
            await self._set_child(user_id, space_id, room_id, {})
            await self._store.set_filed(user_id, room_id, False)

    async def _set_child(self, user_id: str, space_id: str, room_id: str, content: dict[str, Any]) -> None:
        """The user's ``m.space.child`` for ``room_id`` in their space (empty content removes it)."""
        await self._api.create_and_send_event_into_room(
            {"type": "m.space.child", "room_id": space_id, "sender": user_id, "state_key": room_id,
             "content": content}
        )

    async def _do_evict(self, job: Any) -> None:
        await self._evict(job.user_id, job.room_id)

    async def _evict(self, user_id: str, room_id: str) -> None:
        """A merchant leaves a moments room (or its invite or knock is withdrawn) and forgets it,
        so not even the history from before can be paged any more."""
        membership = await self._members.local_membership(user_id, room_id)
        if membership in IN_ROOM:
            await self._api.update_room_membership(user_id, user_id, room_id, "leave")
            logger.info("Removed merchant %s from moments room %s (was %s)", user_id, room_id, membership)
        if membership is not None:
            await self._members.forget(user_id, room_id)

    async def _evict_bot_from_moments_once(self) -> None:
        """The merchant bot is held to the merchants' rules; a bot that got into moments rooms
        before it was (it joins whatever it is invited to) leaves them, once per deployment."""
        if not self._config.merchant_bot or await self._store.get_position("bot_left_moments") is not None:
            return
        if await self._user_exists(self._config.merchant_bot):
            await self._evict_from_moments(self._config.merchant_bot)
        await self._store.set_position("bot_left_moments", 1)

    async def _evict_from_moments(self, user_id: str) -> None:
        """A new merchant leaves every moments room it was in (or invited to, or knocking at)."""
        now = self._api.get_current_time_msec()
        for room_id in await self._members.rooms_of(user_id, IN_ROOM):
            if await self._type_of_room(room_id) != MOMENTS_ROOM_TYPE:
                continue
            try:
                await self._evict(user_id, room_id)
            except Exception as e:
                logger.warning("Could not remove merchant %s from moments %s yet (%s); queued", user_id, room_id, e)
                await self._store.enqueue_job("evict", user_id, None, room_id, "became a merchant", now)
                self._kick_queue()

    # -- the membership delta stream ----------------------------------------------------------

    async def _watch_memberships(self) -> None:
        """Read what changed in memberships since the last look (a cheap indexed read, no
        per-event hook, and no read at all while no room's current state changed). The position
        is stored after every change handled, so a change is seen even across a restart; while
        only messages move the stream it is stored at most once a minute (a restart then re-reads
        that minute, which holds no membership change)."""
        if self._watching:
            return
        self._watching = True
        try:
            if self._members_pos is None:
                position = await self._store.get_position("memberships")
                if position is None:
                    position = self._members.events_position()
                    await self._store.set_position("memberships", position)
                self._members_pos = position
                self._members_saved_ms = self._api.get_current_time_msec()
            while True:
                position, changes = await self._members.membership_deltas(self._members_pos, 1000)
                await self._on_membership_changes(changes)
                now = self._api.get_current_time_msec()
                if position != self._members_pos and (changes or now - self._members_saved_ms >= 60_000):
                    await self._store.set_position("memberships", position)
                    self._members_saved_ms = now
                self._members_pos = position
                if position >= self._members.events_position():
                    return
        except Exception:
            logger.exception("Reading membership changes failed; retrying on the next tick")
        finally:
            self._watching = False

    async def _on_membership_changes(self, changes: list[tuple[str, str, str | None]]) -> None:
        now = self._api.get_current_time_msec()
        service = self._service_users()
        entering: list[tuple[str, str]] = []
        queued = False
        for user_id, room_id, membership in changes:
            if user_id == self._owner or not self._api.is_mine(user_id):
                continue  # the owner's join comes before the room is known as a circle
            merchant_id = await self._circle_merchant(room_id)
            if merchant_id is not None:
                if membership == "leave" and user_id != merchant_id and user_id not in service:
                    # Only the user's own leave is an unfollow (a kick or ban by an admin is not the
                    # user's choice), and only if it is still current: a stale leave must not undo
                    # a re-join.
                    if await self._members.left_by_self(user_id, room_id):
                        queued |= await self._store.record_leave(merchant_id, user_id, room_id, now)
            elif membership in IN_ROOM:
                entering.append((user_id, room_id))
        merchants: set[str] = set()
        users = sorted({u for u, _ in entering})
        for start in range(0, len(users), 500):
            merchants |= await self._store.merchant_ids_among(users[start : start + 500])
        if self._config.merchant_bot in users:  # the merchants' agent, held to their rules
            merchants.add(self._config.merchant_bot)
        for user_id, room_id in entering:
            if user_id in merchants and await self._type_of_room(room_id) == MOMENTS_ROOM_TYPE:
                logger.warning("Merchant %s got into moments room %s past the spam checks; removing it",
                               user_id, room_id)
                await self._store.enqueue_job("evict", user_id, None, room_id, "entered moments", now)
                queued = True
        if queued:
            self._kick_queue()

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
        stored = await self._store.set_space(user_id, room_id)
        if stored != room_id:  # another space was recorded first: file the room there instead
            await self._set_child(user_id, stored, first_room_id, child)
        return stored

    # -- HTTP ---------------------------------------------------------------------------------

    async def _requester(self, request: Any) -> str:
        requester = await self._api.get_user_by_req(request)
        return str(requester.user.to_string())

    async def _require_admin(self, request: Any) -> str:
        from synapse.module_api import errors

        user_id = await self._requester(request)
        if not await self._api.is_user_admin(user_id):
            raise errors.SynapseError(403, "You are not a server admin", errors.Codes.FORBIDDEN)
        return user_id

    async def _merchant_or_404(self, user_id: str) -> Merchant:
        from synapse.module_api import errors

        merchant = await self._store.get_merchant(user_id)
        if merchant is None:
            raise errors.SynapseError(404, f"{user_id} is not a merchant", errors.Codes.NOT_FOUND)
        return merchant

    async def _put_merchant(self, request: Any, user_id: str) -> tuple[int, Any]:
        from synapse.module_api import errors

        await self._require_admin(request)
        # Everything is checked before anything is written: a refused PUT changes nothing.
        name, avatar_url = validate_profile(parse_json_object(request))
        if not USER_ID_RE.match(user_id) or not await self._user_exists(user_id):
            raise errors.SynapseError(404, f"No local user {user_id}", errors.Codes.NOT_FOUND)
        if await self._is_service_account(user_id):
            raise errors.SynapseError(400, f"'userId': {user_id} is a service account, not a shop",
                                      errors.Codes.INVALID_PARAM)
        merchant = await self._store.get_merchant(user_id)
        if merchant is None:
            merchant = await self._make_circle(user_id, name, avatar_url)
        else:
            merchant = await self._update_profile(merchant, name, avatar_url)
        self._circle_of_room.put(merchant.circle_room_id, user_id)
        # A merchant never stays in a moments room, even one it joined before it was a merchant.
        # After the insert above, so user_may_join_room already refuses new joins.
        await self._evict_from_moments(user_id)
        # (Re-)ensure the posters are in: a crash between the steps is repaired by a retried PUT.
        for poster in [user_id] + ([self._config.merchant_bot] if self._config.merchant_bot else []):
            if poster != user_id and not await self._user_exists(poster):
                continue
            if await self._members.local_membership(poster, merchant.circle_room_id) != "join":
                await self._members.set_membership(poster, merchant.circle_room_id, "join")
        return 200, {"user_id": user_id, "circle_room_id": merchant.circle_room_id}

    async def _make_circle(self, user_id: str, name: str, avatar_url: str | None) -> Merchant:
        """Make the circle room, complete it, then record the merchant. A failure before the
        record leaves a room only its owner is in; the retried PUT (told by the creation marker
        to look) finds that room and finishes it instead of making a second one."""
        # Overlapping PUTs for one merchant in this process go one after the other (the later
        # ones then find the merchant); across processes the marker below sorts them out.
        while user_id in self._creating:
            await self._api.sleep(0.1)
        self._creating.add(user_id)  # no await between the check and this
        try:
            recorded = await self._store.get_merchant(user_id)
            if recorded is not None:
                return await self._update_profile(recorded, name, avatar_url)
            now = self._api.get_current_time_msec()
            earlier_attempt = await self._store.start_circle_creation(user_id, now)
            room_id = await self._unfinished_circle(user_id) if earlier_attempt else None
            if room_id is None:
                room_id = await self._create_circle(user_id)
            await self._apply_profile(room_id, name, avatar_url)
            merchant: Merchant = await self._store.insert_merchant(Merchant(user_id, name, avatar_url, room_id), now)
        finally:
            self._creating.discard(user_id)
        if merchant.circle_room_id != room_id:
            # Another process recorded its circle first: ours is left empty (nobody else is in it yet).
            await self._api.update_room_membership(self._owner, self._owner, room_id, "leave")
        return merchant

    async def _update_profile(self, merchant: Merchant, name: str, avatar_url: str | None) -> Merchant:
        """The room first: if that fails, the old name stays in the room and in the record."""
        await self._apply_profile(merchant.circle_room_id, name, avatar_url)
        if (merchant.name, merchant.avatar_url) != (name, avatar_url):
            await self._store.update_merchant_profile(merchant.user_id, name, avatar_url)
        return attrs.evolve(merchant, name=name, avatar_url=avatar_url)

    async def _unfinished_circle(self, user_id: str) -> str | None:
        """The circle room an earlier, failed PUT made for ``user_id`` (its owner is in it, no
        merchant record names it), completed; extra ones are left empty. Reads the owner's rooms:
        only ever after a failure."""
        recorded = {room_id for _, room_id in await self._store.all_circles()}
        found = None
        for room_id in await self._members.rooms_of(self._owner, ("join",)):
            if room_id in recorded:
                continue
            create = (await self._api.get_room_state(room_id, [("m.room.create", "")])).get(("m.room.create", ""))
            if create is None or create.content.get("type") != CIRCLE_ROOM_TYPE \
                    or create.content.get("org.wangxin.merchant") != user_id:
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
        if not await self._user_exists(self._owner):
            try:
                await self._api.register_user(self._config.owner_localpart, "Wangxin merchant circles")
            except Exception:
                if not await self._user_exists(self._owner):  # else another PUT registered it just now
                    raise
        room_id, _ = await self._api.create_room(self._owner, self._circle_config(user_id), ratelimit=False)
        return str(room_id)

    async def _apply_profile(self, room_id: str, name: str, avatar_url: str | None) -> None:
        """The circle's name, topic and avatar from the merchant's profile (only what differs)."""
        wanted = {
            "m.room.name": ("name", _circle_name(name)),
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

    async def _get_merchant(self, request: Any, user_id: str) -> tuple[int, Any]:
        await self._require_reader(request, user_id)
        merchant = await self._merchant_or_404(user_id)
        joined = await self._members.joined_member_count(merchant.circle_room_id)
        posters = 0  # the owner, the merchant and the bot are not followers
        for account in {self._owner, user_id} | self._service_users():
            if await self._members.local_membership(account, merchant.circle_room_id) == "join":
                posters += 1
        now = self._api.get_current_time_msec()
        posts_today, next_post_ms = await self._store.quota_view(user_id, now, self._config.posts_per_day)
        queued, failed, filing = await self._store.follow_counts(user_id)
        return 200, {
            "user_id": merchant.user_id,
            "name": merchant.name,
            "avatar_url": merchant.avatar_url,
            "circle_room_id": merchant.circle_room_id,
            "followers": max(0, joined - posters),
            "posts_today": posts_today,
            "posts_per_day": self._config.posts_per_day,
            "next_post_allowed_in_ms": next_post_ms,
            "follows_queued": queued,
            "follows_failed": failed,
            "filings_queued": filing,
        }

    async def _require_reader(self, request: Any, merchant_id: str) -> None:
        """Merchant details are for server admins, the merchant itself and the merchant bot."""
        from synapse.module_api import errors

        requester = await self._requester(request)
        if requester in (merchant_id, self._config.merchant_bot) or await self._api.is_user_admin(requester):
            return
        raise errors.SynapseError(403, "Only the merchant, its bot or a server admin may read this",
                                  errors.Codes.FORBIDDEN)

    async def _get_products(self, request: Any, user_id: str) -> tuple[int, Any]:
        await self._require_reader(request, user_id)
        await self._merchant_or_404(user_id)
        now = self._api.get_current_time_msec()
        products = []
        for product, last_ts, count in await self._store.products(user_id, now):
            products.append({
                "product": product,
                "last_posted_ts": last_ts,
                "times_posted": count,
                "repost_allowed_in_ms": max(0, last_ts + self._cooldown_ms - now),
            })
        return 200, {"products": products, "repost_cooldown_hours": self._config.repost_cooldown_hours}

    def _require_platform(self, request: Any) -> None:
        from synapse.module_api import errors

        auth = (request.getHeader("Authorization") or "").removeprefix("Bearer ").strip()
        if not hmac.compare_digest(auth.encode(), self._config.platform_secret.encode()):
            raise errors.SynapseError(403, "Wrong platform secret", errors.Codes.FORBIDDEN)

    async def _post_purchase(self, request: Any) -> tuple[int, Any]:
        from synapse.module_api import errors

        self._require_platform(request)
        body = parse_json_object(request)
        order_id = validate_order_id(body.get("order_id"))
        buyer = _validate_user_id(body, "buyer")
        merchant_id = _validate_user_id(body, "merchant")
        items = validate_items(body.get("items"))
        for field, account in (("buyer", buyer), ("merchant", merchant_id)):
            if await self._is_service_account(account):
                raise errors.SynapseError(400, f"'{field}': {account} is a service account",
                                          errors.Codes.INVALID_PARAM)
        if await self._circle_room_of(merchant_id) is None:
            raise errors.SynapseError(404, f"{merchant_id} is not a merchant", errors.Codes.NOT_FOUND)
        if not await self._user_exists(buyer):
            raise errors.SynapseError(404, f"No local user {buyer}", errors.Codes.NOT_FOUND)
        new, follow = await self._purchases.submit(
            (order_id, buyer, merchant_id, items, self._api.get_current_time_msec())
        )
        if follow == "conflict":
            raise errors.SynapseError(409, f"order {order_id} was already reported for another buyer or merchant",
                                      errors.Codes.INVALID_PARAM)
        if new:
            self._kick_queue()
        return 200, {"order_id": order_id, "replayed": not new, "follow": follow if new else "unchanged"}

    async def _get_purchase(self, request: Any, order_id: str) -> tuple[int, Any]:
        """The platform's view of what a purchase did: the state of the buyer's follow."""
        from synapse.module_api import errors

        self._require_platform(request)
        status = await self._store.purchase_status(order_id)
        if status is None:
            raise errors.SynapseError(404, f"No purchase {order_id}", errors.Codes.NOT_FOUND)
        body: dict[str, Any] = {"order_id": order_id, "buyer": status.buyer, "merchant": status.merchant_id}
        if status.queued_attempts is not None:
            body["follow"] = "retrying" if status.queued_attempts else "queued"
            if status.last_error:
                body["error"] = status.last_error
        elif status.follow_state == "unfollowed":
            body["follow"] = "unfollowed_by_user"
        elif status.failed_error is not None and status.follow_state != "following":
            body.update(follow="failed", error=status.failed_error)
        else:
            merchant = await self._merchant_or_404(status.merchant_id)
            joined = await self._members.local_membership(status.buyer, merchant.circle_room_id) == "join"
            body["follow"] = "following" if joined else "not_following"
        return 200, body

    async def _get_circle(self, request: Any) -> tuple[int, Any]:
        user_id = await self._requester(request)
        followed = []
        for merchant, state in await self._store.follows_of_user(user_id):
            membership = await self._members.local_membership(user_id, merchant.circle_room_id)
            if state == "following" and membership == "join":
                followed.append({"merchant": merchant.user_id, "name": merchant.name,
                                 "avatar_url": merchant.avatar_url, "circle_room_id": merchant.circle_room_id})
        return 200, {"merchants": followed, "space_room_id": await self._store.get_space(user_id)}

    async def _delete_follow(self, request: Any, merchant_id: str) -> tuple[int, Any]:
        user_id = await self._requester(request)
        merchant = await self._merchant_or_404(merchant_id)
        await self._store.unfollow(merchant_id, user_id, self._api.get_current_time_msec())
        if await self._members.local_membership(user_id, merchant.circle_room_id) == "join":
            await self._members.set_membership(user_id, merchant.circle_room_id, "leave")
        await self._unfile(user_id, merchant.circle_room_id)
        return 200, {"merchant": merchant_id, "following": False}


def _circle_name(name: str) -> str:
    return f"{name} · 商家圈"


def _world_readable(event_type: Any, content: Any) -> bool:
    return (
        event_type == "m.room.history_visibility"
        and isinstance(content, dict)
        and content.get("history_visibility") == "world_readable"
    )
