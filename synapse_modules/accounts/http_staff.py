"""An account's staff over HTTP (``/_synapse/client/wangxin/v1/accounts/{id}/staff``); see
docs/accounts.md, "Staff".

``PUT`` replaces the staff (the owner or a server admin), ``GET`` lists them (the same callers).
Everything is checked before anything is written: the body's shape (``staff_rules``), then each
user against Synapse (a local, active person: not the account's owner or user, not a bot or any
other account of the service); each refusal names ``user_ids[i]``.
"""

from __future__ import annotations

from typing import Any

from synapse.module_api import ModuleApi, SynapseRequest

from synapse_modules._http import RoutedJsonResource, parse_json_object
from synapse_modules.accounts.access import account_or_404, requester_of, require_owner_or_admin
from synapse_modules.accounts.config import AccountsConfig
from synapse_modules.accounts.identities import Identities
from synapse_modules.accounts.rules import invalid_param
from synapse_modules.accounts.staff_rules import validate_staff
from synapse_modules.accounts.store import AccountsStore
from synapse_modules.accounts.store.accounts import Account
from synapse_modules.accounts.store.staff import get_staff_txn, set_staff_txn, staff_sync_queued_txn
from synapse_modules.merchant_circle.parts import CircleParts

Response = tuple[int, Any]


class StaffHttp:
    def __init__(self, api: ModuleApi, config: AccountsConfig, store: AccountsStore, parts: CircleParts,
                 identities: Identities):
        self._api = api
        self._config = config
        self._store = store
        self._parts = parts
        self._identities = identities

    def add_routes(self, accounts: RoutedJsonResource) -> None:
        accounts.route("PUT", r"/(?P<account_id>[^/]+)/staff", self._put_staff)
        accounts.route("GET", r"/(?P<account_id>[^/]+)/staff", self._get_staff)

    async def _put_staff(self, request: SynapseRequest, account_id: str) -> Response:
        caller = await requester_of(self._api, request)
        account = await account_or_404(self._store, account_id)
        await require_owner_or_admin(self._api, caller, account)
        user_ids = validate_staff(parse_json_object(request), self._config.max_staff)
        for i, user_id in enumerate(user_ids):
            await self._check_person(account, f"user_ids[{i}]", user_id)
        added, removed = await self._store.run(set_staff_txn, account.account_id, account.merchant_id, user_ids,
                                               self._api.get_current_time_msec())
        self._parts.queue.kick()
        return 200, {**await self._view(account), "added": added, "removed": removed}

    async def _get_staff(self, request: SynapseRequest, account_id: str) -> Response:
        caller = await requester_of(self._api, request)
        account = await account_or_404(self._store, account_id)
        await require_owner_or_admin(self._api, caller, account)
        return 200, await self._view(account)

    async def _view(self, account: Account) -> dict[str, Any]:
        return {
            "account_id": account.account_id,
            "user_ids": await self._store.run(get_staff_txn, account.account_id),
            # true until every support room of the account has the staff of this list
            "syncing": await self._store.run(staff_sync_queued_txn, account.merchant_id),
        }

    async def _check_person(self, account: Account, field: str, user_id: str) -> None:
        if not self._api.is_mine(user_id):
            raise invalid_param(f"'{field}': {user_id} is not a user of this server")
        if user_id == account.owner:
            raise invalid_param(f"'{field}': {user_id} owns the account (the owner is in every support room)")
        if user_id == account.merchant_id or self._identities.is_identity_name(user_id) \
                or await self._parts.lookups.is_service_account(user_id):
            raise invalid_param(f"'{field}': {user_id} acts for the service; staff are people")
        info = await self._api.get_userinfo_by_id(user_id)
        if info is None:
            raise invalid_param(f"'{field}': there is no user {user_id}")
        if info.is_deactivated:
            raise invalid_param(f"'{field}': {user_id} is deactivated")
