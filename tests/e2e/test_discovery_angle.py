"""你我36.8度 and 面对面 on real Synapse, over HTTP (the discovery bot's side is in
test_discovery_angle_bot.py): pairing by angle and window, requests on both sides, the coupon
asked of the shop platform once per pairing (a local fake platform that checks signatures:
``tests/harness/fake_coupons.py``), retried when it fails, and the face-to-face queue.

The test stacks decide angles in 1.5 s windows, retry coupons after 0.3 s then 0.6 s, and allow
two rewarded pairings a day (``tests/harness/stack.py``).
"""

from __future__ import annotations

import json
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
import requests

from synapse_modules.discovery.config import DiscoveryConfig
from tests.e2e.test_discovery import D, error, module_config, opt_in, person, requests_of, worker_url
from tests.harness.fake_coupons import FakeCouponPlatform
from tests.harness.http import HttpUser, eventually, q
from tests.harness.matrix import client_for
from tests.harness.stack import RunningStack


def angles_together(stack: RunningStack, tries: list[tuple[HttpUser, Any]]) -> dict[str, requests.Response]:
    """Everyone sends their angle at once, early in a window (as ``shake_together``); on workers
    every other one goes to the generic worker. Answers by user id."""
    window_ms = DiscoveryConfig.from_dict(module_config(stack)).angle.window_ms  # the stack's, or the default
    while not 50 <= time.time() * 1000 % window_ms <= window_ms / 4:
        time.sleep(0.01)
    other = worker_url(stack)

    def send(n_try: tuple[int, tuple[HttpUser, Any]]) -> tuple[str, requests.Response]:
        n, (user, angle) = n_try
        base = other if other and n % 2 else stack.url
        return user.user_id, user.http.post(f"{base}{D}/angle", json={"angle": angle}, timeout=60)

    with ThreadPoolExecutor(len(tries)) as pool:
        return dict(pool.map(send, enumerate(tries)))


def pair_by_angle(stack: RunningStack, a: HttpUser, b: HttpUser) -> str:
    answers = angles_together(stack, [(a, 36.8), (b, 36.7)])
    body = answers[a.user_id].json()
    assert body["paired"] is True and body["paired_with"] == b.user_id, body
    return str(body["request_id"])


def accept_both(a: HttpUser, b: HttpUser, request_id: str) -> dict:
    first = a.call("POST", f"{D}/requests/{request_id}/accept", {})
    assert first["state"] == "waiting"
    return dict(b.call("POST", f"{D}/requests/{request_id}/accept", {}))


def coupons_of(user: HttpUser) -> list[dict]:
    return list(user.call("GET", f"{D}/coupons")["coupons"])


def issued(user: HttpUser, request_id: str) -> dict | None:
    return next((c for c in coupons_of(user) if c["pairing_id"] == request_id and c["state"] == "issued"), None)


def test_two_people_at_the_angle_in_one_window_are_paired_and_a_third_off_angle_is_not(
        stack: RunningStack) -> None:
    a, b, c = person(stack, None, name="A"), person(stack, None, name="B"), person(stack, None, name="C")
    answers = angles_together(stack, [(a, 36.8), (b, 36.65), (c, 38.0)])
    assert answers[c.user_id].json() == {"paired": False, "within_tolerance": False, "target": 36.8,
                                         "tolerance": 0.2}
    body_a, body_b = answers[a.user_id].json(), answers[b.user_id].json()
    assert body_a["paired"] and body_a["paired_with"] == b.user_id
    assert body_b["paired_with"] == a.user_id and body_b["request_id"] == body_a["request_id"]
    (request,) = requests_of(b)
    assert request["kind"] == "angle" and request["direction"] == "mutual" and request["user_id"] == a.user_id
    assert requests_of(c) == []
    # Never the same two twice a day: alone together in the next window, they are not paired.
    again = angles_together(stack, [(a, 36.8), (b, 36.8)])
    assert again[a.user_id].json() == {"paired": False} and again[b.user_id].json() == {"paired": False}


def test_both_accept_and_each_gets_their_own_coupon_once(stack: RunningStack,
                                                         coupon_platform: FakeCouponPlatform) -> None:
    a, b = person(stack, None, name="A"), person(stack, None, name="B")
    request_id = pair_by_angle(stack, a, b)
    accepted = accept_both(a, b, request_id)
    assert accepted["state"] == "accepted" and accepted["coupon"] == "requested" and accepted["room_id"]
    mine = eventually(lambda: issued(a, request_id), timeout=30)
    theirs = eventually(lambda: issued(b, request_id), timeout=30)
    answer = next(r["answer"] for r in coupon_platform.requests_for(a.user_id) if r.get("status") == 200)
    assert mine["code"] == answer[a.user_id]["code"] and theirs["code"] == answer[b.user_id]["code"]
    assert mine["code"] != theirs["code"] and mine["with"] == b.user_id
    # Nobody reads another's coupon: each sees their own only.
    assert [c["pairing_id"] for c in coupons_of(a)] == [request_id]
    (asked,) = coupon_platform.requests_for(a.user_id)
    assert asked["signed"] and asked["body"]["pairing_id"] == request_id
    assert sorted(asked["body"]["users"]) == sorted([a.user_id, b.user_id]) and asked["body"]["at"].endswith("Z")
    # The shared room is a direct chat of the two; the coupon is nowhere in it.
    room = accepted["room_id"]
    events = a.call("GET", f"/_matrix/client/v3/rooms/{q(room)}/messages", dir="b", limit=50)["chunk"]
    assert mine["code"] not in json.dumps(events)


