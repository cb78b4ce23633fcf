"""The discovery bot's composition root: the discovery API client (acting for each sender with
the module's service secret), what the bot remembers, the registry of commands
(``commands.py``) and the dispatcher that answers them, the notifier that tells people about
their requests (``notices.py``) and the one that tells each person of their 你我36.8度 coupon in a
chat of only them and the bot (``coupon_notices.py``, ``private.py``), on the bots' shared Matrix machinery
(``bots/common/matrix_bot.py``: login, sync, invitations, replies that wait out rate limits, the
notice for encrypted chats).

Commands run in order for each sender and side by side across senders (``queues.py``): a shake
waits for its window to close without holding up anyone else. An ``m.location`` message is the
command ``location <geo: URI>``; it, and any ``location`` command with coordinates, is removed
from the chat (redacted) once read, so the position does not stay in the room's history.
"""

from __future__ import annotations

import asyncio
import logging

import aiohttp
from nio import MatrixRoom, RoomMemberEvent, RoomMessageText, RoomMessageUnknown, RoomRedactResponse, SyncResponse

from bots.common.matrix_bot import SOMETHING_WRONG, MatrixBot, command_text, main_loop
from bots.common.storage import BotStorage
from bots.discovery import commands
from bots.discovery.api import ApiError, DiscoveryApi
from bots.discovery.config import DiscoveryBotConfig
from bots.discovery.coupon_notices import CouponNotifier
from bots.discovery.memory import BotMemory
from bots.discovery.notices import Notifier
from bots.discovery.private import PrivateChats
from bots.discovery.queues import SenderQueues
from bots.discovery.text import geo_uri_of, plain_error
from wangxin_common.commands import CommandRegistry, Dispatcher, Message

logger = logging.getLogger(__name__)

WELCOME = ("Hi! I'm the Wangxin discovery bot: meet people nearby, shake, drift bottles, 36.8° pairings with a "
           "coupon, face to face on video. Nobody sees you until you send “discover on”. Send “help” to see "
           "everything I can do.")
UNREACHABLE = "I could not reach the server just now; please try again in a minute."
NO_POSITION = ("I could not read a position in that location. Send it again, or type "
               "“location <latitude> <longitude>”.")
REDACT_REASON = "The discovery bot keeps no coordinates: only a ~1 km area was kept, on the server"


def discovery_commands(services: commands.DiscoveryServices) -> CommandRegistry:
    """Every command the discovery bot answers, in ``help``'s order."""
    registry = CommandRegistry("Wangxin discovery bot", commands.INTRO)
    for group in (commands.PROFILE, commands.MEET, commands.REQUESTS, commands.SAFETY, commands.COUPONS):
        registry.include(group, services)
    return registry


class DiscoveryBot(MatrixBot):
    name = "Discovery bot"
    welcome = WELCOME
    txn_prefix = "db-"

    def __init__(self, config: DiscoveryBotConfig):
        super().__init__(config.account, BotStorage(config.store_dir))
        self.config = config
        self.memory = BotMemory(config.store_dir)
        self.api = DiscoveryApi(config.account.homeserver_url, config.service_secret)
        server_name = config.account.user_id.split(":", 1)[1]
        self.services = commands.DiscoveryServices(self.api, self.memory, server_name, self._redact)
        self.dispatcher = Dispatcher(
            discovery_commands(self.services), self.answer, fallback=SOMETHING_WRONG,
            errors={ApiError: plain_error, aiohttp.ClientError: lambda e: UNREACHABLE,
                    asyncio.TimeoutError: lambda e: UNREACHABLE},
        )
        self.notifier = Notifier(self.services, self._tell, config.poll_interval_ms / 1000)
        self.private = PrivateChats(self.client, self.memory, self._tell)
        self.coupon_notifier = CouponNotifier(self.api, self.memory, self.private.tell, config.poll_interval_ms / 1000)
        self.queues = SenderQueues()
        self._notifier_task: asyncio.Task[None] | None = None
        self._coupon_task: asyncio.Task[None] | None = None
        self._sync_seq = 0
        self._saved_seq = 0
        self._savers: set[asyncio.Task[None]] = set()

    def add_callbacks(self) -> None:
        self.client.add_event_callback(self._on_location, RoomMessageUnknown)  # type: ignore[arg-type]
        self.client.add_event_callback(self._on_member, RoomMemberEvent)  # type: ignore[arg-type]
        # Logged in and synced: notices can be sent from now on.
        self._notifier_task = asyncio.create_task(self.notifier.run_forever())
        self._coupon_task = asyncio.create_task(self.coupon_notifier.run_forever())

    async def _on_sync(self, response: SyncResponse) -> None:
        # The sync position moves on only once the commands of that sync (and of every sync
        # before it) were answered: a restart answers any command still waiting, as when
        # commands are answered inline. Positions are saved in order.
        self._sync_seq += 1
        seq, token, pending = self._sync_seq, response.next_batch, self.queues.pending()

        async def save() -> None:
            if pending:
                await asyncio.wait(pending)
            if seq > self._saved_seq:
                self._saved_seq = seq
                self.storage.save_sync_token(token)

        saver = asyncio.create_task(save())
        self._savers.add(saver)
        saver.add_done_callback(self._savers.discard)

    # -- messages ------------------------------------------------------------------------------

    def _is_command(self, room: MatrixRoom, sender: str) -> bool:
        if sender == self.client.user_id or not self.answers_in(room):
            return False
        self.memory.set_dm_room(sender, room.room_id)  # where notices for them go
        return True

    async def _on_text(self, room: MatrixRoom, event: RoomMessageText) -> None:
        if not self._is_command(room, event.sender):
            return
        content = event.source.get("content") or {}
        message = Message(room.room_id, event.sender, event.event_id, command_text(event.body), content)
        self.queues.submit(event.sender, lambda: self.dispatcher.dispatch(message))

    async def _on_location(self, room: MatrixRoom, event: RoomMessageUnknown) -> None:
        if event.msgtype != "m.location" or not self._is_command(room, event.sender):
            return
        uri = geo_uri_of(event.content)
        if uri is None or any(c.isspace() for c in uri):
            await self._redact(room.room_id, event.event_id)
            self.queues.submit(event.sender, lambda: self.reply(room.room_id, event.event_id, NO_POSITION))
            return
        message = Message(room.room_id, event.sender, event.event_id, f"location {uri}", {})
        self.queues.submit(event.sender, lambda: self.dispatcher.dispatch(message))

    async def _on_member(self, room: MatrixRoom, event: RoomMemberEvent) -> None:
        # Someone left the DM: notices for them no longer go there.
        if event.membership in ("leave", "ban") and event.state_key != self.client.user_id:
            self.memory.forget_dm_room(room.room_id)

    async def _redact(self, room_id: str, event_id: str) -> bool:
        response = await self.client.room_redact(room_id, event_id, reason=REDACT_REASON)
        if isinstance(response, RoomRedactResponse):
            return True
        logger.warning("Could not redact the location message %s in %s: %s", event_id, room_id, response)
        return False

    async def _tell(self, room_id: str, text: str, seed: str) -> bool:
        return await self._send(room_id, text, txn_seed=seed)

    async def close(self) -> None:
        for task in (self._notifier_task, self._coupon_task):
            if task is not None:
                task.cancel()
        self.queues.cancel()
        for saver in list(self._savers):
            saver.cancel()
        await self.api.close()
        self.memory.close()
        await super().close()


def run(config: DiscoveryBotConfig) -> int:
    return main_loop(lambda: DiscoveryBot(config))
