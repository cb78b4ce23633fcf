"""Replies reach the right person (issue 19 §3): a pool of sender numbers with a binding per
(user, remote number), reply codes when the pool runs out, and a refusal when a reply cannot be
routed. The SQL runs against SQLite here (the e2e tests run it on PostgreSQL too)."""

from __future__ import annotations

import sqlite3

import pytest

from bridges.database import Txn, _migrate_txn
from bridges.sms import store as s
from bridges.sms.api import Route
from bridges.sms.routing import Binding, Resolved, Unroutable, parse_reply_code, resolve
from bridges.sms.store import DailyCaps, NewSms, Refusal, Routing

PHONE = "+8613800138000"
A, B = "+15005550006", "+15005550007"
POOL = Routing(pool=(A, B), reply_codes=True)
CAPS = DailyCaps("2026-03-01", per_user=50, per_destination=50)


@pytest.fixture
def conn() -> sqlite3.Connection:
    c = sqlite3.connect(":memory:")
    with c:
        _migrate_txn(Txn(c.cursor(), "sqlite"))
    return c


def run(conn: sqlite3.Connection, func, *args):  # type: ignore[no-untyped-def]
    with conn:
        return func(Txn(conn.cursor(), "sqlite"), *args)


def bind(conn: sqlite3.Connection, user: str, routing: Routing = POOL, phone: str = PHONE) -> Route:
    return run(conn, s._bind_txn, phone, user, routing)


def bindings(conn: sqlite3.Connection, to: str, phone: str = PHONE) -> list[Binding]:
    return run(conn, s._bindings_for_txn, phone, to)


def test_each_user_gets_a_number_of_the_pool_and_keeps_it(conn: sqlite3.Connection) -> None:
    assert bind(conn, "@alice:x") == Route(A, None)
    assert bind(conn, "@bob:x") == Route(B, None)
    assert bind(conn, "@alice:x") == Route(A, None)  # sticky
    assert bind(conn, "@bob:x") == Route(B, None)
    # Another remote number starts from the first pool number again.
    assert bind(conn, "@bob:x", phone="+8613800138001") == Route(A, None)
    assert [b.user_id for b in bindings(conn, A)] == ["@alice:x"]
    assert [b.user_id for b in bindings(conn, B)] == ["@bob:x"]


def test_when_the_pool_runs_out_a_shared_number_carries_reply_codes(conn: sqlite3.Connection) -> None:
    bind(conn, "@alice:x")
    bind(conn, "@bob:x")
    carol = bind(conn, "@carol:x")
    assert carol == Route(A, 2)
    # Alice shares her number now: her next texts carry a code too.
    assert bind(conn, "@alice:x") == Route(A, 1)
    assert bind(conn, "@bob:x") == Route(B, None)
    dave = bind(conn, "@dave:x")
    assert dave == Route(B, 2) and bind(conn, "@bob:x") == Route(B, 1)
    assert bind(conn, "@erin:x") == Route(A, 3)
    assert sorted((b.user_id, b.reply_code) for b in bindings(conn, A)) == [
        ("@alice:x", 1), ("@carol:x", 2), ("@erin:x", 3)]


def test_without_reply_codes_an_exhausted_pool_is_a_refusal_that_changes_nothing(conn: sqlite3.Connection) -> None:
    strict = Routing(pool=(A, B), reply_codes=False)
    bind(conn, "@alice:x", strict)
    bind(conn, "@bob:x", strict)
    with pytest.raises(Refusal) as e:
        bind(conn, "@carol:x", strict)
    assert e.value.reason == "no_route"
    assert [(b.user_id, b.reply_code) for b in bindings(conn, A)] == [("@alice:x", None)]


def test_a_number_removed_from_the_pool_is_replaced_at_the_next_text(conn: sqlite3.Connection) -> None:
    bind(conn, "@alice:x")
    assert bind(conn, "@alice:x", Routing(pool=(B,), reply_codes=True)) == Route(B, None)
    assert bindings(conn, A) == []


def test_a_refused_sms_leaves_no_binding(conn: sqlite3.Connection) -> None:
    run(conn, s._opt_out_txn, PHONE, "STOP")
    new = NewSms(kind="chat", to=PHONE, body="", segments=0, sender="@alice:x", bind_to="@alice:x")
    with pytest.raises(Refusal):
        run(conn, s._enqueue_txn, new, CAPS, POOL, lambda route: ("hi", 1))
    assert bindings(conn, A) == []


