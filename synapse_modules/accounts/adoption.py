"""Merchants become accounts of kind ``merchant``, with nothing lost.

A merchant made by ``PUT /merchants`` (or before this module ran) gets an account whose channel is
its circle: owned by the merchant, registered when the merchant was (so its fee waiver runs from
then), its followers, posts, quota and bot all as they were: the account only points at the
circle. Its id is the merchant's localpart where that is a valid account id and free, else a
stable variant of it (``rules.derived_account_ids``); the id's alias is then added to the circle.

It happens right after the merchant's circle is made (in the background: the merchant API answers
as before and cannot fail because of it), and a sweep on the background-tasks process finds any
merchant that is still no account (made before this module ran, or while a step failed) and any
account whose alias and state are not yet in its channel, at start-up and every
``sweep_interval_ms``.
"""

from __future__ import annotations

import logging

from synapse.module_api import ModuleApi

from synapse_modules.accounts.channels import AliasTaken, Channels
from synapse_modules.accounts.config import AccountsConfig
from synapse_modules.accounts.rules import derived_account_ids
from synapse_modules.accounts.store import AccountsStore
from synapse_modules.accounts.store.accounts import (
    Account,
    adopt_merchant_txn,
    get_account_by_merchant_txn,
    unadopted_merchants_txn,
    unpublished_accounts_txn,
)
from synapse_modules.merchant_circle.lookups import CircleLookups
from synapse_modules.merchant_circle.store.merchants import Merchant

logger = logging.getLogger(__name__)

SWEEP_BATCH = 100


class Adoption:
    def __init__(self, api: ModuleApi, config: AccountsConfig, store: AccountsStore, lookups: CircleLookups,
                 channels: Channels):
        self._api = api
        self._config = config
        self._store = store
        self._lookups = lookups
        self._channels = channels
        self._sweeping = False

    async def on_new_merchant(self, merchant: Merchant) -> None:
        """The merchant circle's listener: never raises (the sweep tries again)."""
        try:
            await self.adopt(merchant.user_id)
        except Exception as e:
            logger.warning("Could not make merchant %s an account yet (%s); the sweep will", merchant.user_id, e)

    async def adopt(self, merchant_id: str) -> Account | None:
        """The merchant's account, made if it has none (and published if this made it)."""
        account = await self._store.run(get_account_by_merchant_txn, merchant_id)
        if account is not None:
            return account  # made through the accounts API (which publishes it), or adopted before
        circle = await self._lookups.circle_room_of(merchant_id)
        if circle is None:
            return None
        for candidate in derived_account_ids(merchant_id):
            if await self._channels.alias_target(self._channels.alias(candidate)) not in (None, circle):
                continue  # someone's room has that alias: the next candidate
            account = await self._store.run(adopt_merchant_txn, candidate, merchant_id, self._config.fee_waiver_months)
            if account is not None:
                break
        else:
            logger.warning("No free account id for merchant %s among %s", merchant_id, derived_account_ids(merchant_id))
            return None
        logger.info("Merchant %s is now account %r", merchant_id, account.account_id)
        return await self._channels.publish(account.account_id)

    async def sweep(self) -> None:
        """Merchants that are no account yet, and accounts not yet published in their channel."""
        if self._sweeping:
            return
        self._sweeping = True
        try:
            while True:
                merchants = await self._store.run(unadopted_merchants_txn, SWEEP_BATCH)
                adopted = [await self.adopt(merchant_id) for merchant_id in merchants]
                if len(merchants) < SWEEP_BATCH or not any(adopted):
                    break
            for account_id in await self._store.run(unpublished_accounts_txn, SWEEP_BATCH):
                try:
                    await self._channels.publish(account_id)
                except AliasTaken as e:
                    logger.warning("Account %r cannot have its alias: %s", account_id, e)
        except Exception as e:
            logger.warning("The accounts sweep failed (%s); it runs again in %d s", e,
                           self._config.sweep_interval_ms // 1000)
        finally:
            self._sweeping = False
