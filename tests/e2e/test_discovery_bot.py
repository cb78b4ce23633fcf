"""The discovery bot on real Synapse: people who only chat (plain HTTP clients, as Element sends,
and matrix-nio) use every discovery feature through it, and hear of their requests from it.

Each test works in an area of its own (``Area`` of test_discovery.py), so the people of other
tests on the same stack are never nearby. The test stack shakes in 1.5 s windows, keeps
locations for 30 s and allows 3 throws and 3 picks a day (``tests/harness/stack.py``).
"""

from __future__ import annotations

import os
import secrets
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
import requests
import yaml

from synapse_modules.discovery.cells import cell_of
from tests.e2e.test_discovery import PRECISION, Area, module_config, person, requests_of, seen_by
from tests.harness import database
from tests.harness.http import HttpUser, ask, eventually, open_dm, q, timeline
from tests.harness.matrix import client_for
from tests.harness.stack import RunningStack

D = "/_synapse/client/wangxin/v1/discovery"
COMMANDS = ("help", "discover", "location", "nearby", "hi", "shake", "throw", "pick", "reply", "requests",
            "accept", "decline", "block", "report")


def bot_of(stack: RunningStack) -> str:
    return str(stack.info["discovery"]["bot_user_id"])


class Chatter:
    """A person on a plain Matrix client who uses discovery only by chatting with the bot."""

    def __init__(self, stack: RunningStack):
        self.user = HttpUser(stack)
        self.user_id = self.user.user_id
        self.bot = bot_of(stack)
        self.room_id = open_dm(self.user, self.bot)

    def ask(self, text: str) -> str:
        return ask(self.user, self.room_id, self.bot, text)

    def send_location(self, uri: str) -> tuple[str, str]:
        """An ``m.location`` message as Element sends it; the event id and the bot's answer."""
        content = {"msgtype": "m.location", "body": f"Location {uri}", "geo_uri": uri,
                   "org.matrix.msc3488.location": {"uri": uri}, "org.matrix.msc3488.asset": {"type": "m.self"}}
        event_id = self.user.send(self.room_id, content)

        def reply() -> str | None:
            for e in timeline(self.user, self.room_id):
                relates = e.get("content", {}).get("m.relates_to", {})
                if e["sender"] == self.bot and relates.get("m.in_reply_to", {}).get("event_id") == event_id:
                    return str(e["content"]["body"])
            return None

        return event_id, str(eventually(reply, timeout=90, interval=0.2))

    def notices(self) -> list[str]:
        """What the bot said on its own (not a reply to a command), newest first."""
        return [str(e["content"].get("body")) for e in timeline(self.user, self.room_id)
                if e["sender"] == self.bot and e["type"] == "m.room.message"
                and "m.relates_to" not in e["content"]]

    def wait_notice(self, *words: str, timeout: float = 60) -> str:
        def found() -> str | None:
            return next((n for n in self.notices() if all(w in n for w in words)), None)

        return str(eventually(found, timeout=timeout, interval=0.3))

    def opt_in(self, name: str | None = None) -> str:
        return self.ask(f"discover on {name}" if name else "discover on")

    def locate(self, position: tuple[float, float]) -> str:
        return self.send_location(f"geo:{position[0]},{position[1]};u=20")[1]


@pytest.fixture
def chatters(stack: RunningStack) -> Iterator[list[Any]]:
    """People to take out of discovery at the end, whatever happened: their bottles leave the sea."""
    made: list[Any] = []
    yield made
    for someone in made:
        user = someone.user if isinstance(someone, Chatter) else someone
        user.raw("PUT", f"{D}/profile", {"enabled": False})


def chatter(stack: RunningStack, chatters: list[Any]) -> Chatter:
    made = Chatter(stack)
    chatters.append(made)
    return made


# -- the bot in the stack ------------------------------------------------------------------------


