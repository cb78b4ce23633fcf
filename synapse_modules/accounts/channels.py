"""An account's channel: the merchant circle's room, made and completed by the circle's own
parts, then published as the account's (its alias ``#<account_id>:<server>`` and an
``org.wangxin.account`` state event with the verified state).

For a merchant account the channel is the merchant's circle, exactly as ``PUT /merchants`` makes
it (the merchant leaves any moments room, and it and the merchant bot are seated). For an
organisation or a platform it is a circle keyed by the account's own user (``identities``).
Every step can be repeated: a PUT that failed half-way is finished by the next one, and the sweep
publishes what a failure left unpublished.
"""

from __future__ import annotations

import logging
from typing import Any

from synapse.module_api import ModuleApi, errors

from synapse_modules._internals import DirectoryInternals
from synapse_modules.accounts.identities import Identities
from synapse_modules.accounts.rules import ACCOUNT_STATE_TYPE, account_state, alias_of
from synapse_modules.accounts.store import AccountsStore
from synapse_modules.accounts.store.accounts import (
    Account,
    get_account_by_merchant_txn,
    get_account_txn,
    set_published_txn,
)
from synapse_modules.merchant_circle.parts import CircleParts
from synapse_modules.merchant_circle.store.merchants import Merchant

logger = logging.getLogger(__name__)


class AliasTaken(Exception):
    """The account's alias names another room (someone made it for a room of their own)."""


class Channels:
    def __init__(self, api: ModuleApi, store: AccountsStore, parts: CircleParts, identities: Identities,
                 directory: DirectoryInternals, list_verified: bool = True):
        self._api = api
        self._store = store
        self._parts = parts
        self._identities = identities
        self._directory = directory
        self._list_verified = list_verified

    def alias(self, account_id: str) -> str:
        return alias_of(account_id, self._api.server_name)

    async def alias_target(self, alias: str) -> str | None:
        """The room ``alias`` names, or ``None`` if it names none."""
        try:
            room_id, _ = await self._api.lookup_room_alias(alias)
        except errors.SynapseError as e:
            if e.code == 404:
                return None
            raise
        return room_id

    async def make(self, account: Account, name: str, avatar_url: str | None) -> Merchant:
        """Make (or complete, or update the profile of) the account's channel."""
        circles = self._parts.circles
        if account.kind != "merchant":
            await self._identities.ensure(account.account_id, name)
        merchant = await circles.put_merchant(account.merchant_id, name, avatar_url)
        if account.kind == "merchant":
            # What PUT /merchants does: a merchant never stays in a moments room. After the
            # record, so user_may_join_room already refuses new joins.
            await self._parts.moments.evict_from_moments(account.merchant_id)
        await circles.seat_posters(merchant)
        return merchant

    async def publish(self, account_id: str) -> Account | None:
        """Put the account's alias, canonical alias and ``org.wangxin.account`` state in its
        channel (what is missing or differs), then record that it is there."""
        account = await self._store.run(get_account_txn, account_id)
        if account is None or account.channel_room_id is None:
            return account
        room_id = account.channel_room_id
        alias = self.alias(account_id)
        target = await self.alias_target(alias)
        if target is None:
            try:
                await self._directory.create_alias(alias, room_id, self._parts.lookups.owner)
            except errors.SynapseError as e:
                if e.code != 409:
                    raise
                target = await self.alias_target(alias)  # made just now, by another publish of the same account?
        if target is not None and target != room_id:
            raise AliasTaken(f"{alias} names another room ({target})")
        wanted: dict[str, dict[str, Any]] = {
            "m.room.canonical_alias": {"alias": alias},
            ACCOUNT_STATE_TYPE: account_state(account_id, account.kind, account.verified),
        }
        state = await self._api.get_room_state(room_id, [(t, "") for t in wanted])
        for event_type, content in wanted.items():
            current = state.get((event_type, ""))
            if current is None or dict(current.content) != content:
                await self.owner_state(room_id, event_type, "", content)
        # The channel's further rooms (docs/merchant-circle.md, "Circles past one room") carry the
        # account's state too (clients show the verified badge there); the address names the first.
        for further in (await self._parts.shards.rooms(account.merchant_id, fresh=True))[1:]:
            await self.mark_room(further, account)
        await self._list_in_directory(room_id, account.verified)
        if not account.published:
            await self._store.run(set_published_txn, account_id, True)
        return await self._store.run(get_account_txn, account_id)

    async def _list_in_directory(self, room_id: str, verified: bool) -> None:
        """The public room directory lists the channel's first room while the account is verified
        (so a listing there is the verified mark: nobody gets an unverified channel listed through
        the module); an account no longer verified leaves it. Further rooms are never listed."""
        if not self._list_verified:
            return
        directory = self._api.public_room_list_manager
        listed = await directory.room_is_in_public_room_list(room_id)
        if verified and not listed:
            await directory.add_room_to_public_room_list(room_id)
        elif listed and not verified:
            await directory.remove_room_from_public_room_list(room_id)

    async def mark_room(self, room_id: str, account: Account) -> None:
        """The ``org.wangxin.account`` state in one room of the channel, if it differs."""
        content = account_state(account.account_id, account.kind, account.verified)
        current = (await self._api.get_room_state(room_id, [(ACCOUNT_STATE_TYPE, "")])).get((ACCOUNT_STATE_TYPE, ""))
        if current is None or dict(current.content) != content:
            await self.owner_state(room_id, ACCOUNT_STATE_TYPE, "", content)

    async def on_new_shard(self, merchant_id: str, room_id: str) -> None:
        """A further room of a channel was made: it gets the account's state."""
        account = await self._store.run(get_account_by_merchant_txn, merchant_id)
        if account is not None:
            await self.mark_room(room_id, account)

    async def owner_state(self, room_id: str, event_type: str, state_key: str, content: dict[str, Any]) -> None:
        """A state event from the circle's owner (the room's creator: only it has the power)."""
        await self._api.create_and_send_event_into_room(
            {"type": event_type, "room_id": room_id, "sender": self._parts.lookups.owner, "state_key": state_key,
             "content": content}
        )
