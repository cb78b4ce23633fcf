"""A person's private chat with the bot, for what only they may read: their coupon.

A coupon is told in a room of two, the person and the bot, and nowhere else (not in the direct
chat of the pairing, where the partner would read it). The room is the DM where the person last
wrote to the bot, checked against the server's member list just before each message (someone
may have been invited into it since); when there is none (people who use an app never wrote to
the bot), or it holds anyone else, the bot opens a direct chat of its own with them (invited,
``is_direct``, so their client lists it as a DM with the bot) and remembers it as their DM.
Messages sent while the invitation waits are read once they join (the room's history is shared
with members).
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable

from nio import AsyncClient, RoomCreateResponse, RoomGetStateResponse
from nio.api import RoomPreset

from bots.discovery.memory import BotMemory

logger = logging.getLogger(__name__)

# (room id, text, a seed for the message's transaction id) -> whether it was sent.
Send = Callable[[str, str, str], Awaitable[bool]]
OPENED = ("Hi! I'm the Wangxin discovery bot. I opened this chat to give you what is yours alone (your coupons), "
          "where nobody else reads it. Send “help” to see what else I can do.")
_PRESENT = ("join", "invite")


class PrivateChats:
    def __init__(self, client: AsyncClient, memory: BotMemory, send: Send, opening: str = OPENED):
        self._client = client
        self._memory = memory
        self._send = send
        self._opening = opening

    async def tell(self, user_id: str, text: str, seed: str) -> bool:
        """Send ``text`` to ``user_id`` alone; False if it could not be sent now (try again later)."""
        room_id = await self.room_of(user_id)
        return room_id is not None and await self._send(room_id, text, seed)

    async def room_of(self, user_id: str) -> str | None:
        """A room of only ``user_id`` and the bot, opened if need be; None after a passing failure."""
        room_id = self._memory.dm_room(user_id)
        if room_id is not None:
            members = await self._members(room_id)
            if members is None:
                return None
            if self._only(members, user_id):
                return room_id
            logger.info("%s is not a room of %s and the bot alone any more: opening another", room_id, user_id)
            self._memory.forget_dm_room(room_id)
        return await self._open(user_id)

    def _only(self, members: dict[str, str], user_id: str) -> bool:
        present = {member for member, membership in members.items() if membership in _PRESENT}
        bot = self._client.user_id
        return present == {bot, user_id} and members.get(bot) == "join"

    async def _members(self, room_id: str) -> dict[str, str] | None:
        """Each member's membership in the room as the server has it now; ``{}`` if the bot may not
        read it (it is not in it any more), None after a passing failure."""
        try:
            response = await self._client.room_get_state(room_id)
        except Exception as e:  # a transport failure nio gave up on
            logger.warning("Could not read the members of %s: %r", room_id, e)
            return None
        if isinstance(response, RoomGetStateResponse):
            return {str(e.get("state_key")): str((e.get("content") or {}).get("membership"))
                    for e in response.events if isinstance(e, dict) and e.get("type") == "m.room.member"}
        if getattr(response, "status_code", None) in ("M_FORBIDDEN", "M_NOT_FOUND"):
            return {}
        logger.warning("Could not read the members of %s: %s", room_id, response)
        return None

    async def _open(self, user_id: str) -> str | None:
        try:
            response = await self._client.room_create(is_direct=True, preset=RoomPreset.trusted_private_chat,
                                                      invite=[user_id])
        except Exception as e:
            logger.warning("Could not open a direct chat with %s: %r", user_id, e)
            return None
        if not isinstance(response, RoomCreateResponse):
            logger.warning("Could not open a direct chat with %s: %s", user_id, response)
            return None
        room_id = response.room_id
        self._memory.set_dm_room(user_id, room_id)  # before anything else: a restart uses this room
        logger.info("Opened the direct chat %s with %s", room_id, user_id)
        await self._send(room_id, self._opening, f"opened:{room_id}")
        return room_id
