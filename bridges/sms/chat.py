"""SMS chat: a direct chat with a phone number's ghost is a conversation with that phone.

``@<prefix>sms_<E.164 digits>:<server>`` is a ghost of the bridge's namespace, registered the
first time Synapse asks about it (an invitation). Inviting it to a direct chat, or sending
``sms <number> <text>`` to the bridge bot, opens the conversation; what the user writes there
goes out as an SMS (the ``chat`` template starts with Wangxin's signature, names the sender by a
name that cannot pass for a brand or a link (``sender_name.py``) and carries the join link).
Each user's SMS to a number come from that user's own number of the sender pool, with a reply
code when the pool is used up for that number, and the service routes a reply to the user it
answers (``routing.py``): it lands in that user's room with the number, opened anew if the user
left it. Each SMS's state shows on the message as a reaction from the ghost: ✓ sent,
✓✓ delivered, ✗ not delivered (with a notice saying why).

Encrypted rooms: the bridge holds no keys, so it cannot read them. A ghost has no device keys,
so Element makes a DM with it unencrypted; when a room is (or becomes) encrypted anyway, the
ghost says that nothing can be texted from it.
"""

from __future__ import annotations

import logging
import re
from typing import Any

from twisted.internet import defer

from bridges.config import BridgeConfig
from bridges.matrix_client import MatrixClient, MatrixRequestError, txn_id_for
from bridges.sms.api import InboundSms, OutboundSms, Route, SmsRefused, SmsService
from bridges.sms.chat_store import ChatStore, SmsRoom
from bridges.sms.numbers import InvalidNumber, PhoneNumber, parse_mobile
from bridges.sms.sender_name import clean_text, sender_label
from bridges.sms.templating import render
from bridges.store import BridgeStore

logger = logging.getLogger(__name__)

ENCRYPTED_TEXT = (
    "This chat is end-to-end encrypted, so I can't read it and nothing you write here can be texted. "
    "Start a new direct chat with me with encryption off (Element does that by default, I have no device keys), "
    "or send “sms {number} <text>” to the Wangxin bridge bot."
)
NOT_DIRECT_TEXT = "I'm a phone number: SMS chat works in a direct chat with me only, not in a group."
TEXT_ONLY = "SMS carries text only, so that wasn't sent. Send the words as a message instead."
MOVED_TEXT = "This conversation continues in your newer chat with me; nothing written here is texted any more."
NO_EDITS = "An SMS can't be changed once it's sent, so the edit wasn't texted. Send a new message instead."

# What each state looks like on the message, and how far along it is.
STATUS_REACTIONS = {"sent": "✓ sent", "delivered": "✓✓ delivered", "undelivered": "✗ not delivered",
                    "failed": "✗ not sent"}
STATUS_RANK = {"queued": 0, "sending": 0, "sent": 1, "delivered": 2, "undelivered": 2, "failed": 2}
REPLY_HINTS = {"en": "Reply to this text to answer.", "zh-CN": "直接回复本短信即可。"}
CODED_REPLY_HINTS = {"en": "To answer, start your reply with #{code}.", "zh-CN": "回复请以#{code}开头。"}


def reply_hint(route: Route, language: str) -> str:
    """How to answer an SMS that went out on ``route``."""
    if route.reply_code is None:
        return REPLY_HINTS.get(language, REPLY_HINTS["en"])
    return CODED_REPLY_HINTS.get(language, CODED_REPLY_HINTS["en"]).format(code=route.reply_code)


_REPLY_FALLBACK_RE = re.compile(r"\A(?:>[^\n]*\n)+\n", re.MULTILINE)


def ghost_name(phone: PhoneNumber) -> str:
    """How an SMS contact appears in chats: the number, marked as SMS."""
    return f"{phone.pretty} (SMS)"

