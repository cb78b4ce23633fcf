"""Discovery (people nearby, shake, drift bottles) over HTTP on real Synapse, with several users.

Each test works in an area of its own (a random place on Earth), so the people of other tests on
the same stack are never nearby. The test stack shakes in 1.5 s windows, keeps locations for
30 s and allows 3 throws and 3 picks a day (``tests/harness/stack.py``).
"""

from __future__ import annotations

import json
import os
import random
import secrets
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pygeohash
import pytest
import requests
import yaml

from synapse_modules.discovery.cells import cell_of
from tests.harness import database
from tests.harness.http import HttpUser, eventually, q
from tests.harness.matrix import client_for
from tests.harness.stack import RunningStack

D = "/_synapse/client/wangxin/v1/discovery"
PRECISION = 6


# -- helpers -------------------------------------------------------------------------------------


class Area:
    """A random cell (precision 6) of this test's own; positions in it and in cells around it."""

    def __init__(self) -> None:
        rng = random.SystemRandom()
        # Whole degrees of two digits and more: the digits of a position are then long enough
        # that nothing else in a database or a log holds them by chance. Up to 30 degrees from
        # the equator, the next cell east is more than 1 km away ("1–5 km"); further north or
        # south, cells narrow and it would be "< 1 km".
        lat = rng.choice((-1, 1)) * rng.uniform(12, 30)
        lon = rng.choice((-1, 1)) * rng.uniform(20, 170)
        cell = cell_of(lat, lon, PRECISION)
        c = pygeohash.decode_exactly(cell)
        self.lat, self.lon, self.dlat, self.dlon = c.latitude, c.longitude, c.latitude_error, c.longitude_error
        self.cell = cell

    def at(self, east: int = 0, north: int = 0) -> tuple[float, float]:
        """A position inside the cell ``east`` cells east and ``north`` cells north of this one,
        away from its edges, with nine decimals (digits a search can find)."""
        rng = random.SystemRandom()
        lat = self.lat + 2 * north * self.dlat + rng.uniform(-0.5, 0.5) * self.dlat
        lon = self.lon + 2 * east * self.dlon + rng.uniform(-0.5, 0.5) * self.dlon
        return round(lat, 9), round(lon, 9)

    def far(self) -> tuple[float, float]:
        return round(self.lat + 0.5, 9), round(self.lon, 9)  # about 55 km north


def opt_in(user: HttpUser, **fields: Any) -> dict:
    return user.call("PUT", f"{D}/profile", {"enabled": True, **fields})


def locate(user: HttpUser, position: tuple[float, float], expect: int = 200) -> dict:
    return user.call("PUT", f"{D}/location", {"latitude": position[0], "longitude": position[1]}, expect=expect)


def person(stack: RunningStack, position: tuple[float, float] | None, **fields: Any) -> HttpUser:
    user = HttpUser(stack)
    opt_in(user, **fields)
    if position is not None:
        locate(user, position)
    return user


def nearby(user: HttpUser) -> list[dict]:
    return list(user.call("GET", f"{D}/nearby")["people"])


def seen_by(user: HttpUser) -> dict[str, str]:
    return {p["user_id"]: p["distance"] for p in nearby(user)}


def requests_of(user: HttpUser) -> list[dict]:
    return list(user.call("GET", f"{D}/requests")["requests"])


def error(response: requests.Response) -> tuple[int, str, str]:
    body = response.json()
    return response.status_code, body.get("errcode"), body.get("error")


def module_config(stack: RunningStack) -> dict:
    with open(stack.info["homeserver_config"], encoding="utf-8") as f:
        modules = yaml.safe_load(f)["modules"]
    return next(m["config"] for m in modules if m["module"].endswith("discovery.Discovery"))


def worker_url(stack: RunningStack) -> str | None:
    """The generic worker's own client listener (the router sends Wangxin paths to the main
    process; a shake sent here proves the rendezvous works from any process)."""
    if not stack.info["workers"]:
        return None
    with open(os.path.join(stack.dir, "workers", "worker1.yaml"), encoding="utf-8") as f:
        listeners = yaml.safe_load(f)["worker_listeners"]
    port = next(li["port"] for li in listeners if any("client" in r["names"] for r in li["resources"]))
    return f"http://127.0.0.1:{port}"


