"""The shop beside the chat (双界面窗口): a page pinned as a room widget in the account's channel.

Two state events from the channel's owner (only it has the power to send state there): the widget
(``im.vector.modular.widgets``, state key ``org.wangxin.storefront``: one storefront per channel,
replaced by the next) and Element's layout (``io.element.widgets.layout``), which puts it in the
"top" container, the app drawer above the timeline: Element shows the page there with the chat open
below it. Removing sends both with the widget gone (empty content, as Element's own "remove").
The room first, then the record: if sending fails, the record keeps what the room shows.
"""

from __future__ import annotations

from synapse_modules.accounts.channels import Channels
from synapse_modules.accounts.rules import (
    LAYOUT_TYPE,
    STOREFRONT_WIDGET_ID,
    WIDGET_TYPE,
    storefront_layout,
    storefront_widget,
)
from synapse_modules.accounts.store import AccountsStore
from synapse_modules.accounts.store.accounts import get_account_by_merchant_txn, set_storefront_txn


class Storefronts:
    def __init__(self, store: AccountsStore, channels: Channels, owner: str):
        self._store = store
        self._channels = channels
        self._owner = owner

    async def pin_in(self, room_id: str, name: str, url: str) -> None:
        """The widget and Element's layout in one room of the channel (each room has them)."""
        await self._channels.owner_state(room_id, WIDGET_TYPE, STOREFRONT_WIDGET_ID,
                                         storefront_widget(url, name, self._owner))
        await self._channels.owner_state(room_id, LAYOUT_TYPE, "", storefront_layout(True))

    async def unpin_in(self, room_id: str) -> None:
        await self._channels.owner_state(room_id, WIDGET_TYPE, STOREFRONT_WIDGET_ID, {})
        await self._channels.owner_state(room_id, LAYOUT_TYPE, "", storefront_layout(False))

    async def on_new_shard(self, merchant_id: str, room_id: str) -> None:
        """A further room of a channel was made: it shows the storefront too."""
        account = await self._store.run(get_account_by_merchant_txn, merchant_id)
        if account is not None and account.storefront_url:
            await self.pin_in(room_id, account.name, account.storefront_url)

    async def pinned(self, account_id: str, url: str | None) -> None:
        """Recorded once every room shows it (or none does)."""
        await self._store.run(set_storefront_txn, account_id, url)