def test_a_failing_platform_is_retried_and_the_coupon_still_comes_once(
        stack: RunningStack, coupon_platform: FakeCouponPlatform) -> None:
    a, b = person(stack, None), person(stack, None)
    coupon_platform.fail_next(a.user_id, "503", "503")
    request_id = pair_by_angle(stack, a, b)
    assert accept_both(a, b, request_id)["coupon"] == "requested"
    coupon = eventually(lambda: issued(a, request_id), timeout=60)
    attempts = coupon_platform.requests_for(a.user_id)
    assert [r["status"] for r in attempts] == ["503", "503", 200]
    assert len({json.dumps(r["body"], sort_keys=True) for r in attempts}) == 1  # the same body each time
    assert coupon["code"] == attempts[-1]["answer"][a.user_id]["code"]
    assert issued(b, request_id)


def test_a_platform_that_hangs_is_given_up_on_per_try_and_retried(
        stack: RunningStack, coupon_platform: FakeCouponPlatform) -> None:
    a, b = person(stack, None), person(stack, None)
    coupon_platform.fail_next(b.user_id, "hang")
    request_id = pair_by_angle(stack, a, b)
    accept_both(a, b, request_id)
    eventually(lambda: issued(a, request_id), timeout=60)
    assert [r["status"] for r in coupon_platform.requests_for(b.user_id)] == ["hang", 200]


def test_the_daily_limit_of_rewarded_pairings_holds(stack: RunningStack) -> None:
    farmer = person(stack, None)
    per_day = DiscoveryConfig.from_dict(module_config(stack)).coupons.rewards_per_day
    outcomes = []
    for _ in range(per_day + 1):
        partner = person(stack, None)
        request_id = pair_by_angle(stack, farmer, partner)
        outcomes.append(accept_both(partner, farmer, request_id)["coupon"])
        _wait_issued(partner, request_id)
    assert outcomes == ["requested"] * per_day + ["not_rewarded"]
    states = [(c["state"], c.get("reason")) for c in coupons_of(farmer)]
    assert states[0] == ("none", "daily_limit") and states[1:] == [("issued", None)] * per_day


@pytest.mark.parametrize(("body", "status", "errcode", "field"), [
    ('{"angle": "36.8"}', 400, "M_BAD_JSON", "angle"),
    ('{"angle": NaN}', 400, "M_BAD_JSON", "angle"),
    ('{"angle": 180.5}', 400, "M_INVALID_PARAM", "angle"),
    ('{"angle": -1}', 400, "M_INVALID_PARAM", "angle"),
    ('{}', 400, "M_BAD_JSON", "angle"),
    ('{"angle": 36.8, "tilt": 1}', 400, "M_BAD_JSON", "tilt"),
])
def test_a_bad_angle_is_400_naming_the_field(stack: RunningStack, body: str, status: int, errcode: str,
                                             field: str) -> None:
    user = person(stack, None)
    r = user.http.post(f"{stack.url}{D}/angle", data=body, headers={"Content-Type": "application/json"}, timeout=30)
    assert error(r)[:2] == (status, errcode) and f"'{field}'" in error(r)[2]
    assert requests_of(user) == []


def test_angle_and_video_need_discovery_on(stack: RunningStack) -> None:
    stranger = HttpUser(stack)
    for path, body in (("/angle", {"angle": 36.8}), ("/video", {})):
        status, errcode, message = error(stranger.raw("POST", f"{D}{path}", body))
        assert (status, errcode) == (403, "M_FORBIDDEN") and "profile" in message
    assert stranger.call("GET", f"{D}/video") == {"state": "none"}
    assert stranger.call("GET", f"{D}/coupons") == {"coupons": []}
    # The feed of everyone's coupons is the discovery bot's alone.
    assert error(stranger.raw("GET", f"{D}/coupons/changes"))[:2] == (403, "M_FORBIDDEN")


async def test_the_video_queue_pairs_two_waiting_people_and_accepting_makes_a_call_room(
        stack: RunningStack) -> None:
    a, b, c = person(stack, None), person(stack, None), person(stack, None)
    waiting = a.call("POST", f"{D}/video", {"language": "zh"})
    assert waiting["state"] == "waiting" and waiting["expires_ts"] > time.time() * 1000
    assert a.call("GET", f"{D}/video")["state"] == "waiting"
    assert c.call("POST", f"{D}/video", {"language": "en"})["state"] == "waiting"  # another language
    paired = b.call("POST", f"{D}/video", {})
    assert paired["state"] == "paired" and paired["paired_with"] == a.user_id
    assert a.call("GET", f"{D}/video") == {"state": "none"}
    (request,) = requests_of(a)
    assert request["kind"] == "video" and request["user_id"] == b.user_id
    assert c.call("DELETE", f"{D}/video") == {"state": "left"} and c.call("GET", f"{D}/video") == {"state": "none"}
    room_id = accept_both(a, b, paired["request_id"])["room_id"]
    client = await client_for(stack.url, a.info)
    try:
        state = await client.room_get_state_event(room_id, "org.wangxin.discovery")
        assert getattr(state, "content", {}) == {"kind": "video", "request_id": paired["request_id"], "call": "video"}
    finally:
        await client.close()
    # A bad language is refused, naming the field, and nobody is queued.
    assert error(c.raw("POST", f"{D}/video", {"language": "Chinese"}))[:2] == (400, "M_INVALID_PARAM")
    assert c.call("GET", f"{D}/video") == {"state": "none"}


def _wait_issued(user: HttpUser, request_id: str) -> dict:
    return dict(eventually(lambda: issued(user, request_id), timeout=30))


def test_turning_discovery_off_leaves_the_video_queue(stack: RunningStack) -> None:
    a = person(stack, None)
    assert a.call("POST", f"{D}/video", {})["state"] == "waiting"
    opt_in(a, enabled=False)
    assert a.call("GET", f"{D}/video") == {"state": "none"}
