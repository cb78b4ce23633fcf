"""Contact import (synapse_modules/contact_import.py) and parcels (synapse_modules/parcels/):
phone-number lookups, rooms found again by a marker state event, and invitations without the
client rate limits.

The module API has no reverse threepid lookup (``get_threepids_for_user`` goes the other way)
and its ``update_room_membership`` applies ``rc_invites``. Synapse stores msisdns as E.164
digits without '+' (docs/synapse.md, "Phone numbers").
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from synapse.module_api import LoggingTransaction, ModuleApi
from synapse.types import UserID, create_requester

from synapse_modules._internals.version import check_synapse_version


class ContactImportInternals:
    """Reads of ``user_threepids`` / ``current_state_events`` and a rate-limit-free invite."""

    def __init__(self, api: ModuleApi):
        check_synapse_version()
        self._api = api
        self._hs = api._hs  # the private homeserver object: used only in this adapter

    async def users_by_msisdn(self, msisdns: Sequence[str], only_in_table: str) -> dict[str, str]:
        """``{msisdn: user_id}`` for active local users holding those numbers, restricted to
        users listed in the module's own table ``only_in_table`` (column ``user_id``)."""
        if not msisdns:
            return {}
        return await self._api.run_db_interaction(
            "wangxin_users_by_msisdn", users_by_msisdn_txn, list(msisdns), only_in_table
        )

    async def msisdns_of(self, user_id: str) -> list[str]:
        threepids = await self._api.get_threepids_for_user(user_id)
        return [t["address"] for t in threepids if t.get("medium") == "msisdn"]

    async def room_with_marker(self, member: str, event_type: str, state_key: str) -> str | None:
        """A room ``member`` is in (any membership) whose current state holds ``(event_type, state_key)``.

        Uses the member index of ``current_state_events`` and its unique (room, type, key) index."""
        return await self._api.run_db_interaction(
            "wangxin_room_with_marker", room_with_marker_txn, member, event_type, state_key
        )

    async def invite(self, sender: str, target: str, room_id: str, content: Mapping[str, Any]) -> str:
        """``sender`` invites ``target`` as the client API would, minus ``rc_invites``."""
        event_id, _ = await self._hs.get_room_member_handler().update_membership(
            create_requester(sender), UserID.from_string(target), room_id, "invite",
            ratelimit=False, content=dict(content),
        )
        return str(event_id)

    async def membership(self, user_id: str, room_id: str) -> str | None:
        store = self._hs.get_datastores().main
        membership, _ = await store.get_local_current_membership_for_user_in_room(user_id, room_id)
        return membership


def users_by_msisdn_txn(txn: LoggingTransaction, msisdns: list[str], only_in_table: str) -> dict[str, str]:
    found: dict[str, str] = {}
    for start in range(0, len(msisdns), 500):
        chunk = msisdns[start : start + 500]
        marks = ", ".join("?" for _ in chunk)
        txn.execute(
            "SELECT t.address, t.user_id FROM user_threepids AS t"
            f" JOIN {only_in_table} AS d ON d.user_id = t.user_id"
            " JOIN users AS u ON u.name = t.user_id"
            f" WHERE t.medium = 'msisdn' AND u.deactivated = 0 AND t.address IN ({marks})",
            chunk,
        )
        for address, user_id in txn.fetchall():
            found.setdefault(address, user_id)
    return found


def user_by_msisdn_txn(txn: LoggingTransaction, msisdn: str) -> str | None:
    """The active local user holding the phone number ``msisdn`` (E.164 digits without '+'),
    whoever it is (the parcels module: a shipment addressed to a number goes to its owner).
    Synapse lets one number be bound to one account; its index on (medium, address) serves this."""
    txn.execute(
        "SELECT t.user_id FROM user_threepids AS t JOIN users AS u ON u.name = t.user_id"
        " WHERE t.medium = 'msisdn' AND t.address = ? AND u.deactivated = 0 LIMIT 1",
        (msisdn,),
    )
    row = txn.fetchone()
    return str(row[0]) if row else None


def room_with_marker_txn(txn: LoggingTransaction, member: str, event_type: str, state_key: str) -> str | None:
    txn.execute(
        "SELECT m.room_id FROM current_state_events AS m"
        " JOIN current_state_events AS k ON k.room_id = m.room_id AND k.type = ? AND k.state_key = ?"
        " WHERE m.type = 'm.room.member' AND m.state_key = ? LIMIT 1",
        (event_type, state_key, member),
    )
    row = txn.fetchone()
    return str(row[0]) if row else None
