"""Who sits in a support room besides the follower: the account's user, its owner and its staff,
seated by the room's creator (the circles' service account), and staff removed again.

A support room's power levels record who sits there for the account: the account's user, the
owner and each staff member at power 50 (``staff_rules.PERSON_LEVEL``). :meth:`SupportSeats.reconcile`
compares them with the owner and staff of now: those not at 50 yet are invited and joined, then
given 50; anyone at 50 who is no longer staff or owner (a former owner, after a transfer) is removed
(kicked by the creator, the only one who may) and loses the 50. It can be run again at any point
(a restart half-way): what is done is seen as done. A staff member (or owner) who leaves a room
themselves keeps their 50 there and is not brought back.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

from synapse.module_api import ModuleApi

from synapse_modules._internals import ContactImportInternals
from synapse_modules.accounts.staff_rules import plain, staff_changes, staff_levels
from synapse_modules.accounts.store.accounts import Account
from synapse_modules.merchant_circle.parts import CircleParts

logger = logging.getLogger(__name__)

REMOVED_REASON = "No longer answering for {name} · 已不再为{name}接待客户"


class SupportSeats:
    def __init__(self, api: ModuleApi, parts: CircleParts):
        self._api = api
        self._members = parts.members
        self._owner = parts.lookups.owner  # every support room's creator
        self._invites = ContactImportInternals(api)

    async def seat(self, user_id: str, room_id: str) -> None:
        """Invite (without ``rc_invites``: the service account invites into every support room)
        and join ``user_id``, as far as it is not yet."""
        membership = await self._members.local_membership(user_id, room_id)
        if membership == "join":
            return
        if membership != "invite":
            await self._invites.invite(self._owner, user_id, room_id, {})
        await self._members.set_membership(user_id, room_id, "join")

    async def seat_staff(self, user_ids: Sequence[str], room_id: str) -> list[str]:
        """Seat each staff member; those who could not be (deactivated since the PUT, say) are
        logged and left out, so that one of them does not keep the room from the others.
        Returns those seated."""
        seated = []
        for user_id in user_ids:
            try:
                await self.seat(user_id, room_id)
            except Exception as e:
                logger.warning("Could not seat staff member %s in support room %s: %s", user_id, room_id, e)
                continue
            seated.append(user_id)
        return seated

    async def unseat(self, user_id: str, room_id: str, reason: str) -> None:
        if await self._members.local_membership(user_id, room_id) in ("join", "invite"):
            await self._members.kick(self._owner, user_id, room_id, reason)

    async def reconcile(self, room_id: str, account: Account, follower: str, staff: Sequence[str]) -> bool:
        """Seat the staff in ``room_id`` and remove former staff; whether anything changed."""
        state = await self._api.get_room_state(room_id, [("m.room.power_levels", "")])
        levels = state.get(("m.room.power_levels", ""))
        if levels is None:
            raise RuntimeError(f"the support room {room_id} has no power levels here")
        content = plain(levels.content)
        users = content.get("users") if isinstance(content.get("users"), dict) else {}
        # The owner is seated like staff: after a transfer the new owner comes in and the old one,
        # no longer owner nor staff, leaves. A merchant's owner is its own user (``keep``).
        seat, remove = staff_changes(users, [*staff, account.owner], (account.merchant_id,), follower)
        if not seat and not remove:
            return False
        seat = await self.seat_staff(seat, room_id)
        if not seat and not remove:
            return False
        reason = REMOVED_REASON.format(name=account.name)
        for user_id in remove:
            await self.unseat(user_id, room_id, reason)
        content["users"] = staff_levels(users, seat, remove)
        await self._api.create_and_send_event_into_room({
            "type": "m.room.power_levels", "state_key": "", "room_id": room_id, "sender": self._owner,
            "content": content,
        })
        return True
