"""Who a shipment is for, and the parcels bot's own account.

A shipment names its buyer by Matrix user id or by phone number. A user id must be an active
local user who is a person (not a service account, ``synapse_modules._accounts``); a phone
number belongs to the active account that has it bound (Synapse keeps numbers as E.164 digits
without '+'), or to nobody yet.
"""

from __future__ import annotations

import logging

from synapse.module_api import ModuleApi

from synapse_modules import _accounts
from synapse_modules._internals import user_by_msisdn_txn
from synapse_modules.parcels.config import ParcelsConfig

logger = logging.getLogger(__name__)

BOT_DISPLAY_NAME = "Parcels 快递"


class Accounts:
    def __init__(self, api: ModuleApi, config: ParcelsConfig):
        self._api = api
        self._config = config
        self._bot_exists = False

    @property
    def bot(self) -> str:
        return self._config.bot_user_id

    async def is_active_local_user(self, user_id: str) -> bool:
        if not self._api.is_mine(user_id):
            return False
        info = await self._api.get_userinfo_by_id(user_id)
        return info is not None and not info.is_deactivated

    async def is_service_account(self, user_id: str) -> bool:
        return await _accounts.is_service_account(self._api, user_id, {self.bot} | self._config.service_users)

    async def owner_of_phone(self, msisdn: str) -> str | None:
        """The active local account the number is bound to, if any."""
        return await self._api.run_db_interaction("wangxin_parcels_phone_owner", user_by_msisdn_txn, msisdn)

    async def ensure_bot(self) -> None:
        """The bot account exists before it makes a room. The dev stack registers it with a
        password (for a bot process to log in as); elsewhere the first shipment registers it
        here, without one (a bot process then logs in through the admin API)."""
        if self._bot_exists:
            return
        if await self._api.get_userinfo_by_id(self.bot) is None:
            localpart = self.bot[1:].split(":", 1)[0]
            try:
                await self._api.register_user(localpart, BOT_DISPLAY_NAME)
                logger.info("Registered the parcels bot %s", self.bot)
            except Exception:
                if await self._api.get_userinfo_by_id(self.bot) is None:  # else another request registered it
                    raise
        self._bot_exists = True
