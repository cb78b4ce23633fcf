"""The Synapse-internals adapter fails loudly on a Synapse it was not checked against, and every
private name, signature, table and column it uses exists in the installed Synapse.

The names are checked on a real homeserver object built from the installed Synapse, and the
tables on a database that Synapse's own schema preparation has just created: SQLite always, and
PostgreSQL too when ``WANGXIN_TEST_PG`` is set. The last test keeps the list complete: a name or
table used in ``synapse_modules/_internals`` and not checked here fails it.
"""

from __future__ import annotations

import ast
import inspect
import pathlib
import re
import tempfile
import types
from collections.abc import Callable, Iterator
from typing import Any, cast

import attr
import pytest
import synapse
from signedjson.key import generate_signing_key, write_signing_keys
from synapse.config.homeserver import HomeServerConfig
from synapse.config.push_rules import PushRulesLimitsConfig
from synapse.handlers.push_rules import PushRulesHandler
from synapse.logging.context import PreserveLoggingContext
from synapse.module_api import EventBase, ModuleApi, make_deferred_yieldable
from synapse.server import HomeServer
from synapse.storage import DataStore
from synapse.storage.database import DatabasePool, LoggingDatabaseConnection, make_conn
from synapse.storage.databases.main.push_rule import PushRulesWorkerStore
from synapse.storage.roommember import RoomsForUser
from synapse.storage.util.id_generators import MultiWriterIdGenerator
from synapse.synapse_rust.events import EventInternalMetadata
from synapse.types import RoomAlias, UserID, create_requester
from synapse.util.async_helpers import Linearizer
from synapse.util.caches.stream_change_cache import StreamChangeCache
from twisted.internet import defer
from twisted.internet.testing import MemoryReactorClock

from synapse_modules import _internals, contact_import_store
from synapse_modules._internals import (
    ContactImportInternals,
    DirectoryInternals,
    MembershipInternals,
    SynapseInternals,
    UnsupportedSynapseVersion,
    check_synapse_version,
)
from tests.harness.services import create_database, drop_database, pg_dsn

ADAPTER_DIR = pathlib.Path(_internals.__file__).parent

# Every Synapse table the adapter's own SQL reads or writes, with the columns it names.
TABLE_COLUMNS = {
    "push_rules": {"user_name", "rule_id", "priority_class", "priority", "conditions", "actions"},
    "push_rules_enable": {"user_name", "rule_id", "enabled"},
    "push_rules_stream": {"stream_id", "user_id", "rule_id"},
    "current_state_delta_stream": {"stream_id", "room_id", "type", "state_key", "event_id"},
    "room_memberships": {"event_id", "membership"},
    "events": {"event_id", "stream_ordering"},
    "user_threepids": {"user_id", "medium", "address"},
    "users": {"name", "deactivated"},
    "current_state_events": {"room_id", "type", "state_key"},
    "receipts_linearized": {"room_id", "receipt_type", "user_id", "thread_id", "event_stream_ordering"},
}

# Every name the adapter reaches on a Synapse object beyond the public module API; each is
# checked by a test below (the last test fails when the adapter uses one missing here).
CHECKED_NAMES = {
    # homeserver and module API
    "_hs", "get_datastores", "main", "get_push_rules_handler", "get_room_member_handler", "get_notifier",
    "get_clock", "__version__",
    # push rules
    "_is_push_writer", "add_push_rule", "set_push_rule_enabled", "notify_user", "_config", "limits",
    "rule_count", "rule_id_length", "rule_size", "_push_rules_stream_id_gen", "get_next_mult", "_stream_id_gen",
    "get_current_token", "_add_push_rule_highest_priority_txn", "_insert_push_rules_update_txn",
    "_set_push_rule_enabled_txn", "db_pool", "simple_delete_txn", "get_max_push_rules_stream_id",
    # memberships
    "update_membership", "forget", "get_local_current_membership_for_user_in_room",
    "get_number_joined_users_in_room", "get_rooms_for_local_user_where_membership_is", "room_id", "get_event",
    "sender", "get_room_max_stream_ordering", "_curr_state_delta_stream_cache", "has_any_entity_changed",
    "_join_rate_per_room_limiter", "record_action", "add_new_join_in_room_callback", "internal_metadata",
    "device_id", "from_string",
    # room aliases of existing rooms
    "get_directory_handler", "create_association",
    # an account user's avatar
    "get_profile_handler", "set_avatar_url",
}
# Attributes of Python, the DB-API cursor, attrs and Twisted that the adapter uses.
NOT_SYNAPSE = {
    "Deferred", "callback", "errback", "frozen", "execute", "fetchall", "fetchone", "append", "encode", "get",
    "join", "loads", "replace", "setdefault", "startswith", "update", "fromkeys",
}


