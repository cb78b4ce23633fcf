"""Parcels in chat (快递), as the shop platform, the person and their client meet it: shipment
webhooks, one Parcels room per person with one card per shipment edited in place, the
notifications Synapse's own push rules make of it, phone numbers bound later, and the JSON API.
Plain HTTP, as any client and the platform would talk to Synapse."""

from __future__ import annotations

import random
import secrets
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
import requests

from tests.e2e.test_contact_import import bind_phone, random_mobile
from tests.e2e.test_phone_signup import new_number, register_with_phone
from tests.harness.fake_twilio import FakeTwilio
from tests.harness.http import HttpUser, eventually, q, timeline
from tests.harness.stack import RunningStack

API = "/_synapse/client/wangxin/v1"
CLIENT = "/_matrix/client/v3"
PARCELS_TYPE = "org.wangxin.parcels"
PARCEL = "org.wangxin.parcel"
HOUR = 3600 * 1000
DAY = 24 * HOUR
SF_LINK = "https://www.sf-express.com/chn/sc/dynamic_function/waybill/#search/bill-number/"


# -- helpers -------------------------------------------------------------------------------------


def now_ms() -> int:
    return int(time.time() * 1000)


def new_id(prefix: str = "shp") -> str:
    return f"{prefix}-{secrets.token_hex(6)}"


def post(stack: RunningStack, body: Any, secret: str | None = "platform", path: str = "/shipments",
         method: str = "POST", raw: bytes | None = None) -> requests.Response:
    headers = {}
    if secret == "platform":
        secret = stack.info["parcels"]["platform_secret"]
    if secret is not None:
        headers["Authorization"] = f"Bearer {secret}"
    if raw is not None:
        return requests.request(method, stack.url + API + path, data=raw, timeout=60,
                                headers={**headers, "Content-Type": "application/json"})
    return requests.request(method, stack.url + API + path, json=body, headers=headers, timeout=60)


def ship(stack: RunningStack, shipment_id: str, status: str, at: int, *, buyer: str | None = None,
         expect_changed: bool | None = True, **fields: Any) -> dict[str, Any]:
    body = {"shipment_id": shipment_id, "carrier": "sf", "tracking_number": f"SF{shipment_id[-8:]}",
            "status": status, "at": at, **fields}
    if buyer is not None:
        body["buyer"] = buyer
    r = post(stack, body)
    assert r.status_code == 200, r.text
    answer = r.json()
    assert answer["shipment_id"] == shipment_id
    if expect_changed is not None:
        assert answer["changed"] is expect_changed, answer
    return dict(answer)


class Account(HttpUser):
    """An account made elsewhere (phone sign-up), used with its own token."""

    def __init__(self, stack: RunningStack, user_id: str, token: str):
        self.stack, self.user_id, self.token, self.device_id, self.info = stack, user_id, token, "", {}
        self.http = requests.Session()
        self.http.headers["Authorization"] = f"Bearer {token}"


def parcels(user: HttpUser) -> dict[str, Any]:
    return dict(user.call("GET", f"{API}/parcels"))


def parcels_room(user: HttpUser) -> str:
    return str(eventually(lambda: parcels(user)["room_id"], timeout=30))


def bot_of(stack: RunningStack) -> str:
    return str(stack.info["parcels"]["bot_user_id"])


def cards(user: HttpUser, room_id: str, shipment_id: str) -> list[dict[str, Any]]:
    """The card messages of one shipment in the room (a card is a message with no relation)."""
    return [e for e in timeline(user, room_id)
            if e["type"] == "m.room.message" and "m.relates_to" not in e["content"]
            and e["content"].get(PARCEL, {}).get("shipment_id") == shipment_id]


