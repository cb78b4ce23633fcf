"""Every SQL statement of SMS chat and SMS invitations (tables: ``bridges/database.py``, migration 6)."""

from __future__ import annotations

import attrs

from bridges.database import Database, Txn
from bridges.store import now_ms

# An invitation's life: queued (SMS waiting) -> sent -> delivered; failed; joined (the person
# signed up or bound the number); revoked (the inviter withdrew it; the link stops working).
INVITE_OPEN_STATES = ("queued", "sent", "delivered")


@attrs.frozen
class SmsRoom:
    user_id: str
    phone: str
    room_id: str


@attrs.frozen
class ChatMessage:
    sms_id: int
    room_id: str
    event_id: str
    shown_state: str | None
    reaction_event_id: str | None


@attrs.frozen
class Invite:
    invite_id: int
    inviter: str
    phone: str
    name: str
    state: str
    sms_id: int | None
    error: str | None
    joined_user_id: str | None
    created_ts: int
    updated_ts: int


class ChatStore:
    def __init__(self, db: Database):
        self.db = db

    # -- rooms ---------------------------------------------------------------------------

    async def room_for(self, user_id: str, phone: str) -> SmsRoom | None:
        return await self.db.run("sms_room_for", _room_for_txn, user_id, phone)

    async def room_by_id(self, room_id: str) -> SmsRoom | None:
        return await self.db.run("sms_room_by_id", _room_by_id_txn, room_id)

    async def set_room(self, user_id: str, phone: str, room_id: str) -> None:
        await self.db.run("sms_set_room", _set_room_txn, user_id, phone, room_id)

    async def remove_room(self, room_id: str) -> None:
        await self.db.run("sms_remove_room", _remove_room_txn, room_id)

    # -- outbound chat messages ------------------------------------------------------------

    async def add_chat_message(self, sms_id: int, room_id: str, event_id: str) -> None:
        await self.db.run("sms_add_chat_message", _add_chat_message_txn, sms_id, room_id, event_id)

    async def chat_message(self, sms_id: int) -> ChatMessage | None:
        return await self.db.run("sms_chat_message", _chat_message_txn, sms_id)

    async def set_shown_state(self, sms_id: int, state: str, reaction_event_id: str | None) -> None:
        await self.db.run("sms_set_shown", _set_shown_txn, sms_id, state, reaction_event_id)

    # -- invitations -----------------------------------------------------------------------

    async def create_invite(self, inviter: str, phone: str, name: str) -> tuple[Invite, bool]:
        """The inviter's invitation of ``phone``: a new one, or the existing one (``False``)."""
        return await self.db.run("sms_create_invite", _create_invite_txn, inviter, phone, name)

    async def invite(self, invite_id: int) -> Invite | None:
        return await self.db.run("sms_invite", _invite_txn, invite_id)

    async def invites_of(self, inviter: str) -> list[Invite]:
        return await self.db.run("sms_invites_of", _invites_of_txn, inviter)

    async def invite_by_sms(self, sms_id: int) -> Invite | None:
        return await self.db.run("sms_invite_by_sms", _invite_by_sms_txn, sms_id)

    async def update_invite(self, invite_id: int, state: str, *, sms_id: int | None = None,
                            error: str | None = None, joined_user_id: str | None = None) -> None:
        await self.db.run("sms_update_invite", _update_invite_txn, invite_id, state, sms_id, error, joined_user_id)

    async def open_invites_for_phone(self, phone: str) -> list[Invite]:
        return await self.db.run("sms_open_invites_phone", _open_invites_phone_txn, phone)


_ROOM_COLUMNS = "user_id, phone, room_id"
_INVITE_COLUMNS = ("invite_id, inviter, phone, name, state, sms_id, error, joined_user_id, created_ts, updated_ts")


def _room_for_txn(txn: Txn, user_id: str, phone: str) -> SmsRoom | None:
    row = txn.execute(f"SELECT {_ROOM_COLUMNS} FROM sms_rooms WHERE user_id = ? AND phone = ?",
                      (user_id, phone)).fetchone()
    return SmsRoom(*row) if row else None


def _room_by_id_txn(txn: Txn, room_id: str) -> SmsRoom | None:
    row = txn.execute(f"SELECT {_ROOM_COLUMNS} FROM sms_rooms WHERE room_id = ?", (room_id,)).fetchone()
    return SmsRoom(*row) if row else None


