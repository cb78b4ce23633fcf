"""The Matrix user an organisation or platform account stands as in its channel.

A merchant account's channel is the merchant's own circle, keyed by the merchant's user. An
organisation or a platform is not a person: its channel is keyed by a user of its own,
``@<identity_prefix><account_id>:<server>``, registered by this module with the account's name as
its display name and no password, a member of the channel at the merchant's power level (the
merchant circle's ``seat_posters``). Nobody else may register a name with that prefix
(``check_registration_for_spam``), so an account id can never be claimed ahead of its account.
"""

from __future__ import annotations

import logging
from collections.abc import Collection

from synapse.module_api import ModuleApi, UserID
from synapse.spam_checker_api import RegistrationBehaviour

from synapse_modules.accounts.config import AccountsConfig
from synapse_modules.merchant_circle.lookups import CircleLookups

logger = logging.getLogger(__name__)


class Identities:
    def __init__(self, api: ModuleApi, config: AccountsConfig, lookups: CircleLookups):
        self._api = api
        self._prefix = config.identity_prefix
        self._lookups = lookups
        self._registering: set[str] = set()  # localparts this process is registering itself

    def register_callbacks(self) -> None:
        self._api.register_spam_checker_callbacks(check_registration_for_spam=self.check_registration_for_spam)

    def user_id(self, account_id: str) -> str:
        return f"@{self._prefix}{account_id}:{self._api.server_name}"

    def is_identity_name(self, user_id: str) -> bool:
        """Whether ``user_id`` is (or would be) an account's own user, not a person."""
        return user_id.startswith(f"@{self._prefix}") and self._api.is_mine(user_id)

    def account_id_of(self, user_id: str) -> str:
        """The account id an account's user (:meth:`is_identity_name`) stands for."""
        return user_id[1 + len(self._prefix):].split(":", 1)[0]

    async def exists(self, account_id: str) -> bool:
        return await self._lookups.user_exists(self.user_id(account_id))

    async def ensure(self, account_id: str, name: str) -> str:
        """Register the account's user if it is not yet, and give it the account's name. Only
        called for an account whose record names this user, so an existing one is ours."""
        user_id = self.user_id(account_id)
        if not await self._lookups.user_exists(user_id):
            localpart = f"{self._prefix}{account_id}"
            self._registering.add(localpart)
            try:
                await self._api.register_user(localpart, name)
            except Exception:
                if not await self._lookups.user_exists(user_id):  # else another PUT registered it just now
                    raise
            finally:
                self._registering.discard(localpart)
            return user_id
        profile = await self._api.get_profile_for_user(user_id[1:].split(":", 1)[0])
        if profile.display_name != name:
            await self._api.set_displayname(UserID.from_string(user_id), name)
        return user_id

    async def check_registration_for_spam(
        self, email_threepid: object, username: str | None, request_info: Collection[tuple[str, str]],
        auth_provider_id: str | None = None,
    ) -> RegistrationBehaviour:
        """Names with the accounts' prefix are the accounts' own (Synapse answers a refused sign-up
        with 429, as for any spam check): registered only by this module."""
        if username is not None and username.lower().startswith(self._prefix) \
                and username.lower() not in self._registering:
            logger.info("Refused the registration of %r: names starting %r are accounts'", username, self._prefix)
            return RegistrationBehaviour.DENY
        return RegistrationBehaviour.ALLOW
