"""The discovery bot's side of 你我36.8度, 面对面 and coupons (issue 23): the ``angle``, ``video``,
``video stop`` and ``coupons`` commands through the real registry and dispatcher, the notices of
the new pairing kinds, the coupon texts, the feed of coupons told exactly once (also across a
restart), and the private chat a coupon goes to. The discovery module is a fake object here
(it answers as docs/discovery.md and the module's contract say); the end-to-end tests run the
real one."""

from __future__ import annotations

import math
from typing import Any

import pytest
from nio import RoomCreateError, RoomCreateResponse, RoomGetStateError, RoomGetStateResponse

from bots.discovery.api import ApiError
from bots.discovery.bot import discovery_commands
from bots.discovery.commands import COUPON_REQUESTED, DiscoveryServices
from bots.discovery.coupon_notices import CURSOR, MAX_TRIES, CouponNotifier, coupon_seed
from bots.discovery.coupon_text import coupon_notice_text, coupons_text, expiry_text
from bots.discovery.memory import BotMemory
from bots.discovery.notices import Notifier, ReadAgain
from bots.discovery.private import OPENED, PrivateChats
from bots.discovery.text import VIDEO_CALL_HINT, parse_angle, plain_error, requests_text
from wangxin_common.commands import Dispatcher, Message

NOW = 1_700_000_000_000  # 22:13 UTC
ME = "@me:x"

# -- what people type ------------------------------------------------------------------------------


def test_angles_as_people_type_them() -> None:
    for typed in ("36.8", "36.8°", "36,8", "36.8度", "36.8 °", "36.8 degrees", "+36.8", " 36.80 "):
        assert parse_angle(typed) == 36.8, typed
    assert parse_angle("200") == 200.0 and parse_angle("-1") == -1.0  # for the server to refuse by name
    nan = parse_angle("nan")
    assert nan is not None and math.isnan(nan)
    assert parse_angle("inf") == math.inf
    for bad in ("abc", "", "36.8.1", "1,2,3", "36,8.1", "0x24", "३६", "36.8%", "°"):
        assert parse_angle(bad) is None, bad


# -- the commands, against a fake module -----------------------------------------------------------


class FakeModule:
    """Answers as the discovery module does (the contract of issue 23), for one person."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, Any]] = []
        self.opted_in = True
        self.angle_answer: dict[str, Any] = {"paired": False}
        self.video_answer: dict[str, Any] = {"state": "waiting", "expires_ts": NOW + 600_000}
        self.video_state: dict[str, Any] = {"state": "none"}
        self.open: list[dict[str, Any]] = []
        self.accept_answer: dict[str, Any] = {}
        self.coupon_list: list[dict[str, Any]] = []

    def _check(self) -> None:
        if not self.opted_in:
            raise ApiError(403, "M_FORBIDDEN", 'Discovery is off for you: turn it on with PUT /x/profile')

    async def angle(self, user_id: str, degrees: float) -> dict[str, Any]:
        self.calls.append(("angle", degrees))
        if not math.isfinite(degrees):
            raise ApiError(400, "M_INVALID_PARAM", "'angle' must be a finite number")
        if not 0 <= degrees <= 180:
            raise ApiError(400, "M_INVALID_PARAM", "'angle' must be between 0 and 180 degrees")
        self._check()
        return self.angle_answer

    async def join_video(self, user_id: str, language: str | None = None) -> dict[str, Any]:
        self.calls.append(("join_video", language))
        self._check()
        return self.video_answer

    async def leave_video(self, user_id: str) -> dict[str, Any]:
        self.calls.append(("leave_video", None))
        return {"state": "left"}

    async def video(self, user_id: str) -> dict[str, Any]:
        self.calls.append(("video", None))
        return self.video_state

    async def coupons(self, user_id: str) -> list[dict[str, Any]]:
        self.calls.append(("coupons", None))
        self._check()
        return self.coupon_list

    async def requests(self, user_id: str) -> list[dict[str, Any]]:
        return self.open

    async def answer(self, user_id: str, request_id: str, accept: bool) -> dict[str, Any]:
        self.calls.append(("answer", (request_id, accept)))
        return self.accept_answer


@pytest.fixture
def memory(tmp_path):
    m = BotMemory(str(tmp_path))
    yield m
    m.close()


def _pairing(rid: str, kind: str, user: str = "@ann:x", name: str = "Ann") -> dict[str, Any]:
    return {"request_id": rid, "kind": kind, "direction": "mutual", "user_id": user, "display_name": name,
            "accepted_by_you": False, "accepted_by_them": False, "created_ts": NOW}


class Bot:
    """The bot's registry and dispatcher around a fake module: ``say`` a command, get the answer."""

    def __init__(self, module: FakeModule, memory: BotMemory):
        self.module, self.memory = module, memory
        services = DiscoveryServices(module, memory, "x", None, lambda: NOW)  # type: ignore[arg-type]
        self.answers: list[str] = []

        async def reply(message: Message, text: str) -> None:
            self.answers.append(text)

        self.dispatcher = Dispatcher(discovery_commands(services), reply, errors={ApiError: plain_error})

    async def say(self, body: str) -> str:
        self.answers.clear()
        await self.dispatcher.dispatch(Message("!dm:x", ME, "$e", body))
        assert len(self.answers) == 1, self.answers
        return self.answers[0]


