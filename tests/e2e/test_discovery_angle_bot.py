"""你我36.8度 and 面对面 through the discovery bot, on real Synapse: people who only chat pair by
angle, accept, and each get their own coupon once, privately, in their chat with the bot; also
when the shop platform fails first, when the bot restarts between the accept and the platform's
answer, and for people who never wrote to the bot (apps). The face-to-face queue by chat.

The test stacks decide angles in 1.5 s windows and retry coupons after 0.3 s, 0.6 s, 1.2 s…
(``tests/harness/stack.py``); the platform is ``tests/harness/fake_coupons.py``.
"""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import pytest
from nio import SyncResponse

from synapse_modules.discovery.config import DiscoveryConfig
from tests.e2e.test_discovery import D, module_config, person
from tests.e2e.test_discovery_angle import accept_both, issued, pair_by_angle
from tests.e2e.test_discovery_bot import Chatter, bot_of
from tests.harness.fake_coupons import FakeCouponPlatform
from tests.harness.http import eventually, q, timeline
from tests.harness.matrix import client_for
from tests.harness.stack import RunningStack


@pytest.fixture
def chatters(stack: RunningStack) -> Iterator[list[Chatter]]:
    made: list[Chatter] = []
    yield made
    for c in made:
        c.user.raw("PUT", f"{D}/profile", {"enabled": False})


def chatter(stack: RunningStack, chatters: list[Chatter]) -> Chatter:
    made = Chatter(stack)
    made.opt_in()
    chatters.append(made)
    return made


def _angle_both(stack: RunningStack, a: Chatter, b: Chatter, angles: tuple[str, str] = ("36.8", "36.7")
                ) -> tuple[str, str]:
    """Both send their angle early in an angle window, so that both land in one window."""
    window_ms = DiscoveryConfig.from_dict(module_config(stack)).angle.window_ms
    while not 20 <= time.time() * 1000 % window_ms <= window_ms / 5:
        time.sleep(0.005)
    with ThreadPoolExecutor(2) as pool:
        answers = list(pool.map(lambda ca: ca[0].ask(f"angle {ca[1]}"), ((a, angles[0]), (b, angles[1]))))
    return answers[0], answers[1]


def pair_chatters(stack: RunningStack, a: Chatter, b: Chatter) -> None:
    for _ in range(4):  # an angle that straddles a window's end pairs nobody: try again
        first, second = _angle_both(stack, a, b)
        if "pairing matched you" in first and "pairing matched you" in second:
            assert b.user_id in first and a.user_id in second and "“accept 1”" in first
            return
        assert "Nobody else was at that angle" in first or "Nobody else was at that angle" in second, (first, second)
    raise AssertionError("four tries in a row straddled a window's end")


def coupon_notices(c: Chatter, code: str) -> list[str]:
    return [n for n in c.notices() if code in n]


def code_of(c: Chatter) -> str:
    coupon = eventually(lambda: next((x for x in c.user.call("GET", f"{D}/coupons")["coupons"]
                                      if x["state"] == "issued"), None), timeout=60)
    return str(coupon["code"])


def told_once(c: Chatter, code: str) -> str:
    """The coupon's notice, once it is in the chat; then, after a later answer of the bot (a
    round trip through it), still only once."""
    notice = c.wait_notice("Code: " + code, timeout=90)
    assert "Only you see it" in notice
    assert "coupons, newest first" in c.ask("coupons")
    assert len(coupon_notices(c, code)) == 1, c.notices()
    return notice


async def test_people_chatting_pair_by_angle_and_each_get_their_own_coupon_once(
        stack: RunningStack, chatters: list[Chatter], coupon_platform: FakeCouponPlatform) -> None:
    a, b = chatter(stack, chatters), chatter(stack, chatters)
    pair_chatters(stack, a, b)
    assert "opens when they accept too" in a.ask("accept 1")
    b.wait_notice(a.user_id, "accepted your 36.8° pairing")
    answer = b.ask("accept 1")
    assert "have a direct chat now" in answer and "being asked of the shop" in answer
    code_a, code_b = code_of(a), code_of(b)
    assert code_a != code_b
    told_once(a, code_a)
    told_once(b, code_b)
    # Each code is in its owner's chat with the bot only: not in the other's, not in the pair's chat.
    assert not coupon_notices(a, code_b) and not coupon_notices(b, code_a)
    room_id = answer.split("https://matrix.to/#/")[1].split()[0]
    shared = " ".join(str(e.get("content")) for e in timeline(a.user, room_id))
    assert code_a not in shared and code_b not in shared
    (asked,) = coupon_platform.requests_for(a.user_id)
    assert asked["signed"]
    # A matrix-nio client's /sync carries the coupon in the person's chat with the bot.
    client = await client_for(stack.url, a.user.info)
    try:
        synced = await client.sync(timeout=0, full_state=True,
                                   sync_filter={"room": {"timeline": {"limit": 50}}})
        assert isinstance(synced, SyncResponse), synced
        bodies = [getattr(e, "body", "") for e in synced.rooms.join[a.room_id].timeline.events]
        # The notice once (the answer to "coupons" lists the code too), never the partner's code.
        assert sum(code_a in b and "Only you see it" in b for b in bodies) == 1
        assert not any(code_b in b for b in bodies)
    finally:
        await client.close()