def _set_room_txn(txn: Txn, user_id: str, phone: str, room_id: str) -> None:
    now = now_ms()
    # A room may have served another (user, number) pair before (a re-invited ghost): it is this one's now.
    txn.execute("DELETE FROM sms_rooms WHERE room_id = ?", (room_id,))
    txn.execute(
        "INSERT INTO sms_rooms (user_id, phone, room_id, created_ts, last_outbound_ts) VALUES (?, ?, ?, ?, ?)"
        " ON CONFLICT (user_id, phone) DO UPDATE SET room_id = excluded.room_id, created_ts = excluded.created_ts",
        (user_id, phone, room_id, now, now),
    )


def _remove_room_txn(txn: Txn, room_id: str) -> None:
    txn.execute("DELETE FROM sms_rooms WHERE room_id = ?", (room_id,))


def _add_chat_message_txn(txn: Txn, sms_id: int, room_id: str, event_id: str) -> None:
    txn.execute(
        "INSERT INTO sms_chat_messages (sms_id, room_id, event_id) VALUES (?, ?, ?) ON CONFLICT (sms_id) DO NOTHING",
        (sms_id, room_id, event_id),
    )


def _chat_message_txn(txn: Txn, sms_id: int) -> ChatMessage | None:
    row = txn.execute(
        "SELECT sms_id, room_id, event_id, shown_state, reaction_event_id FROM sms_chat_messages WHERE sms_id = ?",
        (sms_id,),
    ).fetchone()
    return ChatMessage(*row) if row else None


def _set_shown_txn(txn: Txn, sms_id: int, state: str, reaction_event_id: str | None) -> None:
    txn.execute("UPDATE sms_chat_messages SET shown_state = ?, reaction_event_id = ? WHERE sms_id = ?",
                (state, reaction_event_id, sms_id))


def _create_invite_txn(txn: Txn, inviter: str, phone: str, name: str) -> tuple[Invite, bool]:
    existing = txn.execute(f"SELECT {_INVITE_COLUMNS} FROM sms_invites WHERE inviter = ? AND phone = ?",
                           (inviter, phone)).fetchone()
    if existing:
        return Invite(*existing), False
    now = now_ms()
    txn.execute(
        "INSERT INTO sms_invites (inviter, phone, name, state, created_ts, updated_ts) VALUES (?, ?, ?, ?, ?, ?)",
        (inviter, phone, name, "queued", now, now),
    )
    row = txn.execute(f"SELECT {_INVITE_COLUMNS} FROM sms_invites WHERE inviter = ? AND phone = ?",
                      (inviter, phone)).fetchone()
    return Invite(*row), True


def _invite_txn(txn: Txn, invite_id: int) -> Invite | None:
    row = txn.execute(f"SELECT {_INVITE_COLUMNS} FROM sms_invites WHERE invite_id = ?", (invite_id,)).fetchone()
    return Invite(*row) if row else None


def _invites_of_txn(txn: Txn, inviter: str) -> list[Invite]:
    rows = txn.execute(f"SELECT {_INVITE_COLUMNS} FROM sms_invites WHERE inviter = ? ORDER BY invite_id", (inviter,))
    return [Invite(*r) for r in rows.fetchall()]


def _invite_by_sms_txn(txn: Txn, sms_id: int) -> Invite | None:
    row = txn.execute(f"SELECT {_INVITE_COLUMNS} FROM sms_invites WHERE sms_id = ?", (sms_id,)).fetchone()
    return Invite(*row) if row else None


def _update_invite_txn(txn: Txn, invite_id: int, state: str, sms_id: int | None, error: str | None,
                       joined_user_id: str | None) -> None:
    txn.execute(
        "UPDATE sms_invites SET state = ?, sms_id = COALESCE(?, sms_id), error = ?,"
        " joined_user_id = COALESCE(?, joined_user_id), updated_ts = ? WHERE invite_id = ?",
        (state, sms_id, error, joined_user_id, now_ms(), invite_id),
    )


def _open_invites_phone_txn(txn: Txn, phone: str) -> list[Invite]:
    marks = ", ".join("?" for _ in INVITE_OPEN_STATES)
    rows = txn.execute(
        f"SELECT {_INVITE_COLUMNS} FROM sms_invites WHERE phone = ? AND state IN ({marks}) ORDER BY invite_id",
        (phone, *INVITE_OPEN_STATES),
    )
    return [Invite(*r) for r in rows.fetchall()]