def test_installed_synapse_is_a_supported_one() -> None:
    assert check_synapse_version() == synapse.__version__


@pytest.mark.parametrize("version", ["1.164.0", "1.162.9", "2.0.0"])
def test_other_versions_are_refused(version: str) -> None:
    with pytest.raises(UnsupportedSynapseVersion, match="Re-check"):
        check_synapse_version(version)


# -- a real homeserver on a freshly prepared database ------------------------------------------


class _HomeServer(HomeServer):
    DATASTORE_CLASS = DataStore


def _schema_backends() -> list[str]:
    return ["sqlite", "postgres"] if pg_dsn() else ["sqlite"]


@pytest.fixture(scope="module", params=_schema_backends())
def homeserver(request: pytest.FixtureRequest) -> Iterator[HomeServer]:
    """A homeserver object of the installed Synapse whose database Synapse has just prepared
    (every schema file and delta, as at a first start). Nothing listens or runs: the reactor is
    a memory one."""
    with tempfile.TemporaryDirectory() as tmp:
        fresh = None
        if request.param == "postgres":
            fresh = create_database("wangxin_internals")
            database = {"name": "psycopg2", "args": {"dsn": fresh.dsn, "cp_min": 1, "cp_max": 1}}
        else:
            database = {"name": "sqlite3", "args": {"database": f"{tmp}/homeserver.db"}}
        with open(f"{tmp}/signing.key", "w") as f:
            write_signing_keys(f, [generate_signing_key("a")])
        config = HomeServerConfig()
        config.parse_config_dict(
            {
                "server_name": f"{request.param}.test",
                "report_stats": False,
                "signing_key_path": f"{tmp}/signing.key",
                "database": database,
                "media_store_path": f"{tmp}/media",
                "listeners": [],
                "trusted_key_servers": [],
                "suppress_key_server_warning": True,
                "macaroon_secret_key": "not a secret",
            },
            config_dir_path=tmp,
            data_dir_path=tmp,
        )
        hs = _HomeServer(f"{request.param}.test", config=config, reactor=MemoryReactorClock())  # type: ignore[arg-type]
        try:
            hs.setup()
            yield hs
        finally:
            if fresh is not None:
                drop_database(fresh)


@pytest.fixture
def db(homeserver: HomeServer) -> Iterator[LoggingDatabaseConnection]:
    """A connection of Synapse's own kind to the homeserver's database (``?`` placeholders work
    on both engines); everything done through it is rolled back."""
    store = homeserver.get_datastores().main
    conn = make_conn(
        db_config=homeserver.config.database.databases[0],
        engine=store.database_engine,
        default_txn_name="wangxin_contract",
        server_name=homeserver.hostname,
    )
    try:
        yield conn
    finally:
        conn.rollback()
        conn.close()


def _params(func: Callable[..., Any]) -> list[str]:
    """Parameter names as a caller passes them (``self`` dropped, also for ``@cached`` methods)."""
    return [p for p in inspect.signature(func).parameters if p != "self"]


def _columns(db: LoggingDatabaseConnection, table: str) -> set[str]:
    cur = db.cursor(txn_name="wangxin_columns")
    if db.engine.module.__name__ == "sqlite3":
        cur.execute(f"PRAGMA table_info({table})")
        return {row[1] for row in cur.fetchall()}
    cur.execute(
        "SELECT column_name FROM information_schema.columns WHERE table_schema = current_schema() AND table_name = ?",
        (table,),
    )
    return {row[0] for row in cur.fetchall()}


def _indexes(db: LoggingDatabaseConnection, table: str) -> list[tuple[bool, list[str]]]:
    """``(unique, columns in order)`` of every index on the table."""
    cur = db.cursor(txn_name="wangxin_indexes")
    if db.engine.module.__name__ == "sqlite3":
        cur.execute(f"PRAGMA index_list({table})")
        found = []
        for _, name, unique, *_ in cur.fetchall():
            cur.execute(f"PRAGMA index_info({name})")
            found.append((bool(unique), [row[2] for row in sorted(cur.fetchall())]))
        return found
    cur.execute("SELECT indexdef FROM pg_indexes WHERE schemaname = current_schema() AND tablename = ?", (table,))
    found = []
    for (definition,) in cur.fetchall():
        columns = re.search(r"\(([^)]*)\)", definition)
        assert columns is not None, definition
        found.append(("UNIQUE" in definition, [c.strip() for c in columns.group(1).split(",")]))
    return found


# -- tables -------------------------------------------------------------------------------------


