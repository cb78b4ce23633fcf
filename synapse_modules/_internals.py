"""The one place where Wangxin reaches into Synapse internals.

The module API cannot create, move or delete push rules (only edit the actions of an existing
one; see ``docs/synapse.md``, "Push rules" and "The internals adapter"), and the features need all three.
Everything below calls private Synapse code and is pinned to the versions it was checked
against: on any other version the adapter refuses to start, and ``tests/unit/test_internals.py``
fails, so an upgrade cannot silently change behaviour.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping, Sequence
from typing import Any

import attrs

logger = logging.getLogger(__name__)

# Checked against these Synapse releases (docs/synapse.md, "Upgrading Synapse").
SUPPORTED_SYNAPSE_SERIES = ("1.163.",)

# synapse/push/rulekinds.py:PRIORITY_CLASS_MAP
PRIORITY_CLASS = {"underride": 1, "sender": 2, "room": 3, "content": 4, "override": 5}


class UnsupportedSynapseVersion(RuntimeError):
    pass


class PushRuleLimitExceeded(Exception):
    """A change would leave the user with more push rules than ``push_rules.limits.rule_count``."""

    def __init__(self, have: int, would_have: int, limit: int):
        super().__init__(f"this needs {would_have} push rules; the account holds {have} and may hold {limit}")
        self.have = have
        self.would_have = would_have
        self.limit = limit


def check_synapse_version(version: str | None = None) -> str:
    if version is None:
        import synapse

        version = synapse.__version__
    if not version.startswith(SUPPORTED_SYNAPSE_SERIES):
        raise UnsupportedSynapseVersion(
            f"Wangxin's Synapse adapter (synapse_modules/_internals.py) was verified against Synapse "
            f"{', '.join(s + 'x' for s in SUPPORTED_SYNAPSE_SERIES)}, but this is Synapse {version}. "
            "Re-check the push-rule internals it uses against the new version before running it."
        )
    return version


@attrs.frozen
class NewPushRule:
    user_id: str
    kind: str
    rule_id: str  # without the "global/<kind>/" prefix
    conditions: Sequence[Mapping[str, Any]]
    actions: Sequence[Any]


@attrs.frozen
class StoredPushRule:
    kind: str
    rule_id: str  # without the "global/<kind>/" prefix
    priority: int
    conditions: list[dict[str, Any]]
    actions: list[Any]
    enabled: bool


class SynapseInternals:
    """Push-rule writes for modules, as the client API's ``PUT /pushrules`` does them."""

    def __init__(self, api: Any):
        check_synapse_version()
        hs = api._hs  # the private homeserver object: used only in this adapter
        self._api = api
        self._store = hs.get_datastores().main
        self._push_rules_handler = hs.get_push_rules_handler()

    @property
    def is_push_rules_writer(self) -> bool:
        """Push rules can be written only on the process named in ``stream_writers.push_rules``."""
        return bool(self._store._is_push_writer)

    async def put_push_rule(
        self,
        user_id: str,
        kind: str,
        rule_id: str,
        conditions: Sequence[Mapping[str, Any]],
        actions: Sequence[Any],
        *,
        before: str | None = None,
        after: str | None = None,
    ) -> None:
        """Create or replace a rule; without ``before``/``after`` it moves to the top of its kind."""
        self._api.check_push_rule_actions(list(actions))
        await self._store.add_push_rule(
            user_id=user_id,
            rule_id=f"global/{kind}/{rule_id}",
            priority_class=PRIORITY_CLASS[kind],
            conditions=list(conditions),
            actions=list(actions),
            before=f"global/{kind}/{before}" if before else None,
            after=f"global/{kind}/{after}" if after else None,
        )
        self._push_rules_handler.notify_user(user_id)

    async def put_push_rules_at_top(self, rules: Sequence[NewPushRule]) -> None:
        """Create or replace many users' rules, each at the top of its kind, in one transaction.

        What :meth:`put_push_rule` does for each, with one commit for all instead of one per rule
        (a follow wave mutes the circle for every follower). The statements are Synapse's own
        (``_add_push_rule_highest_priority_txn``), so priorities, the push-rules stream and the
        caches it invalidates are exactly as for a client's ``PUT /pushrules``; if one rule is
        refused (a user over ``limits.rule_count``), the whole transaction is rolled back."""
        if not rules:
            return
        from synapse.util.json import json_encoder

        store = self._store
        if not store._is_push_writer:
            raise RuntimeError("push rules can be written only on the push-rules writer")
        limits = store._config.limits  # the checks add_push_rule makes before its transaction
        encoded = []
        for rule in rules:
            self._api.check_push_rule_actions(list(rule.actions))
            full_rule_id = f"global/{rule.kind}/{rule.rule_id}"
            conditions, actions = json_encoder.encode(list(rule.conditions)), json_encoder.encode(list(rule.actions))
            if len(full_rule_id.encode()) > limits.rule_id_length:
                raise ValueError(f"push rule id {full_rule_id!r} is longer than {limits.rule_id_length} bytes")
            if len(conditions.encode()) + len(actions.encode()) > limits.rule_size:
                raise ValueError(f"push rule {full_rule_id!r} is bigger than {limits.rule_size} bytes")
            encoded.append((rule.user_id, full_rule_id, PRIORITY_CLASS[rule.kind], conditions, actions))
        async with store._push_rules_stream_id_gen.get_next_mult(len(rules)) as stream_ids:
            events_position = store._stream_id_gen.get_current_token()
            rows = [(stream_id, *row) for stream_id, row in zip(stream_ids, encoded, strict=True)]

            def add_all_txn(txn: Any) -> None:
                for stream_id, user_id, full_rule_id, priority_class, conditions, actions in rows:
                    store._add_push_rule_highest_priority_txn(
                        txn, stream_id, events_position, user_id, full_rule_id, priority_class, conditions, actions
                    )

            await self._api.run_db_interaction("wangxin_add_push_rules", add_all_txn)
        for user_id in dict.fromkeys(rule.user_id for rule in rules):
            self._push_rules_handler.notify_user(user_id)

    async def change_push_rules(
        self,
        user_id: str,
        kind: str,
        *,
        delete: Sequence[str] = (),
        put: Sequence[tuple[str, Sequence[Mapping[str, Any]], Sequence[Any]]] = (),
        enable: Sequence[str] = (),
        also: Any = None,
    ) -> None:
        """One user's rules of one kind changed in one transaction, all or nothing: ``delete``
        these rule ids, then ``put`` these ``(rule_id, conditions, actions)`` each at the top of
        its kind (the last one ends up evaluated first), then ``enable`` these, then run
        ``also(txn)`` (the caller's own statements, e.g. the settings the rules implement).

        The statements are Synapse's own (as in :meth:`put_push_rules_at_top`); each change takes
        a push-rules stream id, so clients and workers see them as after a client's writes. The
        limits ``add_push_rule`` checks are checked first, and ``rule_count`` inside the
        transaction before any write (:class:`PushRuleLimitExceeded`); any failure, there or in a
        statement, rolls the whole change back."""
        from synapse.util.json import json_encoder

        store = self._store
        if not store._is_push_writer:
            raise RuntimeError("push rules can be written only on the push-rules writer")
        limits = store._config.limits

        def full(rule_id: str) -> str:
            return f"global/{kind}/{rule_id}"

        encoded = []
        for rule_id, conditions, actions in put:
            self._api.check_push_rule_actions(list(actions))
            conditions_json, actions_json = json_encoder.encode(list(conditions)), json_encoder.encode(list(actions))
            if len(full(rule_id).encode()) > limits.rule_id_length:
                raise ValueError(f"push rule id {full(rule_id)!r} is longer than {limits.rule_id_length} bytes")
            if len(conditions_json.encode()) + len(actions_json.encode()) > limits.rule_size:
                raise ValueError(f"push rule {full(rule_id)!r} is bigger than {limits.rule_size} bytes")
            encoded.append((full(rule_id), conditions_json, actions_json))
        deleted = [full(r) for r in delete]
        enabled = [full(r) for r in enable]
        changes = len(deleted) + len(encoded) + len(enabled)
        if not changes:
            if also is not None:
                await self._api.run_db_interaction("wangxin_change_push_rules", also)
            return

        async with store._push_rules_stream_id_gen.get_next_mult(changes) as stream_ids:
            events_position = store._stream_id_gen.get_current_token()

            def change_txn(txn: Any) -> None:
                ids = iter(stream_ids)
                if encoded:
                    txn.execute("SELECT rule_id FROM push_rules WHERE user_name = ?", (user_id,))
                    have = {row[0] for row in txn.fetchall()}
                    after = (have - set(deleted)) | {rule_id for rule_id, _, _ in encoded}
                    if not after <= have and len(after) > limits.rule_count:
                        raise PushRuleLimitExceeded(len(have), len(after), limits.rule_count)
                for rule_id in deleted:  # what delete_push_rule does, minus its error for a missing rule
                    keys = {"user_name": user_id, "rule_id": rule_id}
                    store.db_pool.simple_delete_txn(txn, "push_rules_enable", keys)
                    store.db_pool.simple_delete_txn(txn, "push_rules", keys)
                    store._insert_push_rules_update_txn(txn, next(ids), events_position, user_id, rule_id, op="DELETE")
                for rule_id, conditions_json, actions_json in encoded:
                    store._add_push_rule_highest_priority_txn(
                        txn, next(ids), events_position, user_id, rule_id, PRIORITY_CLASS[kind], conditions_json,
                        actions_json,
                    )
                for rule_id in enabled:
                    store._set_push_rule_enabled_txn(txn, next(ids), events_position, user_id, rule_id, True, False)
                if also is not None:
                    also(txn)

            await self._api.run_db_interaction("wangxin_change_push_rules", change_txn)
        self._push_rules_handler.notify_user(user_id)

    async def set_push_rule_enabled(self, user_id: str, kind: str, rule_id: str, enabled: bool) -> None:
        await self._store.set_push_rule_enabled(user_id, f"global/{kind}/{rule_id}", enabled, False)
        self._push_rules_handler.notify_user(user_id)

    async def list_push_rules(self, user_id: str, kind: str) -> list[StoredPushRule]:
        """The user's own rules of one kind, highest priority (evaluated first) first."""
        return await self._api.run_db_interaction("wangxin_list_push_rules", _list_rules_txn, user_id, kind)

    async def push_rule_changes_since(self, stream_id: int, limit: int = 1000) -> tuple[int, list[tuple[str, str]]]:
        """``(user_id, full rule_id)`` of push-rule changes after ``stream_id``, and the new position.

        No database read while the push-rules stream (in memory on every process, advanced by
        replication on workers) has not moved past ``stream_id``: a poller costs nothing idle."""
        if stream_id >= self.current_push_rules_stream_id():
            return stream_id, []
        return await self._api.run_db_interaction("wangxin_push_rule_changes", _changes_txn, stream_id, limit)

    def current_push_rules_stream_id(self) -> int:
        return int(self._store.get_max_push_rules_stream_id())