def shown(user: HttpUser, room_id: str, shipment_id: str) -> dict[str, Any] | None:
    """What the person's client shows for the shipment: the card's content, or its latest edit's."""
    events = timeline(user, room_id)  # newest first
    found = [e for e in events if e["type"] == "m.room.message" and "m.relates_to" not in e["content"]
             and e["content"].get(PARCEL, {}).get("shipment_id") == shipment_id]
    if not found:
        return None
    card = found[-1]
    for e in events:
        relation = e["content"].get("m.relates_to", {})
        if relation.get("rel_type") == "m.replace" and relation.get("event_id") == card["event_id"]:
            assert e["sender"] == card["sender"]
            return dict(e["content"]["m.new_content"])
    return dict(card["content"])


def history_lines(content: dict[str, Any]) -> list[str]:
    return [line for line in content["body"].splitlines() if line.startswith("• ")]


def shown_status(user: HttpUser, room_id: str, shipment_id: str) -> str | None:
    content = shown(user, room_id, shipment_id)
    return content[PARCEL]["status"] if content else None


def notified_statuses(user: HttpUser, room_id: str) -> list[tuple[str, str]]:
    """(shipment, status) of the notifications the person got from the room, oldest first."""
    found = []
    for n in reversed(user.notifications()):
        if n["room_id"] == room_id:
            content = n["event"]["content"]
            found.append((content[PARCEL]["shipment_id"], content[PARCEL]["status"]))
    return found


def state(user: HttpUser, room_id: str, event_type: str, state_key: str = "") -> Any:
    r = user.raw("GET", f"{CLIENT}/rooms/{q(room_id)}/state/{q(event_type)}/{q(state_key)}")
    return r.json() if r.status_code == 200 else None


def service_secret(stack: RunningStack) -> str:
    from bridges.config import load_config

    return str(load_config(stack.info["bridge"]["config"]).homeserver.service_secret)


# -- one card per shipment, edited in place ------------------------------------------------------


def test_a_shipments_updates_give_one_card_edited_to_the_final_state(stack: RunningStack) -> None:
    alice = HttpUser(stack)
    sid = new_id()
    t = now_ms() - 5 * HOUR
    where = {"location": "Hangzhou Xihu"}
    steps = [  # (status, at, fields, changed, status answered)
        ("created", t, {}, True, "created"),
        ("picked_up", t + HOUR, {"location": "Shenzhen"}, True, "picked_up"),
        ("picked_up", t + HOUR, {"location": "Shenzhen"}, False, "picked_up"),  # a replay
        ("in_transit", t + 2 * HOUR, {"location": "Hangzhou hub", "eta": t + 6 * HOUR}, True, "in_transit"),
        ("in_transit", t + 2 * HOUR + 30, {"location": "Hangzhou depot"}, True, "in_transit"),  # moved on
        ("picked_up", t + 2 * HOUR + 60, {"location": "Shenzhen"}, True, "in_transit"),  # later, but earlier stage
        ("delivered", t + 4 * HOUR, {**where, "detail": "signed by Alice"}, True, "delivered"),
        ("out_for_delivery", t + 3 * HOUR, where, True, "delivered"),  # late: history only
        ("in_transit", t + 2 * HOUR, {"location": "Hangzhou hub"}, False, "delivered"),  # an old replay
    ]
    for status, at, fields, changed, answered in steps:
        answer = ship(stack, sid, status, at, buyer=alice.user_id, expect_changed=changed, order_id="o-1", **fields)
        assert answer["status"] == answered, (status, answer)

    room_id = parcels_room(alice)
    content = eventually(lambda: (c := shown(alice, room_id, sid)) and c[PARCEL]["status"] == "delivered"
                         and len(history_lines(c)) == 7 and c, timeout=30)
    assert len(cards(alice, room_id, sid)) == 1  # one message, edited in place
    body = content["body"]
    assert content["msgtype"] == "m.notice"
    assert content[PARCEL]["status"] == "delivered"
    for words in ("顺丰速运 SF Express", f"SF{sid[-8:]}", "已签收 · Delivered", "Hangzhou Xihu", "signed by Alice",
                  SF_LINK + f"SF{sid[-8:]}", "派送中 · Out for delivery — Hangzhou Xihu",
                  "已揽收 · Picked up — Shenzhen"):
        assert words in body, (words, body)
    assert "预计送达" not in body  # delivered: no ETA any more
    # Every edit is the bot's and replaces that one card.
    bot = bot_of(stack)
    for e in timeline(alice, room_id):
        relation = e["content"].get("m.relates_to", {})
        if relation.get("rel_type") == "m.replace":
            assert e["sender"] == bot and relation["event_id"] == cards(alice, room_id, sid)[0]["event_id"]