def test_the_sms_goes_out_from_the_bound_number_with_the_body_made_for_its_route(conn: sqlite3.Connection) -> None:
    bind(conn, "@alice:x")
    bind(conn, "@bob:x")
    new = NewSms(kind="chat", to=PHONE, body="", segments=0, sender="@carol:x", bind_to="@carol:x")
    sms_id, segments, created = run(conn, s._enqueue_txn, new, CAPS, POOL,
                                     lambda route: (f"hi, reply with #{route.reply_code}", 1))
    sms = run(conn, s._get_txn, sms_id).sms
    assert (sms.from_number, sms.body, created) == (A, "hi, reply with #2", True)
    # SMS that belong to nobody (codes, operator texts) prefer a number nobody texts this phone from.
    code = run(conn, s._enqueue_txn, NewSms(kind="code", to="+8613800138009", body="123456", segments=1),
               CAPS, POOL, None)
    assert run(conn, s._get_txn, code[0]).sms.from_number == A
    bind(conn, "@alice:x", phone="+8613800138009")
    code = run(conn, s._enqueue_txn, NewSms(kind="code", to="+8613800138009", body="654321", segments=1),
               CAPS, POOL, None)
    assert run(conn, s._get_txn, code[0]).sms.from_number == B
    # A system answer goes out from the number that was texted.
    answer = run(conn, s._enqueue_txn, NewSms(kind="system", to=PHONE, body="ok", segments=1, from_number=B),
                 CAPS, POOL, None)
    assert run(conn, s._get_txn, answer[0]).sms.from_number == B


def test_a_throttled_sms_is_refused_until_its_interval_has_passed(conn: sqlite3.Connection) -> None:
    new = NewSms(kind="system", to=PHONE, body="no route", segments=1, throttle_key="unroutable:" + PHONE,
                 throttle_ms=3_600_000)
    assert run(conn, s._enqueue_txn, new, CAPS, POOL, None)[2] is True
    with pytest.raises(Refusal) as e:
        run(conn, s._enqueue_txn, new, CAPS, POOL, None)
    assert e.value.reason == "throttled"
    conn.execute("UPDATE sms_throttle SET until_ts = 0")
    assert run(conn, s._enqueue_txn, new, CAPS, POOL, None)[2] is True


def test_conversations_from_before_the_pool_keep_their_replies_until_they_text_again() -> None:
    """The migration that brings the pool binds existing SMS chats to "the old number" (''),
    which a reply to any of our numbers matches."""
    txn = Txn(sqlite3.connect(":memory:").cursor(), "sqlite")
    from bridges.database import MIGRATIONS

    before = next(i for i, m in enumerate(MIGRATIONS) if any("CREATE TABLE sms_bindings" in q for q in m))
    txn.execute("CREATE TABLE schema_version (version INTEGER NOT NULL)")
    txn.execute("INSERT INTO schema_version (version) VALUES (?)", (before,))
    for statements in MIGRATIONS[:before]:
        for statement in statements:
            txn.execute(statement)
    txn.execute("INSERT INTO sms_rooms (user_id, phone, room_id, created_ts, last_outbound_ts)"
                " VALUES ('@alice:x', ?, '!a', 1, 1)", (PHONE,))
    _migrate_txn(txn)
    assert s._bindings_for_txn(txn, PHONE, A) == [Binding("@alice:x", "", None)]
    assert s._bind_txn(txn, PHONE, "@alice:x", POOL) == Route(A, None)
    assert s._bindings_for_txn(txn, PHONE, B) == []


# -- the resolver (pure) ---------------------------------------------------------------------


@pytest.mark.parametrize("body, code, rest", [
    ("#2 hi", 2, "hi"), ("#2: hi", 2, "hi"), ("  #12，好的", 12, "好的"), ("＃２ 好", 2, "好"), ("# 3 ok", 3, "ok"),
    ("#2", 2, ""), ("hi #2", None, "hi #2"), ("#hashtag", None, "#hashtag"), ("#12345 x", None, "#12345 x"),
])
def test_reply_codes_are_read_at_the_start(body: str, code: int | None, rest: str) -> None:
    assert parse_reply_code(body) == (code, rest)


def test_a_reply_goes_to_the_only_binding_or_the_one_its_code_names() -> None:
    alice, carol = Binding("@alice:x", A, 1), Binding("@carol:x", A, 2)
    assert resolve([Binding("@bob:x", B, None)], "#1 priority!") == Resolved("@bob:x", "#1 priority!")
    assert resolve([Binding("@bob:x", B, 1)], "#1 ok") == Resolved("@bob:x", "ok")
    assert resolve([alice, carol], "#2 hi Carol") == Resolved("@carol:x", "hi Carol")
    assert resolve([alice, carol], "#1") == Resolved("@alice:x", "#1")  # nothing but the code: kept whole
    assert resolve([alice, carol], "hi") == Unroutable("ambiguous")
    assert resolve([alice, carol], "#7 hi") == Unroutable("ambiguous")
    assert resolve([], "hi") == Unroutable("unknown")
