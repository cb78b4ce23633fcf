"""The Synapse-internals adapter fails loudly on a Synapse it was not checked against, and the
private names it uses still exist in the installed Synapse."""

from __future__ import annotations

import inspect

import pytest

from synapse_modules._internals import UnsupportedSynapseVersion, check_synapse_version


def test_installed_synapse_is_a_supported_one() -> None:
    import synapse

    assert check_synapse_version() == synapse.__version__


@pytest.mark.parametrize("version", ["1.164.0", "1.162.9", "2.0.0"])
def test_other_versions_are_refused(version: str) -> None:
    with pytest.raises(UnsupportedSynapseVersion, match="Re-check"):
        check_synapse_version(version)


def test_the_private_push_rule_api_has_the_shape_the_adapter_calls() -> None:
    from synapse.handlers.push_rules import PushRulesHandler
    from synapse.server import HomeServer
    from synapse.storage.databases.main.push_rule import PushRulesWorkerStore as PushRuleStore
    from synapse.storage.push_rule import RuleNotFoundException  # noqa: F401

    params = inspect.signature(PushRuleStore.add_push_rule).parameters
    assert list(params)[1:] == ["user_id", "rule_id", "priority_class", "conditions", "actions", "before", "after"]
    assert list(inspect.signature(PushRuleStore.delete_push_rule).parameters)[1:] == ["user_id", "rule_id"]
    assert list(inspect.signature(PushRuleStore.set_push_rule_enabled).parameters)[1:] == [
        "user_id", "rule_id", "enabled", "is_default_rule"
    ]
    assert hasattr(PushRuleStore, "get_max_push_rules_stream_id")
    # The batched write (put_push_rules_at_top): Synapse's own per-rule statements, several
    # stream ids at once, and the limits add_push_rule checks.
    params = inspect.signature(PushRuleStore._add_push_rule_highest_priority_txn).parameters
    assert list(params)[1:] == ["txn", "stream_id", "event_stream_ordering", "user_id", "rule_id", "priority_class",
                                "conditions_json", "actions_json"]
    from synapse.config.push_rules import PushRulesLimitsConfig
    from synapse.storage.util.id_generators import MultiWriterIdGenerator

    assert list(inspect.signature(MultiWriterIdGenerator.get_next_mult).parameters)[1:] == ["n"]
    init = inspect.getsource(PushRuleStore.__init__)
    assert "self._push_rules_stream_id_gen = MultiWriterIdGenerator(" in init
    assert "self._config = hs.config.push_rules" in init
    assert "_push_rule_size_for_limits" in inspect.getsource(PushRuleStore.add_push_rule)
    assert {"rule_id_length", "rule_size"} <= set(PushRulesLimitsConfig.model_fields)
    assert hasattr(PushRulesHandler, "notify_user")
    assert hasattr(HomeServer, "get_push_rules_handler")


def test_the_tables_the_adapter_reads_exist_in_the_schema() -> None:
    import os

    import synapse

    schema_dir = os.path.join(os.path.dirname(synapse.__file__), "storage", "schema", "main", "full_schemas")
    text = ""
    for root, _, files in os.walk(schema_dir):
        for name in files:
            if name.endswith(".sqlite"):
                with open(os.path.join(root, name)) as f:
                    text += f.read()
    for table in ("push_rules", "push_rules_enable", "push_rules_stream", "current_state_delta_stream"):
        assert f"CREATE TABLE {table}" in text or f"CREATE TABLE IF NOT EXISTS {table}" in text, table


def test_the_private_membership_api_the_merchant_circle_uses_exists() -> None:
    import os

    import synapse
    import synapse.server  # noqa: F401 (imports the handlers in an order free of import cycles)
    from synapse.handlers.room_member import RoomMemberHandler
    from synapse.storage.databases.main.roommember import RoomMemberWorkerStore
    from synapse.storage.databases.main.stream import StreamWorkerStore

    assert list(inspect.signature(RoomMemberHandler.forget).parameters)[1:3] == ["user", "room_id"]
    params = inspect.signature(RoomMemberWorkerStore.get_rooms_for_local_user_where_membership_is).parameters
    assert list(params)[1:3] == ["user_id", "membership_list"]
    assert hasattr(StreamWorkerStore, "get_room_max_stream_ordering")
    # The in-memory record of current-state changes the membership pollers consult before reading.
    from synapse.storage.databases.main.events_worker import EventsWorkerStore
    from synapse.util.caches.stream_change_cache import StreamChangeCache

    assert "self._curr_state_delta_stream_cache: StreamChangeCache" in inspect.getsource(EventsWorkerStore.__init__)
    assert list(inspect.signature(StreamChangeCache.has_any_entity_changed).parameters)[1:] == ["stream_pos"]
    schema_dir = os.path.join(os.path.dirname(synapse.__file__), "storage", "schema", "main", "full_schemas")
    text = ""
    for root, _, files in os.walk(schema_dir):
        for name in files:
            if name.endswith(".sqlite"):
                with open(os.path.join(root, name)) as f:
                    text += f.read()
    for table in ("events", "room_memberships"):
        assert f"CREATE TABLE {table}" in text or f"CREATE TABLE IF NOT EXISTS {table}" in text, table


def test_the_private_names_of_one_transaction_rule_changes_exist() -> None:
    """``SynapseInternals.change_push_rules``: Synapse's per-change statements in one transaction."""
    from synapse.config.push_rules import PushRulesLimitsConfig
    from synapse.storage.database import DatabasePool
    from synapse.storage.databases.main.push_rule import PushRulesWorkerStore as PushRuleStore

    params = inspect.signature(PushRuleStore._set_push_rule_enabled_txn).parameters
    assert list(params)[1:] == ["txn", "stream_id", "event_stream_ordering", "user_id", "rule_id", "enabled",
                                "is_default_rule"]
    params = inspect.signature(PushRuleStore._insert_push_rules_update_txn).parameters
    assert list(params)[1:] == ["txn", "stream_id", "event_stream_ordering", "user_id", "rule_id", "op", "data"]
    assert list(inspect.signature(DatabasePool.simple_delete_txn).parameters) == ["txn", "table", "keyvalues"]
    # What delete_push_rule does, which the adapter repeats inside its own transaction.
    source = inspect.getsource(PushRuleStore.delete_push_rule)
    for statement in ('simple_delete_txn(\n                txn, "push_rules_enable"', '"push_rules", {"user_name"',
                      'op="DELETE"'):
        assert statement in source, statement
    assert "rule_count" in PushRulesLimitsConfig.model_fields
    assert "num_push_rules >= self._config.limits.rule_count" in inspect.getsource(PushRuleStore._upsert_push_rule_txn)


def test_the_private_log_context_names_exist() -> None:
    from synapse.logging.context import PreserveLoggingContext  # noqa: F401
    from synapse.module_api import make_deferred_yieldable  # noqa: F401 (public; GroupCommit's waits)
    from synapse.util.async_helpers import Linearizer

    assert list(inspect.signature(Linearizer.__init__).parameters)[1:3] == ["name", "clock"]
    assert hasattr(Linearizer, "queue")
