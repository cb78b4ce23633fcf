"""Composes posting as the account (``posting``), targeted posts (``targeting``), the delivery loop
(``delivery``) and their HTTP routes (``http_posts``), and wires them into Synapse: the merchant
circle's quota told each account's limit, the routes on the accounts resource, the loop on the
background-tasks process."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from synapse.module_api import ModuleApi

from synapse_modules._http import RoutedJsonResource
from synapse_modules.accounts.config import AccountsConfig
from synapse_modules.accounts.delivery import PostDelivery
from synapse_modules.accounts.http_posts import PostsHttp
from synapse_modules.accounts.identities import Identities
from synapse_modules.accounts.posting import Posting
from synapse_modules.accounts.store import AccountsStore
from synapse_modules.accounts.store.accounts import Account
from synapse_modules.accounts.store.posts_schema import PostsStore
from synapse_modules.accounts.targeting import TargetedPosts
from synapse_modules.merchant_circle.parts import CircleParts


def start_posting(api: ModuleApi, config: AccountsConfig, store: AccountsStore, parts: CircleParts,
                  identities: Identities, resource: RoutedJsonResource,
                  adopt: Callable[[str], Awaitable[Account | None]] | None = None) -> None:
    posts = PostsStore(api, parts.store, store)
    posting = Posting(api, config, store, posts, parts, identities)
    targeted = TargetedPosts(api, config, store, posts, parts, identities, posting)
    # Every process: a post in an organisation's or a platform's channel counts against its kind's limit.
    parts.lookups.set_post_limit_provider(posting.circle_limit)
    PostsHttp(api, config, store, posts, parts, posting, targeted, adopt).register(resource)
    if api.should_run_background_tasks():
        delivery = PostDelivery(api, config, store, posts, posting, targeted)
        api.looping_background_call(delivery.run, config.posting.schedule_poll_ms, desc="wangxin_account_posts")
