"""Memberships without rate limits, the membership delta stream, forgetting a room, the
circle-room join-limit refund, and which admitted posts were really persisted (used by the
merchant circle and the mute repair loop).

The module API's ``update_room_membership`` applies the client rate limits, and every join
(ours included) fills the room's ``rc_joins_per_room`` bucket, so bulk follows would both be
throttled and make real users of a circle get 429s (docs/synapse.md, "Rate limits"). These calls
do what the admin join API does (``synapse/rest/admin/rooms.py:JoinRoomAliasServlet``), and
refund the per-room join bucket for circle rooms.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from synapse.module_api import EventBase, LoggingTransaction, ModuleApi
from synapse.types import UserID, create_requester

from synapse_modules._internals.version import check_synapse_version


async def membership_changes_since(
    api: ModuleApi, stream_id: int, limit: int = 1000
) -> tuple[int, list[tuple[str, str]]]:
    """``(user_id, room_id)`` of membership changes after ``stream_id`` in the current-state
    delta stream (``current_state_delta_stream``, written by the event persisters), and the new
    position. Reading it is how a module learns of leaves without ``on_new_event``, which would
    load the whole room state for every event (docs/synapse.md, "Module callbacks and their cost"). See
    :func:`membership_deltas`."""
    position, changes = await membership_deltas(api, stream_id, limit)
    return position, [(user_id, room_id) for user_id, room_id, _ in changes]


def events_position(api: ModuleApi) -> int:
    """The events-stream position up to which every event (of every persister) is persisted;
    the current-state delta stream shares it."""
    return int(api._hs.get_datastores().main.get_room_max_stream_ordering())


async def membership_deltas(
    api: ModuleApi, after: int, limit: int = 1000
) -> tuple[int, list[tuple[str, str, str | None]]]:
    """``(user_id, room_id, membership)`` of membership changes in the current-state delta
    stream after ``after`` and up to :func:`events_position` (so no change that a slower
    persister commits later is skipped), and the position to resume from. ``membership`` is
    that of the change (``None`` if the member state was removed); the current one may differ.

    Messages move the events stream but change no room's current state: while Synapse's
    in-memory record of current-state changes (the cache its own user-directory and stats
    handlers consult before the same read) says nothing changed after ``after``, this answers
    without a database read, so pollers cost nothing between membership changes."""
    store = api._hs.get_datastores().main
    upper = events_position(api)
    if upper <= after or not store._curr_state_delta_stream_cache.has_any_entity_changed(after):
        return max(after, upper), []
    return await api.run_db_interaction("wangxin_membership_deltas", membership_deltas_txn, after, upper, limit)


class MembershipInternals:
    """Membership changes as the admin API makes them, and the circle-room join-limit refund."""

    def __init__(self, api: ModuleApi):
        check_synapse_version()
        hs = api._hs  # the private homeserver object: used only in this adapter
        self._api = api
        self._hs = hs
        self._store = hs.get_datastores().main

    async def set_membership(self, user_id: str, room_id: str, membership: str, reason: str | None = None) -> str:
        """``user_id`` joins or leaves ``room_id`` itself (a leave of an invited user rejects the
        invitation), with no rate limit; returns the event id. ``reason`` goes in the event's
        content, as a client's ``{"reason"}`` does."""
        requester = create_requester(user_id)
        event_id, _ = await self._hs.get_room_member_handler().update_membership(
            requester, UserID.from_string(user_id), room_id, membership, ratelimit=False,
            content={"reason": reason} if reason is not None else None,
        )
        return event_id

    async def kick(self, sender: str, user_id: str, room_id: str, reason: str) -> str:
        """``sender`` removes ``user_id`` from ``room_id`` (what a client's ``/kick`` does, with no
        rate limit); returns the event id."""
        event_id, _ = await self._hs.get_room_member_handler().update_membership(
            create_requester(sender), UserID.from_string(user_id), room_id, "kick", ratelimit=False,
            content={"reason": reason},
        )
        return event_id

    async def local_membership(self, user_id: str, room_id: str) -> str | None:
        """The local user's current membership in the room (cached by Synapse), or ``None``."""
        membership, _ = await self._store.get_local_current_membership_for_user_in_room(user_id, room_id)
        return membership

    async def left_by_self(self, user_id: str, room_id: str) -> bool:
        """Whether the local user's current membership is a leave the user sent (not a kick)."""
        membership, event_id = await self._store.get_local_current_membership_for_user_in_room(user_id, room_id)
        if membership != "leave" or event_id is None:
            return False
        event = await self._store.get_event(event_id, allow_none=True)
        return event is not None and event.sender == user_id

    async def event(self, event_id: str) -> EventBase | None:
        """A persisted event (Synapse's event cache), or ``None``; the module API has no such read."""
        return await self._store.get_event(event_id, allow_none=True)

    async def joined_member_count(self, room_id: str) -> int:
        # A @cached method: typing its calls needs Synapse's own mypy plugin, which is not installed.
        count = await self._store.get_number_joined_users_in_room(room_id)  # type: ignore[call-arg, arg-type, misc]
        return int(count)

    def events_position(self) -> int:
        return events_position(self._api)

    async def membership_deltas(
        self, after: int, limit: int = 1000
    ) -> tuple[int, list[tuple[str, str, str | None]]]:
        return await membership_deltas(self._api, after, limit)

    async def rooms_of(self, user_id: str, memberships: Sequence[str]) -> list[str]:
        """Rooms in which the local user's current membership is one of ``memberships``."""
        rooms = await self._store.get_rooms_for_local_user_where_membership_is(user_id, list(memberships))
        return [r.room_id for r in rooms]

    async def forget(self, user_id: str, room_id: str) -> None:
        """What the client's ``POST /rooms/{roomId}/forget`` does: the user (who has left) can no
        longer page the room's history (``Auth.check_user_in_room`` refuses forgotten rooms)."""
        await self._hs.get_room_member_handler().forget(UserID.from_string(user_id), room_id)

    def refund_per_room_joins(self, is_exempt_room: Callable[[str], bool]) -> None:
        """Every process: joins into rooms for which ``is_exempt_room(room_id)`` is true do not
        count against ``rc_joins_per_room``.

        Synapse records each join on the room's bucket through the notifier's join callbacks
        (``synapse/handlers/room_member.py:RoomMemberHandler._on_user_joined_room``), in every
        process; this callback sits on the same list and takes the join back out again.
        """
        limiter = self._hs.get_room_member_handler()._join_rate_per_room_limiter

        def refund(event_id: str, room_id: str) -> None:
            if is_exempt_room(room_id):
                limiter.record_action(requester=None, key=room_id, n_actions=-1)

        self._hs.get_notifier().add_new_join_in_room_callback(refund)


