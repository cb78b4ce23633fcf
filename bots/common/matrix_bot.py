"""A Wangxin bot's Matrix side (matrix-nio): login, sync, invitations, and replies.

A bot subclasses ``MatrixBot`` and sets ``self.dispatcher`` (``wangxin_common/commands.py``) in
its constructor; every text message that someone else sends in a room the bot answers in (by
default a room of at most two members: a DM, or a Parcels room) goes to that dispatcher, and
the dispatcher's answers come back through ``answer`` as replies to the command.

Encryption: the bots run matrix-nio without libolm and publish no device keys. Element creates a
DM encrypted only when the other side has device keys, so a DM with a bot stays plain. If a
client encrypts anyway, the bot says that it cannot read the message instead of staying silent.

Rate limits: a reply that Synapse holds back (429) is retried after the wait it names, with the
same transaction id (so never twice), for at most ``SEND_RETRY_BUDGET_S``; then it is logged with
its room and the error. The dev stack exempts the bots from ``rc_message`` (docs/operating.md),
so this matters only where an operator did not.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import re
import signal
from collections.abc import Callable
from typing import Any

import attrs
from nio import (
    AsyncClient,
    AsyncClientConfig,
    InviteMemberEvent,
    JoinResponse,
    LoginResponse,
    MatrixRoom,
    MegolmEvent,
    RoomMessageText,
    RoomSendResponse,
    SyncResponse,
    WhoamiResponse,
)

from bots.common.storage import BotStorage
from wangxin_common.commands import Dispatcher, Message

logger = logging.getLogger(__name__)

SEND_RETRY_BUDGET_S = 300.0
SEND_MAX_ATTEMPTS = 100
# A join that fails for a passing reason (a 5xx, a 429) is tried again, for at most this long.
JOIN_RETRY_BUDGET_S = 60.0
ENCRYPTED_NOTICE = (
    "This chat is end-to-end encrypted and I can't read it (I have no encryption keys). "
    "Start a direct chat with me with encryption off: Element does that by default for me."
)
SOMETHING_WRONG = "Something went wrong on my side; please try again in a minute."
# A reply's fallback quote (older clients put the quoted message before the reply's own text).
_REPLY_FALLBACK_RE = re.compile(r"\A(?:>[^\n]*\n)+\n")


class LoginFailed(Exception):
    pass


@attrs.frozen
class BotAccount:
    """Who the bot is and where: from its config file."""

    homeserver_url: str
    user_id: str
    password: str
    device_name: str


def command_text(body: str) -> str:
    """The text of a message without a reply's fallback quote."""
    return _REPLY_FALLBACK_RE.sub("", body, count=1)


