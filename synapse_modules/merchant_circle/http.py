"""The merchant circle's HTTP API (``/_synapse/client/wangxin/v1``); see docs/merchant-circle.md.

``PUT|GET /merchants/{userId}``, ``GET /merchants/{userId}/products`` (admins, the merchant, its
bot); ``POST /purchases``, ``GET /purchases/{orderId}`` (the shopping platform, by its secret);
``GET /circle``, ``DELETE /circle/{merchantId}`` (any user, for themselves). Every handler checks
all its input (``rules``) before it writes anything, so a refused request changes nothing.
"""

from __future__ import annotations

import hmac
from typing import Any

from synapse.module_api import ModuleApi, SynapseRequest, errors

from synapse_modules._http import USER_ID_RE, RoutedJsonResource, parse_json_object
from synapse_modules._internals import MembershipInternals
from synapse_modules.merchant_circle.circles import Circles
from synapse_modules.merchant_circle.config import MerchantCircleConfig
from synapse_modules.merchant_circle.follows import Follows
from synapse_modules.merchant_circle.lookups import CircleLookups
from synapse_modules.merchant_circle.moments import Moments
from synapse_modules.merchant_circle.rules import bad_json, validate_items, validate_order_id, validate_profile
from synapse_modules.merchant_circle.shards import Shards
from synapse_modules.merchant_circle.spaces import Spaces
from synapse_modules.merchant_circle.store import MerchantCircleStore
from synapse_modules.merchant_circle.store.follows import (
    follow_counts_txn,
    follows_of_user_txn,
    purchase_status_txn,
    unfollow_txn,
)
from synapse_modules.merchant_circle.store.merchants import Merchant, get_merchant_txn
from synapse_modules.merchant_circle.store.posts import products_txn, quota_view_txn

API_PREFIX = "/_synapse/client/wangxin/v1"

Response = tuple[int, Any]


def _validate_user_id(body: dict[str, Any], key: str) -> str:
    value = body.get(key)
    if not isinstance(value, str) or not USER_ID_RE.match(value) or len(value) > 255:
        raise bad_json(f"'{key}' must be a Matrix user id like @name:server")
    return value


