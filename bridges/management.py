"""The bridge bot: accepts DMs from local users and answers commands there.

A DM with the bot is the user's management room. The bot knows no feature: the composition
root (``bridges/app.py``) hands it the registry of commands (``wangxin_common.commands``), a
hook that may take an event first (SMS chats), and what to do with an uploaded file (imports).
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Any

from bridges.config import BridgeConfig
from bridges.matrix_client import MatrixClient, MatrixRequestError, txn_id_for
from bridges.store import BridgeStore
from wangxin_common import WANGXIN_VERSION
from wangxin_common.commands import CommandContext, CommandGroup, CommandRegistry, Dispatcher, Message

logger = logging.getLogger(__name__)

INTRO = "I'm the Wangxin bridge bot. Send me one of these commands (without quotes):"
WELCOME = (
    "Hi! I'm the Wangxin bridge bot. This chat is where you give me commands: "
    "moving your contacts and groups over from other messengers, and texting phone numbers. "
    "Send “help” to see every command."
)
ENCRYPTED_NOTICE = (
    "This chat is end-to-end encrypted, so I can't read your commands. "
    "Start a new direct chat with me with encryption turned off (I have no device keys, "
    "so Element does that by default for a chat with me)."
)

# Event -> whether it was taken (and needs nothing more from the bot).
EventHook = Callable[[dict[str, Any]], Awaitable[bool]]
# (room id, sender, event) of an m.file -> the answer.
FileHook = Callable[[str, str, dict[str, Any]], Awaitable[str]]


def answer_failed_request(error: MatrixRequestError) -> str:
    """A homeserver or module request a command needed was refused or failed."""
    return f"That didn't work ({error.error or error.errcode}); please try again in a minute."


# The bot's own commands; ``help`` comes with every registry. The services: the server name.
GENERAL: CommandGroup[str] = CommandGroup()


@GENERAL.command("version", help="show which version of Wangxin this server runs")
async def _version(ctx: CommandContext[str], args: list[str]) -> None:
    await ctx.reply(f"Wangxin {WANGXIN_VERSION} on {ctx.services}.")


class BridgeBot:
    def __init__(self, config: BridgeConfig, store: BridgeStore, client: MatrixClient, commands: CommandRegistry,
                 *, intercept: EventHook | None = None, on_file: FileHook | None = None):
        self.config = config
        self.store = store
        self.client = client
        self.user_id = config.bot_user_id
        self.dispatcher = Dispatcher(commands, self._answer, errors={MatrixRequestError: answer_failed_request})
        self._intercept = intercept
        self._on_file = on_file

    async def handle_event(self, event: dict[str, Any]) -> None:
        event_type = event.get("type")
        room_id = event.get("room_id")
        sender = event.get("sender")
        if not isinstance(room_id, str) or not isinstance(sender, str):
            return
        if self._intercept is not None and await self._intercept(event):
            return
        if event_type == "m.room.member":
            await self._on_membership(event, room_id, sender)
        elif sender == self.user_id or self.config.is_ghost(sender):
            return
        elif event_type in ("m.room.message", "m.room.encrypted"):
            owner = await self.store.management_room_owner(room_id)
            if owner is None or owner != sender:
                return
            if event_type == "m.room.encrypted":
                await self.reply(room_id, str(event["event_id"]), ENCRYPTED_NOTICE)
                return
            await self._on_command_message(event, room_id, sender)

    async def _on_membership(self, event: dict[str, Any], room_id: str, sender: str) -> None:
        content = event.get("content") or {}
        membership = content.get("membership")
        state_key = event.get("state_key")
        if state_key == self.user_id and membership == "invite":
            await self._on_invite(room_id, sender, bool(content.get("is_direct")))
        elif membership in ("leave", "ban") and state_key != self.user_id:
            owner = await self.store.management_room_owner(room_id)
            if owner == state_key:
                # The user left their management room: leave too, so it can be cleaned up.
                await self.store.remove_management_room(room_id)
                try:
                    await self.client.leave_room(room_id)
                except MatrixRequestError as e:
                    logger.info("Could not leave %s: %s", room_id, e)

    async def _on_invite(self, room_id: str, inviter: str, is_direct: bool) -> None:
        if not inviter.endswith(":" + self.config.homeserver.server_name):
            logger.info("Declining invite from remote user %s to %s", inviter, room_id)
            await self.client.leave_room(room_id, reason="The Wangxin bridge serves users of this server only")
            return
        await self.client.join_room(room_id)
        members = await self.client.joined_members(room_id)
        others = [m for m in members if m != self.user_id]
        if others != [inviter] and not is_direct:
            # A group chat: the bot is not a participant of groups; say so and leave.
            await self.client.send_notice(
                room_id,
                "I only work in a direct chat. Start a direct chat with me to give me commands.",
                txn_id_for("group-leave", room_id),
            )
            await self.client.leave_room(room_id)
            return
        await self.store.add_management_room(room_id, inviter)
        await self.client.send_notice(room_id, WELCOME, txn_id_for("welcome", room_id))

    async def _on_command_message(self, event: dict[str, Any], room_id: str, sender: str) -> None:
        content = event.get("content") or {}
        body = content.get("body")
        if content.get("msgtype") == "m.file" and self._on_file is not None:
            # An export file for `import` (bridges/contact_import/).
            text = await self._on_file(room_id, sender, event)
            await self.reply(room_id, str(event["event_id"]), text)
            return
        if content.get("msgtype") not in ("m.text", "m.notice") or not isinstance(body, str):
            return
        await self.dispatcher.dispatch(Message(room_id, sender, str(event["event_id"]), body, content))

    async def _answer(self, message: Message, text: str) -> None:
        await self.reply(message.room_id, message.event_id, text)

    async def reply(self, room_id: str, event_id: str, text: str, **extra: Any) -> None:
        """Answer a command; the transaction id derives from the command's event id, so a
        re-handled event (after a crash) is deduplicated by Synapse rather than sent twice."""
        content_extra: dict[str, Any] = {"m.relates_to": {"m.in_reply_to": {"event_id": event_id}}}
        content_extra.update(extra)
        await self.client.send_notice(room_id, text, txn_id_for("reply", event_id, text[:64]), extra=content_extra)

