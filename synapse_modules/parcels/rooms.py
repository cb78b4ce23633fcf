"""Each person's Parcels room (快递): made by the parcels bot on their first shipment, with the
person in it from the start and no invitation to accept.

**How the person gets in without an invitation.** An invitation would notify the person
(``.m.rule.invite_for_me``) and could be refused by their invite settings; instead the room is
made with the ``public`` join rule, the person is joined by the server (no rate limit, as the
admin join API does: ``MembershipInternals.set_membership``), and the join rule is then set to
``invite``, so nobody else can ever join. Until then nobody knows the room's id (version 12 room
ids are hashes, and the room is not in the directory), and it holds nothing but its name.

**What the room is.** Room type ``org.wangxin.parcels`` (``creation_content``), room version 12
(its creator, the bot, outranks every power level), not encrypted (the server writes the cards),
history visible to members from their join. Power levels: the person may send plain messages
(commands for the parcels bot); every other event (state, encryption, redactions, reactions)
needs the bot's power, so only the bot posts cards and nobody can turn encryption on.

**Serialised by the caller.** Every step runs under the person's lease (``cards.py``), so two
shipments for one person never make two rooms. Each step is recorded before the next: a crash
leaves the record 'creating' with the room id, and the next attempt completes that room. (A
crash between ``createRoom`` and recording its id leaves an empty room with only the bot in it;
the next attempt makes another.) A person who left their Parcels room gets a new one on their
next update, with a card for each of their recent parcels.
"""

from __future__ import annotations

import logging
from typing import Any

from synapse.module_api import ModuleApi

from synapse_modules._internals import MembershipInternals
from synapse_modules.parcels.accounts import Accounts
from synapse_modules.parcels.config import ParcelsConfig
from synapse_modules.parcels.rules import PARCELS_ROOM_TYPE
from synapse_modules.parcels.store import ParcelsStore
from synapse_modules.parcels.store.rooms import (
    RoomRecord,
    get_room_txn,
    room_ready_txn,
    set_room_id_txn,
    start_room_txn,
)

logger = logging.getLogger(__name__)

BOT_LEVEL = 100
TOPIC = ("Your parcels, kept up to date by the shops you buy from. Not end-to-end encrypted: the server "
         "writes these messages. 你的快递动态（服务器写入，未端到端加密）")
# Parcels still on their way, and those that ended in the last 30 days, are "recent".
RECENT_MS = 30 * 24 * 3600 * 1000


def room_config(name: str) -> dict[str, Any]:
    return {
        # Version 12 on purpose: the bot, its creator, outranks every power level.
        "room_version": "12",
        "preset": "private_chat",
        "visibility": "private",
        "name": name,
        "topic": TOPIC,
        "creation_content": {"type": PARCELS_ROOM_TYPE},
        "initial_state": [
            # Open only until the person is in (see the module docstring), then 'invite'.
            {"type": "m.room.join_rules", "state_key": "", "content": {"join_rule": "public"}},
            {"type": "m.room.history_visibility", "state_key": "", "content": {"history_visibility": "joined"}},
            {"type": "m.room.guest_access", "state_key": "", "content": {"guest_access": "forbidden"}},
        ],
        "power_level_content_override": {
            "users": {},  # the bot is the creator: above every level in version 12
            "users_default": 0,
            "events_default": BOT_LEVEL,
            "state_default": BOT_LEVEL,
            "invite": BOT_LEVEL,
            "kick": BOT_LEVEL,
            "ban": BOT_LEVEL,
            "redact": BOT_LEVEL,
            "notifications": {"room": BOT_LEVEL},
            "events": {"m.room.message": 0},
        },
    }


class ParcelRooms:
    def __init__(self, api: ModuleApi, config: ParcelsConfig, store: ParcelsStore, members: MembershipInternals,
                 accounts: Accounts):
        self._api = api
        self._config = config
        self._store = store
        self._members = members
        self._accounts = accounts

    async def current(self, user_id: str) -> str | None:
        """The person's Parcels room, if it is complete (no writes)."""
        record = await self._store.run(get_room_txn, user_id)
        return record.room_id if record is not None and record.state == "ready" else None

    async def room_of(self, user_id: str, record: RoomRecord | None) -> tuple[str, bool]:
        """The person's Parcels room (``record``: what the store says of it, read under the
        lease), and whether it was made (or completed) just now. Only under the person's lease."""
        if record is not None and record.state == "ready" and record.room_id is not None:
            # Only a leave or a ban counts: on a worker, a join made by another process may not
            # be known here yet (no membership at all), and that room is still theirs.
            if await self._members.local_membership(user_id, record.room_id) not in ("leave", "ban"):
                return record.room_id, False
            logger.info("%s left their Parcels room %s: making a new one", user_id, record.room_id)
            record = None
        return await self._make(user_id, record), True

    async def _make(self, user_id: str, record: RoomRecord | None) -> str:
        now = self._api.get_current_time_msec()
        room_id = record.room_id if record is not None and record.state == "creating" else None
        if room_id is None:
            await self._store.run(start_room_txn, user_id, now)
            await self._accounts.ensure_bot()
            room_id, _ = await self._api.create_room(
                self._accounts.bot, room_config(self._config.room_name), ratelimit=False
            )
            await self._store.run(set_room_id_txn, user_id, room_id, now)
        else:
            logger.info("Completing %s's Parcels room %s, which an earlier attempt made", user_id, room_id)
        if await self._members.local_membership(user_id, room_id) != "join":
            await self._members.set_membership(user_id, room_id, "join")
        rules = await self._api.get_room_state(room_id, [("m.room.join_rules", "")])
        join_rules = rules.get(("m.room.join_rules", ""))
        if join_rules is None or join_rules.content.get("join_rule") != "invite":
            await self._api.create_and_send_event_into_room({
                "type": "m.room.join_rules", "room_id": room_id, "sender": self._accounts.bot, "state_key": "",
                "content": {"join_rule": "invite"},
            })
        now = self._api.get_current_time_msec()
        redone = await self._store.run(room_ready_txn, user_id, room_id, now, now - RECENT_MS)
        logger.info("Parcels room %s is ready for %s (%d cards to post)", room_id, user_id, redone)
        return str(room_id)