def shake_together(stack: RunningStack, users: list[HttpUser]) -> dict[str, dict]:
    """Everyone shakes at once, early in a window (the windows are slices of the server's clock,
    which is this machine's: starting right after a boundary keeps all the shakes in one
    window); on workers every other shake goes to the generic worker. Answers by user id."""
    window_ms = module_config(stack)["shake_window_ms"]
    while not 50 <= time.time() * 1000 % window_ms <= window_ms / 4:
        time.sleep(0.01)
    other = worker_url(stack)

    def shake(n_user: tuple[int, HttpUser]) -> tuple[str, requests.Response]:
        n, user = n_user
        base = other if other and n % 2 else stack.url
        return user.user_id, user.http.post(f"{base}{D}/shake", json={}, timeout=60)

    with ThreadPoolExecutor(len(users)) as pool:
        answers = list(pool.map(shake, enumerate(users)))
    for user_id, r in answers:
        assert r.status_code == 200, (user_id, r.text)
    return {user_id: r.json() for user_id, r in answers}


@pytest.fixture
def cleanup() -> Any:
    """Users to opt out at the end, whatever happened: their bottles leave the shared sea."""
    users: list[HttpUser] = []
    yield users
    for user in users:
        user.raw("PUT", f"{D}/profile", {"enabled": False})


# -- opt-in and nearby ---------------------------------------------------------------------------


def test_discovery_is_off_by_default_and_nearby_lists_only_opted_in_people_by_band(stack: RunningStack) -> None:
    area = Area()
    me = HttpUser(stack)
    assert me.call("GET", f"{D}/profile") == {"enabled": False}
    status, errcode, message = error(me.raw("PUT", f"{D}/location", {"latitude": 1, "longitude": 2}))
    assert (status, errcode) == (403, "M_FORBIDDEN") and '"enabled": true' in message
    assert me.raw("GET", f"{D}/nearby").status_code == 403
    profile = opt_in(me, name="Xiao Li", gender="female", age_range="25-34")
    assert profile == {"enabled": True, "name": "Xiao Li", "gender": "female", "age_range": "25-34"}
    assert error(me.raw("GET", f"{D}/nearby"))[0] == 403  # no location yet: says how to share it
    locate(me, area.at())
    same = person(stack, area.at(), name="Same Cell")
    east = person(stack, area.at(east=1))
    person(stack, area.far())
    person(stack, None)  # opted in, no location
    HttpUser(stack)  # never opted in
    listed = nearby(me)
    assert [(p["user_id"], p["distance"]) for p in listed] == [(same.user_id, "< 1 km"), (east.user_id, "1–5 km")]
    assert listed[0]["display_name"] == "Same Cell" and listed[1]["display_name"] == east.user_id[1:].split(":")[0]
    assert set(listed[0]) == {"user_id", "display_name", "distance"}
    assert seen_by(east) == {me.user_id: "1–5 km", same.user_id: "1–5 km"}
    view = me.call("GET", f"{D}/profile")
    assert view["enabled"] and view["status"] == "active" and view["location"]["shared"]
    info = requests.get(f"{stack.url}/_synapse/client/wangxin/v1/info", timeout=30).json()
    assert "discovery" in info["features"]


def test_opting_out_takes_everyone_out_of_everything_at_once(stack: RunningStack) -> None:
    area = Area()
    a = person(stack, area.at())
    b = person(stack, area.at())
    hi = b.call("POST", f"{D}/requests", {"user_id": a.user_id, "text": "hello"})["request_id"]
    b.call("POST", f"{D}/bottles", {"text": "a bottle from b"})
    assert [r["request_id"] for r in requests_of(a)] == [hi]
    assert b.call("PUT", f"{D}/profile", {"enabled": False}) == {"enabled": False}
    # At once: no waiting.
    assert seen_by(a) == {}
    assert requests_of(a) == []
    gone = error(a.raw("POST", f"{D}/requests/{hi}/accept", {}))
    never = error(a.raw("POST", f"{D}/requests/{secrets.token_urlsafe(16)}/accept", {}))
    assert gone == never == (404, "M_NOT_FOUND", "No such request")
    assert b.call("GET", f"{D}/profile") == {"enabled": False}
    for table in ("wangxin_discovery_profiles", "wangxin_discovery_locations"):
        assert database.query(stack, f"SELECT * FROM {table} WHERE user_id = ?", [b.user_id]) == []
    assert database.query(stack, "SELECT * FROM wangxin_discovery_bottles WHERE thrower = ?", [b.user_id]) == []
    # Back in: a fresh start, with nothing of before.
    opt_in(b)
    assert error(b.raw("GET", f"{D}/nearby"))[0] == 403