class CircleHttp:
    def __init__(self, api: ModuleApi, config: MerchantCircleConfig, store: MerchantCircleStore,
                 lookups: CircleLookups, members: MembershipInternals, circles: Circles, moments: Moments,
                 follows: Follows, spaces: Spaces, shards: Shards):
        self._api = api
        self._shards = shards
        self._config = config
        self._store = store
        self._lookups = lookups
        self._members = members
        self._circles = circles
        self._moments = moments
        self._follows = follows
        self._spaces = spaces

    def register(self) -> None:
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
        self._api.register_web_resource(f"{API_PREFIX}/merchants", merchants)
        self._api.register_web_resource(f"{API_PREFIX}/purchases", purchases)
        self._api.register_web_resource(f"{API_PREFIX}/circle", circle)

    # -- who asks -----------------------------------------------------------------------------

    async def _requester(self, request: SynapseRequest) -> str:
        requester = await self._api.get_user_by_req(request)
        return str(requester.user.to_string())

    async def _require_admin(self, request: SynapseRequest) -> str:
        user_id = await self._requester(request)
        if not await self._api.is_user_admin(user_id):
            raise errors.SynapseError(403, "You are not a server admin", errors.Codes.FORBIDDEN)
        return user_id

    async def _require_reader(self, request: SynapseRequest, merchant_id: str) -> None:
        """Merchant details are for server admins, the merchant itself and the merchant bot."""
        requester = await self._requester(request)
        if requester in (merchant_id, self._config.merchant_bot) or await self._api.is_user_admin(requester):
            return
        raise errors.SynapseError(403, "Only the merchant, its bot or a server admin may read this",
                                  errors.Codes.FORBIDDEN)

    def _require_platform(self, request: SynapseRequest) -> None:
        auth = (request.getHeader("Authorization") or "").removeprefix("Bearer ").strip()
        if not hmac.compare_digest(auth.encode(), self._config.platform_secret.encode()):
            raise errors.SynapseError(403, "Wrong platform secret", errors.Codes.FORBIDDEN)

    async def _merchant_or_404(self, user_id: str) -> Merchant:
        merchant = await self._store.run(get_merchant_txn, user_id)
        if merchant is None:
            raise errors.SynapseError(404, f"{user_id} is not a merchant", errors.Codes.NOT_FOUND)
        return merchant

    # -- merchants ----------------------------------------------------------------------------

    async def _put_merchant(self, request: SynapseRequest, user_id: str) -> Response:
        await self._require_admin(request)
        # Everything is checked before anything is written: a refused PUT changes nothing.
        name, avatar_url = validate_profile(parse_json_object(request))
        if not USER_ID_RE.match(user_id) or not await self._lookups.user_exists(user_id):
            raise errors.SynapseError(404, f"No local user {user_id}", errors.Codes.NOT_FOUND)
        if await self._lookups.is_service_account(user_id):
            raise errors.SynapseError(400, f"'userId': {user_id} is a service account, not a shop",
                                      errors.Codes.INVALID_PARAM)
        merchant = await self._circles.put_merchant(user_id, name, avatar_url)
        # A merchant never stays in a moments room, even one it joined before it was a merchant.
        # After the record, so user_may_join_room already refuses new joins.
        await self._moments.evict_from_moments(user_id)
        await self._circles.seat_posters(merchant)
        return 200, {"user_id": user_id, "circle_room_id": merchant.circle_room_id}

    async def _get_merchant(self, request: SynapseRequest, user_id: str) -> Response:
        await self._require_reader(request, user_id)
        merchant = await self._merchant_or_404(user_id)
        # The owner, the merchant and the bot are not followers; every room of the circle counts.
        posters = {self._lookups.owner, user_id} | self._lookups.service_users()
        followers = await self._shards.followers(user_id, posters)
        now = self._api.get_current_time_msec()
        posts_today, next_post_ms = await self._store.run(quota_view_txn, user_id, now, self._config.posts_per_day)
        queued, failed, filing = await self._store.run(follow_counts_txn, user_id)
        return 200, {
            "user_id": merchant.user_id,
            "name": merchant.name,
            "avatar_url": merchant.avatar_url,
            "circle_room_id": merchant.circle_room_id,
            "followers": followers,
            "circle_rooms": len(await self._shards.rooms(user_id)),
            "posts_today": posts_today,
            "posts_per_day": self._config.posts_per_day,
            "next_post_allowed_in_ms": next_post_ms,
            "follows_queued": queued,
            "follows_failed": failed,
            "filings_queued": filing,
        }

    async def _get_products(self, request: SynapseRequest, user_id: str) -> Response:
        await self._require_reader(request, user_id)
        await self._merchant_or_404(user_id)
        now = self._api.get_current_time_msec()
        products = []
        for product, last_ts, count in await self._store.run(products_txn, user_id, now):
            products.append({
                "product": product,
                "last_posted_ts": last_ts,
                "times_posted": count,
                "repost_allowed_in_ms": max(0, last_ts + self._config.cooldown_ms - now),
            })
        return 200, {"products": products, "repost_cooldown_hours": self._config.repost_cooldown_hours}

    # -- purchases ----------------------------------------------------------------------------

    async def _post_purchase(self, request: SynapseRequest) -> Response:
        self._require_platform(request)
        body = parse_json_object(request)
        order_id = validate_order_id(body.get("order_id"))
        buyer = _validate_user_id(body, "buyer")
        merchant_id = _validate_user_id(body, "merchant")
        items = validate_items(body.get("items"))
        for field, account in (("buyer", buyer), ("merchant", merchant_id)):
            if await self._lookups.is_service_account(account):
                raise errors.SynapseError(400, f"'{field}': {account} is a service account",
                                          errors.Codes.INVALID_PARAM)
        if await self._lookups.circle_room_of(merchant_id) is None:
            raise errors.SynapseError(404, f"{merchant_id} is not a merchant", errors.Codes.NOT_FOUND)
        if not await self._lookups.user_exists(buyer):
            raise errors.SynapseError(404, f"No local user {buyer}", errors.Codes.NOT_FOUND)
        new, follow = await self._follows.purchase(order_id, buyer, merchant_id, items)
        if follow == "conflict":
            raise errors.SynapseError(409, f"order {order_id} was already reported for another buyer or merchant",
                                      errors.Codes.INVALID_PARAM)
        return 200, {"order_id": order_id, "replayed": not new, "follow": follow if new else "unchanged"}

    async def _get_purchase(self, request: SynapseRequest, order_id: str) -> Response:
        """The platform's view of what a purchase did: the state of the buyer's follow."""
        self._require_platform(request)
        status = await self._store.run(purchase_status_txn, order_id)
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
            joined = await self._shards.room_of(status.buyer, merchant.user_id) is not None
            body["follow"] = "following" if joined else "not_following"
        return 200, body

    # -- the user's own circle ----------------------------------------------------------------

    async def _get_circle(self, request: SynapseRequest) -> Response:
        user_id = await self._requester(request)
        followed = []
        for merchant, state in await self._store.run(follows_of_user_txn, user_id):
            room_id = await self._shards.room_of(user_id, merchant.user_id) if state == "following" else None
            if room_id is not None:  # the room of the circle they are in (its first, or a further one)
                followed.append({"merchant": merchant.user_id, "name": merchant.name,
                                 "avatar_url": merchant.avatar_url, "circle_room_id": room_id})
        return 200, {"merchants": followed, "space_room_id": await self._spaces.space_of(user_id)}

    async def _delete_follow(self, request: SynapseRequest, merchant_id: str) -> Response:
        user_id = await self._requester(request)
        merchant = await self._merchant_or_404(merchant_id)
        await self._store.run(unfollow_txn, merchant_id, user_id, self._api.get_current_time_msec())
        room_id = await self._shards.room_of(user_id, merchant.user_id) or merchant.circle_room_id
        if await self._members.local_membership(user_id, room_id) == "join":
            await self._members.set_membership(user_id, room_id, "leave")
        await self._spaces.unfile(user_id, room_id)
        return 200, {"merchant": merchant_id, "following": False}
