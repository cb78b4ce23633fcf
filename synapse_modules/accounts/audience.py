"""How many follow an account: now, when each post was sent, and at the end of each day.

- **Now**: the channel's joined members, less the circles' service account, the account's own
  user and the merchant bot (what ``GET /accounts/{id}`` shows as ``followers``). Synapse caches
  the member count and the memberships, so this costs no database read while they stay cached.
- **At each post**: the merchant circle admits a post in ``check_event_for_spam``; this module's
  ``check_event_for_spam`` comes after it (modules run in their order in ``modules:``), so it sees
  only posts the quota admitted, and records the count then (in the background: the send does not
  wait for it). In any room that is not a channel it is one in-memory lookup.
- **At the end of each day**: every ``COUNT_INTERVAL_MS`` the background-tasks process counts each
  account's followers and stores the count as that day's (in ``stats_time_zone``), writing only
  counts that changed: the last count of a day is its end. The merchant circle's follow records
  keep each person's latest state and when it last changed (a follower's new display name counts
  as a change), so they cannot tell how many followed on a past day; these counts can.
"""

from __future__ import annotations

import logging
from zoneinfo import ZoneInfo

from synapse.module_api import NOT_SPAM, EventBase, ModuleApi, errors

from synapse_modules.accounts.stats import local_day
from synapse_modules.accounts.store import AccountsStore
from synapse_modules.accounts.store.stats import channels_after_txn, record_post_audience_txn, set_follower_days_txn
from synapse_modules.merchant_circle.parts import CircleParts
from synapse_modules.merchant_circle.rules import classify_circle_event

logger = logging.getLogger(__name__)

COUNT_INTERVAL_MS = 3_600_000  # how often each account's followers are counted for the day's figure
COUNT_BATCH = 500  # accounts counted per transaction


class Audience:
    def __init__(self, api: ModuleApi, store: AccountsStore, parts: CircleParts, zone: ZoneInfo):
        self._api = api
        self._store = store
        self._parts = parts
        self._zone = zone
        self._bot = parts.config.merchant_bot
        self._counting = False

    def not_followers(self, account_user: str) -> list[str]:
        """Members of a channel who are no followers: they post or own it."""
        return [self._parts.lookups.owner, account_user] + ([self._bot] if self._bot else [])

    async def followers(self, account_user: str, room_id: str) -> int:
        """Followers in every room of the channel (``room_id`` is its first)."""
        return await self._parts.shards.followers(account_user, self.not_followers(account_user))

    async def check_event_for_spam(self, event: EventBase) -> str:
        """A post the merchant circle admitted into a channel: record how many follow now."""
        if event.is_state() or not self._api.is_mine(event.sender):
            return NOT_SPAM
        account_user = await self._parts.lookups.circle_merchant(event.room_id)  # in-process cache
        if account_user is None or event.sender not in (account_user, self._bot) \
                or self._parts.mirrors.is_mirror(event):  # a copy in a further room: counted once, in the first
            return NOT_SPAM
        try:
            kind = classify_circle_event(event.type, event.content, getattr(event, "redacts", None)).kind
        except errors.SynapseError:
            return NOT_SPAM
        if kind != "post":
            return NOT_SPAM
        count = await self.followers(account_user, event.room_id)
        self._api.run_as_background_process(
            "wangxin_accounts_post_audience", self._store.run, record_post_audience_txn, event.event_id,
            event.room_id, count, self._api.get_current_time_msec(),
        )
        return NOT_SPAM

    async def count_days(self) -> None:
        """Today's follower count of every account (the background-tasks process, hourly)."""
        if self._counting:
            return
        self._counting = True
        try:
            after = ""
            while True:
                channels = await self._store.run(channels_after_txn, after, COUNT_BATCH)
                if not channels:
                    break
                now = self._api.get_current_time_msec()
                day = local_day(now, self._zone)
                counts = [(account_id, day, await self.followers(account_user, room_id))
                          for account_id, account_user, room_id in channels]
                await self._store.run(set_follower_days_txn, counts, now)
                after = channels[-1][0]
        except Exception as e:
            logger.warning("Counting the accounts' followers failed (%s); it runs again in %d min", e,
                           COUNT_INTERVAL_MS // 60_000)
        finally:
            self._counting = False