def membership_deltas_txn(
    txn: LoggingTransaction, after: int, upper: int, limit: int
) -> tuple[int, list[tuple[str, str, str | None]]]:
    select = (
        "SELECT d.stream_id, d.state_key, d.room_id, m.membership FROM current_state_delta_stream AS d"
        " LEFT JOIN room_memberships AS m ON m.event_id = d.event_id"
        " WHERE d.type = 'm.room.member' AND d.stream_id > ? AND d.stream_id <= ?"
    )
    txn.execute(select + " ORDER BY d.stream_id LIMIT ?", (after, upper, limit))
    rows = txn.fetchall()
    if len(rows) < limit:
        return max(after, upper), [(r[1], r[2], r[3]) for r in rows]
    last = int(rows[-1][0])
    if int(rows[0][0]) == last:  # one event changed more than `limit` members: take them all
        txn.execute(select.replace("d.stream_id > ? AND d.stream_id <= ?", "d.stream_id = ?"), (last,))
        return last, [(r[1], r[2], r[3]) for r in txn.fetchall()]
    # Rows sharing the last stream id may have been cut off: stop just before it.
    return last - 1, [(r[1], r[2], r[3]) for r in rows if int(r[0]) < last]


def persisted_event_ids_txn(txn: Any, event_ids: Sequence[str]) -> set[str]:
    """Which of these events were persisted (Synapse's ``events`` table, keyed by event id).

    The merchant circle admits a post in ``check_event_for_spam``, before auth, rate limits and
    persistence: a post counts against the quota only once it is here."""
    found: set[str] = set()
    for start in range(0, len(event_ids), 500):
        chunk = list(event_ids[start : start + 500])
        marks = ", ".join("?" for _ in chunk)
        txn.execute(f"SELECT event_id FROM events WHERE event_id IN ({marks})", chunk)
        found.update(r[0] for r in txn.fetchall())
    return found


def sending_device(event: EventBase) -> str | None:
    """The device that sent a local client event (``None`` for events a module or the server made)."""
    device_id = getattr(event.internal_metadata, "device_id", None)
    return device_id if isinstance(device_id, str) else None