def test_the_parcels_room_is_the_persons_own_and_only_the_bot_writes_it(stack: RunningStack) -> None:
    bob = HttpUser(stack)
    ship(stack, new_id(), "created", now_ms(), buyer=bob.user_id)
    room_id = parcels_room(bob)
    bot = bot_of(stack)
    # (On workers, the worker answering the client may learn of the room a moment later.)
    assert eventually(lambda: state(bob, room_id, "m.room.create"), timeout=30)["type"] == PARCELS_TYPE
    assert state(bob, room_id, "m.room.name")["name"] == "Parcels · 快递"
    assert state(bob, room_id, "m.room.join_rules")["join_rule"] == "invite"  # nobody else can join
    assert state(bob, room_id, "m.room.encryption") is None  # unencrypted by design
    members = bob.call("GET", f"{CLIENT}/rooms/{q(room_id)}/joined_members")["joined"]
    assert set(members) == {bob.user_id, bot}
    # Bob was joined by the server: no invitation to accept, none in the room's history.
    assert not [e for e in timeline(bob, room_id)
                if e["type"] == "m.room.member" and e["content"].get("membership") == "invite"]
    levels = state(bob, room_id, "m.room.power_levels")
    assert levels.get("users", {}).get(bob.user_id, 0) == 0 and levels["events_default"] == 100
    # Bob may write to the bot there, but cannot encrypt, rename, react or invite anyone.
    bob.say(room_id, "hello")
    assert bob.raw("PUT", f"{CLIENT}/rooms/{q(room_id)}/state/m.room.encryption/",
                   {"algorithm": "m.megolm.v1.aes-sha2"}).status_code == 403
    assert bob.raw("PUT", f"{CLIENT}/rooms/{q(room_id)}/state/m.room.name/", {"name": "x"}).status_code == 403
    card = eventually(lambda: cards(bob, room_id, parcels(bob)["parcels"][0]["shipment_id"]), timeout=30)[0]
    reaction = {"m.relates_to": {"rel_type": "m.annotation", "event_id": card["event_id"], "key": "👍"}}
    r = bob.raw("PUT", f"{CLIENT}/rooms/{q(room_id)}/send/m.reaction/{secrets.token_hex(4)}", reaction)
    assert r.status_code == 403, r.text
    carol = HttpUser(stack)
    assert carol.raw("POST", f"{CLIENT}/join/{q(room_id)}", {}).status_code == 403
    assert bob.raw("POST", f"{CLIENT}/rooms/{q(room_id)}/invite", {"user_id": carol.user_id}).status_code == 403


def test_a_client_cannot_make_a_room_that_passes_for_a_parcels_room(stack: RunningStack) -> None:
    mallory = HttpUser(stack)
    r = mallory.raw("POST", f"{CLIENT}/createRoom", {"creation_content": {"type": PARCELS_TYPE}})
    assert r.status_code == 403 and r.json()["errcode"] == "M_FORBIDDEN", r.text


def test_the_server_lists_parcels_among_its_features(stack: RunningStack) -> None:
    info = requests.get(f"{stack.url}{API}/info", timeout=30).json()
    assert "parcels" in info["features"]


# -- notifications -------------------------------------------------------------------------------


