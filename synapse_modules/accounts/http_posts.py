"""The accounts' posting API (docs/accounts.md, "Posting"):

- ``POST /accounts/{id}/posts`` ``{"body", "at"?, "segment"?, "product"?, "image"?}``: post now as
  the account, or at ``at``; a platform's ``segment`` makes it a targeted post; a ``product`` and
  its ``image`` make it a product post (the merchant bot's ``post <title> <price> <link>``), sent now;
- ``GET /accounts/{id}/posts[?state=&limit=]``: the account's posts (``state=scheduled``: what is
  waiting, soonest first), its limit and when the next post is allowed;
- ``DELETE /accounts/{id}/posts/{post_id}``: cancel a scheduled post;
- ``GET /owners/{userId}/accounts``: the accounts a user owns (for the bot); a merchant that is no
  account yet (the moment after ``PUT /merchants``) is made one first, as the sweep would.

The owner or a server admin calls them with their own token; the merchant bot (the accounts'
bot, ``merchant_bot`` of the merchant circle) with its token and ``?user_id=<the owner who wrote
to it>``, for that owner only. Every check runs before anything is written.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from synapse.module_api import ModuleApi, SynapseRequest, errors

from synapse_modules._http import USER_ID_RE, RoutedJsonResource, parse_json_object, query_arg
from synapse_modules.accounts.config import AccountsConfig
from synapse_modules.accounts.post_rules import (
    validate_post,
    validate_post_id,
    validate_state_filter,
)
from synapse_modules.accounts.posting import Posting, new_post_id
from synapse_modules.accounts.rules import invalid_param, validate_account_id, validate_limit
from synapse_modules.accounts.store import AccountsStore
from synapse_modules.accounts.store.accounts import Account, get_account_txn
from synapse_modules.accounts.store.posts import (
    Post,
    count_audience_txn,
    get_post_txn,
    owned_accounts_txn,
    recipient_counts_txn,
)
from synapse_modules.accounts.store.posts_schema import PostsStore
from synapse_modules.accounts.targeting import TargetedPosts
from synapse_modules.merchant_circle.parts import CircleParts

API_PREFIX = "/_synapse/client/wangxin/v1"
DEFAULT_LIST_LIMIT = 50
MAX_LIST_LIMIT = 200

Response = tuple[int, Any]


class PostsHttp:
    def __init__(self, api: ModuleApi, config: AccountsConfig, store: AccountsStore, posts: PostsStore,
                 parts: CircleParts, posting: Posting, targeted: TargetedPosts,
                 adopt: Callable[[str], Awaitable[Account | None]] | None = None):
        self._api = api
        self._adopt = adopt  # makes a merchant an account now (``Adoption.adopt``)
        self._config = config
        self._store = store
        self._posts = posts
        self._parts = parts
        self._posting = posting
        self._targeted = targeted

    def register(self, accounts: RoutedJsonResource) -> None:
        """Adds the routes to the accounts resource (``/accounts``), and mounts ``/owners``."""
        accounts.route("POST", r"/(?P<account_id>[^/]+)/posts", self._post)
        accounts.route("GET", r"/(?P<account_id>[^/]+)/posts", self._list)
        accounts.route("DELETE", r"/(?P<account_id>[^/]+)/posts/(?P<post_id>[^/]+)", self._cancel)
        owners = RoutedJsonResource()
        owners.route("GET", r"/(?P<user_id>[^/]+)/accounts", self._owned)
        self._api.register_web_resource(f"{API_PREFIX}/owners", owners)

    # -- who asks --------------------------------------------------------------------------------

    async def _actor(self, request: SynapseRequest) -> tuple[str, bool]:
        """``(the user this request acts for, whether the merchant bot asks for them)``."""
        requester = str((await self._api.get_user_by_req(request)).user.to_string())
        bot = self._parts.config.merchant_bot
        values = request.args.get(b"user_id")
        if values and bot and requester == bot:
            user_id = values[0].decode("utf-8", "replace")
            if not USER_ID_RE.match(user_id) or not self._api.is_mine(user_id):
                raise invalid_param("'user_id' must name a local user")
            return user_id, True
        return requester, False

    async def _owned_account(self, request: SynapseRequest, account_id: str) -> tuple[Account, str]:
        """The account (404 if unknown) and who acts: its owner, or a server admin asking
        themselves (403 for anyone else)."""
        actor, via_bot = await self._actor(request)
        account = await self._store.run(get_account_txn, validate_account_id(account_id))
        if account is None:
            raise errors.SynapseError(404, f"No account {account_id}", errors.Codes.NOT_FOUND)
        if actor != account.owner and (via_bot or not await self._api.is_user_admin(actor)):
            raise errors.SynapseError(403, "Only the account's owner or a server admin may post as it",
                                      errors.Codes.FORBIDDEN)
        return account, actor

    # -- posting ---------------------------------------------------------------------------------

    async def _post(self, request: SynapseRequest, account_id: str) -> Response:
        account, author = await self._owned_account(request, account_id)
        now = self._api.get_current_time_msec()
        wanted = validate_post(parse_json_object(request), account.kind, now, self._config.posting.max_schedule_days)
        if account.channel_room_id is None:
            raise errors.SynapseError(409, f"The channel of {account.account_id} is not made yet: PUT the account "
                                      "again", errors.Codes.INVALID_PARAM)
        base = {"account_id": account.account_id, "sender": account.merchant_id}
        if wanted.segment is None and wanted.at is None:
            sent = await self._posting.post_now(account, account.channel_room_id, author, wanted.body,
                                                product=wanted.product, image=wanted.image)
            if wanted.product is None:
                return 200, {**base, **self._view(sent, {})}
            product = {**wanted.product, **({"image": wanted.image.url} if wanted.image else {})}
            return 200, {**base, **self._view(sent, {}), "product": product}
        post = Post(new_post_id(), account.account_id, author, wanted.body, wanted.segment, "scheduled",
                    wanted.at or now, now, None, None, None, None, 0, None)
        if wanted.segment is None:
            await self._posting.schedule(account, author, post)
            return 200, {**base, **self._view(post, {})}
        audience = await self._targeted.audience(account, wanted.segment)  # 400 naming an unknown merchant
        if wanted.at is None:
            await self._targeted.post_now(account, post)
            started = await self._posts.run(get_post_txn, post.post_id)
            return 200, {**base, **self._view(started or post, {})}
        # Scheduled: its people are found when it is sent; this many match now.
        matching = await self._posts.run(count_audience_txn, audience)
        await self._posting.schedule(account, author, post)
        return 200, {**base, **self._view(post, {}), "targeted": matching}

    async def _list(self, request: SynapseRequest, account_id: str) -> Response:
        account, _ = await self._owned_account(request, account_id)
        state = validate_state_filter(query_arg(request, "state"))
        limit = validate_limit(query_arg(request, "limit"), DEFAULT_LIST_LIMIT, MAX_LIST_LIMIT)
        posts = await self._posting.posts_of(account, state, limit)
        counts = await self._posts.run(recipient_counts_txn, [p.post_id for p in posts if p.segment is not None])
        quota = await self._posting.quota(account)
        return 200, {
            "account_id": account.account_id,
            "sender": account.merchant_id,
            "posts": [self._view(p, counts.get(p.post_id, {})) for p in posts],
            "limit": {"posts": quota.limit.posts, "days": quota.limit.window_ms / 86_400_000,
                      "option": quota.limit.option},
            "posts_in_window": quota.posts_in_window,
            "next_post_allowed_in_ms": quota.next_post_allowed_in_ms,
        }

    async def _cancel(self, request: SynapseRequest, account_id: str, post_id: str) -> Response:
        account, _ = await self._owned_account(request, account_id)
        state = await self._posting.cancel(account, validate_post_id(post_id))
        return 200, {"account_id": account.account_id, "post_id": post_id, "state": state}

    async def _owned(self, request: SynapseRequest, user_id: str) -> Response:
        actor, via_bot = await self._actor(request)
        if actor != user_id and (via_bot or not await self._api.is_user_admin(actor)):
            raise errors.SynapseError(403, "Only the user, the accounts' bot or a server admin may list these",
                                      errors.Codes.FORBIDDEN)
        accounts = await self._store.run(owned_accounts_txn, user_id)
        if (self._adopt is not None and not any(a.merchant_id == user_id for a in accounts)
                and await self._parts.lookups.circle_room_of(user_id) is not None):
            # A merchant whose account the background has not made yet: the bot posts its products
            # through that account, so make it now (idempotent; what the sweep would do).
            if await self._adopt(user_id) is not None:
                accounts = await self._store.run(owned_accounts_txn, user_id)
        return 200, {"user_id": user_id, "accounts": [
            {"account_id": a.account_id, "kind": a.kind, "name": a.name, "channel_room_id": a.channel_room_id,
             "sender": a.merchant_id} for a in accounts]}

    @staticmethod
    def _view(post: Post, counts: dict[str, int]) -> dict[str, Any]:
        view: dict[str, Any] = {
            "post_id": post.post_id,
            "state": post.state,
            "body": post.body,
            "at": post.due_ts,
            "created_at": post.created_ts,
            "sent_at": post.sent_ts,
            "event_id": post.event_id,
            "room_id": post.room_id,
            "author": post.author,
            "error": post.last_error,
        }
        if post.segment is not None:
            view["segment"] = post.segment.as_json()
            view["targeted"] = post.targeted
            view["delivered"] = counts.get("sent", 0)
            view["skipped"] = counts.get("skipped", 0)
            view["failed"] = counts.get("failed", 0)
        return view