def test_service_accounts_and_merchants_never_appear(stack: RunningStack) -> None:
    area = Area()
    watcher = person(stack, area.at())
    bridge_bot = requests.Session()
    bridge_bot.headers["Authorization"] = f"Bearer {stack.info['bridge']['as_token']}"
    r = bridge_bot.put(f"{stack.url}{D}/profile", json={"enabled": True}, timeout=30)
    assert error(r)[:2] == (403, "M_FORBIDDEN") and "Service accounts" in r.json()["error"]
    shop = HttpUser(stack)
    admin = stack.admin_headers()
    url = f"{stack.url}/_synapse/client/wangxin/v1/merchants/{q(shop.user_id)}"
    assert requests.put(url, json={"name": "Tea House"}, headers=admin, timeout=60).status_code == 200
    assert "Shop accounts" in error(shop.raw("PUT", f"{D}/profile", {"enabled": True}))[2]
    # Someone who opted in and then became a merchant leaves every list at once.
    later = person(stack, area.at())
    assert later.user_id in seen_by(watcher)
    url = f"{stack.url}/_synapse/client/wangxin/v1/merchants/{q(later.user_id)}"
    assert requests.put(url, json={"name": "Noodles"}, headers=admin, timeout=60).status_code == 200
    assert seen_by(watcher) == {}
    eventually(lambda: later.call("GET", f"{D}/profile") == {"enabled": False}, timeout=30)


# -- requests ------------------------------------------------------------------------------------


async def test_hi_then_accept_makes_an_encrypted_direct_chat_with_both(stack: RunningStack) -> None:
    area = Area()
    a = person(stack, area.at(), name="A")
    b = person(stack, area.at(east=1), name="B")
    c = person(stack, area.at())
    rid = a.call("POST", f"{D}/requests", {"user_id": b.user_id, "text": "Hi, tea?"})["request_id"]
    (incoming,) = requests_of(b)
    assert incoming == {"request_id": rid, "kind": "hi", "direction": "incoming", "user_id": a.user_id,
                        "display_name": "A", "accepted_by_you": False, "accepted_by_them": True,
                        "created_ts": incoming["created_ts"], "text": "Hi, tea?"}
    assert requests_of(a)[0]["direction"] == "outgoing"
    again = a.raw("POST", f"{D}/requests", {"user_id": b.user_id})
    assert again.status_code == 409 and again.json()["request_id"] == rid
    assert error(c.raw("POST", f"{D}/requests/{rid}/accept", {}))[:2] == (403, "M_FORBIDDEN")
    assert error(a.raw("POST", f"{D}/requests/{rid}/accept", {}))[:2] == (403, "M_FORBIDDEN")
    accepted = b.call("POST", f"{D}/requests/{rid}/accept", {})
    room_id = accepted["room_id"]
    assert accepted["is_direct"] is True and accepted["user_id"] == a.user_id and accepted["encrypted"] is True
    assert error(b.raw("POST", f"{D}/requests/{rid}/accept", {}))[0] == 409
    assert error(b.raw("POST", f"{D}/requests/{rid}/decline", {}))[0] == 409
    assert requests_of(a) == requests_of(b) == []
    # Both are in the room (no invite to act on), it is encrypted, and each one's client sees a DM.
    members = a.call("GET", f"/_matrix/client/v3/rooms/{q(room_id)}/joined_members")["joined"]
    assert set(members) == {a.user_id, b.user_id}
    encryption = b.call("GET", f"/_matrix/client/v3/rooms/{q(room_id)}/state/m.room.encryption/")
    assert encryption["algorithm"] == "m.megolm.v1.aes-sha2"
    for me, other in ((a, b), (b, a)):
        direct = me.call("GET", f"/_matrix/client/v3/user/{q(me.user_id)}/account_data/m.direct")
        assert room_id in direct[other.user_id]
    client = await client_for(stack.url, b.info)
    try:
        await client.sync(timeout=0, full_state=True)
        room = client.rooms[room_id]
        assert room.encrypted and a.user_id in room.users and b.user_id in room.users
    finally:
        await client.close()