def test_every_table_and_column_the_adapter_names_exists_in_a_fresh_database(db: LoggingDatabaseConnection) -> None:
    for table, wanted in TABLE_COLUMNS.items():
        have = _columns(db, table)
        assert have, f"Synapse's schema has no table {table!r}"
        assert wanted <= have, f"{table} lacks {sorted(wanted - have)}"


def test_the_indexes_the_marker_lookup_relies_on_exist(db: LoggingDatabaseConnection) -> None:
    """``room_with_marker`` finds a member's rooms by ``state_key`` and a room's marker by
    ``(room_id, type, state_key)``; without these indexes it reads the whole table."""
    indexes = _indexes(db, "current_state_events")
    assert (True, ["room_id", "type", "state_key"]) in indexes, indexes
    assert any(columns[:1] == ["state_key"] for _, columns in indexes), indexes


def test_the_index_the_read_receipt_count_relies_on_exists(db: LoggingDatabaseConnection) -> None:
    """``read_positions_txn`` reads one room's ``m.read`` receipts as a range of an index that
    starts with ``(room_id, receipt_type)``; without one it reads every receipt of the server."""
    indexes = _indexes(db, "receipts_linearized")
    assert any(columns[:2] == ["room_id", "receipt_type"] for _, columns in indexes), indexes


def test_every_statement_of_the_adapter_runs_on_a_fresh_database(db: LoggingDatabaseConnection) -> None:
    """Each of the adapter's own transaction functions, on Synapse's tables as they are now (an
    unknown table or column is an error here on both engines, even with no rows)."""
    cur = db.cursor(txn_name="wangxin_statements")
    contact_import_store.create_schema_txn(cur)  # the module table the phone lookup joins
    ran = {
        "user_rule_ids_txn": _internals.user_rule_ids_txn(cur, "@a:test"),
        "list_rules_txn": _internals.list_rules_txn(cur, "@a:test", "override"),
        "changes_txn": _internals.changes_txn(cur, 0, 10),
        "membership_deltas_txn": _internals.membership_deltas_txn(cur, 0, 10, 10),
        "persisted_event_ids_txn": _internals.persisted_event_ids_txn(cur, ["$a", "$b"]),
        "users_by_msisdn_txn": _internals.users_by_msisdn_txn(
            cur, ["8613800138000"], contact_import_store.DISCOVERABLE_TABLE
        ),
        "room_with_marker_txn": _internals.room_with_marker_txn(cur, "@a:test", "org.wangxin.import.marker", "k"),
        "user_by_msisdn_txn": _internals.user_by_msisdn_txn(cur, "8613800138000"),
        "event_positions_txn": _internals.event_positions_txn(cur, ["$a", "$b"]),
        "read_positions_txn": _internals.read_positions_txn(cur, "!r", ["@a:test"]),
    }
    assert ran == {
        "user_rule_ids_txn": set(),
        "list_rules_txn": [],
        "changes_txn": (0, []),
        "membership_deltas_txn": (10, []),
        "persisted_event_ids_txn": set(),
        "users_by_msisdn_txn": {},
        "room_with_marker_txn": None,
        "user_by_msisdn_txn": None,
        "event_positions_txn": {},
        "read_positions_txn": [],
    }
    defined = {
        node.name
        for path in ADAPTER_DIR.glob("*.py")
        for node in ast.parse(path.read_text()).body
        if isinstance(node, ast.FunctionDef) and node.name.endswith("_txn") and not node.name.startswith("_")
    }
    assert defined == set(ran), f"run these here too: {sorted(defined - set(ran))}"


# -- names and signatures, on a real homeserver ----------------------------------------------


def test_the_adapter_builds_on_a_real_module_api(homeserver: HomeServer) -> None:
    api = homeserver.get_module_api()
    assert isinstance(api, ModuleApi) and api._hs is homeserver
    push_rules = SynapseInternals(api)
    assert push_rules.is_push_rules_writer is True  # the main process, with no stream_writers
    assert isinstance(push_rules.current_push_rules_stream_id(), int)
    MembershipInternals(api)
    ContactImportInternals(api)
    DirectoryInternals(api)
    assert isinstance(_internals.keyed_lock(api, "wangxin_contract"), Linearizer)
    assert isinstance(_internals.events_position(api), int)