async def test_an_angle_that_pairs_says_with_whom_and_how_to_accept(memory) -> None:
    module = FakeModule()
    module.angle_answer = {"paired": True, "request_id": "r1", "paired_with": "@ann:x"}
    module.open = [_pairing("r1", "angle")]
    bot = Bot(module, memory)
    assert await bot.say("angle 36.8°") == (
        "Your 36.8° pairing matched you with Ann (@ann:x)! The chat opens when you both accept, and then each of "
        "you gets a coupon from the shop, here (within the daily limit). Send “accept 1” to open a chat with "
        "them, or “decline 1”.")
    assert module.calls == [("angle", 36.8)]
    assert memory.was_told(ME, "r1", "new")  # the answer was the news: no notice follows


async def test_an_angle_that_pairs_nobody_or_misses_the_target(memory) -> None:
    module = FakeModule()
    bot = Bot(module, memory)
    assert await bot.say("angle 36.7") == (
        "Nobody else was at that angle at the same moment. Try again in a little while.")
    module.angle_answer = {"paired": False, "within_tolerance": False}
    assert await bot.say("angle 40") == (
        "40° is not close enough: the target is 36.8°. Nobody is paired outside it; try again at 36.8°.")
    module.angle_answer = {"paired": False, "within_tolerance": False, "target": 45, "tolerance": 0.5}
    assert await bot.say("angle 36,8") == (
        "36.8° is not close enough: the target is 45° (±0.5°). Nobody is paired outside it; try again at 45°.")


async def test_bad_angles_get_a_plain_sentence(memory) -> None:
    module = FakeModule()
    bot = Bot(module, memory)
    assert (await bot.say("angle abc")).startswith("“abc” is not a number of degrees. Usage: “angle <degrees>”")
    assert (await bot.say("angle")).startswith("Usage: “angle <degrees>”, e.g. “angle 36.8”")
    assert module.calls == []  # neither reached the server
    assert await bot.say("angle nan") == "The angle must be a finite number."
    assert await bot.say("angle 200") == "The angle must be between 0 and 180 degrees."
    module.opted_in = False
    assert await bot.say("angle 36.8") == "Discovery is off for you: send “discover on” to turn it on."
    module.calls.clear()
    long = "x" * 500
    answer = await bot.say(f"angle {long}\u202e")
    assert "\u202e" not in answer and len(answer) < 400 and module.calls == []


async def test_the_video_queue_says_until_when_or_with_whom(memory) -> None:
    module = FakeModule()
    bot = Bot(module, memory)
    assert await bot.say("video") == (
        "You are in the face-to-face queue until 22:23 UTC (10 min). When someone else joins it, you are paired "
        "and I tell you here; the chat for your video call opens when you both accept. Send “video” again to "
        "stay longer, or “video stop” to leave.")
    await bot.say("video ZH")
    assert module.calls == [("join_video", None), ("join_video", "zh")]
    module.video_answer = {"state": "paired", "paired_with": "@bo:x", "request_id": "v1"}
    module.open = [_pairing("v9", "video", "@old:x"), _pairing("v1", "video", "@bo:x", "Bo")]
    assert await bot.say("video") == (
        "Face to face: you are paired with Bo (@bo:x)! The chat for your video call opens when you both accept. "
        "Send “accept 1” to open a chat with them, or “decline 1”.")
    assert memory.was_told(ME, "v1", "new")
    assert (await bot.say("video zh en")).startswith("Usage: “video”")
    module.opted_in = False
    assert await bot.say("video") == "Discovery is off for you: send “discover on” to turn it on."


