"""Auto-reply settings and support rooms over HTTP (``/_synapse/client/wangxin/v1/accounts``);
see docs/accounts.md, "Auto-reply and support rooms".

``PUT|GET /{id}/autoreply`` (the owner or a server admin) and ``POST /{id}/support`` (any
signed-in user: their own support room with the account). Input is checked before anything is
written.
"""

from __future__ import annotations

from typing import Any

from synapse.module_api import ModuleApi, SynapseRequest

from synapse_modules._http import RoutedJsonResource, parse_json_object
from synapse_modules.accounts.access import (
    account_or_404,
    channel_of,
    requester_of,
    require_owner_or_admin,
)
from synapse_modules.accounts.autoreply import AutoReply, validate_autoreply
from synapse_modules.accounts.identities import Identities
from synapse_modules.accounts.rules import invalid_param
from synapse_modules.accounts.store import AccountsStore
from synapse_modules.accounts.store.staff import get_staff_txn
from synapse_modules.accounts.store.support import get_autoreply_txn, set_autoreply_txn
from synapse_modules.accounts.support import Support
from synapse_modules.merchant_circle.lookups import CircleLookups

# 200 keywords with answers of 2,000 characters of Chinese (3 bytes each in UTF-8) do not fit the
# modules' usual 256 KiB body.
MAX_AUTOREPLY_BODY_BYTES = 2 * 1024 * 1024

Response = tuple[int, Any]


class SupportHttp:
    def __init__(self, api: ModuleApi, store: AccountsStore, lookups: CircleLookups, identities: Identities,
                 support: Support):
        self._api = api
        self._store = store
        self._lookups = lookups
        self._identities = identities
        self._support = support

    def add_routes(self, accounts: RoutedJsonResource) -> None:
        accounts.route("PUT", r"/(?P<account_id>[^/]+)/autoreply", self._put_autoreply)
        accounts.route("GET", r"/(?P<account_id>[^/]+)/autoreply", self._get_autoreply)
        accounts.route("POST", r"/(?P<account_id>[^/]+)/support", self._open_support)

    async def _put_autoreply(self, request: SynapseRequest, account_id: str) -> Response:
        user_id = await requester_of(self._api, request)
        account = await account_or_404(self._store, account_id)
        await require_owner_or_admin(self._api, user_id, account)
        settings = validate_autoreply(parse_json_object(request, max_bytes=MAX_AUTOREPLY_BODY_BYTES))
        updated = await self._store.run(set_autoreply_txn, account.account_id, settings.to_json(),
                                        self._api.get_current_time_msec())
        return 200, {"account_id": account.account_id, **settings.view(), "updated_at": updated}

    async def _get_autoreply(self, request: SynapseRequest, account_id: str) -> Response:
        user_id = await requester_of(self._api, request)
        account = await account_or_404(self._store, account_id)
        await require_owner_or_admin(self._api, user_id, account)
        stored = await self._store.run(get_autoreply_txn, account.account_id)
        settings = AutoReply.from_json(stored[0]) if stored else AutoReply()
        return 200, {"account_id": account.account_id, **settings.view(), "updated_at": stored[1] if stored else None}

    async def _open_support(self, request: SynapseRequest, account_id: str) -> Response:
        """The caller's support room with the account: made (and filed in their 商家圈 space, and
        the welcome sent) the first time, the same room after."""
        user_id = await requester_of(self._api, request)
        account = await account_or_404(self._store, account_id)
        channel_of(account)  # an account whose PUT did not finish has no user to answer yet
        if user_id in (account.owner, account.merchant_id):
            raise invalid_param(f"'user_id': {user_id} runs this account; support rooms are for its followers")
        if await self._lookups.is_service_account(user_id) or self._identities.is_identity_name(user_id):
            raise invalid_param(f"'user_id': {user_id} acts for the service and has no support room")
        if user_id in await self._store.run(get_staff_txn, account.account_id):
            raise invalid_param(f"'user_id': {user_id} is staff of this account; support rooms are for its followers")
        room_id, made = await self._support.open(account, user_id)
        return 200, {"account_id": account.account_id, "room_id": room_id, "created": made}
