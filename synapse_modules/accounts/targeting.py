"""Platforms' targeted posts (定向推送): a post for the buyers a segment of purchases matches, and
for nobody else.

**One room per (platform, person).** Each person a platform targets gets a room of their own
with the platform (made the first time, reused for every later targeted post): made by the
circles' owner (no login; it outranks every power level), invite-only, never world-readable or
open to guests, the platform's user posting, the person reading; muted and filed in the
person's 商家圈 space like a circle. Nobody else is in it, so nobody outside the segment has the
post in their ``/sync`` or can read it by room id, and nobody in the segment learns who else
bought the same things (one shared room per post would list them all as its members).

Why not one room per post: its joins would run one at a time (Synapse's per-room membership
lock) and every join reads a longer member list, and the room's member list would tell each
buyer who else bought the category. Rooms of two people spread over Synapse's event persisters
(they shard by room), and after the first post cost one event per person (docs/accounts.md,
"Targeted posts": cost and scale).

The people are fixed when the post starts (``store.posts.begin_targeting_txn``: the quota slot,
the post and one row per person, one transaction); the delivery loop (``delivery``) serves them
a batch at a time on the background-tasks process, which also writes push rules (the mute).
Someone who left their room with the platform, or unfollowed its channel, is not targeted again.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

from synapse.module_api import ModuleApi, errors, make_deferred_yieldable, run_in_background
from twisted.internet import defer

from synapse_modules.accounts.config import AccountsConfig
from synapse_modules.accounts.identities import Identities
from synapse_modules.accounts.post_rules import Segment, inbox_room_config
from synapse_modules.accounts.posting import Posting
from synapse_modules.accounts.rules import ACCOUNT_ID_RE, invalid_param
from synapse_modules.accounts.store import AccountsStore
from synapse_modules.accounts.store.accounts import Account, get_account_txn
from synapse_modules.accounts.store.posts import (
    Audience,
    Post,
    Targeting,
    begin_targeting_txn,
    get_inbox_txn,
    set_inbox_txn,
)
from synapse_modules.accounts.store.posts_schema import PostsStore
from synapse_modules.merchant_circle.parts import CircleParts
from synapse_modules.merchant_circle.spam_checks import limit_exceeded
from synapse_modules.merchant_circle.store.follows import enqueue_job_txn

logger = logging.getLogger(__name__)

DAY_MS = 86_400_000
# One person's outcome: (user_id, state, event_id, error)
Served = tuple[str, str, str | None, str | None]


class TargetedPosts:
    def __init__(self, api: ModuleApi, config: AccountsConfig, store: AccountsStore, posts: PostsStore,
                 parts: CircleParts, identities: Identities, posting: Posting):
        self._api = api
        self._config = config
        self._store = store
        self._posts = posts
        self._parts = parts
        self._identities = identities
        self._posting = posting

    async def audience(self, account: Account, segment: Segment) -> Audience:
        """The segment for SQL; its merchant (a user id or an account id) must be a merchant
        (400 naming ``segment.merchant`` otherwise)."""
        merchant_id = None
        if segment.merchant is not None:
            merchant_id = segment.merchant
            if ACCOUNT_ID_RE.match(segment.merchant):
                other = await self._store.run(get_account_txn, segment.merchant)
                merchant_id = other.merchant_id if other is not None and other.kind == "merchant" else None
            if merchant_id is None or await self._parts.lookups.circle_room_of(merchant_id) is None \
                    or self._identities.is_identity_name(merchant_id):
                raise invalid_param(f"'segment.merchant': {segment.merchant} is no merchant here")
        since = None
        if segment.purchased_within_days is not None:
            since = self._api.get_current_time_msec() - segment.purchased_within_days * DAY_MS
        return Audience(account.merchant_id, segment.category, merchant_id, since)

    async def begin(self, account: Account, post: Post, new: bool) -> Targeting:
        """Start the post: its people fixed, a slot of the limit taken, delivery under way."""
        assert post.segment is not None
        audience = await self.audience(account, post.segment)
        limit = self._posting.limit_of(account.kind)
        return await self._posts.run(
            begin_targeting_txn, post, new, audience, self._config.posting.segment_max_recipients,
            account.merchant_id, limit.posts, limit.window_ms, self._api.get_current_time_msec(),
        )

    async def post_now(self, account: Account, post: Post) -> Targeting:
        """A targeted post asked for now: 400 naming ``segment`` when it matches too many people,
        429 over the limit (nothing written either way); delivery starts within a poll."""
        targeting = await self.begin(account, post, new=True)
        self._raise_refusal(account, targeting)
        return targeting

    def _raise_refusal(self, account: Account, targeting: Targeting) -> None:
        if targeting.too_many:
            raise invalid_param(f"'segment' matches {targeting.targeted} people, more than the "
                                f"{self._config.posting.segment_max_recipients} one post may reach: narrow it")
        if targeting.limit is not None and targeting.limit.retry_after_ms is not None:
            option = self._posting.limit_of(account.kind).option
            raise limit_exceeded(option, targeting.limit.reason or "over the limit", targeting.limit.retry_after_ms)

    # -- serving people (the delivery loop) --------------------------------------------------------

    async def serve(self, account: Account, post: Post, users: Sequence[str]) -> list[Served]:
        """Serve these people their copy of ``post``, ``delivery_concurrency`` at a time."""
        await self._posting.dress(account)
        results: list[Served] = []
        size = self._config.posting.delivery_concurrency
        for start in range(0, len(users), size):
            batch = users[start : start + size]
            done = await make_deferred_yieldable(defer.gatherResults(
                [run_in_background(self._serve_one, account, post, user_id) for user_id in batch],
                consumeErrors=True,
            ))
            results.extend(done)
        return results

    async def _serve_one(self, account: Account, post: Post, user_id: str) -> Served:
        try:
            room_id = await self._store_inbox(account, user_id)
            if room_id is None:
                return user_id, "skipped", None, "left the platform's room"
            event_id = await self._posting.send(account, room_id, post.body, post.post_id)
            return user_id, "sent", event_id, None
        except Exception as e:  # this person only: the others are served
            logger.warning("Could not deliver %s of %s to %s: %s", post.post_id, account.account_id, user_id, e)
            return user_id, "failed", None, str(e) or type(e).__name__

    async def _store_inbox(self, account: Account, user_id: str) -> str | None:
        """The person's room with the platform: made the first time; ``None`` when they left it
        (they asked for no more)."""
        room_id = await self._posts.run(get_inbox_txn, account.account_id, user_id)
        members = self._parts.members
        if room_id is not None:
            membership = await members.local_membership(user_id, room_id)
            if membership == "join":
                return room_id
            if membership in ("leave", "ban"):
                await self._parts.spaces.unfile(user_id, room_id)  # out of their space too (once)
                return None
            # Invited but not joined: a stop between the steps below; finish them.
        else:
            info = await self._api.get_userinfo_by_id(user_id)
            if info is None or info.is_deactivated:
                raise errors.SynapseError(404, f"{user_id} is gone or deactivated", errors.Codes.NOT_FOUND)
            config = inbox_room_config(account.account_id, account.name, account.avatar_url, account.merchant_id,
                                       user_id)
            made, _ = await self._api.create_room(self._parts.lookups.owner, config, ratelimit=False)
            room_id = await self._posts.run(set_inbox_txn, account.account_id, user_id, str(made),
                                            self._api.get_current_time_msec())
        # Muted before the join, as a follow mutes a circle; then the account's user and the person join.
        await self._parts.mutes.mute(user_id, room_id)
        for member in (account.merchant_id, user_id):
            if await members.local_membership(member, room_id) != "join":
                await members.set_membership(member, room_id, "join")
        await self._parts.store.run(enqueue_job_txn, "file", user_id, None, room_id, "targeted",
                                    self._api.get_current_time_msec())
        self._parts.queue.kick()
        return room_id
