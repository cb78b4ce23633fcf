"""An account's stats over HTTP: ``GET /_synapse/client/wangxin/v1/accounts/{id}/stats``
(the owner or a server admin; the merchant bot for the owner who asks it) as JSON, or with
``?format=csv`` as a spreadsheet. See docs/accounts.md, "Stats", and ``stats`` for the figures.

**Cost.** One call reads the channel's public read receipts once (one row per reader, grouped in
the database: the answer has a row per event someone read last) and its follow records once (one
row per person who ever followed), plus at most ``MAX_POSTS`` posts and a day count per day: it
grows with the channel's followers, not with its posts. Nothing is cached.
"""

from __future__ import annotations

from typing import Any
from zoneinfo import ZoneInfo

import attrs
from synapse.module_api import ModuleApi, SynapseRequest

from synapse_modules._http import RoutedJsonResource, query_arg
from synapse_modules.accounts.access import account_or_404, acting_for, channel_of, require_owner_or_admin
from synapse_modules.accounts.audience import Audience
from synapse_modules.accounts.stats import (
    BUCKET_MS,
    MAX_POSTS,
    day_start_ms,
    follower_days,
    read_rate,
    to_csv,
    unfollows_by_day,
    validate_days,
    validate_format,
    validate_table,
    window,
)
from synapse_modules.accounts.store import AccountsStore
from synapse_modules.accounts.store.accounts import Account
from synapse_modules.accounts.store.stats import channel_posts_txn, follower_days_txn, post_reads_txn, unfollows_txn
from synapse_modules.accounts.store.support import support_room_count_txn
from synapse_modules.merchant_circle.store.shards import copies_by_room_txn

Response = tuple[int, Any]



class StatsHttp:
    def __init__(self, api: ModuleApi, store: AccountsStore, audience: Audience, zone: ZoneInfo, bot: str | None):
        self._api = api
        self._store = store
        self._audience = audience
        self._zone = zone
        self._bot = bot  # the merchant bot: asks for the owner who wrote `stats` to it

    def add_routes(self, accounts: RoutedJsonResource) -> None:
        accounts.route("GET", r"/(?P<account_id>[^/]+)/stats", self._get_stats)

    async def _get_stats(self, request: SynapseRequest, account_id: str) -> Response | None:
        user_id = await acting_for(self._api, request, self._bot)
        account = await account_or_404(self._store, account_id)
        await require_owner_or_admin(self._api, user_id, account)
        output = validate_format(query_arg(request, "format"))
        days = validate_days(query_arg(request, "days"))
        table = validate_table(query_arg(request, "table"))
        report = await self.report(account, days)
        if output == "json":
            return 200, report
        body = to_csv(report, table, self._zone).encode("utf-8")
        request.setResponseCode(200)
        request.setHeader(b"Content-Type", b"text/csv; charset=utf-8")
        request.setHeader(b"Content-Disposition",
                          f'attachment; filename="{account.account_id}-stats.csv"'.encode("ascii"))
        request.setHeader(b"X-Content-Type-Options", b"nosniff")
        request.setHeader(b"Content-Length", str(len(body)).encode("ascii"))
        request.write(body)
        request.finish()
        return None

    async def _reads(self, account: Account, room_id: str, event_ids: list[str]) -> dict[str, int]:
        """Readers of each post in the channel's first room, plus the readers of its copies in
        the further rooms (docs/merchant-circle.md, "Circles past one room"): one pass over
        each room's receipts."""
        not_readers = self._audience.not_followers(account.merchant_id)
        reads = await self._store.run(post_reads_txn, room_id, event_ids, not_readers)
        for further, copies in (await self._store.run(copies_by_room_txn, event_ids)).items():
            for copy, count in (await self._store.run(post_reads_txn, further, list(copies), not_readers)).items():
                reads[copies[copy]] = reads.get(copies[copy], 0) + count
        return reads

    async def report(self, account: Account, days: int) -> dict[str, Any]:
        room_id = channel_of(account)
        now = self._api.get_current_time_msec()
        dates = window(now, days, self._zone)
        since = day_start_ms(dates[1], self._zone)
        followers = await self._audience.followers(account.merchant_id, room_id)
        ends = await self._store.run(follower_days_txn, account.account_id, dates[0])
        unfollowed = unfollows_by_day(await self._store.run(unfollows_txn, account.merchant_id, since, BUCKET_MS),
                                      self._zone)
        posts = await self._store.run(channel_posts_txn, account.merchant_id, since, MAX_POSTS, now)
        reads = await self._reads(account, room_id, [p.event_id for p in posts]) if posts else {}
        return {
            "account_id": account.account_id,
            "name": account.name,
            "time_zone": self._zone.key,
            "generated_at": now,
            "days": days,
            "followers": followers,
            "support_rooms": await self._store.run(support_room_count_txn, account.account_id),
            "followers_per_day": [attrs.asdict(d) for d in follower_days(dates, ends, followers, unfollowed)],
            "posts": [{
                "event_id": p.event_id,
                "posted_at": p.ts,
                "sender": p.sender,
                "title": p.title,
                "followers_at_post": p.followers,
                "reads": reads.get(p.event_id),
                "read_rate": read_rate(reads.get(p.event_id), p.followers),
            } for p in posts],
        }
