"""Discovery's bookkeeping through the store's SQL on a real SQLite database: opting out, blocks,
holds and bans, bottles, requests, the shake rendezvous, limits. (The same SQL runs on
PostgreSQL in the end-to-end tests.)"""

from __future__ import annotations

import sqlite3
from typing import Any

from synapse_modules.discovery.cells import cell_of
from synapse_modules.discovery.config import RateLimit
from synapse_modules.discovery.pairing import blocked_predicate, pair_at_random
from synapse_modules.discovery.store.bottles import claim_bottle_txn, pick_candidates_txn, reply_txn, throw_txn
from synapse_modules.discovery.store.cleanup import cleanup_txn
from synapse_modules.discovery.store.limits import Limited
from synapse_modules.discovery.store.people import (
    block_txn,
    me_txn,
    nearby_txn,
    opt_out_txn,
    put_profile_txn,
    set_location_txn,
)
from synapse_modules.discovery.store.reports import report_txn, resolve_txn
from synapse_modules.discovery.store.requests import answer_txn, finish_request_txn, hi_txn, open_requests_txn
from synapse_modules.discovery.store.schema import create_schema_txn
from synapse_modules.discovery.store.windows import Entry, decide_window_txn, enter_windows_txn

FREE = RateLimit(1000, 1000)
HOUR = 3600_000
TTL = 2 * HOUR
HERE = cell_of(31.2304, 121.4737, 6)
NEXT_DOOR = cell_of(31.2304, 121.4737 + 0.011, 6)
FAR = cell_of(39.9, 116.4, 6)
_ids = iter(f"id{n:08d}" for n in range(10**6))


def _txn() -> Any:
    txn = sqlite3.connect(":memory:").cursor()
    create_schema_txn(txn)
    return txn


def _person(txn: Any, user_id: str, cell: str | None = HERE, now: int = 1000) -> None:
    put_profile_txn(txn, user_id, {}, user_id[1:3], now, FREE)
    if cell:
        set_location_txn(txn, user_id, cell, now, FREE)


def _nearby(txn: Any, user_id: str, now: int = 2000) -> dict[str, str]:
    me = me_txn(txn, user_id, now, TTL)
    assert me.cell
    people = nearby_txn(txn, user_id, me.cell, now, TTL, 50, FREE)
    assert not isinstance(people, Limited)
    return {p.user_id: p.band for p in people}


def _rows(txn: Any, user_id: str) -> list[tuple[str, tuple]]:
    """Every row of every discovery table that names ``user_id``."""
    found = []
    txn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")
    for (table,) in txn.fetchall():
        txn.execute(f"SELECT * FROM {table}")
        found += [(table, row) for row in txn.fetchall() if user_id in row]
    return found


def test_nearby_lists_visible_people_in_and_around_the_cell_nearest_first() -> None:
    txn = _txn()
    for user, cell in (("@me:x", HERE), ("@same:x", HERE), ("@next:x", NEXT_DOOR), ("@far:x", FAR)):
        _person(txn, user, cell)
    put_profile_txn(txn, "@quiet:x", {}, "q", 1000, FREE)  # opted in, shared no location
    set_location_txn(txn, "@out:x", HERE, 1000, FREE)  # a location but never opted in
    assert _nearby(txn, "@me:x") == {"@same:x": "< 1 km", "@next:x": "1–5 km"}
    txn.execute("SELECT l.user_id FROM wangxin_discovery_locations AS l")
    # An expired location is nobody's.
    assert _nearby(txn, "@me:x", now=1000 + TTL - 1) == {"@same:x": "< 1 km", "@next:x": "1–5 km"}
    set_location_txn(txn, "@me:x", HERE, 1000 + TTL, FREE)
    assert _nearby(txn, "@me:x", now=1000 + TTL + 1) == {}