def test_only_the_notifying_statuses_notify(stack: RunningStack) -> None:
    """Quiet updates are sent before each notifying one: once that one shows in /notifications,
    Synapse has evaluated the quiet ones before it (events are evaluated in order)."""
    dan = HttpUser(stack)
    first, second = new_id(), new_id()
    t = now_ms() - 10 * HOUR
    for n, status in enumerate(("created", "picked_up", "in_transit", "out_for_delivery")):
        ship(stack, first, status, t + n * HOUR, buyer=dan.user_id, location=f"stop {n}")
    room_id = parcels_room(dan)
    eventually(lambda: notified_statuses(dan, room_id) == [(first, "out_for_delivery")], timeout=30)
    ship(stack, first, "in_transit", t + 3 * HOUR + 1, buyer=dan.user_id)  # a later scan of an earlier stage
    ship(stack, first, "delivered", t + 5 * HOUR, buyer=dan.user_id)
    eventually(lambda: notified_statuses(dan, room_id)[-1:] == [(first, "delivered")], timeout=30)
    ship(stack, first, "exception", t + 4 * HOUR, buyer=dan.user_id)  # stamped before the delivery: history
    ship(stack, second, "created", t, buyer=dan.user_id)
    ship(stack, second, "exception", t + HOUR, buyer=dan.user_id, detail="address unknown")
    eventually(lambda: notified_statuses(dan, room_id)[-1:] == [(second, "exception")], timeout=30)
    ship(stack, second, "exception", t + 2 * HOUR, buyer=dan.user_id, detail="still unknown")  # no new status
    ship(stack, second, "returned", t + 3 * HOUR, buyer=dan.user_id)
    eventually(lambda: notified_statuses(dan, room_id)[-1:] == [(second, "returned")], timeout=30)
    assert notified_statuses(dan, room_id) == [(first, "out_for_delivery"), (first, "delivered"),
                                               (second, "exception"), (second, "returned")]
    # Each notification is a short message replying to its card; cards and edits never notify.
    card_ids = {cards(dan, room_id, first)[0]["event_id"], cards(dan, room_id, second)[0]["event_id"]}
    for n in dan.notifications():
        if n["room_id"] == room_id:
            content = n["event"]["content"]
            assert content["msgtype"] == "m.text"
            assert content["m.relates_to"]["m.in_reply_to"]["event_id"] in card_ids
    assert shown_status(dan, room_id, second) == "returned"


# -- phone numbers -------------------------------------------------------------------------------


def test_a_shipment_for_a_number_appears_after_phone_sign_up(stack: RunningStack, twilio: FakeTwilio) -> None:
    national, digits = new_number()
    sid = new_id()
    t = now_ms() - 2 * DAY
    ship(stack, sid, "picked_up", t, buyer_phone=f"+{digits}", location="Shenzhen")
    ship(stack, sid, "in_transit", t + HOUR, buyer_phone=f"+{digits}", location="Wuhan")
    # The platform sees its own number back, never whose account it is.
    view = post(stack, None, path=f"/shipments/{sid}", method="GET").json()
    assert view["buyer_phone"] == f"+{digits}" and view["buyer"] is None and view["status"] == "in_transit"

    account = register_with_phone(stack, twilio, national, digits)
    person = Account(stack, account["user_id"], account["access_token"])
    listed = eventually(lambda: parcels(person)["parcels"], timeout=60)
    assert [p["shipment_id"] for p in listed] == [sid]
    assert [(h["status"], h["location"]) for h in listed[0]["history"]] == [("picked_up", "Shenzhen"),
                                                                            ("in_transit", "Wuhan")]
    room_id = parcels_room(person)
    body = eventually(lambda: (c := shown(person, room_id, sid)) and c["body"], timeout=30)
    assert "运输中 · In transit — Wuhan" in body and "已揽收 · Picked up — Shenzhen" in body  # the whole history
    # Later updates addressed to the number reach the account at once.
    ship(stack, sid, "out_for_delivery", t + 2 * HOUR, buyer_phone=f"+{digits}")
    eventually(lambda: notified_statuses(person, room_id) == [(sid, "out_for_delivery")], timeout=30)
    assert len(cards(person, room_id, sid)) == 1


