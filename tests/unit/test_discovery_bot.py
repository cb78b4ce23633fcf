"""The discovery bot's pure parts: what people type, the API's refusals as sentences, the lists
and their numbers, who hears of which change, its config, and the notifier and the per-sender
queues against fakes."""

from __future__ import annotations

import asyncio
import math
from typing import Any

import pytest

from bots.discovery.api import ApiError, api_error
from bots.discovery.bot import discovery_commands
from bots.discovery.commands import DiscoveryServices, rest_after
from bots.discovery.config import parse_config
from bots.discovery.memory import BotMemory
from bots.discovery.notices import Notifier
from bots.discovery.queues import SenderQueues
from bots.discovery.text import (
    Notice,
    bottle_text,
    clean,
    duration,
    geo_uri_of,
    location_kept_text,
    nearby_text,
    notices_for,
    parse_geo_uri,
    parse_location_args,
    parse_number,
    parse_user_id,
    plain_error,
    renumber,
    requests_text,
)
from wangxin_common.config_errors import ConfigError, Section

# -- what people type ------------------------------------------------------------------------------


def test_geo_uris_as_element_sends_them() -> None:
    assert parse_geo_uri("geo:31.2304,121.4737") == (31.2304, 121.4737)
    assert parse_geo_uri("geo:31.2304,121.4737;u=35") == (31.2304, 121.4737)
    assert parse_geo_uri("GEO:-33.9,18.4,12.5;crs=wgs84;u=10") == (-33.9, 18.4)
    # Out of range is a number: the server refuses it by name, the bot does not guess.
    assert parse_geo_uri("geo:91,10") == (91.0, 10.0)
    nan = parse_geo_uri("geo:nan,10")
    assert nan is not None and math.isnan(nan[0])
    for bad in ("geo:10,abc", "geo:10", "geo:1,2,3,4", "geo:10,10;crs=moon", "http://x", "geo:,", "geo:1e,2", ""):
        assert parse_geo_uri(bad) is None, bad


def test_the_geo_uri_of_an_m_location_message() -> None:
    assert geo_uri_of({"msgtype": "m.location", "body": "x", "geo_uri": "geo:1,2"}) == "geo:1,2"
    assert geo_uri_of({"org.matrix.msc3488.location": {"uri": "geo:3,4"}}) == "geo:3,4"
    assert geo_uri_of({"m.location": {"uri": "geo:5,6"}}) == "geo:5,6"
    assert geo_uri_of({"body": "geo:1,2"}) is None
    assert geo_uri_of({"geo_uri": 12}) is None


def test_typed_positions() -> None:
    assert parse_location_args(["31.2", "121.4"]) == (31.2, 121.4)
    assert parse_location_args(["31.2,121.4"]) == (31.2, 121.4)
    assert parse_location_args(["31.2,", "121.4"]) == (31.2, 121.4)
    assert parse_location_args(["geo:31.2,121.4;u=5"]) == (31.2, 121.4)
    assert parse_location_args(["10", "200"]) == (10.0, 200.0)  # for the server to refuse by name
    for bad in (["north"], ["1"], ["1", "2", "3"], ["0x10", "2"], ["1_0", "2"], ["١", "2"]):
        assert parse_location_args(bad) is None, bad


def test_numbers_and_user_ids() -> None:
    assert [parse_number(w) for w in ("2", "#2", "2.", " 12 ")] == [2, 2, 2, 12]
    assert [parse_number(w) for w in ("x", "-1", "1e3", "²", "", "1234567")] == [None] * 6
    assert parse_user_id("@alice:example.org", "here.org") == "@alice:example.org"
    assert parse_user_id("@Alice", "here.org") == "@alice:here.org"
    assert parse_user_id("alice", "here.org") is None
    assert parse_user_id("@a b:x", "here.org") is None
    assert parse_user_id("@" + "a" * 300 + ":x", "here.org") is None


def test_free_text_is_the_message_after_the_command_words_as_typed() -> None:
    assert rest_after("hi 2 Tea at 'five'?\nOr six", 2) == "Tea at 'five'?\nOr six"
    assert rest_after("  throw   \"quoted\"  ", 1) == "\"quoted\""
    assert rest_after("report @x:y", 2) == ""
    assert rest_after("discover on", 2) == ""


def test_strangers_text_is_shown_as_plain_one_line_text() -> None:
    assert clean("Eve\u202egnp.exe") == "Evegnp.exe"
    assert clean("Hello\n  2. fake line") == "Hello 2. fake line"
    assert clean("zero\u200bwidth") == "zerowidth"
    assert clean("a" * 300, max_chars=10) == "a" * 9 + "…"
    assert clean("line one\nline two", one_line=False) == "line one\nline two"


# -- errors as sentences ---------------------------------------------------------------------------


