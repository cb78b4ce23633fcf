"""The merchant bot: login, sync, invites, and messages to its commands (``commands.py``).

This is the bot's composition root: it builds the circle API client, the publisher and the
registry of commands, and the dispatcher that answers them.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import signal
from typing import Any

from nio import (
    AsyncClient,
    AsyncClientConfig,
    InviteMemberEvent,
    LoginResponse,
    MatrixRoom,
    MegolmEvent,
    RoomMessageImage,
    RoomMessageText,
    RoomSendResponse,
    SyncResponse,
    WhoamiResponse,
)

from bots.merchant import commands
from bots.merchant.circle_api import CircleApi, CircleApiError, NotAMerchant
from bots.merchant.config import MerchantBotConfig
from bots.merchant.publisher import Publisher
from bots.merchant.storage import BotStorage
from wangxin_common.commands import CommandRegistry, Dispatcher, Message

logger = logging.getLogger(__name__)

# A reply held back by the homeserver's rate limit (429) is retried after the wait it names, for
# at most this long; then it is logged as failed. The stack exempts the bot from rc_message
# (docs/operating.md), so this matters only where an operator did not.
SEND_RETRY_BUDGET_S = 300.0
SEND_MAX_ATTEMPTS = 100
WELCOME = "Hi! I'm the Wangxin merchant bot. Send “help” to see what I can do."
ENCRYPTED_NOTICE = (
    "This chat is end-to-end encrypted and I can't read it (I have no encryption keys). "
    "Start a direct chat with me with encryption off: Element does that by default for me."
)
SOMETHING_WRONG = "Something went wrong on my side; please try again in a minute."


def merchant_commands(services: commands.MerchantServices) -> CommandRegistry:
    """Every command the merchant bot answers, in ``help``'s order."""
    registry = CommandRegistry("Wangxin merchant bot", commands.INTRO)
    registry.include(commands.GENERAL, None)
    registry.include(commands.CIRCLE, services)
    return registry


class LoginFailed(Exception):
    pass