def test_a_decline_is_final_and_the_sender_may_not_ask_again_at_once(stack: RunningStack) -> None:
    area = Area()
    a = person(stack, area.at())
    b = person(stack, area.at())
    rid = a.call("POST", f"{D}/requests", {"user_id": b.user_id})["request_id"]
    assert b.call("POST", f"{D}/requests/{rid}/decline", {}) == {"request_id": rid, "state": "declined"}
    assert error(b.raw("POST", f"{D}/requests/{rid}/accept", {}))[0] == 409
    assert requests_of(a) == []
    r = a.raw("POST", f"{D}/requests", {"user_id": b.user_id})
    assert r.status_code == 429 and r.json()["errcode"] == "M_LIMIT_EXCEEDED"
    assert 0 < r.json()["retry_after_ms"] <= 24 * 3600_000


# -- shake ---------------------------------------------------------------------------------------


def test_shake_pairs_people_who_shook_in_the_same_window_and_region(stack: RunningStack) -> None:
    here, there = Area(), Area()
    a, b = person(stack, here.at()), person(stack, here.at())
    c, d = person(stack, there.at()), person(stack, there.at())
    answers = shake_together(stack, [a, b, c, d])
    assert answers[a.user_id]["paired_with"] == b.user_id and answers[b.user_id]["paired_with"] == a.user_id
    assert answers[c.user_id]["paired_with"] == d.user_id and answers[d.user_id]["paired_with"] == c.user_id
    assert answers[a.user_id]["request_id"] == answers[b.user_id]["request_id"]
    rid = answers[c.user_id]["request_id"]
    # A pairing is a request on both sides: the room comes when both accepted.
    (mutual,) = requests_of(c)
    assert (mutual["kind"], mutual["direction"], mutual["user_id"]) == ("shake", "mutual", d.user_id)
    assert c.call("POST", f"{D}/requests/{rid}/accept", {}) == {"request_id": rid, "state": "waiting",
                                                                "waiting_for": d.user_id}
    accepted = d.call("POST", f"{D}/requests/{rid}/accept", {})
    assert accepted["state"] == "accepted" and accepted["is_direct"] is True
    members = c.call("GET", f"/_matrix/client/v3/rooms/{q(accepted['room_id'])}/joined_members")["joined"]
    assert set(members) == {c.user_id, d.user_id}


def test_shake_someone_without_a_location_pairs_with_anyone_but_a_blocker_with_nobody(stack: RunningStack) -> None:
    here, there = Area(), Area()
    nowhere, a, b = person(stack, None), person(stack, here.at()), person(stack, there.at())
    answers = shake_together(stack, [nowhere, a, b])
    partner = answers[nowhere.user_id]["paired_with"]
    assert partner in (a.user_id, b.user_id)
    alone = b if partner == a.user_id else a
    assert answers[alone.user_id] == {"paired_with": None}
    blocker, blocked = person(stack, here.at()), person(stack, here.at())
    blocker.call("POST", f"{D}/block", {"user_id": blocked.user_id})
    answers = shake_together(stack, [blocker, blocked])
    assert answers[blocker.user_id] == answers[blocked.user_id] == {"paired_with": None}
    outsider = HttpUser(stack)
    assert error(outsider.raw("POST", f"{D}/shake", {}))[:2] == (403, "M_FORBIDDEN")


# -- bottles -------------------------------------------------------------------------------------


def test_bottles_are_picked_once_never_by_their_thrower_and_a_reply_is_a_request(
        stack: RunningStack, cleanup: list) -> None:
    a, b, c = person(stack, None, name="Thrower"), person(stack, None), person(stack, None)
    cleanup += [a, b, c]
    bottle = a.call("POST", f"{D}/bottles", {"text": "Anyone out there?"})["bottle_id"]
    assert error(a.raw("POST", f"{D}/bottles/pick", {}))[:2] == (404, "M_NOT_FOUND")  # never one's own
    picked = b.call("POST", f"{D}/bottles/pick", {})
    assert (picked["bottle_id"], picked["text"]) == (bottle, "Anyone out there?")
    assert picked["from"] == {"user_id": a.user_id, "display_name": "Thrower"}
    assert error(b.raw("POST", f"{D}/bottles/pick", {}))[0] == 404  # never one picked before
    assert error(c.raw("POST", f"{D}/bottles/pick", {}))[0] == 404  # out of the sea for everyone
    assert error(c.raw("POST", f"{D}/bottles/{bottle}/reply", {"text": "me?"}))[0] == 404
    rid = b.call("POST", f"{D}/bottles/{bottle}/reply", {"text": "I am!"})["request_id"]
    assert error(b.raw("POST", f"{D}/bottles/{bottle}/reply", {"text": "again"}))[0] == 409
    (incoming,) = requests_of(a)
    assert (incoming["kind"], incoming["user_id"], incoming["text"]) == ("bottle", b.user_id, "I am!")
    accepted = a.call("POST", f"{D}/requests/{rid}/accept", {})
    assert accepted["state"] == "accepted" and accepted["user_id"] == b.user_id