async def test_leaving_the_video_queue(memory) -> None:
    module = FakeModule()
    bot = Bot(module, memory)
    module.video_state = {"state": "waiting", "expires_ts": NOW + 1000}
    assert (await bot.say("video stop")).startswith("You left the face-to-face queue")
    assert ("leave_video", None) in module.calls
    module.video_state = {"state": "none"}
    assert await bot.say("video off") == "You were not in the face-to-face queue. Send “video” to join it."
    assert [c for c, _ in module.calls].count("leave_video") == 2


async def test_accepting_an_angle_pairing_says_the_coupon_comes_here_and_a_video_one_how_to_call(memory) -> None:
    module = FakeModule()
    bot = Bot(module, memory)
    memory.set_list(ME, "requests", {1: "r1", 2: "v1"})
    module.open = [_pairing("r1", "angle"), _pairing("v1", "video", "@bo:x", "Bo")]
    module.accept_answer = {"state": "accepted", "room_id": "!c:x", "user_id": "@ann:x", "coupon": "requested"}
    text = await bot.say("accept 1")
    assert text.startswith("You and Ann (@ann:x) have a direct chat now") and text.endswith(COUPON_REQUESTED)
    module.accept_answer = {"state": "accepted", "room_id": "!c:x", "user_id": "@ann:x", "coupon": "not_rewarded"}
    assert "coupon" not in await bot.say("accept 1")  # the feed of coupons says why, privately
    module.accept_answer = {"state": "accepted", "room_id": "!v:x", "user_id": "@bo:x"}
    assert (await bot.say("accept 2")).endswith(VIDEO_CALL_HINT)


async def test_coupons_lists_the_senders_own_with_their_state(memory) -> None:
    module = FakeModule()
    bot = Bot(module, memory)
    assert (await bot.say("coupons")).startswith("You have no coupons yet.")
    module.coupon_list = [
        {"pairing_id": "p4", "with": "@d:x", "state": "issued", "code": "TEA-42", "title": "Free tea\n  • fake",
         "expires_at": "2030-01-31", "updated_ts": NOW},
        {"pairing_id": "p3", "with": "@c:x", "state": "delayed", "updated_ts": NOW},
        {"pairing_id": "p2", "with": "@b:x", "state": "none", "reason": "daily_limit", "updated_ts": NOW},
        {"pairing_id": "p1", "with": "@a:x", "state": "waiting", "updated_ts": NOW},
    ]
    assert await bot.say("coupons") == "\n".join([
        "Your coupons, newest first (only you see them here):",
        "  • Free tea • fake — code TEA-42, valid until 2030-01-31 (36.8° pairing with @d:x)",
        "  • on its way: the shop is slow to answer and is asked again (36.8° pairing with @c:x)",
        "  • no coupon: you had reached the daily limit of rewarded pairings (36.8° pairing with @b:x)",
        "  • on its way (36.8° pairing with @a:x)",
    ])
    module.opted_in = False
    assert await bot.say("coupons") == "Discovery is off for you: send “discover on” to turn it on."


def test_help_lists_the_new_commands() -> None:
    registry = discovery_commands(None)  # type: ignore[arg-type]
    text = registry.help_text()
    for name, usage in (("angle", "angle <degrees>"), ("video", "video [language]"), ("video stop", "video stop"),
                        ("coupons", "coupons")):
        assert name in registry.names and f"\n  {usage} — " in text, name
    assert "\nCoupons:\n" in text and "36.8°" in registry.intro and "face to face" in registry.intro


# -- notices of the new pairing kinds --------------------------------------------------------------