def test_the_private_push_rule_api_has_the_shape_the_adapter_calls(homeserver: HomeServer) -> None:
    store = homeserver.get_datastores().main
    assert isinstance(store, PushRulesWorkerStore)
    assert isinstance(store._is_push_writer, bool)
    assert _params(store.add_push_rule) == ["user_id", "rule_id", "priority_class", "conditions", "actions",
                                            "before", "after"]
    assert _params(store.delete_push_rule) == ["user_id", "rule_id"]
    assert _params(store.set_push_rule_enabled) == ["user_id", "rule_id", "enabled", "is_default_rule"]
    assert isinstance(store.get_max_push_rules_stream_id(), int)
    handler = homeserver.get_push_rules_handler()
    assert isinstance(handler, PushRulesHandler)
    assert _params(handler.notify_user) == ["user_id"]
    # The batched and one-transaction writes: Synapse's own per-rule statements, several stream
    # ids at once, and the limits add_push_rule checks before its transaction.
    assert _params(store._add_push_rule_highest_priority_txn) == [
        "txn", "stream_id", "event_stream_ordering", "user_id", "rule_id", "priority_class", "conditions_json",
        "actions_json",
    ]
    assert _params(store._set_push_rule_enabled_txn) == [
        "txn", "stream_id", "event_stream_ordering", "user_id", "rule_id", "enabled", "is_default_rule",
    ]
    assert _params(store._insert_push_rules_update_txn) == [
        "txn", "stream_id", "event_stream_ordering", "user_id", "rule_id", "op", "data",
    ]
    assert isinstance(store._push_rules_stream_id_gen, MultiWriterIdGenerator)
    assert _params(store._push_rules_stream_id_gen.get_next_mult) == ["n"]
    assert isinstance(store._stream_id_gen.get_current_token(), int)
    assert isinstance(store.db_pool, DatabasePool)
    assert _params(store.db_pool.simple_delete_txn) == ["txn", "table", "keyvalues"]
    assert store._config is homeserver.config.push_rules
    limits = store._config.limits
    assert isinstance(limits, PushRulesLimitsConfig)
    assert all(isinstance(getattr(limits, key), int) for key in ("rule_count", "rule_id_length", "rule_size"))
    # What the adapter repeats inside its own transactions: the size checks of add_push_rule,
    # the rule_count check of its upsert, and the statements of delete_push_rule.
    assert "_push_rule_size_for_limits" in inspect.getsource(PushRulesWorkerStore.add_push_rule)
    assert "num_push_rules >= self._config.limits.rule_count" in inspect.getsource(
        PushRulesWorkerStore._upsert_push_rule_txn
    )
    source = inspect.getsource(PushRulesWorkerStore.delete_push_rule)
    for statement in ('simple_delete_txn(\n                txn, "push_rules_enable"', '"push_rules", {"user_name"',
                      'op="DELETE"'):
        assert statement in source, statement


def test_the_private_membership_api_the_adapter_calls_exists(homeserver: HomeServer) -> None:
    handler = homeserver.get_room_member_handler()
    params = _params(handler.update_membership)
    assert params[:4] == ["requester", "target", "room_id", "action"]
    assert {"ratelimit", "content"} <= set(params)
    assert _params(handler.forget)[:2] == ["user", "room_id"]
    store = homeserver.get_datastores().main
    assert _params(store.get_local_current_membership_for_user_in_room) == ["user_id", "room_id"]
    assert _params(store.get_number_joined_users_in_room) == ["room_id"]
    assert _params(store.get_rooms_for_local_user_where_membership_is)[:2] == ["user_id", "membership_list"]
    params = _params(store.get_event)
    assert params[0] == "event_id" and "allow_none" in params
    # rooms_of reads each row's room_id, left_by_self the sender of the event get_event returns.
    rows = inspect.signature(type(store).get_rooms_for_local_user_where_membership_is).return_annotation
    assert rows == list[RoomsForUser] and "room_id" in attr.fields_dict(RoomsForUser)
    assert "sender" in dir(EventBase)
    assert isinstance(store.get_room_max_stream_ordering(), int)
    # The in-memory record of current-state changes the membership pollers consult before reading.
    assert isinstance(store._curr_state_delta_stream_cache, StreamChangeCache)
    assert _params(store._curr_state_delta_stream_cache.has_any_entity_changed) == ["stream_pos"]
    assert isinstance(store._curr_state_delta_stream_cache.has_any_entity_changed(0), bool)
    assert UserID.from_string("@a:test").to_string() == "@a:test"
    assert create_requester("@a:test").user.to_string() == "@a:test"


def test_the_private_directory_api_the_adapter_calls_exists(homeserver: HomeServer) -> None:
    """``DirectoryInternals.create_alias``: the directory handler's ``create_association`` with a
    requester, an alias, a room, servers and the membership check to skip."""
    handler = homeserver.get_directory_handler()
    assert _params(handler.create_association) == ["requester", "room_alias", "room_id", "servers",
                                                   "check_membership"]
    assert RoomAlias.from_string("#a:test").to_string() == "#a:test"