class MatrixBot:
    """Login, sync, invitations and replies; subclasses give the dispatcher and the hooks."""

    name = "bot"  # for the log
    welcome = "Hi! Send “help” to see what I can do."
    encrypted_notice = ENCRYPTED_NOTICE
    txn_prefix = "bot-"  # of the transaction ids of replies (each bot its own)
    # The /sync filter (None: everything). A bot in many rooms leaves out what it never reads.
    sync_filter: dict[str, Any] | None = None
    dispatcher: Dispatcher

    def __init__(self, account: BotAccount, storage: BotStorage):
        self.account = account
        self.storage = storage
        self.client = AsyncClient(
            account.homeserver_url,
            account.user_id,
            # max_limit_exceeded=0: a 429 comes back to us (``_send`` waits it out, or the command
            # answers it, as a refused circle post), instead of nio retrying it without end.
            config=AsyncClientConfig(encryption_enabled=False, store_sync_tokens=False, max_limit_exceeded=0),
        )

    # -- hooks ---------------------------------------------------------------------------

    def on_login(self, access_token: str) -> None:
        """The bot has an access token (restored or new)."""

    def accepts_invite(self, event: InviteMemberEvent) -> bool:
        """Whether to join a room the bot was invited to (otherwise the invitation is declined)."""
        return True

    def answers_in(self, room: MatrixRoom) -> bool:
        """Whether messages in ``room`` are commands: only in one-to-one rooms, so that an answer
        about a person is never shown to anyone else."""
        return bool(room.member_count <= 2)

    def add_callbacks(self) -> None:
        """Register event callbacks beyond text, encrypted messages and invitations."""

    # -- login and sync --------------------------------------------------------------------

    async def login(self) -> None:
        """Reuse the saved session if the server still accepts it, else log in with the password."""
        session = self.storage.load_session()
        if session and session.get("user_id") == self.account.user_id:
            self.client.restore_login(session["user_id"], session["device_id"], session["access_token"])
            if isinstance(await self.client.whoami(), WhoamiResponse):
                self.on_login(session["access_token"])
                logger.info("Restored session of %s (device %s)", session["user_id"], session["device_id"])
                return
            logger.info("Saved session was refused; logging in again")
        response = await self.client.login(self.account.password, device_name=self.account.device_name)
        if not isinstance(response, LoginResponse):
            raise LoginFailed(f"login as {self.account.user_id} failed: {response}")
        self.storage.save_session(response.user_id, response.device_id, response.access_token)
        self.on_login(response.access_token)
        logger.info("Logged in as %s (device %s)", response.user_id, response.device_id)

    async def run(self) -> None:
        self.storage.clear_ready()
        await self.login()
        since = self.storage.load_sync_token()
        # The first sync only positions us: old messages are history, not commands to answer now.
        # (With a saved token, messages that arrived while the bot was down are answered.)
        first = await self.client.sync(timeout=0, since=since, full_state=since is None,
                                       sync_filter=self.sync_filter)
        if isinstance(first, SyncResponse):
            if since is not None:
                await self._handle_sync_timeline(first)
            self.storage.save_sync_token(first.next_batch)
            for room_id, info in first.rooms.invite.items():
                for event in info.invite_state:
                    if isinstance(event, InviteMemberEvent):
                        await self._on_invite_event(room_id, event)
        self.client.add_event_callback(self._on_invite, InviteMemberEvent)  # type: ignore[arg-type]
        self.client.add_event_callback(self._on_text, RoomMessageText)  # type: ignore[arg-type]
        self.client.add_event_callback(self._on_encrypted, MegolmEvent)  # type: ignore[arg-type]
        self.add_callbacks()
        self.client.add_response_callback(self._on_sync, SyncResponse)  # type: ignore[arg-type]
        self.storage.mark_ready(self.account.user_id)
        logger.info("%s ready", self.name)
        await self.client.sync_forever(timeout=30000, since=self.client.next_batch, sync_filter=self.sync_filter)

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

    # -- invitations -------------------------------------------------------------------------

    async def _on_invite(self, room: MatrixRoom, event: InviteMemberEvent) -> None:
        await self._on_invite_event(room.room_id, event)

    async def _on_invite_event(self, room_id: str, event: InviteMemberEvent) -> None:
        if event.state_key != self.client.user_id or event.membership != "invite":
            return
        if not self.accepts_invite(event):
            response = await self.client.room_leave(room_id)
            logger.info("Declined the invitation of %s to %s: %s", event.sender, room_id, type(response).__name__)
            return
        await self._join(room_id)

    async def _join(self, room_id: str) -> None:
        """Join, trying again while the server fails for a passing reason; then say hello."""
        waited, delay = 0.0, 1.0
        while True:
            response = await self.client.join(room_id)
            if isinstance(response, JoinResponse):
                break
            code = getattr(response, "status_code", None)
            if code not in (None, "M_UNKNOWN", "M_LIMIT_EXCEEDED") or waited >= JOIN_RETRY_BUDGET_S:
                logger.error("Could not join %s: %s", room_id, response)
                return
            retry_after_ms = getattr(response, "retry_after_ms", None)
            wait = min(retry_after_ms / 1000 if retry_after_ms else delay, JOIN_RETRY_BUDGET_S - waited)
            logger.info("Joining %s failed (%s); trying again in %.1f s", room_id, response, wait)
            await asyncio.sleep(wait)
            waited, delay = waited + wait, min(delay * 2, 10.0)
        logger.info("Joined %s", room_id)
        await self._send(room_id, self.welcome, txn_seed=f"welcome:{room_id}")

    # -- messages ------------------------------------------------------------------------------

    async def _on_text(self, room: MatrixRoom, event: RoomMessageText) -> None:
        # The bot's own messages (its replies, and for the parcels bot the module's cards and
        # alerts, which it sends as this account) are never commands.
        if event.sender == self.client.user_id or not self.answers_in(room):
            return
        content = event.source.get("content") or {}
        message = Message(room.room_id, event.sender, event.event_id, command_text(event.body), content)
        await self.dispatcher.dispatch(message)

    async def _on_encrypted(self, room: MatrixRoom, event: MegolmEvent) -> None:
        if event.sender != self.client.user_id and self.answers_in(room):
            await self.reply(room.room_id, event.event_id, self.encrypted_notice)

    async def answer(self, message: Message, text: str) -> None:
        """The dispatcher's way of answering: a reply to the command."""
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
        tx_id = self.txn_prefix + hashlib.sha256(txn_seed.encode()).hexdigest()[:32]
        waited = 0.0
        response: Any = None
        attempt = 0
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


async def _run_until_signalled(make_bot: Callable[[], MatrixBot]) -> None:
    # SIGTERM from the stack launcher (or Ctrl-C) ends the bot cleanly, closing its HTTP session.
    task = asyncio.current_task()
    assert task is not None
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, task.cancel)
    bot = make_bot()
    try:
        await bot.run()
    except asyncio.CancelledError:
        logger.info("%s stopped", bot.name)
    finally:
        await bot.close()


def main_loop(make_bot: Callable[[], MatrixBot]) -> int:
    """Run the bot until SIGINT/SIGTERM; the process's exit code."""
    try:
        asyncio.run(_run_until_signalled(make_bot))
    except LoginFailed as e:
        logger.error("%s", e)
        return 1
    return 0