def _error(status: int, message: str, errcode: str = "M_INVALID_PARAM", **extra: Any) -> ApiError:
    return api_error(status, {"errcode": errcode, "error": message, **extra})


def test_the_apis_refusals_become_plain_sentences() -> None:
    assert plain_error(_error(400, "'latitude' must be between -90 and 90 degrees")) == (
        "The latitude must be between -90 and 90 degrees.")
    assert plain_error(_error(400, "'longitude' must be a finite number", "M_BAD_JSON")) == (
        "The longitude must be a finite number.")
    assert plain_error(_error(400, "'text' is longer than 1000 characters (1001)", "M_TOO_LARGE")) == (
        "Your text is longer than 1000 characters (1001).")
    assert plain_error(_error(400, "'user_id' is you")) == "That's you: pick someone else."
    off = _error(403, 'Discovery is off for you: turn it on with PUT /x/profile {"enabled": true}', "M_FORBIDDEN")
    assert "discover on" in plain_error(off) and "PUT" not in plain_error(off)
    share = _error(403, "Share your location first: PUT /x/location (only a cell ...)", "M_FORBIDDEN")
    assert "send me a location" in plain_error(share) and "PUT" not in plain_error(share)
    assert plain_error(_error(404, "The sea is empty: no bottle for you to pick right now", "M_NOT_FOUND")) == (
        "The sea is empty: no bottle for you to pick right now.")
    assert "requests" in plain_error(_error(404, "No such request", "M_NOT_FOUND"))
    assert plain_error(_error(409, "You have already replied to this bottle", "M_UNKNOWN")) == (
        "You have already replied to this bottle.")
    assert plain_error(_error(400, "user_id must name a local user")) == (
        "Discovery is for people with an account on this server.")
    assert "try again in a minute" in plain_error(_error(500, "Internal server error", "M_UNKNOWN"))
    assert "try again in a minute" in plain_error(api_error(502, "<html>bad gateway</html>"))


def test_a_429_says_when_to_try_again() -> None:
    rate = _error(429, "Too many requests: try again in 12 s", "M_LIMIT_EXCEEDED", retry_after_ms=11_200,
                  **{"org.wangxin.limit": "rate_limits.nearby"})
    assert plain_error(rate) == "You are going a little fast. Try again in 12 s."
    daily = _error(429, "You have thrown a bottle 10 times in the last 24 hours: try again in 3 h 5 min",
                   "M_LIMIT_EXCEEDED", retry_after_ms=3 * 3600_000 + 4 * 60_000 + 1)
    assert plain_error(daily) == "You have thrown a bottle 10 times in the last 24 hours. Try again in 3 h 5 min."
    assert plain_error(_error(429, "Too many requests", "M_LIMIT_EXCEEDED")).endswith("Try again later.")


def test_durations() -> None:
    assert [duration(ms) for ms in (0, 1, 999, 1000, 59_001, 60_000, 61_000, 3600_000, 5400_000, 86_400_000)] == [
        "1 s", "1 s", "1 s", "1 s", "1 min", "1 min", "2 min", "1 h", "1 h 30 min", "24 h"]


# -- lists and numbers -----------------------------------------------------------------------------


def test_numbers_keep_their_meaning_when_a_list_is_shown_again() -> None:
    first = renumber({}, ["a", "b"])
    assert first == {1: "a", 2: "b"}
    # "a" answered meanwhile, "c" new: "b" stays 2, "c" never takes a number someone may type.
    assert renumber(first, ["b", "c"]) == {2: "b", 3: "c"}
    assert renumber({2: "b", 3: "c"}, ["c", "d", "b"]) == {2: "b", 3: "c", 4: "d"}
    assert renumber({2: "b"}, []) == {}
    assert renumber({2: "b"}, ["x"]) == {1: "x"}  # nothing kept: from 1 again


def _entry(rid: str, direction: str = "incoming", kind: str = "hi", **extra: Any) -> dict[str, Any]:
    return {"request_id": rid, "kind": kind, "direction": direction, "user_id": f"@{rid}:x",
            "display_name": f"Name {rid}", "accepted_by_you": False, "accepted_by_them": True,
            "created_ts": 1_000_000, **extra}


def test_requests_are_listed_with_their_numbers_and_outgoing_ones_apart() -> None:
    entries = [_entry("a", text="hi\nthere"), _entry("b", kind="shake", direction="mutual", accepted_by_them=True),
               _entry("c", direction="outgoing", kind="bottle", text="my reply")]
    text = requests_text(entries, {3: "a", 4: "b"}, 1_000_000 + 120_000)
    assert "  3. Name a (@a:x) said hi: “hi there” (2 min ago)" in text
    assert "  4. Name b (@b:x): shake pairing — they accepted, waiting for you" in text
    assert "\nWaiting for the other person:\n  • Name c (@c:x): your reply to their bottle “my reply”" in text
    assert requests_text([], {}, 0) == "You have no open requests."