def test_bottle_limits_hold(stack: RunningStack, cleanup: list) -> None:
    config = module_config(stack)
    thrower, picker = person(stack, None), person(stack, None)
    cleanup += [thrower, picker]
    too_long = thrower.raw("POST", f"{D}/bottles", {"text": "x" * (config.get("bottle_max_chars", 1000) + 1)})
    assert error(too_long)[0] == 400 and "'text'" in error(too_long)[2]
    for n in range(config["throws_per_day"]):
        thrower.call("POST", f"{D}/bottles", {"text": f"bottle {n}"})
    r = thrower.raw("POST", f"{D}/bottles", {"text": "one more"})
    assert r.status_code == 429 and r.json()["org.wangxin.limit"] == "throws_per_day"
    assert r.json()["retry_after_ms"] > 23 * 3600_000
    for _ in range(config["picks_per_day"]):
        picker.call("POST", f"{D}/bottles/pick", {})
    r = picker.raw("POST", f"{D}/bottles/pick", {})
    assert r.status_code == 429 and r.json()["org.wangxin.limit"] == "picks_per_day"


def test_an_empty_sea_is_404(stack: RunningStack, cleanup: list) -> None:
    picker = person(stack, None)
    cleanup.append(picker)
    assert error(picker.raw("POST", f"{D}/bottles/pick", {})) == (
        404, "M_NOT_FOUND", "The sea is empty: no bottle for you to pick right now")


# -- safety --------------------------------------------------------------------------------------


def test_a_block_hides_each_from_the_other_everywhere_for_good(stack: RunningStack, cleanup: list) -> None:
    area = Area()
    a, b, c = person(stack, area.at()), person(stack, area.at()), person(stack, area.at())
    cleanup += [a, b]
    b.call("POST", f"{D}/bottles", {"text": "from b"})
    assert a.call("POST", f"{D}/block", {"user_id": b.user_id}) == {"blocked": b.user_id}
    assert seen_by(a) == {c.user_id: "< 1 km"} and seen_by(b) == {c.user_id: "< 1 km"}
    assert error(b.raw("POST", f"{D}/requests", {"user_id": a.user_id}))[0] == 404
    assert error(a.raw("POST", f"{D}/bottles/pick", {}))[0] == 404  # b's bottle is not for a
    # For good: opting out and in again changes nothing.
    a.call("PUT", f"{D}/profile", {"enabled": False})
    opt_in(a)
    locate(a, area.at())
    assert seen_by(b) == {c.user_id: "< 1 km"} and b.user_id not in seen_by(a)


