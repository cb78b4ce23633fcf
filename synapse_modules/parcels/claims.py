"""Shipments addressed to a phone number that has no account yet wait for one: when someone
signs up with that number, or binds it to their account, the shipments become theirs and
appear in their Parcels room with their whole history.

``on_add_user_third_party_identifier`` (cheap: ids only, called in whichever process stored the
number, right after storing it) only queues the claim in ``wangxin_parcels_claims``: durable, so
a crash between the bind and the room's creation loses nothing. The background drain (the
background-tasks process; kicked at once when the bind happened there) hands the shipments over
in one transaction, if the account still holds the number, and then renders the person's cards.
"""

from __future__ import annotations

import logging

from synapse.module_api import ModuleApi

from synapse_modules.parcels.accounts import Accounts
from synapse_modules.parcels.delivery import Delivery
from synapse_modules.parcels.store import ParcelsStore
from synapse_modules.parcels.store.work import add_claim_txn, apply_claim_txn, drop_claim_txn, due_work_txn

logger = logging.getLogger(__name__)

CLAIM_BATCH = 100
RENDER_BATCH = 50
# A claim is applied again at every drain for this long after the bind: a shipment whose
# webhook looked the number up just before the bind committed, and stored it just after, is
# still handed over.
CLAIM_SETTLE_MS = 30_000


class Drain:
    """Phone claims and the renders that requests left behind, on the background-tasks process."""

    def __init__(self, api: ModuleApi, store: ParcelsStore, accounts: Accounts, delivery: Delivery, *,
                 runs_here: bool):
        self._api = api
        self._store = store
        self._accounts = accounts
        self._delivery = delivery
        self._runs_here = runs_here
        self._running = False
        self._again = False

    async def on_bind(self, user_id: str, medium: str, address: str) -> None:
        """``on_add_user_third_party_identifier``: queue the number's waiting shipments for the account."""
        if medium != "msisdn":
            return
        await self._store.run(add_claim_txn, user_id, address, self._api.get_current_time_msec())
        if self._runs_here:
            self._api.run_as_background_process("wangxin_parcels_drain", self.drain)

    async def drain(self) -> None:
        if self._running:
            self._again = True
            return
        self._running = True
        try:
            while True:
                self._again = False
                claims, renders = await self._store.run(due_work_txn, self._api.get_current_time_msec(),
                                                        CLAIM_BATCH, RENDER_BATCH)
                for user_id, msisdn, queued_ts in claims:
                    await self._claim(user_id, msisdn, queued_ts)
                for user_id in renders:
                    await self._delivery.bring_up_to_date(user_id, wait=False)
                if not self._again:
                    return
        finally:
            self._running = False

    async def _claim(self, user_id: str, msisdn: str, queued_ts: int) -> None:
        if await self._accounts.is_service_account(user_id):
            await self._store.run(drop_claim_txn, user_id, msisdn)
            return
        claimed = await self._store.run(apply_claim_txn, user_id, msisdn, queued_ts,
                                        self._api.get_current_time_msec(), CLAIM_SETTLE_MS)
        if claimed:
            logger.info("%d shipments for a newly bound number went to %s", claimed, user_id)
            await self._delivery.bring_up_to_date(user_id, wait=False)