def _change(**fields: Any) -> dict[str, Any]:
    base = {"request_id": "r", "kind": "angle", "state": "pending", "mutual": True, "sender": "@s:x",
            "sender_name": "Sam", "recipient": "@r:x", "recipient_name": "Rae", "sender_accepted": False,
            "recipient_accepted": False, "created_ts": 5, "updated_ts": 5, "room_id": None}
    return {**base, **fields}


class FeedApi:
    def __init__(self, page: list[dict[str, Any]], open_requests: dict[str, list[dict[str, Any]]]):
        self.page, self.open_requests = page, open_requests

    async def changes(self, since: str | None, limit: int) -> dict[str, Any]:
        page, self.page = self.page, []
        return {"changes": page, "next": "1.x"}

    async def requests(self, user_id: str) -> list[dict[str, Any]]:
        return self.open_requests.get(user_id, [])


async def _notices(memory: BotMemory, change: dict[str, Any], open_for_r: list[dict[str, Any]]) -> list[str]:
    memory.set_dm_room("@r:x", "!r:x")
    told: list[str] = []

    async def tell(room_id: str, text: str, seed: str) -> bool:
        told.append(text)
        return True

    api = FeedApi([change], {"@r:x": open_for_r})
    services = DiscoveryServices(api, memory, "x", None, lambda: NOW)  # type: ignore[arg-type]
    await Notifier(services, tell, 1.0).poll_once()
    return told


async def test_an_angle_pairing_is_told_like_a_shake(memory) -> None:
    (text,) = await _notices(memory, _change(request_id="a1"), [_pairing("a1", "angle", "@s:x", "Sam")])
    assert text.startswith("Your 36.8° pairing matched you with Sam (@s:x)! The chat opens when you both accept, "
                           "and then each of you gets a coupon from the shop, here (within the daily limit).\n"
                           "Send “accept 1”")


async def test_a_video_pairing_is_told_as_someone_who_wants_to_meet_face_to_face(memory) -> None:
    (text,) = await _notices(memory, _change(request_id="v1", kind="video"), [_pairing("v1", "video", "@s:x", "Sam")])
    assert text.startswith("Sam (@s:x) wants to meet face to face (video): the face-to-face queue paired you. "
                           "The chat for your call opens when you both accept.\nSend “accept 1”")


async def test_a_partner_who_accepted_first_and_the_open_chat(memory) -> None:
    first = _change(request_id="a2", sender_accepted=True, updated_ts=9)
    (text,) = await _notices(memory, first, [_pairing("a2", "angle", "@s:x", "Sam")])
    assert text.startswith("Sam (@s:x) accepted your 36.8° pairing: the chat opens when you accept too.")
    opened = _change(request_id="v2", kind="video", state="accepted", sender_accepted=True, recipient_accepted=True,
                     updated_ts=9, room_id="!call:x")
    told = await _notices(memory, opened, [])
    assert told == [f"You and Sam (@s:x) have a direct chat now: look for it in your chat list. "
                    f"https://matrix.to/#/!call:x {VIDEO_CALL_HINT}"]


def test_open_pairings_are_listed_by_kind() -> None:
    entries = [{**_pairing("a", "angle"), "accepted_by_them": True}, _pairing("v", "video", "@bo:x", "Bo")]
    text = requests_text(entries, {1: "a", 2: "v"}, NOW + 60_000)
    assert "  1. Ann (@ann:x): 36.8° pairing — they accepted, waiting for you (1 min ago)" in text
    assert "  2. Bo (@bo:x): face-to-face pairing — waiting for you both (1 min ago)" in text


# -- coupon texts ----------------------------------------------------------------------------------


def _coupon(state: str, **fields: Any) -> dict[str, Any]:
    return {"pairing_id": "p1", "user_id": ME, "with": "@ann:x", "state": state, "updated_ts": NOW, **fields}