def test_a_report_holds_the_person_out_until_an_admin_restores_or_bans(stack: RunningStack) -> None:
    area = Area()
    a, b, c = person(stack, area.at()), person(stack, area.at()), person(stack, area.at())
    report = a.call("POST", f"{D}/report", {"user_id": b.user_id, "reason": "rude messages"})
    assert report["blocked"] == b.user_id
    assert seen_by(c) == {a.user_id: "< 1 km"}  # at once, for everyone
    status, _, message = error(b.raw("GET", f"{D}/nearby"))
    assert status == 403 and "under review" in message
    assert b.call("GET", f"{D}/profile")["status"] == "under_review"
    assert error(c.raw("GET", f"{D}/reports"))[:2] == (403, "M_FORBIDDEN")
    admin = requests.Session()
    admin.headers.update(stack.admin_headers())
    listed = admin.get(f"{stack.url}{D}/reports", timeout=30).json()["reports"]
    mine = next(r for r in listed if r["report_id"] == report["report_id"])
    assert (mine["reporter"], mine["reported"], mine["reason"], mine["state"]) == (
        a.user_id, b.user_id, "rude messages", "open")
    url = f"{stack.url}{D}/reports/{report['report_id']}/resolve"
    bad = admin.post(url, json={"action": "forgive"}, timeout=30)
    assert error(bad)[0] == 400 and "'action'" in error(bad)[2]
    assert error(admin.post(f"{stack.url}{D}/reports/{secrets.token_urlsafe(16)}/resolve",
                            json={"action": "ban"}, timeout=30))[0] == 404
    assert admin.post(url, json={"action": "restore"}, timeout=30).json()["state"] == "restored"
    assert error(admin.post(url, json={"action": "ban"}, timeout=30))[0] == 409
    assert seen_by(c) == {a.user_id: "< 1 km", b.user_id: "< 1 km"}
    assert b.user_id not in seen_by(a)  # the report's block stays
    second = c.call("POST", f"{D}/report", {"user_id": b.user_id, "reason": "spam"})["report_id"]
    assert seen_by(c) == {a.user_id: "< 1 km"}
    banned = admin.post(f"{stack.url}{D}/reports/{second}/resolve", json={"action": "ban"}, timeout=30)
    assert banned.json()["state"] == "banned"
    assert b.call("GET", f"{D}/profile") == {"enabled": False, "status": "banned"}
    assert error(b.raw("PUT", f"{D}/profile", {"enabled": True}))[:2] == (403, "M_FORBIDDEN")
    assert database.query(stack, "SELECT * FROM wangxin_discovery_locations WHERE user_id = ?", [b.user_id]) == []


def test_nothing_tells_whether_someone_not_in_discovery_exists(stack: RunningStack) -> None:
    area = Area()
    me = person(stack, area.at())
    far_away = person(stack, area.far())
    not_opted_in = HttpUser(stack)
    left = person(stack, area.at())
    pending = left.call("POST", f"{D}/requests", {"user_id": me.user_id})["request_id"]
    left.call("PUT", f"{D}/profile", {"enabled": False})
    nobody = f"@nobody-{secrets.token_hex(4)}:{stack.server_name}"
    elsewhere = "@someone:elsewhere.example"
    targets = [far_away.user_id, not_opted_in.user_id, left.user_id, nobody, elsewhere]
    his = {error(me.raw("POST", f"{D}/requests", {"user_id": t, "text": "hi"})) for t in targets}
    assert his == {(404, "M_NOT_FOUND", "No one by that id is near you in discovery")}
    blocks = [me.raw("POST", f"{D}/block", {"user_id": t}) for t in targets]
    assert {(r.status_code, json.dumps(r.json()).replace(t, "X")) for r, t in zip(blocks, targets, strict=True)} == {
        (200, '{"blocked": "X"}')}
    reports = [me.raw("POST", f"{D}/report", {"user_id": t, "reason": "probe"}) for t in targets]
    assert {(r.status_code, tuple(sorted(r.json()))) for r in reports} == {(200, ("blocked", "report_id"))}
    answers = {error(me.raw("POST", f"{D}/requests/{rid}/{verb}", {}))
               for rid in (pending, secrets.token_urlsafe(16)) for verb in ("accept", "decline")}
    assert answers == {(404, "M_NOT_FOUND", "No such request")}


# -- privacy of positions ------------------------------------------------------------------------


def _digits(value: float) -> list[str]:
    """What a stored or logged copy of the position would contain: its decimals, the value in
    micro-degrees, and four decimals (10 m)."""
    decimals = f"{value:.9f}".split(".")[1]
    return [decimals, str(int(abs(value) * 1e6)), f"{value:.4f}"]


def test_coordinates_are_never_stored_logged_or_sent_back(stack: RunningStack) -> None:
    area = Area()
    position = area.at()
    user = HttpUser(stack)
    opt_in(user)
    answers = [json.dumps(locate(user, position))]
    neighbour = person(stack, area.at())
    answers += [json.dumps(nearby(neighbour)), json.dumps(user.call("GET", f"{D}/profile"))]
    needles = [d for v in position for d in _digits(v)]
    # The cell and a time are stored; nothing finer.
    ((cell,),) = database.query(stack, "SELECT cell FROM wangxin_discovery_locations WHERE user_id = ?",
                                [user.user_id])
    assert cell == cell_of(*position, PRECISION)
    assert database.rows_containing(stack, needles) == []
    for answer in answers:
        assert not any(n in answer for n in needles), answer
    for name in os.listdir(stack.info["logs_dir"]):
        with open(os.path.join(stack.info["logs_dir"], name), encoding="utf-8", errors="replace") as f:
            text = f.read()
        assert not any(n in text for n in needles), name