def test_opting_out_removes_the_person_from_everything_at_once_and_keeps_blocks_and_limits() -> None:
    txn = _txn()
    _person(txn, "@a:x")
    _person(txn, "@b:x")
    assert throw_txn(txn, "@a:x", next(_ids), "hello sea", 5, 1000, 10, FREE) is None
    outcome = hi_txn(txn, "@a:x", HERE, "@b:x", "hi", 1100, TTL, HOUR, FREE, next(_ids))
    assert not isinstance(outcome, Limited) and outcome.request_id
    enter_windows_txn(txn, "shake", [Entry("@a:x", None, 0)], 5000, 1200, FREE)
    block_txn(txn, "@a:x", "@c:x", 1300, FREE)
    assert _nearby(txn, "@b:x") == {"@a:x": "< 1 km"}
    assert opt_out_txn(txn, "@a:x", 1400, FREE) is None
    assert _nearby(txn, "@b:x") == {}
    assert open_requests_txn(txn, "@b:x", 1500, HOUR) == []
    tables = {table for table, _ in _rows(txn, "@a:x")}
    assert tables == {"wangxin_discovery_blocks", "wangxin_discovery_rates", "wangxin_discovery_daily"}


def test_a_block_hides_each_from_the_other_and_drops_their_open_requests() -> None:
    txn = _txn()
    for user in ("@a:x", "@b:x", "@c:x"):
        _person(txn, user)
    outcome = hi_txn(txn, "@b:x", HERE, "@a:x", None, 1100, TTL, HOUR, FREE, next(_ids))
    assert not isinstance(outcome, Limited) and outcome.request_id
    block_txn(txn, "@a:x", "@b:x", 1200, FREE)
    assert _nearby(txn, "@a:x") == {"@c:x": "< 1 km"}
    assert _nearby(txn, "@b:x") == {"@c:x": "< 1 km"}
    assert open_requests_txn(txn, "@a:x", 1300, HOUR) == []
    again = hi_txn(txn, "@b:x", HERE, "@a:x", None, 1400, TTL, HOUR, FREE, next(_ids))
    assert not isinstance(again, Limited) and again.not_found


def test_hi_only_reaches_someone_nearby_and_visible_and_a_decline_cools_down() -> None:
    txn = _txn()
    _person(txn, "@a:x")
    _person(txn, "@b:x")
    _person(txn, "@far:x", FAR)
    for target in ("@far:x", "@nobody:x", "@a:x"):
        outcome = hi_txn(txn, "@a:x", HERE, target, None, 1100, TTL, HOUR, FREE, next(_ids))
        assert not isinstance(outcome, Limited) and outcome.not_found, target
    rid = next(_ids)
    assert hi_txn(txn, "@a:x", HERE, "@b:x", "hi", 1100, TTL, HOUR, FREE, rid).request_id == rid  # type: ignore[union-attr]
    existing = hi_txn(txn, "@b:x", HERE, "@a:x", None, 1150, TTL, HOUR, FREE, next(_ids))
    assert not isinstance(existing, Limited) and existing.existing == rid
    assert answer_txn(txn, rid, "@a:x", True, 1200, HOUR, FREE).outcome == "forbidden"  # type: ignore[union-attr]
    assert answer_txn(txn, rid, "@c:x", True, 1200, HOUR, FREE).outcome == "forbidden"  # type: ignore[union-attr]
    assert answer_txn(txn, rid, "@b:x", False, 1200, HOUR, FREE).outcome == "declined"  # type: ignore[union-attr]
    assert answer_txn(txn, rid, "@b:x", True, 1300, HOUR, FREE).outcome == "answered"  # type: ignore[union-attr]
    cooled = hi_txn(txn, "@a:x", HERE, "@b:x", "hi", 1400, TTL, HOUR, FREE, next(_ids))
    assert isinstance(cooled, Limited) and cooled.retry_after_ms == HOUR - 200