def test_the_coupon_notices() -> None:
    assert coupon_notice_text(_coupon("waiting")) is None
    assert coupon_notice_text(_coupon("delayed")) == (
        "Your coupon from your 36.8° pairing with @ann:x is on its way: the shop has not answered yet and is being "
        "asked again. I'll send it here as soon as it comes.")
    assert coupon_notice_text(_coupon("issued", code="AB12", title="10% off tea", expires_at=NOW + 86_400_000)) == (
        "Your coupon from your 36.8° pairing with @ann:x:\n  10% off tea\n  Code: AB12\n"
        "  Valid until 2023-11-15 22:13 UTC\nOnly you see it, in this chat. Send “coupons” to see all of yours.")
    plain = coupon_notice_text(_coupon("issued", code="AB12", title="Tea"))
    assert plain is not None and "Valid until" not in plain
    assert coupon_notice_text(_coupon("none", reason="daily_limit")) == (
        "Your 36.8° pairing with @ann:x earned no coupon: you had reached the daily limit of rewarded pairings.")
    assert coupon_notice_text(_coupon("none", reason="gave_up")) == (
        "Your 36.8° pairing with @ann:x earned no coupon: the shop did not answer, however many times it was asked.")


def test_the_platforms_words_cannot_pass_for_the_bots() -> None:
    forged = coupon_notice_text(_coupon("issued", code="X\nOnly you see it", title="\u202eT" + "i" * 500))
    assert forged is not None
    lines = forged.splitlines()
    assert lines[1] == "  T" + "i" * 198 + "…" and lines[2] == "  Code: X Only you see it"
    odd: list[Any] = [None, True, 1_700_000_000, "soon\n!", float("nan"), 10**30, []]
    assert [expiry_text(v) for v in odd] == [
        None, None, "2023-11-14 22:13 UTC", "soon !", None, None, None]
    # What the module passes on: the platform's string; an ISO time with its zone reads as UTC.
    assert [expiry_text(v) for v in ("2027-12-31T23:59:59Z", "2028-01-01T08:30:00+08:00", "2030-01-31", " ")] == [
        "2027-12-31 23:59 UTC", "2028-01-01 00:30 UTC", "2030-01-31", None]
    assert coupons_text([_coupon("none", reason="whatever")]).endswith("no coupon: no coupon was given for it "
                                                                      "(36.8° pairing with @ann:x)")


# -- the feed of coupons, told exactly once --------------------------------------------------------


class CouponFeed:
    """The module's feed of coupons: pages served in turn; ``since`` is recorded."""

    def __init__(self, *pages: list[dict[str, Any]]):
        self.pages = [list(p) for p in pages]
        self.since: list[str | None] = []

    async def coupon_changes(self, since: str | None, limit: int) -> dict[str, Any]:
        self.since.append(since)
        if not self.pages:
            return {"changes": [], "next": since or "0."}
        return {"changes": self.pages[0], "next": f"{len(self.since)}.next"}

    def served(self) -> None:
        """The page read was the last of its changes (the next read sees the next page)."""
        self.pages.pop(0)


class Synapse:
    """What people see: messages by transaction, sent once per transaction id (as Synapse does)."""

    def __init__(self) -> None:
        self.by_txn: dict[str, tuple[str, str]] = {}
        self.fail_for: set[str] = set()

    async def tell(self, user_id: str, text: str, seed: str) -> bool:
        if user_id in self.fail_for:
            return False
        self.by_txn.setdefault(seed, (user_id, text))
        return True

    def seen_by(self, user_id: str) -> list[str]:
        return [text for who, text in self.by_txn.values() if who == user_id]


async def test_each_person_is_told_their_coupon_once(memory) -> None:
    page = [_coupon("waiting", pairing_id="p1", user_id="@a:x", **{"with": "@b:x"}),
            _coupon("delayed", pairing_id="p1", user_id="@b:x", **{"with": "@a:x"}),
            _coupon("issued", pairing_id="p2", user_id="@a:x", code="A1", title="Tea"),
            _coupon("none", pairing_id="p3", user_id="@c:x", reason="daily_limit")]
    feed, synapse = CouponFeed(page), Synapse()
    notifier = CouponNotifier(feed, memory, synapse.tell, 1.0)  # type: ignore[arg-type]
    assert await notifier.poll_once() == 4
    assert sorted(synapse.by_txn) == sorted([coupon_seed("@b:x", "p1", "delayed"), coupon_seed("@a:x", "p2", "issued"),
                                             coupon_seed("@c:x", "p3", "none")])
    assert memory.cursor(CURSOR) == "1.next"
    # The same page again (a cursor lost): nothing is sent again, not even with a new transaction id.
    sent = dict(synapse.by_txn)
    synapse.by_txn.clear()
    assert await notifier.poll_once() == 4 and synapse.by_txn == {}
    synapse.by_txn = sent
    # Later, p1's coupon comes for @b:x, and a stale "delayed" for @a:x's issued one is no news.
    feed.served()
    feed.pages.append([_coupon("issued", pairing_id="p1", user_id="@b:x", code="B1", title="Cake"),
                       _coupon("delayed", pairing_id="p2", user_id="@a:x")])
    await notifier.poll_once()
    assert feed.since == [None, "1.next", "2.next"] and memory.cursor(CURSOR) == "3.next"
    assert [t.splitlines()[2] for t in synapse.seen_by("@b:x") if "Code" in t] == ["  Code: B1"]
    assert len(synapse.seen_by("@b:x")) == 2 and len(synapse.seen_by("@a:x")) == 1


