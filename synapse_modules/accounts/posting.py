"""Posting as the account: a post in the channel from the account's own user, now or at a time,
within the limit of its kind; the list of its posts; cancelling a scheduled one.

**Who a post comes from.** An organisation or a platform posts as its own user
(``@acct.<id>``, ``identities``), which has the account's name and avatar and power 50 in the
channel; nobody can log in as it, so its posts are only ever the ones asked for here. A merchant
account posts as the merchant's own user (the account's user: the shop's own Matrix account,
with the profile the shop gave it), which the merchant circle already counts against the
merchant's quota. A post may carry a product and its image (the merchant bot's product post,
``post_rules.post_content``): it comes from the account's user too, and counts as a product post
(quota and cooldown) in the circle. Product posts made earlier by the bot itself stay what they
were: the bot may still edit and remove them (docs/accounts.md).

**Limits** are the merchant circle's quota (``check_event_for_spam``, exact under concurrent
posts), told the account's limit by :meth:`Posting.circle_limit`: organisations and platforms
``posting.limits`` of their kind, merchants the circle's ``posts_per_day`` as before. A post over
it is refused with 429 ``M_LIMIT_EXCEEDED`` and ``retry_after_ms``, whoever asked.
"""

from __future__ import annotations

import logging
import secrets
from typing import Any

import attrs
from synapse.module_api import ModuleApi, errors

from synapse_modules._internals import ProfileInternals
from synapse_modules.accounts.config import AccountsConfig
from synapse_modules.accounts.identities import Identities
from synapse_modules.accounts.post_rules import PostImage, post_content
from synapse_modules.accounts.store import AccountsStore
from synapse_modules.accounts.store.accounts import Account, get_account_by_merchant_txn
from synapse_modules.accounts.store.posts import (
    Post,
    cancel_post_txn,
    insert_post_txn,
    list_posts_txn,
)
from synapse_modules.accounts.store.posts_schema import PostsStore
from synapse_modules.merchant_circle.lookups import BoundedCache, PostLimit
from synapse_modules.merchant_circle.parts import CircleParts
from synapse_modules.merchant_circle.store.posts import quota_view_txn

logger = logging.getLogger(__name__)


def new_post_id() -> str:
    return "p" + secrets.token_hex(8)


@attrs.frozen
class Quota:
    limit: PostLimit
    posts_in_window: int
    next_post_allowed_in_ms: int


class Posting:
    def __init__(self, api: ModuleApi, config: AccountsConfig, store: AccountsStore, posts: PostsStore,
                 parts: CircleParts, identities: Identities):
        self._api = api
        self._config = config
        self._store = store
        self._posts = posts
        self._parts = parts
        self._identities = identities
        self._profiles = ProfileInternals(api)
        self._kinds = BoundedCache(10_000)  # an account user's id -> its account's kind (never changes)

    # -- limits ------------------------------------------------------------------------------------

    def limit_of(self, kind: str) -> PostLimit:
        kind_limit = self._config.posting.limits.get(kind)
        if kind_limit is None:  # merchants: the merchant circle's own quota, as before
            return PostLimit(self._parts.config.posts_per_day)
        return PostLimit(kind_limit.posts, kind_limit.window_ms, f"posting.limits.{kind}")

    async def circle_limit(self, merchant_id: str) -> PostLimit | None:
        """The merchant circle asks, for each post in a circle: an organisation's or a
        platform's limit for its own user's channel (an in-process cache after the first), else
        ``None`` (the circle's ``posts_per_day``)."""
        if not self._identities.is_identity_name(merchant_id):
            return None
        kind = self._kinds.get(merchant_id)
        if kind is ...:
            account = await self._store.run(get_account_by_merchant_txn, merchant_id)
            if account is None:
                return None
            kind = account.kind
            self._kinds.put(merchant_id, kind)
        return self.limit_of(kind) if kind in self._config.posting.limits else None

    async def quota(self, account: Account) -> Quota:
        limit = self.limit_of(account.kind)
        count, wait = await self._parts.store.run(quota_view_txn, account.merchant_id,
                                                  self._api.get_current_time_msec(), limit.posts, limit.window_ms)
        return Quota(limit, count, wait)

    # -- posting in the channel --------------------------------------------------------------------

    async def dress(self, account: Account) -> None:
        """An organisation's or a platform's user carries the account's avatar (its name is set
        with the account): read from its profile (cached by Synapse), set when it differs."""
        if account.kind == "merchant":
            return
        localpart = account.merchant_id[1:].split(":", 1)[0]
        profile = await self._api.get_profile_for_user(localpart)
        if profile.avatar_url != account.avatar_url:
            await self._profiles.set_avatar_url(account.merchant_id, account.avatar_url)

    async def send(self, account: Account, room_id: str, text: str, post_id: str, *,
                   product: dict[str, Any] | None = None, image: PostImage | None = None) -> str:
        """One post's event from the account's user; raises the circle's 429 over the limit."""
        event = await self._api.create_and_send_event_into_room({
            "type": "m.room.message", "room_id": room_id, "sender": account.merchant_id,
            "content": post_content(text, account.account_id, post_id, product, image),
        })
        # Into the channel's further rooms at once (docs/merchant-circle.md, "Circles past one room").
        self._parts.mirrors.persisted(account.merchant_id, event)
        return str(event.event_id)

    async def post_now(self, account: Account, room_id: str, author: str, text: str, *,
                       product: dict[str, Any] | None = None, image: PostImage | None = None) -> Post:
        """Posted in the channel now, then recorded (a refused post records nothing)."""
        await self.dress(account)
        post_id = new_post_id()
        event_id = await self.send(account, room_id, text, post_id, product=product, image=image)
        now = self._api.get_current_time_msec()
        post = Post(post_id, account.account_id, author, text, None, "sent", now, now, now, event_id, room_id, None,
                    1, None)
        await self._posts.run(insert_post_txn, post, 0)
        logger.info("%s posted %s in %s's channel as %s", author, post_id, account.account_id, account.merchant_id)
        return post

    async def schedule(self, account: Account, author: str, post: Post) -> Post:
        """Recorded to be sent at ``post.due_ts`` by the delivery loop."""
        if not await self._posts.run(insert_post_txn, post, self._config.posting.max_scheduled):
            raise errors.SynapseError(
                400, f"'at': {self._config.posting.max_scheduled} posts of {account.account_id} are scheduled "
                "already; cancel one or wait until one is sent", errors.Codes.LIMIT_EXCEEDED)
        logger.info("%s scheduled %s of %s for %d", author, post.post_id, account.account_id, post.due_ts)
        return post

    def new_post(self, account: Account, author: str, text: str, due_ts: int, state: str) -> Post:
        return Post(new_post_id(), account.account_id, author, text, None, state, due_ts,
                    self._api.get_current_time_msec(), None, None, None, None, 0, None)

    # -- the owner's view --------------------------------------------------------------------------

    async def posts_of(self, account: Account, state: str | None, limit: int) -> list[Post]:
        return await self._posts.run(list_posts_txn, account.account_id, state, limit)

    async def cancel(self, account: Account, post_id: str) -> str:
        """Cancel a scheduled post: 404 for none of this account, 409 once it is on its way."""
        state = await self._posts.run(cancel_post_txn, account.account_id, post_id)
        if state is None:
            raise errors.SynapseError(404, f"No post {post_id} of {account.account_id}", errors.Codes.NOT_FOUND)
        if state != "cancelled":
            raise errors.SynapseError(409, f"Post {post_id} is {state}: only a scheduled post can be cancelled",
                                      errors.Codes.INVALID_PARAM)
        return state