def test_a_mutual_request_makes_a_room_only_when_both_accepted() -> None:
    txn = _txn()
    _person(txn, "@a:x")
    _person(txn, "@b:x")
    enter_windows_txn(txn, "shake", [Entry("@a:x", None, 0), Entry("@b:x", None, 0)], 5000, 100, FREE)
    decision = decide_window_txn(txn, "shake", 0, 6000, lambda e, b: pair_at_random(e, blocked_predicate(b)),
                                 lambda: next(_ids))
    pairing = decision["@a:x"]
    assert pairing and pairing.partner == "@b:x" and decision["@b:x"].request_id == pairing.request_id  # type: ignore[union-attr]
    rid = pairing.request_id
    assert answer_txn(txn, rid, "@a:x", True, 7000, HOUR, FREE).outcome == "waiting"  # type: ignore[union-attr]
    assert answer_txn(txn, rid, "@a:x", True, 7100, HOUR, FREE).outcome == "waiting"  # type: ignore[union-attr]
    made = answer_txn(txn, rid, "@b:x", True, 7200, HOUR, FREE)
    assert not isinstance(made, Limited) and made.outcome == "make_room"
    assert answer_txn(txn, rid, "@a:x", True, 7300, HOUR, FREE).outcome == "accepting"  # type: ignore[union-attr]
    finish_request_txn(txn, rid, "!room", 7400)
    assert answer_txn(txn, rid, "@b:x", True, 7500, HOUR, FREE).outcome == "answered"  # type: ignore[union-attr]


def test_the_rendezvous_is_decided_once_whoever_asks_and_pairs_the_same_region_only() -> None:
    txn = _txn()
    people = [("@sh1:x", "wtw3"), ("@sh2:x", "wtw3"), ("@bj1:x", "wx4g"), ("@bj2:x", "wx4g"), ("@lone:x", "xn76")]
    for user, _ in people:
        _person(txn, user, None)
    _person(txn, "@late:x", None)
    assert enter_windows_txn(txn, "shake", [Entry(u, r, 0) for u, r in people], 5000, 100, FREE) == [0] * 5
    first = decide_window_txn(txn, "shake", 0, 5300, lambda e, b: pair_at_random(e), lambda: next(_ids))
    again = decide_window_txn(txn, "shake", 0, 5400, lambda e, b: [("@sh1:x", "@bj1:x")], lambda: next(_ids))
    assert first == again
    assert first["@sh1:x"].partner == "@sh2:x" and first["@bj1:x"].partner == "@bj2:x"  # type: ignore[union-attr]
    assert first["@lone:x"] is None
    # An entry made after the decision (a late clock) goes into the next window.
    assert enter_windows_txn(txn, "shake", [Entry("@late:x", None, 0)], 5000, 5500, FREE) == [5000]


def test_held_people_are_out_of_every_pool_until_restored_and_a_ban_forgets_them() -> None:
    txn = _txn()
    for user in ("@a:x", "@b:x", "@c:x"):
        _person(txn, user)
    assert throw_txn(txn, "@b:x", next(_ids), "from b", 5, 1000, 10, FREE) is None
    report_id = next(_ids)
    assert report_txn(txn, "@a:x", "@b:x", "rude", report_id, 1100, FREE) is None
    assert _nearby(txn, "@c:x") == {"@a:x": "< 1 km"}
    assert pick_candidates_txn(txn, "@c:x", 0, 1200, 10, FREE) == []
    assert resolve_txn(txn, report_id, "@admin:x", "restore", 1300).report.state == "restored"  # type: ignore[union-attr]
    assert resolve_txn(txn, report_id, "@admin:x", "ban", 1300).outcome == "resolved"
    assert _nearby(txn, "@c:x") == {"@a:x": "< 1 km", "@b:x": "< 1 km"}
    assert _nearby(txn, "@a:x") == {"@c:x": "< 1 km"}  # the reporter blocked them too
    second = next(_ids)
    report_txn(txn, "@c:x", "@b:x", "spam", second, 1400, FREE)
    assert resolve_txn(txn, second, "@admin:x", "ban", 1500).report.state == "banned"  # type: ignore[union-attr]
    assert put_profile_txn(txn, "@b:x", {}, "b", 1600, FREE) == "banned"
    assert {t for t, _ in _rows(txn, "@b:x")} <= {"wangxin_discovery_blocks", "wangxin_discovery_reports",
                                                 "wangxin_discovery_standing", "wangxin_discovery_rates",
                                                 "wangxin_discovery_daily"}


