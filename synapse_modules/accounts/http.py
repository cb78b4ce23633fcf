"""The accounts HTTP API (``/_synapse/client/wangxin/v1/accounts``); see docs/accounts.md.

``PUT /{id}`` (server admins), ``GET /{id}`` and ``GET /?q=`` (any user), ``POST|DELETE
/{id}/follow`` (any user, for themselves), ``PUT|DELETE /{id}/storefront`` (the owner or a server
admin), and, for browsers without a login, ``GET /{id}/follow`` (the follow link's page) and
``GET /{id}/qr.png``. Every handler checks all its input (``rules``) before it writes anything,
so a refused request changes nothing.
"""

from __future__ import annotations

from typing import Any

from synapse.module_api import ModuleApi, SynapseRequest, errors, respond_with_html

from synapse_modules._http import RoutedJsonResource, parse_json_object, query_arg
from synapse_modules.accounts.channels import AliasTaken, Channels
from synapse_modules.accounts.config import MAX_SEARCH_LIMIT, AccountsConfig
from synapse_modules.accounts.follow_page import follow_page, not_found_page, qr_png
from synapse_modules.accounts.identities import Identities
from synapse_modules.accounts.rules import (
    ACCOUNT_ID_RE,
    FEE_WAIVERS,
    AccountInput,
    add_months,
    follow_link,
    invalid_param,
    matrix_to_link,
    matrix_to_room_link,
    validate_account,
    validate_account_id,
    validate_limit,
    validate_query,
    validate_storefront_url,
)
from synapse_modules.accounts.store import AccountsStore
from synapse_modules.accounts.store.accounts import (
    Account,
    NewAccount,
    get_account_by_merchant_txn,
    get_account_txn,
    insert_account_txn,
    search_txn,
    update_account_txn,
)
from synapse_modules.accounts.store.follows import record_own_follow_txn
from synapse_modules.accounts.store.staff import transfer_account_txn
from synapse_modules.accounts.storefront import Storefronts
from synapse_modules.merchant_circle.lookups import BoundedCache
from synapse_modules.merchant_circle.parts import CircleParts
from synapse_modules.merchant_circle.store.follows import unfollow_txn

API_PREFIX = "/_synapse/client/wangxin/v1"
QR_CACHE_SIZE = 1000  # PNGs kept in memory: the page is public, a flood of it must not cost a QR each

Response = tuple[int, Any]


def conflict(message: str) -> Exception:
    return errors.SynapseError(409, message, errors.Codes.INVALID_PARAM)


def not_found(account_id: str) -> Exception:
    return errors.SynapseError(404, f"No account {account_id}", errors.Codes.NOT_FOUND)


