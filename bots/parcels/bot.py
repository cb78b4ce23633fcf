"""The parcels bot's composition root: the parcels API client, the registry of commands
(``commands.py``) and the dispatcher that answers them, on the bots' shared Matrix machinery
(``bots/common/matrix_bot.py``).

Where it answers: in rooms of at most two members, that is each person's Parcels room (which the
module made with this account) and DMs. It joins only invitations to direct chats, and declines
others: in a group it would have nothing to say that is not one member's private business.
"""

from __future__ import annotations

from typing import Any

from nio import InviteMemberEvent

from bots.common.matrix_bot import SOMETHING_WRONG, MatrixBot, main_loop
from bots.common.storage import BotStorage
from bots.parcels import commands
from bots.parcels.api import ParcelsApi, ParcelsApiError
from bots.parcels.config import ParcelsBotConfig
from wangxin_common.commands import CommandRegistry, Dispatcher

WELCOME = "Hi! I'm the Wangxin parcels bot (快递). Send “track” to see your parcels on their way, or “help”."
# The bot shares a room with every person who has a parcel: it leaves out of its /sync what it
# never reads (everyone's presence, read receipts and typing), so those do not wake it.
SYNC_FILTER: dict[str, Any] = {
    "presence": {"types": []},
    "account_data": {"types": []},
    "room": {"ephemeral": {"types": []}, "account_data": {"types": []}},
}


def parcels_commands(services: commands.ParcelsServices) -> CommandRegistry:
    """Every command the parcels bot answers, in ``help``'s order."""
    registry = CommandRegistry("Wangxin parcels bot", commands.INTRO)
    registry.include(commands.TRACK, services)
    return registry


class ParcelsBot(MatrixBot):
    name = "Parcels bot"
    welcome = WELCOME
    txn_prefix = "pb-"
    sync_filter = SYNC_FILTER

    def __init__(self, config: ParcelsBotConfig):
        super().__init__(config.account, BotStorage(config.store_dir))
        services = commands.ParcelsServices(ParcelsApi(config.account.homeserver_url, config.service_secret),
                                            config.time_zone, config.account.user_id.partition(":")[2])
        self.dispatcher = Dispatcher(parcels_commands(services), self.answer, fallback=SOMETHING_WRONG,
                                     errors={ParcelsApiError: lambda e: SOMETHING_WRONG})

    def accepts_invite(self, event: InviteMemberEvent) -> bool:
        return bool(event.content.get("is_direct"))


def run(config: ParcelsBotConfig) -> int:
    return main_loop(lambda: ParcelsBot(config))
