"""你我36.8度, 面对面 and coupons through the store's SQL on a real SQLite database, and the coupon
protocol (signature, strict answers, back-off). The same SQL runs on PostgreSQL in the
end-to-end tests (tests/e2e/test_discovery_angle.py)."""

from __future__ import annotations

import json
from typing import Any

import pytest

from synapse_modules.discovery.config import AngleConfig, DiscoveryConfig
from synapse_modules.discovery.coupon_protocol import (
    BadAnswer,
    parse_answer,
    request_body,
    retry_delay_ms,
    signature,
    signature_matches,
)
from synapse_modules.discovery.module import pair_angles
from synapse_modules.discovery.rules import DAY_MS
from synapse_modules.discovery.store.coupons import (
    Coupon,
    claim_job_txn,
    coupon_changes_txn,
    finish_pairing_txn,
    own_coupons_txn,
    record_answer_txn,
    record_failure_txn,
)
from synapse_modules.discovery.store.people import block_txn, opt_out_txn
from synapse_modules.discovery.store.requests import answer_txn
from synapse_modules.discovery.store.video import join_video_txn, leave_video_txn, video_state_txn
from synapse_modules.discovery.store.windows import Entry, decide_window_txn, enter_windows_txn
from tests.unit.test_discovery_store import FREE, HOUR, _ids, _person, _txn

A, B, C = "@a:x", "@b:x", "@c:x"


def _angle_window(txn: Any, users: list[str], start: int, now: int) -> dict[str, Any]:
    enter_windows_txn(txn, "angle", [Entry(u, None, start) for u in users], 3000, start + 10, FREE)
    return decide_window_txn(txn, "angle", start, now, pair_angles, lambda: next(_ids), DAY_MS)


def test_the_angle_tolerance_includes_its_edges_only() -> None:
    angle = AngleConfig()
    assert angle.matches(36.8) and angle.matches(36.6) and angle.matches(37.0)
    assert not angle.matches(37.01) and not angle.matches(36.59) and not angle.matches(0)


def test_the_same_two_are_not_paired_twice_in_a_day_nor_when_blocked() -> None:
    txn = _txn()
    for u in (A, B, C):
        _person(txn, u, None)
    first = _angle_window(txn, [A, B], 0, 3500)
    assert first[A].partner == B and first[B].partner == A
    # The next window: A and B again, alone: no pairing; with C, one of them pairs with C.
    assert _angle_window(txn, [A, B], 3000, 6500) == {A: None, B: None}
    third = _angle_window(txn, [A, B, C], 6000, 9500)
    paired = {u for u, p in third.items() if p}
    assert C in paired and len(paired) == 2 and {third[C].partner} <= {A, B}
    # A day later the first two may meet again.
    assert _angle_window(txn, [A, B], DAY_MS + 3000, DAY_MS + 6500)[A].partner == B
    block_txn(txn, A, B, DAY_MS + 7000, FREE)
    assert _angle_window(txn, [A, B], 3 * DAY_MS, 3 * DAY_MS + 3500) == {A: None, B: None}