def test_the_stack_runs_the_bot_and_never_shows_it_in_discovery(stack: RunningStack) -> None:
    bot = bot_of(stack)
    assert bot in stack.info["bot_user_ids"]
    assert stack.info["merchant_bot"]["user_id"] in stack.info["bot_user_ids"]
    assert bot in module_config(stack)["service_accounts"]
    r = requests.get(f"{stack.info['main_process_url']}/_synapse/admin/v1/users/{q(bot)}/override_ratelimit",
                     headers=stack.admin_headers(), timeout=30)
    assert r.json() == {"messages_per_second": 0, "burst_count": 0}
    with open(os.path.join(stack.dir, "discovery-bot.yaml"), encoding="utf-8") as f:
        config = yaml.safe_load(f)
    # The bot holds discovery's own secret, not the one of the other modules.
    assert config["service_secret"] == module_config(stack)["service_secret"]
    with open(os.path.join(stack.dir, "bridge.yaml"), encoding="utf-8") as f:
        assert yaml.safe_load(f)["homeserver"]["service_secret"] != config["service_secret"]
    # The bot cannot be in discovery: acting for itself through its own secret is refused too.
    r = requests.put(f"{stack.url}{D}/profile", params={"user_id": bot}, json={"enabled": True},
                     headers={"Authorization": f"Bearer {config['service_secret']}"}, timeout=30)
    assert r.status_code == 403 and "Service accounts" in r.json()["error"]
    # Only the bot reads the feed of everyone's requests, and it carries no greeting's text.
    someone, other = HttpUser(stack), HttpUser(stack)
    assert someone.raw("GET", f"{D}/requests/changes").status_code == 403
    feed = requests.Session()
    feed.headers["Authorization"] = f"Bearer {config['service_secret']}"
    start = feed.get(f"{stack.url}{D}/requests/changes", timeout=30).json()["next"]
    area = Area()
    a, b = person(stack, area.at(), name="Feed A"), person(stack, area.at())
    rid = a.call("POST", f"{D}/requests", {"user_id": b.user_id, "text": "private words"})["request_id"]

    def changed() -> dict | None:
        r = feed.get(f"{stack.url}{D}/requests/changes", params={"since": start}, timeout=30)
        assert r.status_code == 200, r.text
        return next((c for c in r.json()["changes"] if c["request_id"] == rid), None)

    change = eventually(changed, timeout=30, interval=0.5)
    assert (change["sender"], change["sender_name"], change["recipient"], change["state"]) == (
        a.user_id, "Feed A", b.user_id, "pending")
    assert "text" not in change and "private words" not in str(change)
    bad = feed.get(f"{stack.url}{D}/requests/changes", params={"since": "yesterday"}, timeout=30)
    assert bad.status_code == 400 and "'since'" in bad.json()["error"]
    for user in (a, b, other):
        user.raw("PUT", f"{D}/profile", {"enabled": False})


def test_help_lists_every_command(stack: RunningStack) -> None:
    me = Chatter(stack)
    help_text = me.ask("help")
    for command in COMMANDS:
        assert f"\n  {command}" in help_text, command
    assert "m.location" not in help_text and "location" in help_text


def test_an_encrypted_dm_is_answered_with_why_the_bot_cannot_read_it(stack: RunningStack) -> None:
    user = HttpUser(stack)
    bot = bot_of(stack)
    room_id = user.create_room(encrypted=True, invite=[bot], is_direct=True)
    eventually(lambda: any(e["sender"] == bot for e in timeline(user, room_id)), timeout=90)
    event_id = user.send_encrypted(room_id)

    def notice() -> str | None:
        for e in timeline(user, room_id):
            relates = e.get("content", {}).get("m.relates_to", {})
            if e["sender"] == bot and relates.get("m.in_reply_to", {}).get("event_id") == event_id:
                return str(e["content"]["body"])
        return None

    assert "end-to-end encrypted and I can't read it" in eventually(notice, timeout=60)


# -- opt-in, location, nearby, hi, requests ------------------------------------------------------


