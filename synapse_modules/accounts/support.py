"""Support rooms (客服): one room per (account, follower), where the server answers by itself
(``autoreply``) and the account's people answer by hand.

A room is made by the server when the follower asks for it (``POST /accounts/{id}/support``, or a
direct chat with the account's user: ``dm_routing``), never by a client: its creator is the
circles' service account (``wangxin-circles``, nobody can log in as it), which then invites and
joins the account's user (``account_user_id``: the account's own ``@acct.<id>`` user, or for a
merchant the merchant itself), the owner (the same user for a merchant), the staff
(``support_seats``) and the follower. The account's user and the owner have power 50 (they redact), the
follower writes messages; every state event needs 100, which only the creator has (room version
12), so nobody can turn encryption on and the server can always read what the follower asks. The
room is filed in the follower's 商家圈 space by the merchant circle's queue, as a chat with a
merchant is; it is not muted. The server welcomes the follower when the room is made.

Answering costs Synapse one cheap callback: ``check_event_for_spam`` sees only the event, and
answers "not a support room" from the room's type, which is cached in memory (the merchant
circle's lookups, shared). For a follower's message in a support room it starts a background task
that waits until the message is persisted (Synapse may still refuse it after the spam check), reads
the room's record and the account's settings, and sends the answer as the account's user: an
``m.notice`` in reply to the message, marked ``org.wangxin.autoreply``. A message by a person of the
account (no such mark) silences the server in that room for ``QUIET_MS``. An encrypted message
(a client that encrypts without the room's encryption state) gets a notice that it cannot be read.
The task lives in the process that took the message: if that process stops first, the message
stays unanswered (the owner still sees it).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

from synapse.module_api import NOT_SPAM, EventBase, JsonDict, ModuleApi, errors

from synapse_modules._internals import persisted_event_ids_txn
from synapse_modules.accounts.autoreply import QUIET_MS, AutoReply, decide, menu_text, message_text
from synapse_modules.accounts.store import AccountsStore
from synapse_modules.accounts.store.accounts import Account, get_account_txn
from synapse_modules.accounts.store.staff import get_staff_txn
from synapse_modules.accounts.store.support import (
    SupportRoom,
    autoreply_if_changed_txn,
    claim_menu_txn,
    get_support_room_txn,
    insert_support_room_txn,
    set_person_wrote_txn,
    support_room_of_txn,
)
from synapse_modules.accounts.support_seats import SupportSeats
from synapse_modules.merchant_circle.parts import CircleParts
from synapse_modules.merchant_circle.store.follows import enqueue_job_txn

logger = logging.getLogger(__name__)

SUPPORT_ROOM_TYPE = "org.wangxin.account_support"
AUTOREPLY_MARK = "org.wangxin.autoreply"  # in the content of what the server sends by itself
PERSON_LEVEL = 50
ADMIN_LEVEL = 100
# A follower's message is answered once it is persisted: checked after these waits (seconds),
# about 30 s in all, then given up (Synapse refused it after the spam check).
PERSIST_WAITS_S = (0.05, 0.1, 0.2, 0.4, 0.8, 1.6, 3.2, 6.4, 8.0, 10.0)
ENCRYPTED_NOTICE = ("This conversation is not end-to-end encrypted, and the account cannot read encrypted "
                    "messages: please write without encryption · 本会话不加密，加密消息无法读取，请直接发送文字。")
SUPPORT_CHAT_REASON = "support"  # the reason of the filing job that puts the room in the follower's space


def room_name(account_name: str) -> str:
    return f"{account_name} · 客服"


def support_room_config(account: Account, user_id: str, staff: Sequence[str] = ()) -> dict[str, Any]:
    """What a support room is made of (the creator is the circles' service account); the staff
    have the owner's power (``support_seats``), except in a staff member's own support room."""
    users = {account.merchant_id: PERSON_LEVEL, account.owner: PERSON_LEVEL}
    users.update({member: PERSON_LEVEL for member in staff if member != user_id})
    initial_state: list[dict[str, Any]] = [
        {"type": "m.room.history_visibility", "state_key": "", "content": {"history_visibility": "shared"}},
        {"type": "m.room.guest_access", "state_key": "", "content": {"guest_access": "forbidden"}},
    ]
    if account.avatar_url:
        initial_state.append({"type": "m.room.avatar", "state_key": "", "content": {"url": account.avatar_url}})
    return {
        "room_version": "12",  # its creator outranks every power level: only the service changes state
        "preset": "private_chat",
        "visibility": "private",
        "name": room_name(account.name),
        "topic": f"{account.name} answers you here · 客服会话",
        "creation_content": {"type": SUPPORT_ROOM_TYPE, "org.wangxin.account": account.account_id,
                             "org.wangxin.follower": user_id},
        "initial_state": initial_state,
        "power_level_content_override": {
            "users": users,
            "users_default": 0,
            "events_default": 0,
            "state_default": ADMIN_LEVEL,
            "invite": ADMIN_LEVEL,
            "kick": ADMIN_LEVEL,
            "ban": ADMIN_LEVEL,
            "redact": PERSON_LEVEL,
            "notifications": {"room": ADMIN_LEVEL},
            "events": {"m.room.encryption": ADMIN_LEVEL, "m.room.power_levels": ADMIN_LEVEL,
                       "m.room.name": ADMIN_LEVEL, "m.room.avatar": ADMIN_LEVEL, "m.room.topic": ADMIN_LEVEL,
                       "m.room.join_rules": ADMIN_LEVEL, "m.room.history_visibility": ADMIN_LEVEL,
                       "m.room.canonical_alias": ADMIN_LEVEL, "m.room.tombstone": ADMIN_LEVEL,
                       "m.room.server_acl": ADMIN_LEVEL},
        },
    }


class Support:
    def __init__(self, api: ModuleApi, store: AccountsStore, parts: CircleParts):
        self._api = api
        self._store = store
        self._parts = parts
        self._owner = parts.lookups.owner  # the circles' service account: creates every support room
        self.seats = SupportSeats(api, parts)  # who sits in a room besides the follower
        # account id -> (updated_ts, settings) as this process last parsed them
        self._settings: dict[str, tuple[int, AutoReply]] = {}

    def register_callbacks(self) -> None:
        """Only the room-creation check: ``check_event_for_spam`` is registered with the
        audience's, as one callback (followers_desk.py)."""
        self._api.register_spam_checker_callbacks(user_may_create_room=self.user_may_create_room)

    # -- the room ---------------------------------------------------------------------------

    async def open(self, account: Account, user_id: str, *, from_dm: bool = False) -> tuple[str, bool]:
        """The follower's support room with the account, made (and the follower welcomed) if
        there is none: ``(room_id, made now)``. Whoever is missing from it (the follower left, a
        failure half-way) is invited and joined again; a new room seats the staff too. ``from_dm``:
        the follower wrote to the account's user in a direct chat (``dm_routing``), so the menu
        follows (as an unmatched message would get it)."""
        room_id = await self._store.run(support_room_of_txn, account.account_id, user_id)
        made = False
        staff: list[str] = []
        if room_id is None:
            staff = await self._store.run(get_staff_txn, account.account_id)
            ours, _ = await self._api.create_room(self._owner, support_room_config(account, user_id, staff),
                                                  ratelimit=False)
            room_id = await self._store.run(insert_support_room_txn, str(ours), account.account_id, user_id,
                                            self._api.get_current_time_msec())
            if room_id != ours:  # another process made one at the same time: ours is left empty
                await self._parts.members.set_membership(self._owner, str(ours), "leave")
            made = room_id == ours
        for member in dict.fromkeys((account.merchant_id, account.owner, user_id)):
            await self.seats.seat(member, room_id)
        if made:
            await self.seats.seat_staff([member for member in staff if member != user_id], room_id)
            now_staff = await self._store.run(get_staff_txn, account.account_id)
            if now_staff != staff:  # changed while the room was made: the staff's sync may have passed it
                await self.seats.reconcile(room_id, account, user_id, now_staff)
            await self._welcome(account, room_id)
            now = self._api.get_current_time_msec()
            await self._parts.store.run(enqueue_job_txn, "file", user_id, account.merchant_id, room_id,
                                        SUPPORT_CHAT_REASON, now)
            self._parts.queue.kick()
        if from_dm:
            await self._offer_menu(account, room_id)
        return room_id, made

    async def _offer_menu(self, account: Account, room_id: str) -> None:
        """The numbered menu, unless the account has none, a person of the account answers in
        the room, or the server sent it (or a notice) there within ``QUIET_MS``."""
        settings = await self.settings(account.account_id)
        room = await self._store.run(get_support_room_txn, room_id)
        if settings is None or not settings.menu or room is None:
            return
        now = self._api.get_current_time_msec()
        if now - room.person_ts < QUIET_MS or not await self._store.run(claim_menu_txn, room_id, now, QUIET_MS):
            return
        await self._send(account.merchant_id, room_id, menu_text(settings), "menu", None)

    async def _welcome(self, account: Account, room_id: str) -> None:
        settings = await self.settings(account.account_id)
        if settings is not None and settings.welcome:
            await self._send(account.merchant_id, room_id, settings.welcome, "welcome", None)

    # -- settings -----------------------------------------------------------------------------

    async def settings(self, account_id: str) -> AutoReply | None:
        """The account's auto-reply settings; parsed once per change in each process."""
        known = self._settings.get(account_id)
        found = await self._store.run(autoreply_if_changed_txn, account_id, known[0] if known else None)
        if found is None:
            self._settings.pop(account_id, None)
            return None
        updated_ts, text = found
        if text is not None or known is None:
            assert text is not None
            known = (updated_ts, AutoReply.from_json(text))
            self._settings[account_id] = known
        return known[1]

    # -- callbacks ----------------------------------------------------------------------------

    async def user_may_create_room(self, user_id: str, room_config: JsonDict) -> Any:
        """Support rooms are made by the server: a client cannot make one that looks like it."""
        creation = room_config.get("creation_content") or {}
        if isinstance(creation, dict) and creation.get("type") == SUPPORT_ROOM_TYPE and user_id != self._owner:
            return errors.Codes.FORBIDDEN, {"error": "Support rooms are made by the server, not by clients"}
        return NOT_SPAM

    async def check_event_for_spam(self, event: EventBase) -> str:
        """Every local non-state event passes here: a dictionary lookup for any room that is not
        a support room. In a support room the work happens in the background, after the event."""
        if event.is_state() or not self._api.is_mine(event.sender) or event.sender == self._owner:
            return NOT_SPAM
        if await self._parts.lookups.type_of_room(event.room_id) != SUPPORT_ROOM_TYPE:
            return NOT_SPAM
        content = dict(event.content)
        if AUTOREPLY_MARK in content:
            return NOT_SPAM  # the server's own answer
        self._api.run_as_background_process("wangxin_accounts_support_message", self._on_message, event.event_id,
                                            event.room_id, event.sender, event.type, content)
        return NOT_SPAM

    async def _on_message(self, event_id: str, room_id: str, sender: str, event_type: str,
                          content: dict[str, Any]) -> None:
        try:
            room = await self._store.run(get_support_room_txn, room_id)
            if room is None:
                return
            if sender != room.user_id:
                await self._store.run(set_person_wrote_txn, room_id, self._api.get_current_time_msec())
                return
            if not await self._persisted(event_id):
                return
            await self._answer(room, event_id, event_type, content)
        except Exception:
            logger.exception("Answering %s in support room %s failed", event_id, room_id)

    async def _persisted(self, event_id: str) -> bool:
        for wait in PERSIST_WAITS_S:
            await self._api.sleep(wait)
            if await self._store.run_named("wangxin_accounts_support_persisted", persisted_event_ids_txn, [event_id]):
                return True
        return False

    async def _answer(self, room: SupportRoom, event_id: str, event_type: str, content: dict[str, Any]) -> None:
        account = await self._store.run(get_account_txn, room.account_id)
        if account is None:
            return
        now = self._api.get_current_time_msec()
        if event_type == "m.room.encrypted":
            if now - room.person_ts >= QUIET_MS and await self._store.run(claim_menu_txn, room.room_id, now, QUIET_MS):
                await self._send(account.merchant_id, room.room_id, ENCRYPTED_NOTICE, "encrypted", event_id)
            return
        if event_type != "m.room.message":
            return
        settings = await self.settings(account.account_id)
        if settings is None:
            return
        answer = decide(settings, message_text(content), now, room.menu_ts, room.person_ts)
        if answer is None:
            return
        if answer.kind == "menu" and not await self._store.run(claim_menu_txn, room.room_id, now, QUIET_MS):
            return  # another message of the same moment sent it
        await self._send(account.merchant_id, room.room_id, answer.text, answer.kind, event_id)

    async def _send(self, sender: str, room_id: str, text: str, kind: str, in_reply_to: str | None) -> None:
        content: dict[str, Any] = {"msgtype": "m.notice", "body": text, AUTOREPLY_MARK: kind}
        if in_reply_to is not None:
            content["m.relates_to"] = {"m.in_reply_to": {"event_id": in_reply_to}}
        await self._api.create_and_send_event_into_room(
            {"type": "m.room.message", "room_id": room_id, "sender": sender, "content": content}
        )