def _list_rules_txn(txn: Any, user_id: str, kind: str) -> list[StoredPushRule]:
    prefix = f"global/{kind}/"
    txn.execute(
        "SELECT r.rule_id, r.priority, r.conditions, r.actions, e.enabled FROM push_rules AS r"
        " LEFT JOIN push_rules_enable AS e ON e.user_name = r.user_name AND e.rule_id = r.rule_id"
        " WHERE r.user_name = ? AND r.priority_class = ? ORDER BY r.priority DESC",
        (user_id, PRIORITY_CLASS[kind]),
    )
    rules = []
    for rule_id, priority, conditions, actions, enabled in txn.fetchall():
        if not rule_id.startswith(prefix):
            continue
        rules.append(
            StoredPushRule(
                kind=kind,
                rule_id=rule_id[len(prefix):],
                priority=int(priority),
                conditions=json.loads(conditions),
                actions=json.loads(actions),
                enabled=enabled is None or bool(enabled),
            )
        )
    return rules


def _changes_txn(txn: Any, stream_id: int, limit: int) -> tuple[int, list[tuple[str, str]]]:
    txn.execute(
        "SELECT stream_id, user_id, rule_id FROM push_rules_stream WHERE stream_id > ? ORDER BY stream_id LIMIT ?",
        (stream_id, limit),
    )
    rows = txn.fetchall()
    position = max([stream_id] + [int(r[0]) for r in rows])
    return position, [(r[1], r[2]) for r in rows]