def test_a_number_bound_later_brings_its_parcels_and_a_bound_number_gets_them_at_once(stack: RunningStack) -> None:
    erin = HttpUser(stack)
    phone = random_mobile()
    earlier, later = new_id(), new_id()
    t = now_ms() - DAY
    ship(stack, earlier, "delivered", t, buyer_phone=phone)
    assert parcels(erin)["parcels"] == []
    bind_phone(stack, erin.user_id, phone)  # the admin API binds it as a client's /account/3pid/add would
    eventually(lambda: [p["shipment_id"] for p in parcels(erin)["parcels"]] == [earlier], timeout=30)
    room_id = parcels_room(erin)
    ship(stack, later, "out_for_delivery", t + HOUR, buyer_phone=phone)  # the number is bound now
    eventually(lambda: notified_statuses(erin, room_id) == [(later, "out_for_delivery")], timeout=30)
    # The parcel that was over before the number was bound appeared without a notification.
    assert shown_status(erin, room_id, earlier) == "delivered"


# -- the JSON API ----------------------------------------------------------------------------------


def test_get_parcels_lists_parcels_on_their_way_and_those_over_in_the_last_30_days(stack: RunningStack) -> None:
    fay, other, shop = HttpUser(stack), HttpUser(stack), HttpUser(stack)
    now = now_ms()
    moving, recent, old, returned, not_hers = (new_id() for _ in range(5))
    ship(stack, moving, "picked_up", now - 40 * DAY, buyer=fay.user_id, merchant=shop.user_id, order_id="o-7")
    ship(stack, moving, "in_transit", now - 39 * DAY, buyer=fay.user_id, location="Lanzhou")
    ship(stack, recent, "delivered", now - 29 * DAY, buyer=fay.user_id, merchant=shop.user_id)
    ship(stack, old, "delivered", now - 31 * DAY, buyer=fay.user_id)
    ship(stack, returned, "returned", now - DAY, buyer=fay.user_id)
    ship(stack, not_hers, "created", now, buyer=other.user_id, merchant=shop.user_id)
    answer = parcels(fay)
    assert answer["room_id"] == parcels_room(fay)
    by_id = {p["shipment_id"]: p for p in answer["parcels"]}
    assert set(by_id) == {moving, recent, returned}
    p = by_id[moving]
    assert (p["status"], p["location"], p["order_id"], p["merchant"]) == ("in_transit", "Lanzhou", "o-7", shop.user_id)
    assert p["status_text"] == {"en": "In transit", "zh": "运输中"}
    assert p["carrier"] == {"code": "sf", "name": "SF Express", "name_zh": "顺丰速运"}
    assert p["tracking_url"] == SF_LINK + p["tracking_number"]
    assert [h["status"] for h in p["history"]] == ["picked_up", "in_transit"]
    assert p["event_id"] == eventually(lambda: cards(fay, answer["room_id"], moving), timeout=30)[0]["event_id"]
    # A bot acting for Fay (the modules' service secret) sees the same; nobody without a token does.
    r = requests.get(f"{stack.url}{API}/parcels", params={"user_id": fay.user_id}, timeout=30,
                     headers={"Authorization": f"Bearer {service_secret(stack)}"})
    assert r.status_code == 200 and {x["shipment_id"] for x in r.json()["parcels"]} == set(by_id), r.text
    assert requests.get(f"{stack.url}{API}/parcels", timeout=30).status_code == 401
    # The merchant sees what it shipped, never to whom.
    shipped = shop.call("GET", f"{API}/parcels/merchant")["shipments"]
    assert {s["shipment_id"] for s in shipped} == {moving, recent, not_hers}
    assert all("buyer" not in s and "buyer_phone" not in s for s in shipped)
    assert [s["shipment_id"] for s in shop.call("GET", f"{API}/parcels/merchant", order_id="o-7")["shipments"]] \
        == [moving]
    assert fay.call("GET", f"{API}/parcels/merchant")["shipments"] == []


