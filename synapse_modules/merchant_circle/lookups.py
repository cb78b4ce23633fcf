"""What the parts ask about rooms and accounts: which rooms are circles (and whose), a room's
type, who is a merchant or a service account. Facts that never change once known are cached."""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Awaitable, Callable
from typing import Any

import attrs
from synapse.module_api import ModuleApi

from synapse_modules.merchant_circle.config import MerchantCircleConfig
from synapse_modules.merchant_circle.quota import DAY_MS
from synapse_modules.merchant_circle.store import MerchantCircleStore
from synapse_modules.merchant_circle.store.merchants import (
    all_circles_txn,
    get_merchant_by_room_txn,
    get_merchant_txn,
    merchant_ids_among_txn,
)
from synapse_modules.merchant_circle.store.shards import all_shard_rooms_txn, merchant_of_shard_txn


class BoundedCache:
    """A small LRU map for facts that never change once known (a room's type or circle owner).
    ``get`` answers ``...`` for a key it does not hold (``None`` is a value)."""

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


@attrs.frozen
class PostLimit:
    """At most ``posts`` posts in any ``window_ms``; ``option`` names the setting that says so
    (``org.wangxin.limit`` of a refusal)."""

    posts: int
    window_ms: int = DAY_MS
    option: str = "posts_per_day"


# Another module's limit for a circle's posts (an account's, by its kind), or None for the default.
PostLimitProvider = Callable[[str], Awaitable[PostLimit | None]]


class CircleLookups:
    def __init__(self, api: ModuleApi, config: MerchantCircleConfig, store: MerchantCircleStore):
        self._api = api
        self._config = config
        self._store = store
        # The service account that creates and owns every circle room (nobody can log in as it).
        self.owner = f"@{config.owner_localpart}:{api.server_name}"
        # room id -> merchant id (circle) or None (any other room); a room's circle-ness is fixed
        # before anyone but the owner is in it, so a cached answer never goes stale.
        self._circle_of_room = BoundedCache()
        # merchant id -> circle room id: a merchant is never removed and its circle never changes
        # (only positive answers are kept: a user may become a merchant on another process).
        self._circle_of_merchant = BoundedCache()
        self._room_type = BoundedCache()
        self._post_limit_provider: PostLimitProvider | None = None
        self._chat_router: Callable[[str], bool] | None = None

    # -- circles ------------------------------------------------------------------------------

    async def refresh_circles(self) -> None:
        """Every process keeps the set of circle rooms warm (see :meth:`is_known_circle`)."""
        for merchant_id, room_id in await self._store.run(all_circles_txn):
            self._circle_of_room.put(room_id, merchant_id)
        for merchant_id, room_id in await self._store.run(all_shard_rooms_txn):
            self._circle_of_room.put(room_id, merchant_id)

    def is_known_circle(self, room_id: str) -> bool:
        """Synchronous and cache-only (used inside Synapse's join notification)."""
        value = self._circle_of_room.get(room_id)
        return value is not ... and value is not None

    def remember_circle(self, room_id: str, merchant_id: str) -> None:
        self._circle_of_room.put(room_id, merchant_id)

    async def circle_merchant(self, room_id: str) -> str | None:
        """The merchant whose circle ``room_id`` is (its first room or a further one), or
        ``None`` for any other room."""
        cached = self._circle_of_room.get(room_id)
        if cached is not ...:
            return cached  # type: ignore[no-any-return]
        merchant = await self._store.run(get_merchant_by_room_txn, room_id)
        value = merchant.user_id if merchant else await self._store.run(merchant_of_shard_txn, room_id)
        self._circle_of_room.put(room_id, value)
        return value

    async def circle_room_of(self, merchant_id: str) -> str | None:
        """The merchant's circle room, or ``None`` if ``merchant_id`` is no merchant."""
        cached = self._circle_of_merchant.get(merchant_id)
        if cached is not ...:
            return cached  # type: ignore[no-any-return]
        merchant = await self._store.run(get_merchant_txn, merchant_id)
        if merchant is None:
            return None
        self._circle_of_merchant.put(merchant_id, merchant.circle_room_id)
        return merchant.circle_room_id

    async def type_of_room(self, room_id: str) -> str | None:
        cached = self._room_type.get(room_id)
        if cached is not ...:
            return cached  # type: ignore[no-any-return]
        state = await self._api.get_room_state(room_id, [("m.room.create", "")])
        create = state.get(("m.room.create", ""))
        if create is None:
            return None  # not known here (yet): do not cache
        value = create.content.get("type")
        self._room_type.put(room_id, value if isinstance(value, str) else None)
        return self._room_type.get(room_id)  # type: ignore[no-any-return]

    # -- post limits --------------------------------------------------------------------------

    def set_post_limit_provider(self, provider: PostLimitProvider) -> None:
        """Let another module set the post limit of some circles (the accounts module: an
        organisation's or a platform's, by its kind); the others keep ``posts_per_day``."""
        self._post_limit_provider = provider

    async def post_limit(self, merchant_id: str) -> PostLimit:
        """How many posts the circle of ``merchant_id`` may make, in what window."""
        if self._post_limit_provider is not None:
            limit = await self._post_limit_provider(merchant_id)
            if limit is not None:
                return limit
        return PostLimit(self._config.posts_per_day)

    # -- chats answered elsewhere -------------------------------------------------------------

    def set_chat_router(self, routes_chats: Callable[[str], bool]) -> None:
        """Let another module answer chats with some users itself (the accounts module: a chat
        started with an organisation's or a platform's own user goes to a support room, and the
        invitation is declined): inviting them starts no follow and files no chat."""
        self._chat_router = routes_chats

    def routes_chats(self, user_id: str) -> bool:
        """Whether chats with ``user_id`` are another module's (in memory, no read)."""
        return self._chat_router is not None and self._chat_router(user_id)

    # -- accounts -----------------------------------------------------------------------------

    async def user_exists(self, user_id: str) -> bool:
        """A local user exists (an exact, cached lookup; ``check_user_exists`` compares
        case-insensitively with a query no index serves, a full scan of ``users`` each time)."""
        return self._api.is_mine(user_id) and await self._api.get_userinfo_by_id(user_id) is not None

    async def merchants_among(self, user_ids: list[str]) -> set[str]:
        return await self._store.run(merchant_ids_among_txn, user_ids)

    async def is_merchant(self, user_id: str) -> bool:
        return bool(await self.merchants_among([user_id]))

    def service_users(self) -> set[str]:
        """The circles' owner and the merchant bot: they act for the service, and never follow."""
        return {self.owner} | ({self._config.merchant_bot} if self._config.merchant_bot else set())

    async def is_merchant_like(self, user_id: str) -> bool:
        """A merchant, or the merchant bot (the merchants' agent, held to their rules)."""
        return user_id == self._config.merchant_bot or await self.is_merchant(user_id)

    async def is_service_account(self, user_id: str) -> bool:
        """Accounts that act for the service, not people: the circles' owner, the merchant bot,
        the bridge bot and every other user an application service registered (Synapse records
        which one in ``UserInfo.appservice_id``), and Synapse's own support or bot accounts."""
        if user_id in self.service_users():
            return True
        info = await self._api.get_userinfo_by_id(user_id)
        return info is not None and (info.appservice_id is not None or info.user_type in ("support", "bot"))