class AccountsHttp:
    def __init__(self, api: ModuleApi, config: AccountsConfig, store: AccountsStore, parts: CircleParts,
                 identities: Identities, channels: Channels, storefronts: Storefronts, mutes_here: bool):
        self._api = api
        self._config = config
        self._store = store
        self._parts = parts
        self._identities = identities
        self._channels = channels
        self._storefronts = storefronts
        self._mutes_here = mutes_here  # this process writes push rules: a follow mutes before it joins
        self._qr_cache = BoundedCache(QR_CACHE_SIZE)

    def register(self) -> RoutedJsonResource:
        """Mount the API; returns its resource, to which the other parts add their routes."""
        accounts = RoutedJsonResource()
        accounts.route("GET", r"/", self._search)
        accounts.route("PUT", r"/(?P<account_id>[^/]+)", self._put_account)
        accounts.route("GET", r"/(?P<account_id>[^/]+)", self._get_account)
        accounts.route("POST", r"/(?P<account_id>[^/]+)/follow", self._follow)
        accounts.route("DELETE", r"/(?P<account_id>[^/]+)/follow", self._unfollow)
        accounts.route("GET", r"/(?P<account_id>[^/]+)/follow", self._follow_page)
        accounts.route("GET", r"/(?P<account_id>[^/]+)/qr\.png", self._qr)
        accounts.route("PUT", r"/(?P<account_id>[^/]+)/storefront", self._put_storefront)
        accounts.route("DELETE", r"/(?P<account_id>[^/]+)/storefront", self._delete_storefront)
        self._api.register_web_resource(f"{API_PREFIX}/accounts", accounts)
        return accounts

    # -- who asks, and what about --------------------------------------------------------------

    async def _requester(self, request: SynapseRequest) -> str:
        requester = await self._api.get_user_by_req(request)
        return str(requester.user.to_string())

    async def _account_or_404(self, account_id: str) -> Account:
        account = await self._store.run(get_account_txn, validate_account_id(account_id))
        if account is None:
            raise not_found(account_id)
        return account

    @staticmethod
    def _channel_of(account: Account) -> str:
        if account.channel_room_id is None:
            raise conflict(f"The channel of {account.account_id} is not made yet: PUT the account again")
        return account.channel_room_id

    async def _require_owner_or_admin(self, user_id: str, account: Account) -> None:
        if user_id != account.owner and not await self._api.is_user_admin(user_id):
            raise errors.SynapseError(403, "Only the account's owner or a server admin may change this",
                                      errors.Codes.FORBIDDEN)

    # -- accounts -------------------------------------------------------------------------------

    async def _put_account(self, request: SynapseRequest, account_id: str) -> Response:
        requester = await self._requester(request)
        if not await self._api.is_user_admin(requester):
            raise errors.SynapseError(403, "Only a server admin may create or change accounts", errors.Codes.FORBIDDEN)
        account_id = validate_account_id(account_id)
        wanted = validate_account(parse_json_object(request))
        await self._check_owner(wanted)
        account = await self._store.run(get_account_txn, account_id)
        if account is None:
            account = await self._create(account_id, wanted)
        self._check_unchanged(account, wanted)
        if wanted.owner != account.owner:
            # A transfer (docs/accounts.md, "Transferring an account"): the new owner takes the old
            # one's place in every support room, by the staff sync the same transaction queues.
            await self._store.run(transfer_account_txn, account_id, account.merchant_id, wanted.owner, wanted.name,
                                  wanted.avatar_url, wanted.description, wanted.verified,
                                  self._api.get_current_time_msec())
            self._parts.queue.kick()
        else:
            await self._store.run(update_account_txn, account_id, wanted.name, wanted.avatar_url,
                                  wanted.description, wanted.verified)
        try:
            await self._channels.make(account, wanted.name, wanted.avatar_url)
            published = await self._channels.publish(account_id)
        except AliasTaken as e:
            raise conflict(f"'account_id': {e}") from None
        assert published is not None
        return 200, await self._view(published, requester, True)

    async def _check_owner(self, wanted: AccountInput) -> None:
        owner = wanted.owner
        lookups = self._parts.lookups
        if not self._api.is_mine(owner) or not await lookups.user_exists(owner):
            raise invalid_param(f"'owner': no local user {owner}")
        if await lookups.is_service_account(owner) or self._identities.is_identity_name(owner):
            raise invalid_param(f"'owner': {owner} is a service account, not a person or a shop")

    @staticmethod
    def _check_unchanged(account: Account, wanted: AccountInput) -> None:
        if account.kind != wanted.kind:
            raise conflict(f"'kind': {account.account_id} is an account of kind {account.kind}; a kind cannot change")
        if account.owner != wanted.owner and account.kind == "merchant":
            raise conflict(f"'owner': {account.account_id} is a merchant's own account (its posts come from "
                           f"{account.owner}); only organisation and platform accounts change owners")

    async def _create(self, account_id: str, wanted: AccountInput) -> Account:
        """Checks that a new account can have its channel and alias, then its record."""
        merchant_id = wanted.owner if wanted.kind == "merchant" else self._identities.user_id(account_id)
        other = await self._store.run(get_account_by_merchant_txn, merchant_id)
        if other is not None:
            raise conflict(f"'owner': {wanted.owner} has the merchant account {other.account_id!r} already")
        target = await self._channels.alias_target(self._channels.alias(account_id))
        if target is not None and target != await self._parts.lookups.circle_room_of(merchant_id):
            raise conflict(f"'account_id': the alias {self._channels.alias(account_id)} names another room")
        if wanted.kind != "merchant" and await self._identities.exists(account_id):
            raise conflict(f"'account_id': the user {merchant_id} exists and is not this account's")
        now = self._api.get_current_time_msec()
        stored = await self._store.run(insert_account_txn, NewAccount(
            account_id, wanted.kind, wanted.owner, merchant_id, wanted.name, wanted.avatar_url, wanted.description,
            wanted.verified, now, add_months(now, self._config.fee_waiver_months),
        ))
        if stored is None:  # another account took this channel meanwhile
            raise conflict(f"'owner': {wanted.owner} has a merchant account already")
        return stored

    async def _get_account(self, request: SynapseRequest, account_id: str) -> Response:
        requester = await self._requester(request)
        account = await self._account_or_404(account_id)
        privileged = requester == account.owner or await self._api.is_user_admin(requester)
        return 200, await self._view(account, requester, privileged)

    async def _view(self, account: Account, requester: str, privileged: bool) -> dict[str, Any]:
        room_id = account.channel_room_id
        bot = self._parts.config.merchant_bot
        followers = 0
        you_follow = False
        if room_id is not None:
            # The circle's owner, the account's user and the bot are not followers; followers in
            # every room of the channel count (docs/merchant-circle.md, "Circles past one room").
            shards = self._parts.shards
            not_followers = {self._parts.lookups.owner, account.merchant_id} | ({bot} if bot else set())
            followers = await shards.followers(account.merchant_id, not_followers)
            you_follow = requester != account.merchant_id and \
                await shards.room_of(requester, account.merchant_id) is not None
        alias = self._channels.alias(account.account_id)
        link = follow_link(self._api.public_baseurl, API_PREFIX, account.account_id)
        view: dict[str, Any] = {
            "account_id": account.account_id,
            "kind": account.kind,
            "name": account.name,
            "avatar_url": account.avatar_url,
            "description": account.description,
            "verified": account.verified,
            "alias": alias,
            "channel_room_id": room_id,
            # The account's own Matrix user in its channel: the merchant, or the account's user.
            "account_user_id": account.merchant_id,
            "bot_user_id": bot,
            # Posts through POST /accounts/{id}/posts (and the bot's `post`) come from the account's
            # own user (docs/accounts.md, "Posting"), a merchant's product posts through the bot too.
            "sender": account.merchant_id,
            "sender_is_shared": False,
            "posting": ("as the merchant's own user: POST /accounts/{id}/posts, the merchant's client, or the "
                        "bot's `post <title> <price> <buy link>` and `post #<account> <text>`"
                        if account.kind == "merchant" else
                        "as the account's own user: POST /accounts/{id}/posts, or the bot's `post <text>`"),
            "registered_at": account.registered_ts,
            "fees_waived_until": account.fees_waived_until_ts,
            "fees_waived": list(FEE_WAIVERS),
            "followers": followers,
            "you_follow": you_follow,
            "follow_link": link,
            "qr_code": link.removesuffix("/follow") + "/qr.png",
            "matrix_to": matrix_to_link(alias),
            "storefront_url": account.storefront_url,
            "made_from_merchant": account.adopted,
        }
        if privileged:
            view["owner"] = account.owner
        return view

    # -- find and follow ------------------------------------------------------------------------

    async def _search(self, request: SynapseRequest) -> Response:
        await self._requester(request)
        text = validate_query(query_arg(request, "q"))
        limit = validate_limit(query_arg(request, "limit"), self._config.search_limit, MAX_SEARCH_LIMIT)
        found = await self._store.run(search_txn, text, limit)
        return 200, {"results": [{
            "account_id": a.account_id, "kind": a.kind, "name": a.name, "avatar_url": a.avatar_url,
            "description": a.description, "verified": a.verified, "alias": self._channels.alias(a.account_id),
            "channel_room_id": a.channel_room_id,
        } for a in found], "limit": limit}

    async def _follow(self, request: SynapseRequest, account_id: str) -> Response:
        """The user joins the channel themselves, muted first where this process can write push
        rules; the follow is recorded and the channel filed in their 商家圈 space (and muted, if it
        was not here) by the merchant circle's queue, as when they join from a client."""
        user_id = await self._requester(request)
        account = await self._account_or_404(account_id)
        room_id = self._channel_of(account)
        if user_id == account.merchant_id or await self._parts.lookups.is_service_account(user_id) \
                or self._identities.is_identity_name(user_id):
            raise invalid_param(f"{user_id} cannot follow: it is this account, or acts for the service")
        members = self._parts.members
        # The room of the channel the user was in, or the one new followers go into.
        placed_in, placed = await self._parts.shards.room_for_follow(account.merchant_id, user_id)
        room_id = placed_in or room_id
        try:
            if await members.local_membership(user_id, room_id) != "join":
                if self._mutes_here:
                    await self._parts.mutes.mute(user_id, room_id)
                await members.set_membership(user_id, room_id, "join")
                await self._parts.store.run(record_own_follow_txn, account.merchant_id, user_id, room_id,
                                            self._api.get_current_time_msec())
                self._parts.queue.kick()
        finally:
            if placed:
                self._parts.shards.joined(room_id)
        return 200, {"account_id": account.account_id, "channel_room_id": room_id, "following": True}

    async def _unfollow(self, request: SynapseRequest, account_id: str) -> Response:
        """What ``DELETE /circle/{merchantId}`` does: remembered, left, out of the space."""
        user_id = await self._requester(request)
        account = await self._account_or_404(account_id)
        room_id = self._channel_of(account)
        if user_id == account.merchant_id:
            raise invalid_param(f"{user_id} is this account")
        await self._parts.store.run(unfollow_txn, account.merchant_id, user_id, self._api.get_current_time_msec())
        room_id = await self._parts.shards.room_of(user_id, account.merchant_id) or room_id
        if await self._parts.members.local_membership(user_id, room_id) == "join":
            await self._parts.members.set_membership(user_id, room_id, "leave")
        await self._parts.spaces.unfile(user_id, room_id)
        return 200, {"account_id": account.account_id, "following": False}

    async def _follow_page(self, request: SynapseRequest, account_id: str) -> None:
        account = await self._store.run(get_account_txn, account_id) if ACCOUNT_ID_RE.match(account_id) else None
        if account is None or account.channel_room_id is None:
            respond_with_html(request, 404, not_found_page(account_id))
            return
        alias = self._channels.alias(account.account_id)
        respond_with_html(request, 200, follow_page(account.name, account.description, account.verified, alias,
                                                    await self._join_link(account, alias)))

    async def _join_link(self, account: Account, alias: str) -> str:
        """The follow page's button: the channel's address while its first room takes new
        followers, then the room they go into now (the address always names the first room:
        docs/merchant-circle.md, "Circles past one room")."""
        rooms = await self._parts.shards.rooms(account.merchant_id)
        open_room = await self._parts.shards.open_room(account.merchant_id, make=False)  # a GET makes nothing
        if not rooms or open_room is None or open_room == rooms[0]:
            return matrix_to_link(alias)
        return matrix_to_room_link(open_room, self._api.server_name)

    async def _qr(self, request: SynapseRequest, account_id: str) -> None:
        account = await self._account_or_404(account_id)
        if account.channel_room_id is None:
            raise not_found(account_id)
        link = follow_link(self._api.public_baseurl, API_PREFIX, account.account_id)
        png = self._qr_cache.get(link)
        if png is ...:
            png = qr_png(link)
            self._qr_cache.put(link, png)
        request.setResponseCode(200)
        request.setHeader(b"Content-Type", b"image/png")
        request.setHeader(b"Content-Length", str(len(png)).encode("ascii"))
        request.setHeader(b"Cache-Control", b"public, max-age=3600")
        request.write(png)
        request.finish()

    # -- the storefront -------------------------------------------------------------------------

    async def _put_storefront(self, request: SynapseRequest, account_id: str) -> Response:
        user_id = await self._requester(request)
        account = await self._account_or_404(account_id)
        await self._require_owner_or_admin(user_id, account)
        url = validate_storefront_url(parse_json_object(request), self._config.storefront_allow_http_loopback)
        room_id = self._channel_of(account)
        for room in await self._parts.shards.rooms(account.merchant_id, fresh=True) or [room_id]:
            await self._storefronts.pin_in(room, account.name, url)  # every room of the channel
        await self._storefronts.pinned(account.account_id, url)
        return 200, {"account_id": account.account_id, "storefront_url": url}

    async def _delete_storefront(self, request: SynapseRequest, account_id: str) -> Response:
        user_id = await self._requester(request)
        account = await self._account_or_404(account_id)
        await self._require_owner_or_admin(user_id, account)
        room_id = self._channel_of(account)
        for room in await self._parts.shards.rooms(account.merchant_id, fresh=True) or [room_id]:
            await self._storefronts.unpin_in(room)
        await self._storefronts.pinned(account.account_id, None)
        return 200, {"account_id": account.account_id, "storefront_url": None}

