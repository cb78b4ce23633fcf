"""The parts an account serves its followers with beyond the channel: auto-reply and support rooms
(``support``, ``http_support``), reached from a direct chat too (``dm_routing``), its staff
(``staff``, ``http_staff``), and its stats (``audience``, ``http_stats``). Composed here so
that ``module`` hooks them in with one call; what each part does is in its file."""

from __future__ import annotations

from zoneinfo import ZoneInfo

from synapse.module_api import NOT_SPAM, EventBase, ModuleApi

from synapse_modules._http import RoutedJsonResource
from synapse_modules.accounts.audience import COUNT_INTERVAL_MS, Audience
from synapse_modules.accounts.config import AccountsConfig
from synapse_modules.accounts.dm_routing import DmRouting
from synapse_modules.accounts.http_staff import StaffHttp
from synapse_modules.accounts.http_stats import StatsHttp
from synapse_modules.accounts.http_support import SupportHttp
from synapse_modules.accounts.identities import Identities
from synapse_modules.accounts.staff import StaffSync
from synapse_modules.accounts.store import AccountsStore
from synapse_modules.accounts.support import Support
from synapse_modules.merchant_circle.parts import CircleParts


def add_followers_desk(api: ModuleApi, config: AccountsConfig, store: AccountsStore, parts: CircleParts,
                       identities: Identities, accounts: RoutedJsonResource) -> None:
    """Register the callbacks, add the routes to the accounts API's resource, start the count."""
    zone = ZoneInfo(config.stats_time_zone)
    support = Support(api, store, parts)
    audience = Audience(api, store, parts, zone)
    support.register_callbacks()

    async def check_event_for_spam(event: EventBase) -> str:
        # One callback for both: Synapse wraps each registered callback in its own timing and
        # cancellation guard, a fixed cost on every event sent (docs/operating.md, "Deploying
        # for speed").
        verdict = await support.check_event_for_spam(event)
        if verdict != NOT_SPAM:
            return verdict
        return await audience.check_event_for_spam(event)

    api.register_spam_checker_callbacks(check_event_for_spam=check_event_for_spam)
    DmRouting(api, store, parts, identities, support).register()
    StaffSync(api, store, parts, support).register()
    SupportHttp(api, store, parts.lookups, identities, support).add_routes(accounts)
    StatsHttp(api, store, audience, zone, parts.config.merchant_bot).add_routes(accounts)
    StaffHttp(api, config, store, parts, identities).add_routes(accounts)
    if api.should_run_background_tasks():
        api.looping_background_call(audience.count_days, COUNT_INTERVAL_MS, desc="wangxin_accounts_follower_days")
        api.run_as_background_process("wangxin_accounts_follower_days", audience.count_days)