def test_get_shipment_answers_the_platform_with_the_status_and_history(stack: RunningStack) -> None:
    gus = HttpUser(stack)
    sid = new_id()
    t = now_ms() - HOUR
    ship(stack, sid, "in_transit", t + 10, buyer=gus.user_id, location="Xi'an", eta=t + DAY)
    ship(stack, sid, "picked_up", t, buyer=gus.user_id, location="Chengdu")
    view = post(stack, None, path=f"/shipments/{sid}", method="GET")
    assert view.status_code == 200, view.text
    body = view.json()
    assert (body["shipment_id"], body["buyer"], body["status"], body["location"], body["eta"]) == (
        sid, gus.user_id, "in_transit", "Xi'an", t + DAY)
    assert [(h["status"], h["at"]) for h in body["history"]] == [("picked_up", t), ("in_transit", t + 10)]
    assert post(stack, None, path=f"/shipments/{sid}", method="GET", secret=None).status_code == 403
    assert post(stack, None, path=f"/shipments/{sid}", method="GET", secret="wrong" * 8).status_code == 403
    missing = post(stack, None, path=f"/shipments/{new_id()}", method="GET")
    assert missing.status_code == 404 and missing.json()["errcode"] == "M_NOT_FOUND"


# -- bad input -------------------------------------------------------------------------------------


def _bad_cases(stack: RunningStack) -> list[tuple[str, dict[str, Any], str | None, int, str, str]]:
    """(what, body fields over a good update, secret, status, errcode, text the error names)."""
    server = stack.server_name
    return [
        ("no secret", {}, None, 403, "M_FORBIDDEN", "secret"),
        ("wrong secret", {}, "not-the-secret-at-all", 403, "M_FORBIDDEN", "secret"),
        ("unknown buyer", {"buyer": f"@nobody-{secrets.token_hex(3)}:{server}"}, "platform", 404, "M_NOT_FOUND",
         "@nobody-"),
        ("remote buyer", {"buyer": "@alice:elsewhere.example"}, "platform", 404, "M_NOT_FOUND", "@alice:elsewhere"),
        ("unknown merchant", {"merchant": f"@noshop:{server}"}, "platform", 404, "M_NOT_FOUND", "'merchant'"),
        ("both buyers", {"buyer_phone": "+8613800138000"}, "platform", 400, "M_BAD_JSON", "'buyer_phone'"),
        ("no buyer", {"buyer": None}, "platform", 400, "M_BAD_JSON", "'buyer'"),
        ("invalid phone", {"buyer": None, "buyer_phone": "+86123"}, "platform", 400, "M_INVALID_PARAM",
         "'buyer_phone'"),
        ("unknown status", {"status": "lost"}, "platform", 400, "M_INVALID_PARAM", "'status'"),
        ("at as text", {"at": "1700000000000"}, "platform", 400, "M_BAD_JSON", "'at'"),
        ("at as fraction", {"at": 1.5}, "platform", 400, "M_BAD_JSON", "'at'"),
        ("long tracking number", {"tracking_number": "S" * 65}, "platform", 400, "M_TOO_LARGE", "'tracking_number'"),
        ("long location", {"location": "x" * 257}, "platform", 400, "M_TOO_LARGE", "'location'"),
        ("long detail", {"detail": "x" * 257}, "platform", 400, "M_TOO_LARGE", "'detail'"),
        ("long order id", {"order_id": "x" * 257}, "platform", 400, "M_TOO_LARGE", "'order_id'"),
        ("bridge bot", {"buyer": stack.info["bridge"]["bot_user_id"]}, "platform", 400, "M_INVALID_PARAM",
         "service account"),
        ("merchant bot", {"buyer": stack.info["merchant_bot"]["user_id"]}, "platform", 400, "M_INVALID_PARAM",
         "service account"),
        ("parcels bot", {"buyer": bot_of(stack)}, "platform", 400, "M_INVALID_PARAM", "service account"),
        ("bot as merchant", {"merchant": bot_of(stack)}, "platform", 400, "M_INVALID_PARAM", "'merchant'"),
    ]