def test_a_location_expires_and_is_deleted(stack: RunningStack) -> None:
    area = Area()
    ttl_s = module_config(stack)["location_ttl_s"]
    a = person(stack, area.at())
    b = person(stack, area.at())
    assert a.user_id in seen_by(b)

    def deleted() -> bool:
        return not database.query(stack, "SELECT 1 FROM wangxin_discovery_locations WHERE user_id = ?", [a.user_id])

    eventually(deleted, timeout=ttl_s + 60, interval=0.5)
    assert a.call("GET", f"{D}/profile")["location"] == {"shared": False, "expires_ts": None}
    assert error(a.raw("GET", f"{D}/nearby"))[0] == 403


# -- bad input -----------------------------------------------------------------------------------


@pytest.mark.parametrize("body, field", [
    ('{"latitude": 91, "longitude": 10}', "latitude"),
    ('{"latitude": 10, "longitude": -180.5}', "longitude"),
    ('{"latitude": NaN, "longitude": 10}', "latitude"),
    ('{"latitude": 10, "longitude": Infinity}', "longitude"),
    ('{"latitude": "31.2", "longitude": 10}', "latitude"),
    ('{"latitude": 10}', "longitude"),
    ('{"latitude": 10, "longitude": 10, "altitude": 3}', "altitude"),
])
def test_a_bad_position_is_400_naming_the_field_and_changes_nothing(stack: RunningStack, body: str,
                                                                     field: str) -> None:
    area = Area()
    user = person(stack, area.at())
    before = database.query(stack, "SELECT cell, updated_ts FROM wangxin_discovery_locations WHERE user_id = ?",
                            [user.user_id])
    r = user.http.put(f"{stack.url}{D}/location", data=body, headers={"Content-Type": "application/json"},
                      timeout=30)
    status, errcode, message = error(r)
    assert status == 400 and errcode in ("M_BAD_JSON", "M_INVALID_PARAM") and f"'{field}'" in message
    assert database.query(stack, "SELECT cell, updated_ts FROM wangxin_discovery_locations WHERE user_id = ?",
                          [user.user_id]) == before


def test_bad_bodies_and_ids_get_clear_errors(stack: RunningStack) -> None:
    user = person(stack, None)
    cases = [
        ("PUT", "/profile", {"enabled": "yes"}, 400, "'enabled'"),
        ("PUT", "/profile", {"enabled": True, "age_range": "12-17"}, 400, "'age_range'"),
        ("POST", "/bottles", {"text": ""}, 400, "'text'"),
        ("POST", "/block", {"user_id": "bob"}, 400, "'user_id'"),
        ("POST", "/block", {"user_id": user.user_id}, 400, "'user_id' is you"),
        ("POST", "/report", {"user_id": "@x:y"}, 400, "'reason'"),
        ("POST", "/requests/not%20an%20id/accept", {}, 404, "No such request"),
        ("POST", "/bottles/xyz/reply", {"text": "hi"}, 404, "No such bottle"),
    ]
    for method, path, body, status, words in cases:
        r = user.raw(method, D + path, body)
        assert r.status_code == status and words in r.json()["error"], (path, r.text)


def test_hammering_a_pool_is_429_with_retry_after(stack: RunningStack) -> None:
    area = Area()
    user = person(stack, area.at())
    statuses = []
    for _ in range(40):
        r = user.raw("GET", f"{D}/nearby")
        statuses.append(r.status_code)
        if r.status_code == 429:
            body = r.json()
            assert body["errcode"] == "M_LIMIT_EXCEEDED" and body["retry_after_ms"] > 0
            assert body["org.wangxin.limit"] == "rate_limits.nearby"
            assert int(r.headers["Retry-After"]) >= 1
            break
    assert statuses[-1] == 429 and set(statuses[:-1]) == {200}
    for _ in range(20):
        r = user.raw("PUT", f"{D}/location", {"latitude": area.lat, "longitude": area.lon})
        if r.status_code == 429:
            break
    assert r.status_code == 429 and r.json()["org.wangxin.limit"] == "rate_limits.location"

