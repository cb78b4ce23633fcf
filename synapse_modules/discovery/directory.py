"""Who may never be in discovery: merchants (shops) and service accounts (bots).

Service accounts: the ones configured (``service_accounts``: the merchant bot, the discovery
bot, the circles' owner), every user an application service registered (the bridge's bot and
ghosts: ``UserInfo.appservice_id``), and Synapse's support and bot accounts (``user_type``).

Merchants: the merchant circle's table, read through the merchant circle's own store and query
(``MerchantCircleStore``, ``merchant_ids_among_txn``, ``all_circles_txn``) when that module runs on
this server. A merchant is never un-made, so a "yes" is kept for good; a "no" for a minute when it is about
the caller (outside a pool action), never for the people a list shows. A shop is refused at opt-in;
someone who becomes a merchant later drops out of every list at once, and out of everything else
at their next pool action: the caller's check reads the merchants' table in the transaction that
reads the caller's own state (``merchants_among_txn``), so it costs no transaction of its own.
"""

from __future__ import annotations

from collections.abc import Sequence

from synapse.module_api import ModuleApi

from synapse_modules import _features
from synapse_modules.discovery.config import DiscoveryConfig
from synapse_modules.discovery.store.people import MerchantsAmongTxn
from synapse_modules.merchant_circle.store import MerchantCircleStore
from synapse_modules.merchant_circle.store.merchants import all_circles_txn, merchant_ids_among_txn

NOT_MERCHANT_TTL_MS = 60_000
_MAX_REMEMBERED = 200_000


class Directory:
    def __init__(self, api: ModuleApi, config: DiscoveryConfig):
        self._api = api
        self._service = set(config.service_accounts)
        self._merchants: set[str] = set()
        self._not_merchants: dict[str, int] = {}  # user id -> when a lookup said no
        self._circle_store: MerchantCircleStore | None = None

    def _circles(self) -> MerchantCircleStore | None:
        if "merchant_circle" not in _features.loaded_features():
            return None
        if self._circle_store is None:
            self._circle_store = MerchantCircleStore(self._api)
        return self._circle_store

    async def merchants_among_txn(self) -> MerchantsAmongTxn | None:
        """The merchant query to run inside another transaction (``people.me_txn``), when the
        merchant circle runs on this server (its tables made first)."""
        store = self._circles()
        if store is None:
            return None
        await store.ready()
        return merchant_ids_among_txn

    def remember_merchant(self, user_id: str) -> None:
        self._merchants.add(user_id)

    async def is_service_account(self, user_id: str) -> bool:
        if user_id in self._service:
            return True
        info = await self._api.get_userinfo_by_id(user_id)
        return info is not None and (info.appservice_id is not None or info.user_type in ("support", "bot"))

    async def merchants_among(self, user_ids: Sequence[str], *, fresh: bool = False) -> set[str]:
        """The merchants among ``user_ids``; ``fresh``: do not trust a remembered "no" (lists
        shown to others, which must drop a new merchant at once)."""
        store = self._circles()
        if store is None or not user_ids:
            return set()
        now = self._api.get_current_time_msec()
        unknown = [u for u in dict.fromkeys(user_ids) if u not in self._merchants and (
            fresh or self._not_merchants.get(u, -NOT_MERCHANT_TTL_MS) <= now - NOT_MERCHANT_TTL_MS)]
        for start in range(0, len(unknown), 500):
            chunk = unknown[start:start + 500]
            found = await store.run(merchant_ids_among_txn, chunk)
            self._merchants |= found
            if len(self._not_merchants) > _MAX_REMEMBERED:
                self._not_merchants.clear()
            self._not_merchants.update((u, now) for u in chunk if u not in found)
        return {u for u in user_ids if u in self._merchants}

    async def is_merchant(self, user_id: str) -> bool:
        return bool(await self.merchants_among([user_id]))

    async def all_merchants(self) -> set[str]:
        store = self._circles()
        if store is None:
            return set()
        merchants = {merchant for merchant, _ in await store.run(all_circles_txn)}
        self._merchants |= merchants
        return merchants

    async def excluded_reason(self, user_id: str) -> str | None:
        """Why ``user_id`` may not use discovery, or ``None``."""
        if await self.is_service_account(user_id):
            return "Service accounts cannot use discovery"
        if await self.is_merchant(user_id):
            return "Shop accounts cannot use discovery: it is for people meeting people"
        return None