async def test_a_restart_between_sending_and_recording_sends_the_same_message_again(tmp_path) -> None:
    """The bot stops after Synapse took the coupon and before it was recorded: after the restart
    the notice goes again with the same transaction id, which Synapse answers without a second
    message."""
    synapse = Synapse()
    page = [_coupon("issued", pairing_id="p9", user_id="@a:x", code="Z9", title="Tea")]

    class Stopped(Exception):
        pass

    async def tell_then_stop(user_id: str, text: str, seed: str) -> bool:
        await synapse.tell(user_id, text, seed)
        raise Stopped  # the process ends here, before ``mark_told``

    first = BotMemory(str(tmp_path))
    with pytest.raises(Stopped):
        await CouponNotifier(CouponFeed(page), first, tell_then_stop, 1.0).poll_once()  # type: ignore[arg-type]
    first.close()
    again = BotMemory(str(tmp_path))  # the restarted bot, same store
    seen: list[str] = []

    async def tell(user_id: str, text: str, seed: str) -> bool:
        seen.append(seed)
        return await synapse.tell(user_id, text, seed)

    assert again.cursor(CURSOR) is None
    await CouponNotifier(CouponFeed(page), again, tell, 1.0).poll_once()  # type: ignore[arg-type]
    assert seen == [coupon_seed("@a:x", "p9", "issued")]
    assert synapse.seen_by("@a:x") == [coupon_notice_text(page[0])]  # once
    assert again.was_told("@a:x", "p9", "coupon:issued")
    again.close()


async def test_a_coupon_that_could_not_be_sent_is_tried_again_then_given_up(memory) -> None:
    page = [_coupon("issued", pairing_id="p1", user_id="@a:x", code="A", title="T"),
            _coupon("issued", pairing_id="p2", user_id="@b:x", code="B", title="T")]
    feed, synapse = CouponFeed(page), Synapse()
    synapse.fail_for.add("@a:x")
    notifier = CouponNotifier(feed, memory, synapse.tell, 1.0)  # type: ignore[arg-type]
    with pytest.raises(ReadAgain):
        await notifier.poll_once()
    assert memory.cursor(CURSOR) is None  # the page is read again
    assert len(synapse.seen_by("@b:x")) == 1
    synapse.fail_for.clear()  # the server is back
    await notifier.poll_once()
    assert feed.since == [None, None] and memory.cursor(CURSOR) == "2.next"
    assert len(synapse.seen_by("@a:x")) == 1 and len(synapse.seen_by("@b:x")) == 1
    # A person who can never be reached holds up the feed only MAX_TRIES times.
    feed.served()
    feed.pages.append([_coupon("issued", pairing_id="p3", user_id="@gone:x", code="G", title="T")])
    synapse.fail_for.add("@gone:x")
    for _ in range(MAX_TRIES - 1):
        with pytest.raises(ReadAgain):
            await notifier.poll_once()
    await notifier.poll_once()
    assert memory.cursor(CURSOR) != "2.next" and not memory.was_told("@gone:x", "p3", "coupon:issued")


# -- the private chat a coupon goes to -------------------------------------------------------------

BOT = "@discoverybot:x"