# -- membership changes (for cleaning up after a user leaves a room) -------------------------


async def membership_changes_since(api: Any, stream_id: int, limit: int = 1000) -> tuple[int, list[tuple[str, str]]]:
    """``(user_id, room_id)`` of membership changes after ``stream_id`` in the current-state
    delta stream (``current_state_delta_stream``, written by the event persisters), and the new
    position. Reading it is how a module learns of leaves without ``on_new_event``, which would
    load the whole room state for every event (docs/synapse.md, "Module callbacks and their cost"). See
    :func:`membership_deltas`."""
    position, changes = await membership_deltas(api, stream_id, limit)
    return position, [(user_id, room_id) for user_id, room_id, _ in changes]


def events_position(api: Any) -> int:
    """The events-stream position up to which every event (of every persister) is persisted;
    the current-state delta stream shares it."""
    return int(api._hs.get_datastores().main.get_room_max_stream_ordering())


async def membership_deltas(api: Any, after: int, limit: int = 1000) -> tuple[int, list[tuple[str, str, str | None]]]:
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
    return await api.run_db_interaction("wangxin_membership_deltas", _membership_deltas_txn, after, upper, limit)


# ---------------------------------------------------------------------------------------------
# Merchant circle (synapse_modules/merchant_circle.py): memberships without rate limits, the
# membership delta stream (leaves of circles, merchants entering moments), forgetting a room,
# and which admitted posts were really persisted.
#
# The module API's ``update_room_membership`` applies the client rate limits, and every join
# (ours included) fills the room's ``rc_joins_per_room`` bucket, so bulk follows would both be
# throttled and make real users of a circle get 429s (docs/synapse.md, "Rate limits"). These calls do
# what the admin join API does (``synapse/rest/admin/rooms.py:JoinRoomAliasServlet``), and
# refund the per-room join bucket for circle rooms. Covered by the same version check above.
# ---------------------------------------------------------------------------------------------