class SmsChat:
    def __init__(self, config: BridgeConfig, client: MatrixClient, store: BridgeStore, chat_store: ChatStore,
                 sms: SmsService):
        self.config = config
        self.client = client
        self.store = store
        self.rooms = chat_store
        self.sms = sms
        self.prefix = config.appservice.ghost_prefix + "sms_"
        self.region = config.sms.default_region
        self._status_locks: dict[int, defer.DeferredLock] = {}
        sms.add_status_listener("chat", self.on_status)
        sms.set_inbound_handler(self.on_inbound)

    # -- ghosts ----------------------------------------------------------------------------

    def ghost_for(self, phone: PhoneNumber) -> str:
        return f"@{self.prefix}{phone.digits}:{self.config.homeserver.server_name}"

    def is_sms_ghost(self, user_id: str) -> bool:
        return self.config.is_ghost(user_id) and user_id[1:].startswith(self.prefix)

    def phone_of(self, ghost: str) -> PhoneNumber:
        """The number behind an SMS ghost; raises InvalidNumber for digits that are not a mobile number."""
        digits = ghost[1:].split(":", 1)[0][len(self.prefix):]
        if not digits.isdigit() or not 7 <= len(digits) <= 15:
            raise InvalidNumber("invalid_number", f"“{digits}” is not a phone number with its country code.")
        return parse_mobile("+" + digits, self.region)

    async def resolve_ghost(self, user_id: str) -> bool:
        """Synapse asks whether an SMS ghost exists (an invitation to it): any number-shaped one does.

        Numbers that cannot be texted get a ghost too, so that it can decline the invitation with
        the reason; other names in the namespace do not exist."""
        digits = user_id[1:].split(":", 1)[0][len(self.prefix):]
        if not digits.isdigit() or not 7 <= len(digits) <= 15:
            return False
        try:
            name = ghost_name(self.phone_of(user_id))
        except InvalidNumber:
            name = f"+{digits} (not a mobile number)"
        await self._register(user_id, name)
        return True

    async def ensure_ghost(self, phone: PhoneNumber) -> str:
        ghost = self.ghost_for(phone)
        if not await self.store.is_ghost_registered(ghost):
            await self._register(ghost, ghost_name(phone))
        return ghost

    async def _register(self, ghost: str, name: str) -> None:
        localpart = ghost[1:].split(":", 1)[0]
        if await self.client.register_user(localpart):
            await self.client.set_displayname(ghost, name)
        await self.store.add_ghost(ghost, "sms")

    # -- events from Synapse ---------------------------------------------------------------

    async def handle_event(self, event: dict[str, Any]) -> bool:
        """Handle an event that concerns SMS chat; False if it is none of this module's business."""
        event_type = event.get("type")
        room_id = str(event.get("room_id"))
        sender = str(event.get("sender"))
        if event_type == "m.room.member":
            state_key = str(event.get("state_key"))
            membership = (event.get("content") or {}).get("membership")
            if self.is_sms_ghost(state_key):
                if membership == "invite" and sender != state_key:
                    await self._on_invite(room_id, sender, state_key, event.get("content") or {})
                return True
            if membership in ("leave", "ban"):
                room = await self.rooms.room_by_id(room_id)
                if room is not None and room.user_id == state_key:
                    await self._close(room)
                    return True
            return False
        if event_type not in ("m.room.message", "m.room.encrypted") or self.config.is_ghost(sender):
            return False
        room = await self.rooms.room_by_id(room_id)
        if room is None:
            return False
        if sender == room.user_id:
            await self._on_user_message(room, event)
        return True

    async def _on_invite(self, room_id: str, inviter: str, ghost: str, content: dict[str, Any]) -> None:
        if not await self.store.is_ghost_registered(ghost):
            await self.resolve_ghost(ghost)
        if not inviter.endswith(":" + self.config.homeserver.server_name):
            await self._decline(room_id, ghost, "SMS chat is for users of this server only.")
            return
        try:
            phone = self.phone_of(ghost)
        except InvalidNumber as e:
            await self._decline(room_id, ghost, str(e))
            return
        if not content.get("is_direct"):
            await self._decline(room_id, ghost, NOT_DIRECT_TEXT)
            return
        await self.client.join_room(room_id, as_user=ghost, displayname=ghost_name(phone))
        if await self.client.state_event(room_id, "m.room.encryption", as_user=ghost) is not None:
            await self.client.send_notice_as(ghost, room_id, ENCRYPTED_TEXT.format(number=phone.e164),
                                             txn_id_for("sms-encrypted", room_id))
            await self.client.leave_room(room_id, as_user=ghost)
            return
        previous = await self.rooms.room_for(inviter, phone.e164)
        await self.rooms.set_room(inviter, phone.e164, room_id)
        if previous is not None and previous.room_id != room_id:
            # One conversation per person and number: the older chat says where it went, and closes.
            try:
                await self.client.send_notice_as(ghost, previous.room_id, MOVED_TEXT,
                                                 txn_id_for("sms-moved", previous.room_id, room_id))
                await self.client.leave_room(previous.room_id, as_user=ghost)
            except MatrixRequestError as e:
                logger.info("%s could not close %s: %s", ghost, previous.room_id, e)
        logger.info("SMS chat between %s and %s opened in %s", inviter, phone.e164, room_id)

    async def _decline(self, room_id: str, ghost: str, reason: str) -> None:
        try:
            await self.client.leave_room(room_id, as_user=ghost, reason=reason)
        except MatrixRequestError as e:
            logger.info("%s could not decline %s: %s", ghost, room_id, e)

    async def _close(self, room: SmsRoom) -> None:
        """The user left: the ghost leaves too; the next reply for the user opens a new room."""
        await self.rooms.remove_room(room.room_id)
        ghost = self.ghost_for(PhoneNumber(room.phone, ""))
        try:
            await self.client.leave_room(room.room_id, as_user=ghost)
        except MatrixRequestError as e:
            logger.info("%s could not leave %s: %s", ghost, room.room_id, e)

    async def _on_user_message(self, room: SmsRoom, event: dict[str, Any]) -> None:
        phone = parse_mobile(room.phone, self.region)
        ghost = self.ghost_for(phone)
        event_id = str(event["event_id"])
        content = event.get("content") or {}
        if event["type"] == "m.room.encrypted":
            await self._notice(ghost, room.room_id, ENCRYPTED_TEXT.format(number=phone.e164), event_id)
            return
        relates = content.get("m.relates_to") or {}
        if relates.get("rel_type") == "m.replace":
            await self._notice(ghost, room.room_id, NO_EDITS, event_id)
            return
        msgtype = content.get("msgtype")
        body = content.get("body")
        if msgtype not in ("m.text", "m.emote", "m.notice") or not isinstance(body, str):
            if msgtype is not None:
                await self._notice(ghost, room.room_id, TEXT_ONLY, event_id)
            return
        text = _REPLY_FALLBACK_RE.sub("", body, count=1) if "m.in_reply_to" in relates else body
        sender_name = await self.client.name_of(room.user_id)
        if msgtype == "m.emote":
            text = f"* {sender_label(sender_name, room.user_id, phone.language)} {text}"
        await self.send_text(room.user_id, sender_name, phone, text, room.room_id, event_id)

    async def send_text(self, user_id: str, sender_name: str, phone: PhoneNumber, text: str, room_id: str,
                        event_id: str) -> str | None:
        """Queue ``text`` for ``phone``; the refusal sentence, or None when it was queued.

        ``sender_name`` is the user's display name: the SMS shows what ``sender_label`` keeps of it."""
        ghost = self.ghost_for(phone)
        label = sender_label(sender_name, user_id, phone.language)

        def body(route: Route) -> str:
            return render("chat", phone.language, sender_name=label, text=clean_text(text),
                          join_url=self.config.sms_join_url, reply_hint=reply_hint(route, phone.language))

        try:
            queued = await self.sms.send(to=phone, body=body, kind="chat", sender=user_id, room_id=room_id,
                                         event_id=event_id, dedup_key=f"chat:{event_id}", reply_to=user_id)
        except SmsRefused as e:
            await self._notice(ghost, room_id, f"Not texted: {e}", event_id)
            return str(e)
        await self.rooms.add_chat_message(queued.sms_id, room_id, event_id)
        if queued.segments > 1 and queued.created:
            await self._notice(ghost, room_id, f"That was long: it goes out as {queued.segments} SMS joined into "
                               "one message on the phone.", event_id)
        return None

    # -- the `sms` command ------------------------------------------------------------------

    async def command(self, user_id: str, number: str, text: str, command_event_id: str) -> str:
        """``sms <number> <text>`` from the bridge bot: the answer for the command's sender."""
        try:
            phone = parse_mobile(number, self.region)
        except InvalidNumber as e:
            return str(e)
        if not text.strip():
            return f"What should I text {phone.pretty}? Send “sms {phone.e164} <your message>”."
        room_id = await self.room_with(user_id, phone)
        ghost = self.ghost_for(phone)
        sender_name = await self.client.name_of(user_id)
        echo = await self.client.send_event(
            room_id, "m.room.message",
            {"msgtype": "m.notice", "body": f"{sender_name} (from the bridge bot): {text}",
             "org.wangxin.sms": {"from_command": command_event_id}},
            txn_id_for("sms-command-echo", command_event_id), as_user=ghost)
        refusal = await self.send_text(user_id, sender_name, phone, text, room_id, echo)
        if refusal:
            return f"Not texted: {refusal}"
        return (f"Texting {phone.pretty}. The conversation, its delivery status and the replies are in your "
                f"chat with {phone.pretty} (accept its invitation if you haven't).")

    async def room_with(self, user_id: str, phone: PhoneNumber) -> str:
        """The user's conversation room with ``phone``, created (the ghost invites the user) if none."""
        room = await self.rooms.room_for(user_id, phone.e164)
        if room is not None:
            return room.room_id
        ghost = await self.ensure_ghost(phone)
        room_id = await self.client.create_room(
            {"preset": "trusted_private_chat", "is_direct": True, "invite": [user_id],
             "creation_content": {"m.federate": False}},
            as_user=ghost)
        await self.rooms.set_room(user_id, phone.e164, room_id)
        return room_id

    # -- from the SMS service ---------------------------------------------------------------

    async def on_inbound(self, sms: InboundSms) -> None:
        """A text from a phone, answering ``sms.user_id``: into that user's room with the number."""
        ghost = await self.ensure_ghost(sms.sender)
        room = await self.rooms.room_for(sms.user_id, sms.sender.e164)
        if room is None:  # the user left the chat (or it was an invitation they sent): a new one
            room = SmsRoom(sms.user_id, sms.sender.e164, await self.room_with(sms.user_id, sms.sender))
        body = sms.body
        if sms.media_urls:
            body += "\n" + "\n".join(f"[attachment] {url}" for url in sms.media_urls)
        content = {"msgtype": "m.text", "body": body,
                   "org.wangxin.sms": {"message_sid": sms.message_sid, "from": sms.sender.e164}}
        try:
            await self.client.send_event(room.room_id, "m.room.message", content,
                                         txn_id_for("sms-in", sms.message_sid), as_user=ghost)
        except MatrixRequestError as e:
            if e.status != 403:
                raise
            # The ghost is no longer in that room: open a fresh one for the user.
            await self.rooms.remove_room(room.room_id)
            room_id = await self.room_with(room.user_id, sms.sender)
            await self.client.send_event(room_id, "m.room.message", content,
                                         txn_id_for("sms-in", sms.message_sid), as_user=ghost)

    async def on_status(self, sms: OutboundSms) -> None:
        if sms.room_id is None:  # an operator's SMS: no message to mark
            return
        lock = self._status_locks.setdefault(sms.sms_id, defer.DeferredLock())
        await lock.acquire()
        try:
            await self._show_status(sms)
        finally:
            lock.release()
            if not lock.waiting:
                self._status_locks.pop(sms.sms_id, None)

    async def _show_status(self, sms: OutboundSms) -> None:
        if sms.state not in STATUS_REACTIONS:
            return
        message = await self.rooms.chat_message(sms.sms_id)
        if message is None and sms.room_id and sms.event_id:
            # The gateway can answer before send_text has recorded the message (the SMS is queued,
            # and the sender may try it, before that write): record it here, as send_text would.
            await self.rooms.add_chat_message(sms.sms_id, sms.room_id, sms.event_id)
            message = await self.rooms.chat_message(sms.sms_id)
        if message is None:
            return
        if STATUS_RANK[sms.state] <= STATUS_RANK.get(message.shown_state or "queued", 0) and message.shown_state:
            return
        ghost = self.ghost_for(PhoneNumber(sms.to, ""))
        if message.reaction_event_id:
            try:
                await self.client.redact(message.room_id, message.reaction_event_id,
                                         txn_id_for("sms-unreact", str(sms.sms_id), message.reaction_event_id),
                                         as_user=ghost)
            except MatrixRequestError as e:
                logger.info("Could not remove the old status of SMS %d: %s", sms.sms_id, e)
        reaction = {"m.relates_to": {"rel_type": "m.annotation", "event_id": message.event_id,
                                     "key": STATUS_REACTIONS[sms.state]}}
        reaction_id = await self.client.send_event(message.room_id, "m.reaction", reaction,
                                                   txn_id_for("sms-status", str(sms.sms_id), sms.state), as_user=ghost)
        await self.rooms.set_shown_state(sms.sms_id, sms.state, reaction_id)
        if sms.state in ("failed", "undelivered"):
            why = sms.error or "the gateway gave no reason"
            verb = "could not be sent" if sms.state == "failed" else "was not delivered to the phone"
            await self._notice(ghost, message.room_id, f"That SMS {verb} ({why}).", message.event_id)

    # -- helpers ----------------------------------------------------------------------------

    async def _notice(self, ghost: str, room_id: str, text: str, reply_to: str) -> None:
        await self.client.send_notice_as(ghost, room_id, text, txn_id_for("sms-notice", reply_to, text[:64]),
                                         extra={"m.relates_to": {"m.in_reply_to": {"event_id": reply_to}}})