class FakeClient:
    """The homeserver as nio answers: rooms' members, room creation, and what was sent where."""

    user_id = BOT

    def __init__(self) -> None:
        self.members: dict[str, dict[str, str]] = {}
        self.state_error: dict[str, str] = {}
        self.created: list[dict[str, Any]] = []
        self.create_fails = False
        self.sent: list[tuple[str, str, str]] = []

    async def room_get_state(self, room_id: str) -> Any:
        if room_id in self.state_error:
            return RoomGetStateError("no", self.state_error[room_id])
        events = [{"type": "m.room.member", "state_key": u, "content": {"membership": m}}
                  for u, m in self.members.get(room_id, {}).items()]
        return RoomGetStateResponse(events + [{"type": "m.room.name", "state_key": "", "content": {}}], room_id)

    async def room_create(self, **kwargs: Any) -> Any:
        if self.create_fails:
            return RoomCreateError("no", "M_UNKNOWN")
        self.created.append(kwargs)
        room_id = f"!new{len(self.created)}:x"
        self.members[room_id] = {BOT: "join", **{u: "invite" for u in kwargs["invite"]}}
        return RoomCreateResponse(room_id)

    async def send(self, room_id: str, text: str, seed: str) -> bool:
        self.sent.append((room_id, text, seed))
        return True


def _chats(client: FakeClient, memory: BotMemory) -> PrivateChats:
    return PrivateChats(client, memory, client.send)  # type: ignore[arg-type]


async def test_a_person_who_never_wrote_to_the_bot_gets_a_direct_chat_of_their_own(memory) -> None:
    client = FakeClient()
    chats = _chats(client, memory)
    assert await chats.tell("@app:x", "your coupon", "s1")
    (created,) = client.created
    assert created["is_direct"] and created["invite"] == ["@app:x"]
    assert created["preset"].value == "trusted_private_chat"
    assert memory.dm_room("@app:x") == "!new1:x"
    assert client.sent == [("!new1:x", OPENED, "opened:!new1:x"), ("!new1:x", "your coupon", "s1")]
    # The next one goes to the same room, invitation still pending or not.
    assert await chats.tell("@app:x", "another", "s2")
    assert len(client.created) == 1 and client.sent[-1] == ("!new1:x", "another", "s2")


async def test_a_coupon_goes_to_the_dm_only_while_it_holds_the_person_and_the_bot_alone(memory) -> None:
    client = FakeClient()
    chats = _chats(client, memory)
    memory.set_dm_room("@a:x", "!dm:x")
    client.members["!dm:x"] = {BOT: "join", "@a:x": "join", "@old:x": "leave"}
    assert await chats.tell("@a:x", "code", "s1") and client.sent == [("!dm:x", "code", "s1")]
    for intruder in ("join", "invite"):
        client.members["!dm:x"] = {BOT: "join", "@a:x": "join", "@eve:x": intruder}
        memory.set_dm_room("@a:x", "!dm:x")
        client.sent.clear()
        assert await chats.tell("@a:x", "code", "s1")
        assert all(room != "!dm:x" for room, _, _ in client.sent) and client.sent[-1][1] == "code"
        assert memory.dm_room("@a:x") == client.sent[-1][0]
    # They left the DM, or the bot is no longer in it: a new one.
    for members, error in (({BOT: "join", "@a:x": "leave"}, None), ({}, "M_FORBIDDEN")):
        memory.set_dm_room("@a:x", "!dm:x")
        client.members["!dm:x"] = members
        if error:
            client.state_error["!dm:x"] = error
        client.sent.clear()
        assert await chats.tell("@a:x", "code", "s1")
        assert client.sent[-1][0] != "!dm:x"


async def test_a_passing_failure_sends_nothing_and_says_so(memory) -> None:
    client = FakeClient()
    chats = _chats(client, memory)
    memory.set_dm_room("@a:x", "!dm:x")
    client.state_error["!dm:x"] = "M_UNKNOWN"
    assert not await chats.tell("@a:x", "code", "s1")
    assert client.sent == [] and client.created == [] and memory.dm_room("@a:x") == "!dm:x"
    client.create_fails = True
    assert not await chats.tell("@b:x", "code", "s2")
    assert client.sent == [] and memory.dm_room("@b:x") is None