async def test_opt_in_and_location_by_chat_then_nearby_lists_only_opted_in_people(
        stack: RunningStack, chatters: list) -> None:
    area = Area()
    me = chatter(stack, chatters)
    assert me.ask("nearby") == "Discovery is off for you: send “discover on” to turn it on."
    answer = me.opt_in("Alice Chat")
    assert "Discovery is on" in answer and "“Alice Chat”" in answer
    assert "Share your location first" in me.ask("nearby")
    position = area.at()
    event_id, kept = me.send_location(f"geo:{position[0]},{position[1]};u=35")
    assert kept.startswith("Location shared: I kept only an area of about") and "for 30 s" in kept
    # The server kept the cell; the message with the coordinates left the chat.
    ((cell,),) = database.query(stack, "SELECT cell FROM wangxin_discovery_locations WHERE user_id = ?",
                                [me.user_id])
    assert cell == cell_of(*position, PRECISION)
    event = me.user.call("GET", f"/_matrix/client/v3/rooms/{q(me.room_id)}/event/{q(event_id)}")
    assert event["content"] == {} and "redacted_because" in event.get("unsigned", {})
    digits = f"{position[0]:.9f}".split(".")[1]
    assert not any(digits in (e.get("content", {}).get("body") or "") for e in timeline(me.user, me.room_id))
    with open(os.path.join(stack.info["logs_dir"], "discovery-bot.log"), encoding="utf-8", errors="replace") as f:
        assert digits not in f.read()

    near = person(stack, area.at(east=1), name="Bob Near")
    far = person(stack, area.far())
    HttpUser(stack)  # never opted in
    chatters += [near, far]
    listed = me.ask("nearby")
    assert "1. Bob Near" in listed and near.user_id in listed and "1–5 km" in listed
    assert far.user_id not in listed and "\n  2. " not in listed
    assert "Discovery is on: others see you as “Alice Chat”" in me.ask("discover")

    # hi <n> from the list: the other side sees a request with the text.
    assert near.user_id in me.ask("hi 1 Tea at the corner? 'quoted' \"text\"")
    (incoming,) = requests_of(near)
    assert (incoming["user_id"], incoming["kind"], incoming["text"]) == (
        me.user_id, "hi", "Tea at the corner? 'quoted' \"text\"")
    assert "no number 7" in me.ask("hi 7")
    assert "already an open request" in me.ask(f"hi {near.user_id}")
    requests_list = me.ask("requests")
    assert "waiting for the other person" in requests_list and near.user_id in requests_list

    # An accept over HTTP opens the chat; the bot tells the one who said hi.
    accepted = near.call("POST", f"{D}/requests/{incoming['request_id']}/accept", {})
    notice = me.wait_notice("have a direct chat now", near.user_id)
    assert accepted["room_id"] in notice

    me.ask("location off")
    assert "Share your location first" in me.ask("nearby")
    assert me.user_id not in seen_by(near)


async def test_a_hi_is_told_by_the_bot_and_accept_n_makes_a_direct_chat(stack: RunningStack, chatters: list) -> None:
    area = Area()
    me = chatter(stack, chatters)
    me.opt_in()
    me.locate(area.at())
    stranger = person(stack, area.at(), name="Stranger")
    other = person(stack, area.at(), name="Other")
    chatters += [stranger, other]
    stranger.call("POST", f"{D}/requests", {"user_id": me.user_id, "text": "Hello\n  2. fake line"})
    notice = me.wait_notice("Stranger", "says hi")
    assert f"({stranger.user_id}) says hi: “Hello 2. fake line”" in notice and "“accept 1”" in notice
    other.call("POST", f"{D}/requests", {"user_id": me.user_id})
    second = me.wait_notice("Other", "says hi")
    assert "“accept 2”" in second and "\n  1. Stranger" in second  # the numbers shown before stay
    assert "no request number 3" in me.ask("accept 3")
    assert "Declined" in me.ask("decline 2")
    answer = me.ask("accept 1")
    assert "have a direct chat now" in answer and stranger.user_id in answer
    room_id = next(w for w in answer.split() if w.startswith("https://matrix.to/#/")).split("#/")[1]
    assert requests_of(stranger) == [] and requests_of(me.user) == []
    # Both are in the room, and a matrix-nio client sees a direct chat with the stranger.
    client = await client_for(stack.url, me.user.info)
    try:
        await client.sync(timeout=0, full_state=True)
        room = client.rooms[room_id]
        assert set(room.users) == {me.user_id, stranger.user_id}
        direct = me.user.call("GET", f"/_matrix/client/v3/user/{q(me.user_id)}/account_data/m.direct")
        assert room_id in direct[stranger.user_id]
    finally:
        await client.close()
    # Told once: one notice of the request, whatever the feed shows of it since.
    assert sum(n.startswith(f"Stranger ({stranger.user_id}) says hi") for n in me.notices()) == 1