def test_the_private_profile_api_the_adapter_calls_exists(homeserver: HomeServer) -> None:
    """``ProfileInternals.set_avatar_url``: the profile handler's keyword-only ``set_avatar_url``
    with the target, a requester, the URL and ``by_admin``."""
    params = _params(homeserver.get_profile_handler().set_avatar_url)
    assert params[:4] == ["target_user", "requester", "new_avatar_url", "by_admin"], params
    assert isinstance(_internals.ProfileInternals(homeserver.get_module_api()), _internals.ProfileInternals)


def test_the_join_refund_takes_circle_joins_out_of_the_per_room_bucket(homeserver: HomeServer) -> None:
    """``refund_per_room_joins``: Synapse's notifier join callbacks and ``record_action`` with a
    negative ``n_actions`` on the room member handler's per-room join limiter (burst 10)."""
    handler = homeserver.get_room_member_handler()
    limiter = handler._join_rate_per_room_limiter
    assert _params(limiter.record_action)[:3] == ["requester", "key", "n_actions"]
    assert _params(homeserver.get_notifier().add_new_join_in_room_callback) == ["cb"]
    MembershipInternals(homeserver.get_module_api()).refund_per_room_joins(lambda room_id: room_id == "!circle")
    for _ in range(15):  # the clock stands still: the buckets do not drain
        homeserver.get_notifier().notify_user_joined_room("$join", "!circle")
        homeserver.get_notifier().notify_user_joined_room("$join", "!other")

    def may_join(room_id: str) -> bool:
        checked = defer.ensureDeferred(limiter.can_do_action(None, key=room_id, update=False))
        assert checked.called
        allowed, _ = cast(tuple[bool, float], checked.result)
        return allowed

    assert may_join("!circle")
    assert not may_join("!other")


def test_the_sending_device_is_in_the_internal_metadata() -> None:
    assert "device_id" in dir(EventInternalMetadata)
    sent = types.SimpleNamespace(internal_metadata=EventInternalMetadata({"device_id": "PHONE"}))
    made = types.SimpleNamespace(internal_metadata=EventInternalMetadata({}))
    assert _internals.sending_device(sent) == "PHONE"  # type: ignore[arg-type]
    assert _internals.sending_device(made) is None  # type: ignore[arg-type]


def test_the_private_log_context_names_exist(homeserver: HomeServer) -> None:
    assert isinstance(PreserveLoggingContext(), PreserveLoggingContext)
    assert callable(make_deferred_yieldable)  # public; GroupCommit's waits
    assert _params(Linearizer.__init__)[:2] == ["name", "clock"]
    lock = Linearizer("wangxin_contract", homeserver.get_clock())
    assert hasattr(lock, "queue")


# -- the list above is complete ---------------------------------------------------------------


def test_the_contract_covers_every_name_and_table_the_adapter_uses(homeserver: HomeServer) -> None:
    """Every attribute the adapter reaches that it does not define itself, is not public on
    ``ModuleApi`` and is not Python's, is in ``CHECKED_NAMES``; every table its SQL names is in
    ``TABLE_COLUMNS``."""
    own: set[str] = set()
    used: set[str] = set()
    sql: list[str] = []
    for path in ADAPTER_DIR.glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                own.add(node.name)
            elif isinstance(node, ast.Attribute):
                used.add(node.attr)
                if isinstance(node.ctx, ast.Store) and node.attr != "_hs":
                    own.add(node.attr)
            elif isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
                own.add(node.target.id)  # attrs fields
            elif (isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "getattr"
                  and len(node.args) > 1 and isinstance(node.args[1], ast.Constant)):
                used.add(str(node.args[1].value))
            elif isinstance(node, ast.Constant) and isinstance(node.value, str):
                sql.append(node.value)
    public_api = {name for name in dir(homeserver.get_module_api()) if not name.startswith("_")}
    unchecked = used - own - public_api - NOT_SYNAPSE - CHECKED_NAMES
    assert not unchecked, f"the adapter uses Synapse names this test does not check: {sorted(unchecked)}"
    assert not CHECKED_NAMES - used, f"no longer used by the adapter: {sorted(CHECKED_NAMES - used)}"
    tables = {m for text in sql for m in re.findall(r"\b(?:FROM|JOIN|INTO|UPDATE)\s+([a-z_]+)", text)}
    tables |= {text for text in sql if text in ("push_rules", "push_rules_enable")}  # simple_delete_txn's
    assert tables == set(TABLE_COLUMNS), f"tables named in the adapter: {sorted(tables)}"