class MerchantBot:
    def __init__(self, config: MerchantBotConfig):
        self.config = config
        self.storage = BotStorage(config.store_dir)
        self.client = AsyncClient(
            config.homeserver_url,
            config.user_id,
            # max_limit_exceeded=0: a refused circle post (429 until tomorrow) must come back to
            # us as an answer for the merchant, not be retried for a day.
            config=AsyncClientConfig(encryption_enabled=False, store_sync_tokens=False, max_limit_exceeded=0),
        )
        self.circle = CircleApi(config.homeserver_url)
        services = commands.MerchantServices(self.circle, self.storage, Publisher(self.client, self.circle))
        self.dispatcher = Dispatcher(
            merchant_commands(services), self._answer, fallback=SOMETHING_WRONG,
            errors={NotAMerchant: lambda e: commands.NOT_A_MERCHANT, CircleApiError: lambda e: SOMETHING_WRONG},
        )

    async def login(self) -> None:
        """Reuse the saved session if the server still accepts it, else log in with the password."""
        session = self.storage.load_session()
        if session and session.get("user_id") == self.config.user_id:
            self.client.restore_login(session["user_id"], session["device_id"], session["access_token"])
            if isinstance(await self.client.whoami(), WhoamiResponse):
                self.circle.use_token(session["access_token"])
                logger.info("Restored session of %s (device %s)", session["user_id"], session["device_id"])
                return
            logger.info("Saved session was refused; logging in again")
        response = await self.client.login(self.config.password, device_name=self.config.device_name)
        if not isinstance(response, LoginResponse):
            raise LoginFailed(f"login as {self.config.user_id} failed: {response}")
        self.storage.save_session(response.user_id, response.device_id, response.access_token)
        self.circle.use_token(response.access_token)
        logger.info("Logged in as %s (device %s)", response.user_id, response.device_id)

    async def run(self) -> None:
        self.storage.clear_ready()
        await self.login()
        since = self.storage.load_sync_token()
        # The first sync only positions us: old messages are history, not commands to answer now.
        # (With a saved token, messages that arrived while the bot was down are answered.)
        first = await self.client.sync(timeout=0, since=since, full_state=since is None)
        if isinstance(first, SyncResponse):
            if since is not None:
                await self._handle_sync_timeline(first)
            self.storage.save_sync_token(first.next_batch)
        for room_id in list(self.client.invited_rooms):
            await self._join(room_id)
        self.client.add_event_callback(self._on_invite, InviteMemberEvent)
        self.client.add_event_callback(self._on_text, RoomMessageText)
        self.client.add_event_callback(self._on_encrypted, MegolmEvent)
        self.client.add_event_callback(self._on_image, RoomMessageImage)
        self.client.add_response_callback(self._on_sync, SyncResponse)
        self.storage.mark_ready(self.config.user_id)
        logger.info("Merchant bot ready")
        await self.client.sync_forever(timeout=30000, since=self.client.next_batch)

    async def _handle_sync_timeline(self, response: SyncResponse) -> None:
        for room_id, info in response.rooms.join.items():
            room = self.client.rooms.get(room_id)
            if room is None:
                continue
            for event in info.timeline.events:
                if isinstance(event, RoomMessageText):
                    await self._on_text(room, event)

    async def _on_sync(self, response: SyncResponse) -> None:
        self.storage.save_sync_token(response.next_batch)

    async def _on_invite(self, room: MatrixRoom, event: InviteMemberEvent) -> None:
        if event.state_key == self.client.user_id and event.membership == "invite":
            await self._join(room.room_id)

    async def _join(self, room_id: str) -> None:
        response = await self.client.join(room_id)
        logger.info("Joined %s: %s", room_id, type(response).__name__)
        await self._send(room_id, WELCOME, txn_seed=f"welcome:{room_id}")

    @staticmethod
    def _is_dm(room: MatrixRoom) -> bool:
        # Commands come only from one-to-one chats; in a merchant circle (where the bot may post)
        # every message is a post, never a command.
        return room.member_count <= 2

    async def _on_image(self, room: MatrixRoom, event: RoomMessageImage) -> None:
        if event.sender != self.client.user_id and self._is_dm(room):
            self.storage.save_last_image(event.sender, event.url)

    async def _on_text(self, room: MatrixRoom, event: RoomMessageText) -> None:
        if event.sender == self.client.user_id or not self._is_dm(room):
            return
        content = event.source.get("content") or {}
        await self.dispatcher.dispatch(Message(room.room_id, event.sender, event.event_id, event.body, content))

    async def _on_encrypted(self, room: MatrixRoom, event: MegolmEvent) -> None:
        if event.sender != self.client.user_id and self._is_dm(room):
            await self.reply(room.room_id, event.event_id, ENCRYPTED_NOTICE)

    async def _answer(self, message: Message, text: str) -> None:
        await self.reply(message.room_id, message.event_id, text)

    async def reply(self, room_id: str, event_id: str, text: str) -> None:
        content: dict[str, Any] = {
            "msgtype": "m.notice",
            "body": text,
            "m.relates_to": {"m.in_reply_to": {"event_id": event_id}},
        }
        await self._send(room_id, text, txn_seed=f"reply:{event_id}:{text[:64]}", content=content)

    async def _send(self, room_id: str, text: str, *, txn_seed: str, content: dict[str, Any] | None = None) -> bool:
        """Send a notice; on 429 wait ``retry_after_ms`` and try again (same transaction id, so
        never twice), for at most ``SEND_RETRY_BUDGET_S``. A notice that finally fails is logged."""
        body = content or {"msgtype": "m.notice", "body": text}
        tx_id = "mb-" + hashlib.sha256(txn_seed.encode()).hexdigest()[:32]
        waited = 0.0
        response: Any = None
        for attempt in range(1, SEND_MAX_ATTEMPTS + 1):
            try:
                response = await self.client.room_send(room_id, "m.room.message", body, tx_id=tx_id)
            except Exception as e:  # a transport failure nio gave up on
                response = repr(e)
                break
            if isinstance(response, RoomSendResponse):
                return True
            retry_after_ms = getattr(response, "retry_after_ms", None)
            if (getattr(response, "status_code", None) != "M_LIMIT_EXCEEDED" or waited >= SEND_RETRY_BUDGET_S
                    or attempt == SEND_MAX_ATTEMPTS):
                break
            # Sync waits meanwhile, so later commands queue up behind this one, in order.
            delay = min(max(retry_after_ms or 1000, 100) / 1000, SEND_RETRY_BUDGET_S - waited)
            logger.info("Rate-limited sending to %s (attempt %d); retrying in %.1f s", room_id, attempt, delay)
            await asyncio.sleep(delay)
            waited += delay
        logger.error("Could not send a message to %s after %d attempts (%.0f s): %s; the message was: %.200s",
                     room_id, attempt, waited, response, text)
        return False

    async def close(self) -> None:
        await self.client.close()


async def run_bot(config: MerchantBotConfig) -> None:
    bot = MerchantBot(config)
    try:
        await bot.run()
    finally:
        await bot.close()


async def _run_until_signalled(config: MerchantBotConfig) -> None:
    # SIGTERM from the stack launcher (or Ctrl-C) ends the bot cleanly, closing its HTTP session.
    task = asyncio.current_task()
    assert task is not None
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, task.cancel)
    try:
        await run_bot(config)
    except asyncio.CancelledError:
        logger.info("Merchant bot stopped")


def main_loop(config: MerchantBotConfig) -> int:
    try:
        asyncio.run(_run_until_signalled(config))
    except LoginFailed as e:
        logger.error("%s", e)
        return 1
    return 0
