"""Push-rule writes and reads for modules (docs/synapse.md, "The internals adapter", "Push rules").

The module API can only edit the actions of an existing rule; the features also create, move,
delete, enable and list rules, and watch the push-rules stream for a client's changes.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import attrs
from synapse.module_api import LoggingTransaction, ModuleApi
from synapse.util.json import json_encoder

from synapse_modules._internals.version import check_synapse_version

# synapse/push/rulekinds.py:PRIORITY_CLASS_MAP
PRIORITY_CLASS = {"underride": 1, "sender": 2, "room": 3, "content": 4, "override": 5}


class PushRuleLimitExceeded(Exception):
    """A change would leave the user with more push rules than ``push_rules.limits.rule_count``."""

    def __init__(self, have: int, would_have: int, limit: int):
        super().__init__(f"this needs {would_have} push rules; the account holds {have} and may hold {limit}")
        self.have = have
        self.would_have = would_have
        self.limit = limit


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

    def __init__(self, api: ModuleApi):
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

            def add_all_txn(txn: LoggingTransaction) -> None:
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
        also: Callable[[LoggingTransaction], object] | None = None,
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

            def change_txn(txn: LoggingTransaction) -> None:
                ids = iter(stream_ids)
                if encoded:
                    have = user_rule_ids_txn(txn, user_id)
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
        return await self._api.run_db_interaction("wangxin_list_push_rules", list_rules_txn, user_id, kind)

    async def push_rule_changes_since(self, stream_id: int, limit: int = 1000) -> tuple[int, list[tuple[str, str]]]:
        """``(user_id, full rule_id)`` of push-rule changes after ``stream_id``, and the new position.

        No database read while the push-rules stream (in memory on every process, advanced by
        replication on workers) has not moved past ``stream_id``: a poller costs nothing idle."""
        if stream_id >= self.current_push_rules_stream_id():
            return stream_id, []
        return await self._api.run_db_interaction("wangxin_push_rule_changes", changes_txn, stream_id, limit)

    def current_push_rules_stream_id(self) -> int:
        return int(self._store.get_max_push_rules_stream_id())


def user_rule_ids_txn(txn: LoggingTransaction, user_id: str) -> set[str]:
    """The full ids of all the user's own rules (what ``rule_count`` counts)."""
    txn.execute("SELECT rule_id FROM push_rules WHERE user_name = ?", (user_id,))
    return {row[0] for row in txn.fetchall()}


def list_rules_txn(txn: LoggingTransaction, user_id: str, kind: str) -> list[StoredPushRule]:
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


def changes_txn(txn: LoggingTransaction, stream_id: int, limit: int) -> tuple[int, list[tuple[str, str]]]:
    txn.execute(
        "SELECT stream_id, user_id, rule_id FROM push_rules_stream WHERE stream_id > ? ORDER BY stream_id LIMIT ?",
        (stream_id, limit),
    )
    rows = txn.fetchall()
    position = max([stream_id] + [int(r[0]) for r in rows])
    return position, [(r[1], r[2]) for r in rows]