def _accepted_pairing(txn: Any, now: int, per_day: int = 3, users: tuple[str, str] = (A, B)) -> tuple[str, list[str]]:
    window = (now // 3000) * 3000
    decision = _angle_window(txn, list(users), window, window + 3500)
    rid = decision[users[0]].request_id
    answer_txn(txn, rid, users[0], True, window + 3600, HOUR, FREE)
    assert answer_txn(txn, rid, users[1], True, window + 3700, HOUR, FREE).outcome == "make_room"
    return rid, finish_pairing_txn(txn, rid, "!room", users, window + 3800, per_day)


def test_an_accepted_pairing_asks_for_both_coupons_once_and_records_the_answer_once() -> None:
    txn = _txn()
    for u in (A, B):
        _person(txn, u, None)
    rid, rewarded = _accepted_pairing(txn, 0)
    assert rewarded == [A, B]
    (job,) = claim_job_txn(txn, None, 4000, 30_000, 10)
    assert job.pairing_id == rid and job.users == (A, B) and job.attempts == 0
    assert claim_job_txn(txn, None, 4001, 30_000, 10) == []  # held by the first claimer
    record_failure_txn(txn, rid, "HTTP 503", 4100, 5100)
    assert [c.state for c in own_coupons_txn(txn, A, 4200)] == ["delayed"]
    assert claim_job_txn(txn, None, 5000, 30_000, 10) == []  # not due yet
    (job,) = claim_job_txn(txn, None, 5100, 30_000, 10)
    assert job.attempts == 1
    # A coupon for someone not in the pairing is not even passed on (parse_answer); the store
    # records what it is given once.
    assert record_answer_txn(txn, rid, {A: Coupon("A-1", "10% off"), B: Coupon("B-1", "10% off", "2027-01-01")}, 5200)
    assert not record_answer_txn(txn, rid, {A: Coupon("A-2", "forged")}, 5300)
    mine = own_coupons_txn(txn, A, 5400)
    assert [(c.state, c.code, c.partner) for c in mine] == [("issued", "A-1", B)]
    assert own_coupons_txn(txn, B, 5400)[0].expires_at == "2027-01-01"
    assert claim_job_txn(txn, rid, 6000, 30_000, 1) == []  # done
    changes = coupon_changes_txn(txn, 0, (), 10_000, 100)
    assert [(c.user_id, c.state) for c in changes] == [(A, "issued"), (B, "issued")]
    assert coupon_changes_txn(txn, changes[0].updated_ts, (rid, A), 10_000, 100)[0].user_id == B


def test_the_daily_limit_leaves_the_farmer_without_a_coupon_but_not_their_partner() -> None:
    txn = _txn()
    partners = [f"@p{i}:x" for i in range(3)]
    for u in (A, *partners):
        _person(txn, u, None)
    rewarded = [_accepted_pairing(txn, 10_000 * i, per_day=2, users=(A, p))[1] for i, p in enumerate(partners)]
    assert rewarded == [[A, partners[0]], [A, partners[1]], [partners[2]]]
    states = {(c.partner, c.state, c.reason) for c in own_coupons_txn(txn, A, 40_000)}
    assert (partners[2], "none", "daily_limit") in states


def test_giving_up_tells_both_there_is_no_coupon() -> None:
    txn = _txn()
    for u in (A, B):
        _person(txn, u, None)
    rid, _ = _accepted_pairing(txn, 0)
    record_failure_txn(txn, rid, "timeout", 5000, None)
    assert {(c.state, c.reason) for c in own_coupons_txn(txn, A, 6000)} == {("none", "gave_up")}
    assert claim_job_txn(txn, None, 10**9, 30_000, 10) == []


def test_the_video_queue_pairs_the_longest_waiting_compatible_person() -> None:
    txn = _txn()
    for u in (A, B, C, "@d:x"):
        _person(txn, u, None)
    ttl = 600_000
    assert join_video_txn(txn, A, "wtw3", "zh", 1000, ttl, FREE, "r1").expires_ts == 1000 + ttl
    assert join_video_txn(txn, B, "wx4g", None, 1100, ttl, FREE, "r2").partner is None  # another region
    assert join_video_txn(txn, C, None, "en", 1200, ttl, FREE, "r3").partner == B  # A speaks zh; B gave none
    assert video_state_txn(txn, B, 1300) is None and video_state_txn(txn, A, 1300) == 1000 + ttl
    block_txn(txn, "@d:x", A, 1400, FREE)
    assert join_video_txn(txn, "@d:x", None, None, 1500, ttl, FREE, "r4").partner is None
    assert leave_video_txn(txn, A) and video_state_txn(txn, A, 1600) is None
    opt_out_txn(txn, "@d:x", 1700, FREE)
    assert video_state_txn(txn, "@d:x", 1800) is None
    # B and C were paired today: they do not meet face to face again.
    assert join_video_txn(txn, B, None, None, 2000, ttl, FREE, "r5").partner is None
    assert join_video_txn(txn, C, None, None, 2100, ttl, FREE, "r6").partner is None


def test_the_request_is_signed_over_its_exact_bytes_and_stays_the_same_on_retries() -> None:
    body = request_body("p1", [A, B], 1_765_000_000_000)
    assert json.loads(body) == {"pairing_id": "p1", "users": [A, B], "at": "2025-12-06T05:46:40.000Z"}
    assert body == request_body("p1", [A, B], 1_765_000_000_000)
    sig = signature(body, "s" * 32)
    assert sig.startswith("sha256=") and signature_matches(body, "s" * 32, sig)
    assert not signature_matches(body + b" ", "s" * 32, sig) and not signature_matches(body, "t" * 32, sig)
    assert not signature_matches(body, "s" * 32, None)


@pytest.mark.parametrize("raw", [b"nope", b"[]", b'{"coupons": []}', b'{"coupons": {"@a:x": "A-1"}}',
                                 b'{"coupons": {"@a:x": {"code": "", "title": "t"}}}',
                                 b'{"coupons": {"@a:x": {"code": "c"}}}'])
def test_an_answer_not_of_the_protocols_shape_is_a_failure(raw: bytes) -> None:
    with pytest.raises(BadAnswer):
        parse_answer(raw, [A, B])


def test_an_answer_gives_coupons_only_to_the_people_asked_for() -> None:
    raw = json.dumps({"coupons": {A: {"code": "A-1", "title": "Tea"}, C: {"code": "C-1", "title": "Tea"}}}).encode()
    assert parse_answer(raw, [A, B]) == {A: Coupon("A-1", "Tea")}


def test_retries_back_off_doubling_to_the_maximum() -> None:
    assert [retry_delay_ms(n, 1000, 5000) for n in (1, 2, 3, 4, 10)] == [1000, 2000, 4000, 5000, 5000]


def test_the_options_name_their_path() -> None:
    with pytest.raises(Exception) as e:
        DiscoveryConfig.from_dict({"coupons": {"url": "https://shop.example/coupons", "secret": "short"}})
    assert getattr(e.value, "path", None) == ("coupons", "secret")
    with pytest.raises(Exception) as e:
        DiscoveryConfig.from_dict({"angle": {"tolerance": -1}})
    assert getattr(e.value, "path", None) == ("angle", "tolerance")


def test_a_feeds_cursor_never_passes_a_change_that_may_still_be_committing() -> None:
    from synapse_modules.discovery.http import CHANGES_SETTLE_MS, _next_cursor

    now = 100_000
    settled = now - CHANGES_SETTLE_MS
    # A page that is not full: everything written so far was read; the unsettled tail is read again.
    assert _next_cursor(50_000, now, False, 99_999, "r9") == f"{settled + 1}."
    # A full page ending in settled changes: after its last one.
    assert _next_cursor(50_000, now, True, settled, "r5") == f"{settled}.r5"
    # A full page ending among unsettled changes: not past the settled time.
    assert _next_cursor(50_000, now, True, settled + 5, "r7") == f"{settled + 1}."
    # Never backwards.
    assert _next_cursor(settled + 500, now, False, None, None) == f"{settled + 500}."