def test_a_bottle_is_picked_once_never_by_its_thrower_and_replied_to_once() -> None:
    txn = _txn()
    for user in ("@a:x", "@b:x", "@c:x"):
        _person(txn, user, None)
    bottle = next(_ids)
    throw_txn(txn, "@a:x", bottle, "hello sea", 5, 1000, 10, FREE)
    assert pick_candidates_txn(txn, "@a:x", 0, 1100, 10, FREE) == []
    (candidate,) = pick_candidates_txn(txn, "@b:x", 2**61, 1100, 10, FREE)  # type: ignore[misc]
    assert (candidate.bottle_id, candidate.thrower, candidate.text) == (bottle, "@a:x", "hello sea")
    assert claim_bottle_txn(txn, "@b:x", bottle, 1200, 10) is True
    assert claim_bottle_txn(txn, "@c:x", bottle, 1200, 10) is False
    assert pick_candidates_txn(txn, "@c:x", 0, 1300, 10, FREE) == []
    assert reply_txn(txn, "@c:x", bottle, "me?", 1400, next(_ids), FREE).not_found  # type: ignore[union-attr]
    rid = next(_ids)
    reply = reply_txn(txn, "@b:x", bottle, "hi thrower", 1400, rid, FREE)
    assert not isinstance(reply, Limited) and (reply.request_id, reply.thrower) == (rid, "@a:x")
    assert reply_txn(txn, "@b:x", bottle, "again", 1500, next(_ids), FREE).replied  # type: ignore[union-attr]
    ((request, name),) = open_requests_txn(txn, "@a:x", 1600, HOUR)
    assert (request.kind, request.sender, request.text, name) == ("bottle", "@b:x", "hi thrower", "b:")


def test_daily_and_rate_limits_refuse_without_writing() -> None:
    txn = _txn()
    _person(txn, "@a:x")
    for n in range(3):
        assert throw_txn(txn, "@a:x", next(_ids), f"b{n}", n, 1000 + n, 3, FREE) is None
    refused = throw_txn(txn, "@a:x", next(_ids), "b3", 3, 2000, 3, FREE)
    assert isinstance(refused, Limited) and refused.limit == "throws_per_day"
    assert refused.retry_after_ms == 1000 + 24 * HOUR - 2000
    txn.execute("SELECT COUNT(*) FROM wangxin_discovery_bottles")
    assert txn.fetchone()[0] == 3
    tight = RateLimit(2, 60)
    assert block_txn(txn, "@a:x", "@b:x", 5000, tight) is None
    assert block_txn(txn, "@a:x", "@c:x", 5000, tight) is None
    limited = block_txn(txn, "@a:x", "@d:x", 5000, tight)
    assert isinstance(limited, Limited) and limited.limit == "rate_limits.block" and limited.retry_after_ms == 1000
    txn.execute("SELECT COUNT(*) FROM wangxin_discovery_blocks WHERE blocked = '@d:x'")
    assert txn.fetchone()[0] == 0


def test_cleanup_deletes_expired_locations() -> None:
    txn = _txn()
    _person(txn, "@a:x")
    cleanup_txn(txn, 1000 + TTL - 1, TTL, 7 * 24 * HOUR, 72 * HOUR, 24 * HOUR)
    assert me_txn(txn, "@a:x", 1000 + TTL - 1, TTL).cell == HERE
    cleanup_txn(txn, 1000 + TTL, TTL, 7 * 24 * HOUR, 72 * HOUR, 24 * HOUR)
    txn.execute("SELECT COUNT(*) FROM wangxin_discovery_locations")
    assert txn.fetchone()[0] == 0


def test_the_callers_merchant_check_runs_in_the_same_transaction_only_when_asked() -> None:
    txn = _txn()
    _person(txn, "@shop:x")
    asked: list[list[str]] = []

    def merchants_among(t: Any, user_ids: list[str]) -> set[str]:
        assert t is txn  # the caller's own transaction, not one of its own
        asked.append(user_ids)
        return {"@shop:x"}

    assert me_txn(txn, "@shop:x", 2000, TTL).merchant is False
    assert me_txn(txn, "@shop:x", 2000, TTL, merchants_among).merchant is True
    assert me_txn(txn, "@nobody:x", 2000, TTL, merchants_among).merchant is False  # not opted in: not asked
    assert asked == [["@shop:x"]]