def test_a_platform_failing_twice_still_gives_each_their_coupon_once(
        stack: RunningStack, chatters: list[Chatter], coupon_platform: FakeCouponPlatform) -> None:
    a, b = chatter(stack, chatters), chatter(stack, chatters)
    coupon_platform.fail_next(a.user_id, "503", "503")
    pair_chatters(stack, a, b)
    a.ask("accept 1")
    b.ask("accept 1")
    for c in (a, b):
        told_once(c, code_of(c))
        # "On its way" is told only if the bot read the delay before the coupon came; never twice.
        assert len([n for n in c.notices() if "is on its way" in n]) <= 1
    assert [r["status"] for r in coupon_platform.requests_for(a.user_id)] == ["503", "503", 200]


def test_while_the_platform_is_down_both_are_told_their_coupon_is_on_its_way(
        stack: RunningStack, chatters: list[Chatter], coupon_platform: FakeCouponPlatform) -> None:
    a, b = chatter(stack, chatters), chatter(stack, chatters)
    coupon_platform.hold(a.user_id)
    try:
        pair_chatters(stack, a, b)
        a.ask("accept 1")
        b.ask("accept 1")
        for c in (a, b):
            c.wait_notice("is on its way", timeout=90)
    finally:
        coupon_platform.release(a.user_id)
    for c in (a, b):
        told_once(c, code_of(c))
        assert len([n for n in c.notices() if "is on its way" in n]) == 1


def _restart_bot(stack: RunningStack) -> None:
    old = stack.reload_info()["processes"]["discovery-bot"]
    os.kill(old, signal.SIGKILL)

    def restarted() -> bool:
        pid = stack.reload_info()["processes"].get("discovery-bot")
        return bool(pid and pid != old)

    eventually(restarted, timeout=60, interval=0.2)


def test_a_bot_restart_between_the_accept_and_the_answer_loses_and_repeats_nothing(
        stack: RunningStack, chatters: list[Chatter], coupon_platform: FakeCouponPlatform) -> None:
    a, b = chatter(stack, chatters), chatter(stack, chatters)
    # The platform fails three times (answers come after 0.3 + 0.6 + 1.2 s of back-off): the bot
    # is killed at the accept, and the coupons are issued while it is down or starting again.
    coupon_platform.fail_next(a.user_id, "503", "503", "503")
    pair_chatters(stack, a, b)
    a.ask("accept 1")
    b.ask("accept 1")
    _restart_bot(stack)
    for c in (a, b):
        told_once(c, code_of(c))
        assert len([n for n in c.notices() if "is on its way" in n]) <= 1


def test_someone_on_an_app_gets_their_coupon_in_a_chat_the_bot_opens(
        stack: RunningStack, chatters: list[Chatter]) -> None:
    a = person(stack, None)
    b = chatter(stack, chatters)
    since = [a.call("GET", "/_matrix/client/v3/sync", timeout=0)["next_batch"]]
    request_id = pair_by_angle(stack, a, b.user)
    accept_both(b.user, a, request_id)
    code = eventually(lambda: issued(a, request_id), timeout=60)["code"]
    bot = bot_of(stack)

    def invited() -> str | None:
        """Incremental syncs (an initial one may be answered from Synapse's sync cache)."""
        body = a.call("GET", "/_matrix/client/v3/sync", timeout=1000, since=since[0])
        since[0] = body["next_batch"]
        return next(iter(body.get("rooms", {}).get("invite", {})), None)

    room_id = str(eventually(invited, timeout=60, interval=0.3))
    a.join(room_id)
    members = a.call("GET", f"/_matrix/client/v3/rooms/{q(room_id)}/joined_members")["joined"]
    assert set(members) == {a.user_id, bot}

    def told() -> list[str]:
        return [str(e["content"].get("body")) for e in timeline(a, room_id)
                if e["sender"] == bot and code in str(e["content"].get("body"))]

    assert len(eventually(told, timeout=60)) == 1


def test_face_to_face_by_chat_pairs_two_waiting_people(stack: RunningStack, chatters: list[Chatter]) -> None:
    a, b = chatter(stack, chatters), chatter(stack, chatters)
    waiting = a.ask("video")
    assert "face-to-face queue until" in waiting
    paired = b.ask("video")
    assert "Face to face: you are paired with" in paired and a.user_id in paired
    a.wait_notice(b.user_id, "wants to meet face to face")
    a.ask("accept 1")
    answer = b.ask("accept 1")
    assert "have a direct chat now" in answer and "video call" in answer
    assert "You were not in the face-to-face queue" in a.ask("video stop")


@pytest.mark.parametrize(("words", "said"), [
    ("angle abc", "is not a number of degrees"),
    ("angle 200", "between 0 and 180 degrees"),
    ("angle nan", "finite number"),
    ("angle", "Usage: “angle <degrees>”"),
])
def test_a_bad_angle_gets_a_plain_sentence(stack: RunningStack, chatters: list[Chatter], words: str,
                                           said: str) -> None:
    c = chatter(stack, chatters)
    assert said in c.ask(words)
    assert c.user.call("GET", f"{D}/requests")["requests"] == []


def test_angle_needs_discovery_on(stack: RunningStack) -> None:
    c = Chatter(stack)
    assert "discover on" in c.ask("angle 36.8")