class MembershipInternals:
    """Membership changes as the admin API makes them, and the circle-room join-limit refund."""

    def __init__(self, api: Any):
        check_synapse_version()
        hs = api._hs  # the private homeserver object: used only in this adapter
        self._api = api
        self._hs = hs
        self._store = hs.get_datastores().main

    async def set_membership(self, user_id: str, room_id: str, membership: str) -> str:
        """``user_id`` joins or leaves ``room_id`` itself, with no rate limit; returns the event id."""
        from synapse.types import UserID, create_requester

        requester = create_requester(user_id)
        event_id, _ = await self._hs.get_room_member_handler().update_membership(
            requester, UserID.from_string(user_id), room_id, membership, ratelimit=False
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

    async def joined_member_count(self, room_id: str) -> int:
        return int(await self._store.get_number_joined_users_in_room(room_id))

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
        from synapse.types import UserID

        await self._hs.get_room_member_handler().forget(UserID.from_string(user_id), room_id)

    def refund_per_room_joins(self, is_exempt_room: Any) -> None:
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


def _membership_deltas_txn(
    txn: Any, after: int, upper: int, limit: int
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


def sending_device(event: Any) -> str | None:
    """The device that sent a local client event (``None`` for events a module or the server made)."""
    device_id = getattr(event.internal_metadata, "device_id", None)
    return device_id if isinstance(device_id, str) else None


# ---------------------------------------------------------------------------------------------
# Contact import (synapse_modules/contact_import.py): phone-number lookups, rooms found again by
# a marker state event, and invitations without the client rate limits.
#
# The module API has no reverse threepid lookup (``get_threepids_for_user`` goes the other way)
# and its ``update_room_membership`` applies ``rc_invites``. Synapse stores msisdns as E.164
# digits without '+' (docs/synapse.md, "Phone numbers"). Covered by the same version check above.
# ---------------------------------------------------------------------------------------------


class ContactImportInternals:
    """Reads of ``user_threepids`` / ``current_state_events`` and a rate-limit-free invite."""

    def __init__(self, api: Any):
        check_synapse_version()
        self._api = api
        self._hs = api._hs  # the private homeserver object: used only in this adapter

    async def users_by_msisdn(self, msisdns: Sequence[str], only_in_table: str) -> dict[str, str]:
        """``{msisdn: user_id}`` for active local users holding those numbers, restricted to
        users listed in the module's own table ``only_in_table`` (column ``user_id``)."""
        if not msisdns:
            return {}
        return await self._api.run_db_interaction(
            "wangxin_users_by_msisdn", _users_by_msisdn_txn, list(msisdns), only_in_table
        )

    async def msisdns_of(self, user_id: str) -> list[str]:
        threepids = await self._api.get_threepids_for_user(user_id)
        return [t["address"] for t in threepids if t.get("medium") == "msisdn"]

    async def room_with_marker(self, member: str, event_type: str, state_key: str) -> str | None:
        """A room ``member`` is in (any membership) whose current state holds ``(event_type, state_key)``.

        Uses the member index of ``current_state_events`` and its unique (room, type, key) index."""
        return await self._api.run_db_interaction(
            "wangxin_room_with_marker", _room_with_marker_txn, member, event_type, state_key
        )

    async def invite(self, sender: str, target: str, room_id: str, content: Mapping[str, Any]) -> str:
        """``sender`` invites ``target`` as the client API would, minus ``rc_invites``."""
        from synapse.types import UserID, create_requester

        event_id, _ = await self._hs.get_room_member_handler().update_membership(
            create_requester(sender), UserID.from_string(target), room_id, "invite",
            ratelimit=False, content=dict(content),
        )
        return str(event_id)

    async def membership(self, user_id: str, room_id: str) -> str | None:
        store = self._hs.get_datastores().main
        membership, _ = await store.get_local_current_membership_for_user_in_room(user_id, room_id)
        return membership


def _users_by_msisdn_txn(txn: Any, msisdns: list[str], only_in_table: str) -> dict[str, str]:
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


def _room_with_marker_txn(txn: Any, member: str, event_type: str, state_key: str) -> str | None:
    txn.execute(
        "SELECT m.room_id FROM current_state_events AS m"
        " JOIN current_state_events AS k ON k.room_id = m.room_id AND k.type = ? AND k.state_key = ?"
        " WHERE m.type = 'm.room.member' AND m.state_key = ? LIMIT 1",
        (event_type, state_key, member),
    )
    row = txn.fetchone()
    return str(row[0]) if row else None


# ---------------------------------------------------------------------------------------------
# Log contexts (synapse/logging/context.py). Synapse tags every log line and database
# transaction with the request or background process it serves, and checks the rules: a
# Deferred is fired outside any context and awaited through ``make_deferred_yieldable`` (public
# in synapse.module_api), which restores the waiter's own. A plain Twisted lock or a Deferred fired
# inside a context breaks them: the waiter resumes in the other's context, and Synapse logs
# "Expected logging context X but found Y" or "Background process re-entered without a proc".
# Covered by the same version check above.
# ---------------------------------------------------------------------------------------------


def keyed_lock(api: Any, name: str) -> Any:
    """Synapse's ``Linearizer``: one holder per key at a time, each waiter resuming in its own log
    context. Use as ``async with lock.queue(key): ...``."""
    from synapse.util.async_helpers import Linearizer

    return Linearizer(name, api._hs.get_clock())


def resolve_outside_log_context(done: Any, result: Any = None, error: BaseException | None = None) -> None:
    """Fire a Deferred (that its waiter awaits through ``make_deferred_yieldable``) from the
    sentinel context, as Synapse's own waiters are fired: the waiter's callbacks run in their
    own context, and this caller's context is intact afterwards."""
    from synapse.logging.context import PreserveLoggingContext
    from twisted.python.failure import Failure

    with PreserveLoggingContext():
        if error is not None:
            done.errback(Failure(error))
        else:
            done.callback(result)