def test_nearby_lists_number_people_by_band() -> None:
    people = [{"user_id": "@a:x", "display_name": "A\u202e", "distance": "< 1 km", "gender": "female"},
              {"user_id": "@b:x", "display_name": "B", "distance": "1–5 km"}]
    text = nearby_text(people)
    assert "  1. A (@a:x) — < 1 km — female" in text and "  2. B (@b:x) — 1–5 km" in text
    assert "Nobody" in nearby_text([])


def test_what_was_kept_of_a_location_and_a_picked_bottle() -> None:
    now = 1_700_000_000_000
    kept = location_kept_text({"shared": True, "expires_ts": now + 7200_000,
                               "area_km": {"height": 1.2, "width": 0.6}}, now)
    assert "an area of about 1.2 km × 0.6 km" in kept and "for 2 h" in kept and "not the position" in kept
    bottle = bottle_text({"bottle_id": "b1", "text": "line 1\n  1. fake", "thrown_ts": now,
                          "from": {"user_id": "@t:x", "display_name": "T"}}, now)
    assert "thrown by T (@t:x) just now:\n    line 1\n      1. fake\n" in bottle


# -- who hears of a change -------------------------------------------------------------------------


def _change(**fields: Any) -> dict[str, Any]:
    base = {"request_id": "r", "kind": "hi", "state": "pending", "mutual": False, "sender": "@s:x",
            "recipient": "@r:x", "sender_accepted": True, "recipient_accepted": False, "created_ts": 5,
            "updated_ts": 5, "room_id": None}
    return {**base, **fields}


def test_who_hears_of_which_change() -> None:
    assert notices_for(_change()) == [Notice("@r:x", "new")]
    assert notices_for(_change(kind="bottle")) == [Notice("@r:x", "new")]
    shake = {"kind": "shake", "mutual": True, "sender_accepted": False}
    assert notices_for(_change(**shake)) == [Notice("@s:x", "new"), Notice("@r:x", "new")]
    assert notices_for(_change(**{**shake, "recipient_accepted": True, "updated_ts": 9})) == [
        Notice("@s:x", "accepted_by_other")]
    assert notices_for(_change(state="accepted", recipient_accepted=True, updated_ts=9)) == [
        Notice("@s:x", "accepted")]
    assert notices_for(_change(**{**shake, "state": "accepted", "updated_ts": 9})) == [
        Notice("@s:x", "accepted"), Notice("@r:x", "accepted")]
    assert notices_for(_change(state="declined", updated_ts=9)) == []
    assert notices_for(_change(state="accepting", updated_ts=9)) == []
    assert notices_for(_change(updated_ts=9)) == []  # released after a failed accept: nothing new


# -- help and config -------------------------------------------------------------------------------


def test_help_lists_every_command() -> None:
    registry = discovery_commands(None)  # type: ignore[arg-type]  # help needs the declarations only
    text = registry.help_text()
    for name in ("help", "discover", "location", "nearby", "hi", "shake", "throw", "pick", "reply", "requests",
                 "accept", "decline", "block", "report"):
        assert name in registry.names and f"\n  {name}" in text, name


def test_config_names_what_is_wrong(tmp_path) -> None:
    good = {"homeserver_url": "http://127.0.0.1:8008", "user_id": "@discoverybot:x", "password": "p",
            "store_dir": str(tmp_path), "service_secret": "s"}
    config = parse_config(Section(good))
    assert config.poll_interval_ms == 1000 and config.account.device_name == "Wangxin discovery bot"
    for change, key in [({"service_secret": None}, "service_secret"), ({"poll_interval_ms": 5}, "poll_interval_ms"),
                        ({"colour": "red"}, "colour"), ({"user_id": "bot"}, "user_id")]:
        with pytest.raises(ConfigError) as e:
            parse_config(Section({**good, **change}))
        assert f"key '{key}'" in str(e.value)


# -- the notifier and the queues, against fakes ----------------------------------------------------


class FakeApi:
    def __init__(self, pages: list[dict[str, Any]], open_requests: dict[str, list[dict[str, Any]]]):
        self.pages = pages
        self.open_requests = open_requests
        self.since: list[str | None] = []

    async def changes(self, since: str | None, limit: int) -> dict[str, Any]:
        self.since.append(since)
        return self.pages.pop(0) if self.pages else {"changes": [], "next": since or "0."}

    async def requests(self, user_id: str) -> list[dict[str, Any]]:
        if user_id not in self.open_requests:
            raise ApiError(403, "M_FORBIDDEN", "Discovery is off for you")
        return self.open_requests[user_id]