BAD_CASES = 19


@pytest.mark.parametrize("case", range(BAD_CASES))
def test_bad_input_is_refused_naming_the_field_and_changes_nothing(stack: RunningStack, case: int) -> None:
    person = HttpUser(stack)
    cases = _bad_cases(stack)
    assert len(cases) == BAD_CASES
    what, fields, secret, status, errcode, names = cases[case]
    sid = new_id()
    body = {"shipment_id": sid, "buyer": person.user_id, "carrier": "sf", "tracking_number": "SF1", "status": "created",
            "at": now_ms(), **fields}
    r = post(stack, {k: v for k, v in body.items() if v is not None}, secret=secret)
    assert r.status_code == status and r.json()["errcode"] == errcode, (what, r.status_code, r.text)
    assert names in r.json()["error"], (what, r.text)
    assert post(stack, None, path=f"/shipments/{sid}", method="GET").status_code == 404  # nothing stored
    assert parcels(person) == {"room_id": None, "parcels": []}


@pytest.mark.parametrize(("raw", "errcode"), [(b"{not json", "M_NOT_JSON"), (b"[1, 2]", "M_BAD_JSON"),
                                              (b'{"shipment_id": "\\ud800"}', "M_BAD_JSON")])
def test_a_body_that_is_not_a_json_object_is_refused(stack: RunningStack, raw: bytes, errcode: str) -> None:
    r = post(stack, None, raw=raw)
    assert r.status_code == 400 and r.json()["errcode"] == errcode, r.text


def test_a_later_update_cannot_change_whose_or_which_parcel_it_is(stack: RunningStack) -> None:
    hal, ivy = HttpUser(stack), HttpUser(stack)
    sid = new_id()
    ship(stack, sid, "created", now_ms() - HOUR, buyer=hal.user_id)
    before = post(stack, None, path=f"/shipments/{sid}", method="GET").json()
    for fields in ({"buyer": ivy.user_id}, {"carrier": "zto"}, {"tracking_number": "OTHER1"}):
        body = {"shipment_id": sid, "buyer": hal.user_id, "carrier": "sf", "tracking_number": f"SF{sid[-8:]}",
                "status": "picked_up", "at": now_ms(), **fields}
        r = post(stack, body)
        assert r.status_code == 409 and r.json()["errcode"] == "M_INVALID_PARAM", r.text
        assert f"'{next(iter(fields))}'" in r.json()["error"]
    assert post(stack, None, path=f"/shipments/{sid}", method="GET").json() == before
    assert parcels(ivy)["parcels"] == []


# -- concurrency and rooms -----------------------------------------------------------------------


def test_concurrent_webhooks_for_one_person_make_one_room_and_one_card_per_shipment(stack: RunningStack) -> None:
    jo = HttpUser(stack)
    shipments = [new_id() for _ in range(4)]
    t = now_ms() - 10 * HOUR
    bodies = [{"shipment_id": sid, "buyer": jo.user_id, "carrier": "zto", "tracking_number": f"ZT{sid[-8:]}",
               "status": status, "at": t + n * HOUR}
              for sid in shipments for n, status in enumerate(("created", "picked_up", "in_transit", "delivered"))]
    random.shuffle(bodies)
    with ThreadPoolExecutor(max_workers=8) as pool:
        answers = list(pool.map(lambda b: post(stack, b), bodies))
    assert all(r.status_code == 200 for r in answers), [r.text for r in answers if r.status_code != 200]
    room_id = parcels_room(jo)

    def parcels_rooms() -> list[str]:
        joined = jo.call("GET", f"{CLIENT}/joined_rooms")["joined_rooms"]
        return [r for r in joined if (state(jo, r, "m.room.create") or {}).get("type") == PARCELS_TYPE]

    eventually(lambda: parcels_rooms() == [room_id], timeout=30)
    for sid in shipments:
        eventually(lambda sid=sid: shown_status(jo, room_id, sid) == "delivered", timeout=30)
        assert len(cards(jo, room_id, sid)) == 1
        assert "中通快递 ZTO Express" in (shown(jo, room_id, sid) or {})["body"]