# -- shake -----------------------------------------------------------------------------------


def _shake_both(stack: RunningStack, a: Chatter, b: Chatter) -> tuple[str, str]:
    """Both send "shake" early in a shake window (the windows are slices of the server's clock,
    which is this machine's), so that both shakes land in one window."""
    window_ms = module_config(stack)["shake_window_ms"]
    while not 20 <= time.time() * 1000 % window_ms <= window_ms / 5:
        time.sleep(0.005)
    with ThreadPoolExecutor(2) as pool:
        answers = list(pool.map(lambda c: c.ask("shake"), (a, b)))
    return answers[0], answers[1]


async def test_shake_pairs_two_people_chatting_with_the_bot(stack: RunningStack, chatters: list) -> None:
    area = Area()
    a, b = chatter(stack, chatters), chatter(stack, chatters)
    for c in (a, b):
        c.opt_in()
        c.locate(area.at())
    for _ in range(4):  # a shake that straddles a window's end pairs nobody: shake again
        first, second = _shake_both(stack, a, b)
        if "paired you" in first and "paired you" in second:
            break
        assert "Nobody else shook" in first or "Nobody else shook" in second, (first, second)
    assert b.user_id in first and "“accept 1”" in first
    assert a.user_id in second and "“accept 1”" in second
    assert "opens when they accept too" in a.ask("accept 1")
    b.wait_notice(a.user_id, "accepted your shake pairing")
    answer = b.ask("accept 1")
    assert "have a direct chat now" in answer
    a.wait_notice(b.user_id, "have a direct chat now")
    room_id = answer.split("https://matrix.to/#/")[1].split()[0]
    members = a.user.call("GET", f"/_matrix/client/v3/rooms/{q(room_id)}/joined_members")["joined"]
    assert set(members) == {a.user_id, b.user_id}
    # The pairing was told by the shake's answer: no second notice of it.
    assert not any("Your shake paired you" in n for n in a.notices() + b.notices())


# -- bottles ---------------------------------------------------------------------------------


def test_throw_pick_and_reply_by_chat(stack: RunningStack, chatters: list) -> None:
    thrower, finder = chatter(stack, chatters), chatter(stack, chatters)
    thrower.opt_in("Thrower")
    finder.opt_in("Finder")
    assert "Pick a bottle first" in finder.ask("reply hello")
    token = secrets.token_hex(4)
    assert "Your bottle is in the sea" in thrower.ask(f"throw Anyone out there? {token}\nSecond line")
    picked = finder.ask("pick")
    assert f"Anyone out there? {token}" in picked and "    Second line" in picked, picked
    assert f"Thrower ({thrower.user_id})" in picked
    assert "The sea is empty" in finder.ask("pick")
    assert "on its way" in finder.ask("reply I am! Tea?")
    assert "already replied" in finder.ask("reply again")
    notice = thrower.wait_notice(finder.user_id, "replied to your drift bottle")
    assert "“I am! Tea?”" in notice and "“accept 1”" in notice
    assert "Finder" in thrower.ask("requests") and "replied to your bottle" in thrower.ask("requests")
    answer = thrower.ask("accept 1")
    assert "have a direct chat now" in answer and finder.user_id in answer
    finder.wait_notice(thrower.user_id, "have a direct chat now")
    too_long = thrower.ask("throw " + "x" * 1001)
    assert too_long == "Your text is longer than 1000 characters (1001).", too_long