async def test_the_notifier_tells_each_person_once_where_they_talk_to_the_bot(tmp_path) -> None:
    memory = BotMemory(str(tmp_path))
    memory.set_dm_room("@r:x", "!dm:x")
    hi = _change(request_id="r1")
    to_nobody = _change(request_id="r2", recipient="@stranger:x")
    gone = _change(request_id="r3")  # not in their open requests any more (blocked, left)
    api = FakeApi([{"changes": [hi, to_nobody, gone], "next": "9.r3"}],
                  {"@r:x": [_entry("r1", user_id="@s:x", display_name="Sam", text="hello")]})
    told: list[tuple[str, str, str]] = []

    async def tell(room_id: str, text: str, seed: str) -> bool:
        told.append((room_id, text, seed))
        return True

    services = DiscoveryServices(api, memory, "x", None, lambda: 1_000_000)  # type: ignore[arg-type]
    notifier = Notifier(services, tell, 1.0)
    assert await notifier.poll_once() == 3
    assert [(room, seed) for room, _, seed in told] == [("!dm:x", "notice:@r:x:r1:new")]
    assert told[0][1].startswith("Sam (@s:x) says hi: “hello”\nSend “accept 1”")
    assert memory.cursor("request_changes") == "9.r3" and memory.list_of("@r:x", "requests") == {1: "r1"}
    # The same change again (a restart before the cursor was saved): not told twice.
    api.pages.append({"changes": [hi], "next": "9.r3"})
    await notifier.poll_once()
    assert len(told) == 1 and api.since[-1] == "9.r3"
    memory.close()


async def test_each_senders_commands_run_in_order_and_others_meanwhile() -> None:
    queues = SenderQueues()
    log: list[str] = []
    release = asyncio.Event()

    async def slow_shake() -> None:
        log.append("a:shake start")
        await release.wait()
        log.append("a:shake end")

    async def step(name: str) -> None:
        log.append(name)
        if name == "b:1":
            release.set()

    queues.submit("@a:x", slow_shake)
    queues.submit("@a:x", lambda: step("a:pick"))
    queues.submit("@b:x", lambda: step("b:1"))
    await queues.drain()
    assert log.index("b:1") < log.index("a:shake end") < log.index("a:pick")


# -- the module's feed of changed requests (what the notifier reads) -------------------------------


def test_the_feed_of_changes_pages_by_cursor_and_skips_nothing() -> None:
    import sqlite3

    from synapse_modules.discovery.store.requests import changes_txn, insert_request_txn
    from synapse_modules.discovery.store.schema import create_schema_txn

    txn = sqlite3.connect(":memory:").cursor()
    create_schema_txn(txn)
    txn.execute("INSERT INTO wangxin_discovery_profiles (user_id, name, updated_ts) VALUES ('@s:x', 'Sam', 0)")
    # Five requests, three of them changed in the same millisecond.
    for n, ts in enumerate((100, 200, 200, 200, 300)):
        insert_request_txn(txn, f"req{n:05d}", "hi", "@s:x", f"@r{n}:x", False, "secret text", None, ts)
    seen, since_ts, after = [], 0, ""
    while True:
        page = changes_txn(txn, since_ts, after, 250, 2)
        seen += [c.request.request_id for c in page]
        if len(page) < 2:
            break
        since_ts, after = page[-1].request.updated_ts, page[-1].request.request_id
    assert seen == ["req00000", "req00001", "req00002", "req00003"]  # not the one after ``until``
    (first,) = changes_txn(txn, 0, "", 100, 10)
    assert (first.sender_name, first.recipient_name) == ("Sam", None)


async def test_the_sync_position_moves_on_only_once_its_commands_are_answered(tmp_path) -> None:
    """Commands run beside the sync loop; a restart must still answer any that were waiting, so
    a sync's position is saved only after its commands (and all earlier ones) are done."""
    from types import SimpleNamespace

    from bots.discovery.bot import DiscoveryBot

    config = parse_config(Section({"homeserver_url": "http://127.0.0.1:9", "user_id": "@discoverybot:x",
                                   "password": "p", "store_dir": str(tmp_path), "service_secret": "s"}))
    bot = DiscoveryBot(config)
    try:
        release = asyncio.Event()
        bot.queues.submit("@a:x", release.wait)
        await bot._on_sync(SimpleNamespace(next_batch="t1"))  # type: ignore[arg-type]
        bot.queues.submit("@b:x", lambda: asyncio.sleep(0))
        await bot._on_sync(SimpleNamespace(next_batch="t2"))  # type: ignore[arg-type]
        for _ in range(5):
            await asyncio.sleep(0)
        assert bot.storage.load_sync_token() is None  # @a's command still waits
        release.set()
        await bot.queues.drain()
        for _ in range(5):
            await asyncio.sleep(0)
        assert bot.storage.load_sync_token() == "t2"
    finally:
        await bot.close()