def test_a_person_who_left_gets_a_new_room_with_their_recent_parcels(stack: RunningStack) -> None:
    kim = HttpUser(stack)
    first, second = new_id(), new_id()
    ship(stack, first, "in_transit", now_ms() - DAY, buyer=kim.user_id)
    old_room = parcels_room(kim)
    kim.leave(old_room)

    def main_process_sees_the_leave() -> bool:  # where the stacks serve the webhook
        r = requests.get(f"{stack.info['main_process_url']}/_synapse/admin/v1/rooms/{q(old_room)}/members",
                         headers=stack.admin_headers(), timeout=30)
        return r.status_code == 200 and kim.user_id not in r.json()["members"]

    eventually(main_process_sees_the_leave, timeout=30)
    ship(stack, second, "created", now_ms(), buyer=kim.user_id)
    new_room = eventually(lambda: (r := parcels(kim)["room_id"]) != old_room and r, timeout=30)
    for sid, status in ((first, "in_transit"), (second, "created")):
        eventually(lambda sid=sid, status=status: shown_status(kim, new_room, sid) == status, timeout=30)


def _client_urls(stack: RunningStack) -> list[str]:
    """Every process that serves the client API: the main one, and the generic worker on the
    worker topology (module resources are mounted on every listener, so a proxy may send the
    webhook to either)."""
    import glob

    import yaml

    urls = [str(stack.info["main_process_url"])]
    for path in sorted(glob.glob(f"{stack.dir}/workers/*.yaml")):
        with open(path, encoding="utf-8") as f:
            worker = yaml.safe_load(f)
        for listener in worker.get("worker_listeners", []):
            if any("client" in r.get("names", []) for r in listener.get("resources", [])):
                urls.append(f"http://127.0.0.1:{listener['port']}")
    return urls


def test_webhooks_answered_by_different_processes_still_make_one_room_and_one_card(stack: RunningStack) -> None:
    lu = HttpUser(stack)
    urls = _client_urls(stack)
    assert (len(urls) > 1) == bool(stack.info["workers"])
    shipments = [new_id() for _ in range(3)]
    t = now_ms() - 10 * HOUR
    bodies = [{"shipment_id": sid, "buyer": lu.user_id, "carrier": "jd", "tracking_number": f"JD{sid[-8:]}",
               "status": status, "at": t + n * HOUR}
              for sid in shipments for n, status in enumerate(("created", "in_transit", "out_for_delivery"))]
    random.shuffle(bodies)
    secret = {"Authorization": f"Bearer {stack.info['parcels']['platform_secret']}"}
    with ThreadPoolExecutor(max_workers=6) as pool:
        answers = list(pool.map(
            lambda nb: requests.post(f"{urls[nb[0] % len(urls)]}{API}/shipments", json=nb[1], headers=secret,
                                     timeout=60), enumerate(bodies)))
    assert all(r.status_code == 200 for r in answers), [r.text for r in answers if r.status_code != 200]
    room_id = parcels_room(lu)
    for sid in shipments:
        eventually(lambda sid=sid: shown_status(lu, room_id, sid) == "out_for_delivery", timeout=30)
        assert len(cards(lu, room_id, sid)) == 1
    eventually(lambda: sorted(notified_statuses(lu, room_id)) == sorted((s, "out_for_delivery") for s in shipments),
               timeout=30)
    joined = lu.call("GET", f"{CLIENT}/joined_rooms")["joined_rooms"]
    assert [r for r in joined if (state(lu, r, "m.room.create") or {}).get("type") == PARCELS_TYPE] == [room_id]