def test_the_daily_throw_limit_says_when_to_try_again(stack: RunningStack, chatters: list) -> None:
    me = chatter(stack, chatters)
    me.opt_in()
    per_day = module_config(stack)["throws_per_day"]
    for n in range(per_day):
        assert "in the sea" in me.ask(f"throw bottle {n}")
    answer = me.ask("throw one more")
    assert answer.startswith(f"You have thrown a bottle {per_day} times in the last 24 hours. Try again in 2"), answer
    assert answer.endswith((" 24 h.", " min.")), answer


# -- safety ----------------------------------------------------------------------------------


def test_block_and_report_by_chat(stack: RunningStack, chatters: list) -> None:
    area = Area()
    me = chatter(stack, chatters)
    me.opt_in()
    me.locate(area.at())
    pest, troll, friend = (person(stack, area.at(), name=n) for n in ("Pest", "Troll", "Friend"))
    chatters += [pest, troll, friend]
    listed = me.ask("nearby")
    assert all(p.user_id in listed for p in (pest, troll, friend))
    assert "Blocked" in me.ask(f"block {pest.user_id}")
    assert pest.user_id not in me.ask("nearby") and me.user_id not in seen_by(pest)
    assert "Usage" in me.ask(f"report {troll.user_id}")  # a reason is needed
    assert "Reported" in me.ask(f"report {troll.user_id} rude and pushy")
    assert troll.call("GET", f"{D}/profile")["status"] == "under_review"
    assert seen_by(friend) == {me.user_id: "< 1 km", pest.user_id: "< 1 km"}  # the troll is out
    admin = requests.Session()
    admin.headers.update(stack.admin_headers())
    reports = admin.get(f"{stack.url}{D}/reports", timeout=30).json()["reports"]
    assert any((r["reporter"], r["reported"], r["reason"]) == (me.user_id, troll.user_id, "rude and pushy")
               for r in reports)
    assert "That's you" in me.ask(f"block {me.user_id}")
    assert "Usage" in me.ask("block someone")
    # Hammering: the report limit (5 at once) answers when to try again, in a sentence.
    for n in range(10):
        answer = me.ask(f"report @nobody{n}:{stack.server_name} probe")
        if not answer.startswith("Reported"):
            break
    assert answer.startswith("You are going a little fast. Try again in"), answer


# -- bad input -------------------------------------------------------------------------------


@pytest.mark.parametrize("uri, sentence", [
    ("geo:91,10", "The latitude must be between -90 and 90 degrees."),
    ("geo:10,-180.5;u=10", "The longitude must be between -180 and 180 degrees."),
    ("geo:nan,10", "The latitude must be a finite number."),
    ("geo:10,abc", "I could not read a position"),
    ("geo:10,10;crs=moon", "I could not read a position"),
])
def test_bad_coordinates_get_a_plain_sentence_and_change_nothing(stack: RunningStack, chatters: list, uri: str,
                                                                  sentence: str) -> None:
    me = chatter(stack, chatters)
    me.opt_in()
    event_id, answer = me.send_location(uri)
    assert answer.startswith(sentence), answer
    assert database.query(stack, "SELECT * FROM wangxin_discovery_locations WHERE user_id = ?", [me.user_id]) == []
    event = me.user.call("GET", f"/_matrix/client/v3/rooms/{q(me.room_id)}/event/{q(event_id)}")
    assert event["content"] == {}


def test_typed_coordinates_work_and_bad_ones_are_named(stack: RunningStack, chatters: list) -> None:
    area = Area()
    me = chatter(stack, chatters)
    me.opt_in()
    assert me.ask("location 10 200") == "The longitude must be between -180 and 180 degrees."
    assert "I could not read a position" in me.ask("location north")
    lat, lon = area.at()
    assert me.ask(f"location {lat}, {lon}").startswith("Location shared")
    ((cell,),) = database.query(stack, "SELECT cell FROM wangxin_discovery_locations WHERE user_id = ?",
                                [me.user_id])
    assert cell == cell_of(lat, lon, PRECISION)
