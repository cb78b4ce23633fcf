"""The merchant circle (商家圈) as merchants, buyers and the shopping platform meet it."""

from __future__ import annotations

import os
import secrets
import signal
import time
from typing import Any
from urllib.parse import quote

import pytest
import requests
from nio import RoomLeaveResponse

from tests.harness.matrix import client_for, create_dm
from tests.harness.stack import RunningStack

API = "/_synapse/client/wangxin/v1"
CIRCLE_TYPE = "org.wangxin.merchant_circle"


# -- helpers -------------------------------------------------------------------------------------

def _h(user: dict[str, Any]) -> dict[str, str]:
    return {"Authorization": f"Bearer {user['access_token']}"}


def make_merchant(stack: RunningStack, name: str = "Tea House") -> tuple[dict[str, Any], str]:
    merchant = stack.register_user()
    r = requests.put(f"{stack.url}{API}/merchants/{quote(merchant['user_id'])}", json={"name": name},
                     headers=stack.admin_headers(), timeout=60)
    assert r.status_code == 200, r.text
    return merchant, r.json()["circle_room_id"]


def purchase(stack: RunningStack, buyer: str, merchant: str, order_id: str | None = None,
             secret: str | None = None, overrides: dict[str, Any] | None = None) -> requests.Response:
    body: dict[str, Any] = {"order_id": order_id or f"o-{secrets.token_hex(6)}", "buyer": buyer,
                            "merchant": merchant, "items": [{"sku": "tea-1", "qty": 1}]}
    body.update(overrides or {})
    secret = secret or stack.info["merchant_circle"]["platform_secret"]
    return requests.post(f"{stack.url}{API}/purchases", json=body, headers={"Authorization": f"Bearer {secret}"},
                         timeout=60)


def membership(stack: RunningStack, user: dict[str, Any], room_id: str) -> str | None:
    r = requests.get(f"{stack.url}/_matrix/client/v3/joined_rooms", headers=_h(user), timeout=30)
    r.raise_for_status()
    return "join" if room_id in r.json()["joined_rooms"] else None


def wait_until(what: str, check: Any, timeout: float = 60) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(0.25)
    raise AssertionError(f"{what} did not happen within {timeout}s")


def followed_rooms(stack: RunningStack, user: dict[str, Any]) -> list[str]:
    r = requests.get(f"{stack.url}{API}/circle", headers=_h(user), timeout=30)
    r.raise_for_status()
    return [m["circle_room_id"] for m in r.json()["merchants"]]


def wait_following(stack: RunningStack, user: dict[str, Any], room_id: str) -> None:
    """Joined, and listed by ``GET /circle``: the follow is recorded just after the join (and, on
    workers, the process answering may learn of the join by replication a moment later)."""
    wait_until(f"{user['user_id']} following {room_id}",
               lambda: membership(stack, user, room_id) == "join" and room_id in followed_rooms(stack, user))


def send(stack: RunningStack, user: dict[str, Any], room_id: str, content: dict[str, Any],
         event_type: str = "m.room.message") -> requests.Response:
    txn = secrets.token_hex(8)
    return requests.put(f"{stack.url}/_matrix/client/v3/rooms/{quote(room_id)}/send/{event_type}/{txn}",
                        json=content, headers=_h(user), timeout=60)


def product_post(product_id: str, title: str = "Green tea") -> dict[str, Any]:
    return {
        "msgtype": "m.text",
        "body": f"{title} — 9.90 CNY https://shop.example/{product_id}",
        "org.wangxin.product": {"id": product_id, "title": title, "price": "9.90", "currency": "CNY",
                                "url": f"https://shop.example/{product_id}"},
    }


def room_state(stack: RunningStack, room_id: str) -> dict[tuple[str, str], dict[str, Any]]:
    r = requests.get(f"{stack.url}/_synapse/admin/v1/rooms/{quote(room_id)}/state", headers=stack.admin_headers(),
                     timeout=30)
    r.raise_for_status()
    return {(e["type"], e["state_key"]): e["content"] for e in r.json()["state"]}


def admin_joins_as_room_admin(stack: RunningStack, room_id: str) -> None:
    """The server admin takes power 100 in a circle (through its owner) and joins it."""
    admin = stack.info["admin"]["user_id"]
    r = requests.post(f"{stack.url}/_synapse/admin/v1/rooms/{quote(room_id)}/make_room_admin",
                      json={"user_id": admin}, headers=stack.admin_headers(), timeout=30)
    assert r.status_code == 200, r.text
    requests.post(f"{stack.url}/_synapse/admin/v1/join/{quote(room_id)}", json={"user_id": admin},
                  headers=stack.admin_headers(), timeout=30).raise_for_status()


def set_power(stack: RunningStack, room_id: str, user_id: str, level: int) -> None:
    url = f"{stack.url}/_matrix/client/v3/rooms/{quote(room_id)}/state/m.room.power_levels/"
    content = requests.get(url, headers=stack.admin_headers(), timeout=30).json()
    content["users"][user_id] = level
    r = requests.put(url, json=content, headers=stack.admin_headers(), timeout=30)
    assert r.status_code == 200, r.text


def sentinel_follow(stack: RunningStack, buyer: dict[str, Any]) -> None:
    """Jobs run in order: once a follow queued now is done, every earlier job is done too."""
    other, other_circle = make_merchant(stack, "Sentinel")
    assert purchase(stack, buyer["user_id"], other["user_id"]).status_code == 200
    wait_following(stack, buyer, other_circle)


# -- 1. merchants --------------------------------------------------------------------------------

def test_admin_makes_a_merchant_with_a_locked_down_circle(stack: RunningStack) -> None:
    merchant, room_id = make_merchant(stack)
    again = requests.put(f"{stack.url}{API}/merchants/{quote(merchant['user_id'])}", json={"name": "Tea House"},
                         headers=stack.admin_headers(), timeout=60)
    assert again.status_code == 200 and again.json() == {"user_id": merchant["user_id"], "circle_room_id": room_id}
    got = requests.get(f"{stack.url}{API}/merchants/{quote(merchant['user_id'])}", headers=stack.admin_headers(),
                       timeout=30)
    assert got.status_code == 200, got.text
    assert got.json()["circle_room_id"] == room_id and got.json()["followers"] == 0

    state = room_state(stack, room_id)
    assert state[("m.room.create", "")]["type"] == CIRCLE_TYPE
    assert ("m.room.encryption", "") not in state
    pl = state[("m.room.power_levels", "")]
    assert pl["users"][merchant["user_id"]] == 50
    assert pl["users"][stack.info["merchant_bot"]["user_id"]] == 50
    assert pl["events_default"] == 50 and pl["events"]["m.room.encryption"] == 100
    assert pl["events"]["m.room.power_levels"] == 100
    assert membership(stack, merchant, room_id) == "join"


def test_merchant_endpoint_refusals(stack: RunningStack) -> None:
    someone = stack.register_user()
    url = f"{stack.url}{API}/merchants/{quote(someone['user_id'])}"
    r = requests.put(url, json={"name": "X"}, headers=_h(someone), timeout=30)
    assert r.status_code == 403 and r.json()["errcode"] == "M_FORBIDDEN"
    r = requests.put(url, json={}, headers=stack.admin_headers(), timeout=30)
    assert r.status_code == 400 and r.json()["errcode"] == "M_BAD_JSON" and "'name'" in r.json()["error"]
    r = requests.put(url, json={"name": "X", "avatar_url": "http://x"}, headers=stack.admin_headers(), timeout=30)
    assert r.status_code == 400 and "'avatar_url'" in r.json()["error"]
    r = requests.put(f"{stack.url}{API}/merchants/{quote('@nobody-here:' + stack.server_name)}", json={"name": "X"},
                     headers=stack.admin_headers(), timeout=30)
    assert r.status_code == 404 and r.json()["errcode"] == "M_NOT_FOUND"
    r = requests.get(url, headers=stack.admin_headers(), timeout=30)
    assert r.status_code == 404 and r.json()["errcode"] == "M_NOT_FOUND"
    merchant, _ = make_merchant(stack)
    r = requests.get(f"{stack.url}{API}/merchants/{quote(merchant['user_id'])}", headers=_h(someone), timeout=30)
    assert r.status_code == 403 and r.json()["errcode"] == "M_FORBIDDEN"


def test_clients_cannot_create_circle_rooms(stack: RunningStack) -> None:
    user = stack.register_user()
    r = requests.post(f"{stack.url}/_matrix/client/v3/createRoom",
                      json={"creation_content": {"type": CIRCLE_TYPE}}, headers=_h(user), timeout=30)
    assert r.status_code == 403, r.text


def test_only_the_merchant_and_bot_post_and_nobody_can_encrypt(stack: RunningStack) -> None:
    merchant, room_id = make_merchant(stack)
    buyer = stack.register_user()
    assert purchase(stack, buyer["user_id"], merchant["user_id"]).status_code == 200
    wait_following(stack, buyer, room_id)
    r = send(stack, buyer, room_id, {"msgtype": "m.text", "body": "me too"})
    assert r.status_code == 403, r.text
    for who in (merchant, buyer):
        r = requests.put(f"{stack.url}/_matrix/client/v3/rooms/{quote(room_id)}/state/m.room.encryption/",
                         json={"algorithm": "m.megolm.v1.aes-sha2"}, headers=_h(who), timeout=30)
        assert r.status_code == 403, r.text
    r = requests.put(f"{stack.url}/_matrix/client/v3/rooms/{quote(room_id)}/state/m.room.power_levels/",
                     json={"users": {merchant["user_id"]: 100}}, headers=_h(merchant), timeout=30)
    assert r.status_code == 403, r.text
    # The buyer's refused message did not use up the merchant's quota.
    got = requests.get(f"{stack.url}{API}/merchants/{quote(merchant['user_id'])}", headers=_h(merchant), timeout=30)
    assert got.json()["posts_today"] == 0


# -- 2 and 3. auto-follow, kept apart, never pushed ----------------------------------------------

def _notifications(stack: RunningStack, user: dict[str, Any]) -> list[dict[str, Any]]:
    r = requests.get(f"{stack.url}/_matrix/client/v3/notifications", headers=_h(user), timeout=30)
    r.raise_for_status()
    return [n["event"] for n in r.json()["notifications"]]


def _space_children(stack: RunningStack, space_id: str) -> set[str]:
    return {key for (t, key), content in room_state(stack, space_id).items() if t == "m.space.child" and content}


def test_a_purchase_follows_muted_and_filed_in_the_space_and_a_replay_changes_nothing(stack: RunningStack) -> None:
    merchant, room_id = make_merchant(stack)
    buyer = stack.register_user()
    order = f"order-{secrets.token_hex(4)}"
    r = purchase(stack, buyer["user_id"], merchant["user_id"], order)
    assert r.status_code == 200 and r.json() == {"order_id": order, "replayed": False, "follow": "queued"}
    wait_following(stack, buyer, room_id)

    listed = requests.get(f"{stack.url}{API}/circle", headers=_h(buyer), timeout=30).json()
    assert [m["circle_room_id"] for m in listed["merchants"]] == [room_id]
    rule = requests.get(f"{stack.url}/_matrix/client/v3/pushrules/global/override/{quote(room_id)}",
                        headers=_h(buyer), timeout=30)
    assert rule.status_code == 200, rule.text
    assert rule.json()["actions"] in (["dont_notify"], [])
    assert rule.json()["conditions"] == [{"kind": "event_match", "key": "room_id", "pattern": room_id}]

    space_id = wait_until("the space", lambda: requests.get(f"{stack.url}{API}/circle", headers=_h(buyer),
                                                            timeout=30).json()["space_room_id"])
    wait_until("circle filed in the space", lambda: room_id in _space_children(stack, space_id))
    space_state = room_state(stack, space_id)
    assert space_state[("m.room.create", "")]["type"] == "m.space"
    # The circle is shared by every follower and each space belongs to one user: the link is
    # the space's m.space.child only (docs/merchant-circle.md).
    assert not [k for k in room_state(stack, room_id) if k[0] == "m.space.parent"]
    assert space_state[("m.room.name", "")]["name"] == "Merchant Circle / 商家圈"

    posted = send(stack, merchant, room_id, product_post(f"p-{secrets.token_hex(3)}"))
    assert posted.status_code == 200, posted.text
    assert posted.json()["event_id"] not in [e["event_id"] for e in _notifications(stack, buyer)]

    got = requests.get(f"{stack.url}{API}/merchants/{quote(merchant['user_id'])}", headers=stack.admin_headers(),
                       timeout=30)
    assert got.json()["followers"] == 1
    replay = purchase(stack, buyer["user_id"], merchant["user_id"], order)
    assert replay.status_code == 200 and replay.json()["replayed"] is True
    assert requests.get(f"{stack.url}{API}/merchants/{quote(merchant['user_id'])}", headers=stack.admin_headers(),
                        timeout=30).json()["followers"] == 1


def test_a_chat_with_a_merchant_follows_and_the_merchants_replies_still_notify(stack: RunningStack) -> None:
    merchant, room_id = make_merchant(stack)
    buyer = stack.register_user()
    r = requests.post(f"{stack.url}/_matrix/client/v3/createRoom",
                      json={"is_direct": True, "invite": [merchant["user_id"]], "preset": "trusted_private_chat"},
                      headers=_h(buyer), timeout=30)
    assert r.status_code == 200, r.text
    dm = r.json()["room_id"]
    wait_following(stack, buyer, room_id)
    assert requests.post(f"{stack.url}/_matrix/client/v3/join/{quote(dm)}", json={}, headers=_h(merchant),
                         timeout=30).status_code == 200
    space_id = wait_until("the space", lambda: requests.get(f"{stack.url}{API}/circle", headers=_h(buyer),
                                                            timeout=30).json()["space_room_id"])
    wait_until("chat and circle filed", lambda: {dm, room_id} <= _space_children(stack, space_id))
    reply = send(stack, merchant, dm, {"msgtype": "m.text", "body": "Thanks for your order!"})
    assert reply.status_code == 200
    assert reply.json()["event_id"] in [e["event_id"] for e in _notifications(stack, buyer)]


async def test_a_merchant_inviting_a_user_to_a_chat_makes_them_follow(stack: RunningStack) -> None:
    merchant, room_id = make_merchant(stack)
    buyer = stack.register_user()
    client = await client_for(stack.url, merchant)
    try:
        dm = await create_dm(client, buyer["user_id"])  # the way Element starts a DM
    finally:
        await client.close()
    wait_following(stack, buyer, room_id)
    space_id = _space_of(stack, buyer)
    wait_until("chat and circle filed", lambda: {dm, room_id} <= _space_children(stack, space_id))


async def test_an_invite_that_synapse_refuses_starts_no_follow(stack: RunningStack) -> None:
    """user_may_invite runs before Synapse's own checks: a refused invite (here: the merchant is
    banned from the room) queues a follow that must end, with a status, instead of following."""
    merchant, room_id = make_merchant(stack)
    buyer = stack.register_user()
    r = requests.post(f"{stack.url}/_matrix/client/v3/createRoom", json={"preset": "private_chat"},
                      headers=_h(buyer), timeout=30)
    chat = r.json()["room_id"]
    r = requests.post(f"{stack.url}/_matrix/client/v3/rooms/{quote(chat)}/ban",
                      json={"user_id": merchant["user_id"]}, headers=_h(buyer), timeout=30)
    assert r.status_code == 200, r.text
    r = requests.post(f"{stack.url}/_matrix/client/v3/rooms/{quote(chat)}/invite",
                      json={"user_id": merchant["user_id"]}, headers=_h(buyer), timeout=30)
    assert r.status_code == 403, r.text

    def follows() -> dict[str, Any]:
        return dict(requests.get(f"{stack.url}{API}/merchants/{quote(merchant['user_id'])}",
                                 headers=_h(merchant), timeout=30).json())

    wait_until("the follow given up", lambda: follows()["follows_failed"] == 1, timeout=90)
    assert follows()["follows_queued"] == 0 and follows()["followers"] == 0
    assert membership(stack, buyer, room_id) is None


def _space_of(stack: RunningStack, user: dict[str, Any]) -> str:
    return str(wait_until("the space", lambda: requests.get(f"{stack.url}{API}/circle", headers=_h(user),
                                                               timeout=30).json()["space_room_id"]))


def purchase_status(stack: RunningStack, order_id: str) -> dict[str, Any]:
    r = requests.get(f"{stack.url}{API}/purchases/{quote(order_id)}",
                     headers={"Authorization": f"Bearer {stack.info['merchant_circle']['platform_secret']}"},
                     timeout=30)
    assert r.status_code == 200, r.text
    return dict(r.json())


async def test_an_unfollow_is_remembered(stack: RunningStack) -> None:
    merchant, room_id = make_merchant(stack)
    by_api, by_leaving = stack.register_user(), stack.register_user()
    for buyer in (by_api, by_leaving):
        assert purchase(stack, buyer["user_id"], merchant["user_id"]).status_code == 200
        wait_following(stack, buyer, room_id)
        space_id = _space_of(stack, buyer)
        wait_until("circle filed", lambda space_id=space_id: room_id in _space_children(stack, space_id))

    r = requests.delete(f"{stack.url}{API}/circle/{quote(merchant['user_id'])}", headers=_h(by_api), timeout=30)
    assert r.status_code == 200, r.text
    assert membership(stack, by_api, room_id) is None
    # A plain client leave, as Element's "Leave room" sends it.
    client = await client_for(stack.url, by_leaving)
    try:
        assert isinstance(await client.room_leave(room_id), RoomLeaveResponse)
    finally:
        await client.close()
    # Noticed without anything else happening: the circle leaves the user's space ...
    leaver_space = _space_of(stack, by_leaving)
    wait_until("the circle taken out of the space", lambda: room_id not in _space_children(stack, leaver_space))
    assert room_id not in _space_children(stack, _space_of(stack, by_api))

    # ... and the next purchase knows at once that they unfollowed.
    for buyer in (by_api, by_leaving):
        order = f"again-{secrets.token_hex(4)}"
        r = purchase(stack, buyer["user_id"], merchant["user_id"], order)
        assert r.status_code == 200 and r.json()["follow"] == "unfollowed_by_user", r.text
        assert purchase_status(stack, order)["follow"] == "unfollowed_by_user"
    for buyer in (by_api, by_leaving):  # a chat does not re-add them either
        requests.post(f"{stack.url}/_matrix/client/v3/createRoom",
                      json={"is_direct": True, "invite": [merchant["user_id"]]}, headers=_h(buyer), timeout=30)
        sentinel_follow(stack, buyer)
        assert membership(stack, buyer, room_id) is None
        listed = requests.get(f"{stack.url}{API}/circle", headers=_h(buyer), timeout=30).json()["merchants"]
        assert room_id not in [m["circle_room_id"] for m in listed]


def test_purchase_webhook_refusals(stack: RunningStack) -> None:
    merchant, _ = make_merchant(stack)
    buyer = stack.register_user()
    r = purchase(stack, buyer["user_id"], merchant["user_id"], secret="wrong-secret-wrong-secret")
    assert r.status_code == 403 and r.json()["errcode"] == "M_FORBIDDEN"
    r = requests.post(f"{stack.url}{API}/purchases", json={}, timeout=30)
    assert r.status_code == 403
    for field, value in (("order_id", None), ("buyer", "bob"), ("merchant", 5), ("items", "tea")):
        r = purchase(stack, buyer["user_id"], merchant["user_id"], overrides={field: value})
        assert r.status_code == 400 and r.json()["errcode"] == "M_BAD_JSON", r.text
        assert f"'{field}'" in r.json()["error"]
    r = purchase(stack, buyer["user_id"], f"@nomerchant:{stack.server_name}")
    assert r.status_code == 404 and r.json()["errcode"] == "M_NOT_FOUND"
    r = purchase(stack, buyer["user_id"], buyer["user_id"])
    assert r.status_code == 404 and r.json()["errcode"] == "M_NOT_FOUND"
    r = requests.delete(f"{stack.url}{API}/circle/{quote(buyer['user_id'])}", headers=_h(buyer), timeout=30)
    assert r.status_code == 404 and r.json()["errcode"] == "M_NOT_FOUND"
    r = requests.get(f"{stack.url}{API}/purchases/no-such-order",
                     headers={"Authorization": f"Bearer {stack.info['merchant_circle']['platform_secret']}"},
                     timeout=30)
    assert r.status_code == 404 and r.json()["errcode"] == "M_NOT_FOUND"
    r = requests.get(f"{stack.url}{API}/purchases/no-such-order", headers=_h(buyer), timeout=30)
    assert r.status_code == 403 and r.json()["errcode"] == "M_FORBIDDEN"


# -- 4. posts and limits -------------------------------------------------------------------------

def test_daily_quota_and_repost_cooldown_apply_to_raw_clients(stack: RunningStack) -> None:
    merchant, room_id = make_merchant(stack)
    first = send(stack, merchant, room_id, product_post("tea-1"))
    assert first.status_code == 200, first.text
    again = send(stack, merchant, room_id, product_post("tea-1"))
    assert again.status_code == 429 and again.json()["errcode"] == "M_LIMIT_EXCEEDED"
    week_ms = 7 * 24 * 3600 * 1000
    assert week_ms - 120_000 < again.json()["retry_after_ms"] <= week_ms
    bad = send(stack, merchant, room_id, {"msgtype": "m.text", "body": "x", "org.wangxin.product": {"id": "y"}})
    assert bad.status_code == 400 and bad.json()["errcode"] == "M_BAD_JSON" and "title" in bad.json()["error"]
    assert send(stack, merchant, room_id, product_post("tea-2")).status_code == 200
    plain = send(stack, merchant, room_id, {"msgtype": "m.text", "body": "Open on Sunday"})
    assert plain.status_code == 200, plain.text
    over = send(stack, merchant, room_id, product_post("tea-3"))
    assert over.status_code == 429 and over.json()["errcode"] == "M_LIMIT_EXCEEDED"
    day_ms = 24 * 3600 * 1000
    assert day_ms - 120_000 < over.json()["retry_after_ms"] <= day_ms
    events = requests.get(f"{stack.url}/_matrix/client/v3/rooms/{quote(room_id)}/messages",
                          params={"dir": "b", "limit": "50"}, headers=_h(merchant), timeout=30).json()["chunk"]
    bodies = [e["content"].get("body") for e in events if e["type"] == "m.room.message"]
    assert len(bodies) == 3 and all(bodies)
    products = requests.get(f"{stack.url}{API}/merchants/{quote(merchant['user_id'])}/products",
                            headers=_h(merchant), timeout=30).json()["products"]
    assert {p["product"]["id"] for p in products} == {"tea-1", "tea-2"}


def test_posts_refused_after_the_quota_check_do_not_use_it(stack: RunningStack) -> None:
    """The quota is checked before Synapse's auth rules: posts that the power levels then refuse
    were never posted, so they use up neither the daily quota nor a product's cooldown."""
    merchant, room_id = make_merchant(stack)
    admin_joins_as_room_admin(stack, room_id)
    set_power(stack, room_id, merchant["user_id"], 0)
    for n in range(3):
        refused = send(stack, merchant, room_id, product_post(f"tea-{n}"))
        assert refused.status_code == 403, refused.text
    set_power(stack, room_id, merchant["user_id"], 50)
    for n in range(3):  # the same products: no cooldown from the refused attempts
        posted = send(stack, merchant, room_id, product_post(f"tea-{n}"))
        assert posted.status_code == 200, posted.text
    over = send(stack, merchant, room_id, product_post("tea-9"))
    assert over.status_code == 429 and over.json()["errcode"] == "M_LIMIT_EXCEEDED", over.text
    got = requests.get(f"{stack.url}{API}/merchants/{quote(merchant['user_id'])}", headers=_h(merchant), timeout=30)
    assert got.json()["posts_today"] == 3


# -- 5. moments ----------------------------------------------------------------------------------

def test_a_merchant_cannot_enter_or_read_moments(stack: RunningStack) -> None:
    merchant, _ = make_merchant(stack)
    owner, friend = stack.register_user(), stack.register_user()
    moments: dict[str, Any] = {"creation_content": {"type": "org.wangxin.moments"}, "preset": "public_chat",
                               "name": "My moments"}
    r = requests.post(f"{stack.url}/_matrix/client/v3/createRoom", json={**moments, "invite": [merchant["user_id"]]},
                      headers=_h(owner), timeout=30)
    assert r.status_code == 403, r.text
    r = requests.post(f"{stack.url}/_matrix/client/v3/createRoom",
                      json={**moments, "initial_state": [{"type": "m.room.history_visibility", "state_key": "",
                                                          "content": {"history_visibility": "world_readable"}}]},
                      headers=_h(owner), timeout=30)
    assert r.status_code == 403, r.text
    r = requests.post(f"{stack.url}/_matrix/client/v3/createRoom", json=moments, headers=_h(owner), timeout=30)
    assert r.status_code == 200, r.text
    room_id = r.json()["room_id"]
    assert send(stack, owner, room_id, {"msgtype": "m.text", "body": "Holiday photos"}).status_code == 200
    invite = requests.post(f"{stack.url}/_matrix/client/v3/rooms/{quote(room_id)}/invite",
                           json={"user_id": friend["user_id"]}, headers=_h(owner), timeout=30)
    assert invite.status_code == 200, invite.text
    refused = requests.post(f"{stack.url}/_matrix/client/v3/rooms/{quote(room_id)}/invite",
                            json={"user_id": merchant["user_id"]}, headers=_h(owner), timeout=30)
    assert refused.status_code == 403, refused.text
    join = requests.post(f"{stack.url}/_matrix/client/v3/join/{quote(room_id)}", json={}, headers=_h(merchant),
                         timeout=30)
    assert join.status_code == 403, join.text
    read = requests.get(f"{stack.url}/_matrix/client/v3/rooms/{quote(room_id)}/messages", params={"dir": "b"},
                        headers=_h(merchant), timeout=30)
    assert read.status_code == 403, read.text
    r = requests.put(f"{stack.url}/_matrix/client/v3/rooms/{quote(room_id)}/state/m.room.history_visibility/",
                     json={"history_visibility": "world_readable"}, headers=_h(owner), timeout=30)
    assert r.status_code == 403, r.text
    # A friend (not a merchant) gets in.
    assert requests.post(f"{stack.url}/_matrix/client/v3/join/{quote(room_id)}", json={}, headers=_h(friend),
                         timeout=30).status_code == 200


MOMENTS: dict[str, Any] = {"creation_content": {"type": "org.wangxin.moments"}, "name": "My moments"}


def create_moments(stack: RunningStack, owner: dict[str, Any], **extra: Any) -> str:
    r = requests.post(f"{stack.url}/_matrix/client/v3/createRoom", json={**MOMENTS, **extra}, headers=_h(owner),
                      timeout=30)
    assert r.status_code == 200, r.text
    room_id = str(r.json()["room_id"])
    assert send(stack, owner, room_id, {"msgtype": "m.text", "body": "Holiday photos"}).status_code == 200
    return room_id


def member_state(stack: RunningStack, room_id: str, user_id: str) -> str | None:
    member = room_state(stack, room_id).get(("m.room.member", user_id))
    return member.get("membership") if member else None


def cannot_read(stack: RunningStack, user: dict[str, Any], room_id: str) -> bool:
    r = requests.get(f"{stack.url}/_matrix/client/v3/rooms/{quote(room_id)}/messages", params={"dir": "b"},
                     headers=_h(user), timeout=30)
    return r.status_code == 403


def test_a_user_who_becomes_a_merchant_leaves_the_moments_it_was_in(stack: RunningStack) -> None:
    owner, shopkeeper = stack.register_user(), stack.register_user()
    joined = create_moments(stack, owner, preset="public_chat")
    invited = create_moments(stack, owner, preset="private_chat", invite=[shopkeeper["user_id"]])
    assert requests.post(f"{stack.url}/_matrix/client/v3/join/{quote(joined)}", json={}, headers=_h(shopkeeper),
                         timeout=30).status_code == 200
    other = requests.post(f"{stack.url}/_matrix/client/v3/createRoom", json={"preset": "public_chat"},
                          headers=_h(owner), timeout=30).json()["room_id"]
    assert requests.post(f"{stack.url}/_matrix/client/v3/join/{quote(other)}", json={}, headers=_h(shopkeeper),
                         timeout=30).status_code == 200
    assert not cannot_read(stack, shopkeeper, joined)

    r = requests.put(f"{stack.url}{API}/merchants/{quote(shopkeeper['user_id'])}", json={"name": "Corner Shop"},
                     headers=stack.admin_headers(), timeout=60)
    assert r.status_code == 200, r.text
    for room_id in (joined, invited):
        wait_until("the merchant out of the moments",
                   lambda room_id=room_id: member_state(stack, room_id, shopkeeper["user_id"]) == "leave")
    # Left, then forgotten (a step after the leave; on workers the reader learns of it by
    # replication): not even the old posts.
    wait_until("the moments forgotten", lambda: cannot_read(stack, shopkeeper, joined))
    assert membership(stack, shopkeeper, other) == "join"  # other rooms are not touched
    r = requests.post(f"{stack.url}/_matrix/client/v3/join/{quote(joined)}", json={}, headers=_h(shopkeeper),
                      timeout=30)
    assert r.status_code == 403, r.text


def test_no_admin_path_or_knock_keeps_a_merchant_in_moments(stack: RunningStack) -> None:
    """Server admins skip Synapse's spam checks, and a knock has none: whatever gets a merchant
    into a moments room that way is undone by the module (it leaves and forgets the room)."""
    owner = stack.register_user()
    admin = stack.info["admin"]
    private = create_moments(stack, owner, preset="private_chat", invite=[admin["user_id"]])
    assert requests.post(f"{stack.url}/_matrix/client/v3/join/{quote(private)}", json={},
                         headers=stack.admin_headers(), timeout=30).status_code == 200

    # The admin join API for a merchant: refused (the join itself is the merchant's, and checked).
    merchant, _ = make_merchant(stack, "Admin Join")
    r = requests.post(f"{stack.url}/_synapse/admin/v1/join/{quote(private)}", json={"user_id": merchant["user_id"]},
                      headers=stack.admin_headers(), timeout=30)
    assert r.status_code == 403, r.text

    # A server admin inviting a merchant: the invite gets through, and is withdrawn.
    invited, _ = make_merchant(stack, "Admin Invite")
    r = requests.post(f"{stack.url}/_matrix/client/v3/rooms/{quote(private)}/invite",
                      json={"user_id": invited["user_id"]}, headers=stack.admin_headers(), timeout=30)
    assert r.status_code == 200, r.text
    for user in (merchant, invited):  # the admin join API left an invite behind too
        wait_until("the invite withdrawn",
                   lambda user=user: member_state(stack, private, user["user_id"]) in (None, "leave"))

    # A merchant who is also a server admin joins a public moments room: out again, and forgotten.
    public = create_moments(stack, owner, preset="public_chat")
    boss = stack.register_user(admin=True)
    r = requests.put(f"{stack.url}{API}/merchants/{quote(boss['user_id'])}", json={"name": "Boss Shop"},
                     headers=stack.admin_headers(), timeout=60)
    assert r.status_code == 200, r.text
    r = requests.post(f"{stack.url}/_matrix/client/v3/join/{quote(public)}", json={}, headers=_h(boss), timeout=30)
    assert r.status_code == 200, r.text
    wait_until("the merchant out again", lambda: member_state(stack, public, boss["user_id"]) == "leave")
    wait_until("the moments forgotten", lambda: cannot_read(stack, boss, public))

    # A knock (no spam check runs for knocks) is withdrawn.
    knockable = create_moments(stack, owner, preset="private_chat", initial_state=[
        {"type": "m.room.join_rules", "state_key": "", "content": {"join_rule": "knock"}}])
    knocker, _ = make_merchant(stack, "Knocker")
    r = requests.post(f"{stack.url}/_matrix/client/v3/knock/{quote(knockable)}", json={}, headers=_h(knocker),
                      timeout=30)
    assert r.status_code == 200, r.text
    wait_until("the knock withdrawn", lambda: member_state(stack, knockable, knocker["user_id"]) == "leave")


# -- performance guard and durability --------------------------------------------------------------

def test_bulk_follows_leave_real_users_free_to_join(stack: RunningStack) -> None:
    """rc_joins_per_room is 1/s, burst 10: 30 follows at once would fill it for a stock room."""
    merchant, room_id = make_merchant(stack)
    buyers = [stack.register_user() for _ in range(30)]
    # One buyer has rules of their own: the circle's mute goes above them, as Element's would.
    own_rule = {"conditions": [{"kind": "event_match", "key": "content.body", "pattern": "*sale*"}],
                "actions": ["notify"]}
    r = requests.put(f"{stack.url}/_matrix/client/v3/pushrules/global/override/my-sales", json=own_rule,
                     headers=_h(buyers[0]), timeout=30)
    assert r.status_code == 200, r.text
    for buyer in buyers:
        assert purchase(stack, buyer["user_id"], merchant["user_id"]).status_code == 200
    for buyer in buyers:
        wait_following(stack, buyer, room_id)
    # The follows that ran together wrote their mute rules together: every follower has one.
    for buyer in buyers:
        rule = requests.get(f"{stack.url}/_matrix/client/v3/pushrules/global/override/{quote(room_id)}",
                            headers=_h(buyer), timeout=30)
        assert rule.status_code == 200 and rule.json()["actions"] in (["dont_notify"], []), (buyer, rule.text)
    overrides = requests.get(f"{stack.url}/_matrix/client/v3/pushrules/", headers=_h(buyers[0]),
                             timeout=30).json()["global"]["override"]
    ids = [r["rule_id"] for r in overrides if not r.get("default")]
    assert ids[:2] == [room_id, "my-sales"], ids
    newcomer = stack.register_user()
    r = requests.post(f"{stack.url}/_matrix/client/v3/join/{quote(room_id)}", json={}, headers=_h(newcomer),
                      timeout=30)
    assert r.status_code == 200, r.text
    got = requests.get(f"{stack.url}{API}/merchants/{quote(merchant['user_id'])}", headers=stack.admin_headers(),
                       timeout=30)
    assert got.json()["followers"] == 31


def ban_from_circle(stack: RunningStack, room_id: str, user_id: str) -> None:
    admin_joins_as_room_admin(stack, room_id)
    r = requests.post(f"{stack.url}/_matrix/client/v3/rooms/{quote(room_id)}/ban",
                      json={"user_id": user_id}, headers=stack.admin_headers(), timeout=30)
    assert r.status_code == 200, r.text


def test_follows_that_can_never_succeed_end_with_a_status(stack: RunningStack) -> None:
    admin = stack.admin_headers()
    # A buyer deactivated while the follow is being retried (a ban holds it back meanwhile).
    merchant, room_id = make_merchant(stack)
    buyer = stack.register_user()
    ban_from_circle(stack, room_id, buyer["user_id"])
    order = f"gone-buyer-{secrets.token_hex(4)}"
    assert purchase(stack, buyer["user_id"], merchant["user_id"], order).status_code == 200
    wait_until("the follow retried", lambda: purchase_status(stack, order)["follow"] == "retrying")
    r = requests.post(f"{stack.url}/_synapse/admin/v1/deactivate/{quote(buyer['user_id'])}", json={"erase": False},
                      headers=admin, timeout=60)
    assert r.status_code == 200, r.text
    status = wait_until("the follow given up", lambda: (s := purchase_status(stack, order))["follow"] == "failed"
                        and s, timeout=90)
    assert "deactivated" in status["error"]

    # A merchant whose circle room was shut down and purged.
    closed, closed_room = make_merchant(stack, "Closed Shop")
    r = requests.delete(f"{stack.url}/_synapse/admin/v2/rooms/{quote(closed_room)}", json={"purge": True},
                        headers=admin, timeout=60)
    assert r.status_code == 200, r.text
    delete_id = r.json()["delete_id"]
    wait_until("the circle deleted", lambda: requests.get(
        f"{stack.url}/_synapse/admin/v2/rooms/delete_status/{delete_id}", headers=admin, timeout=30
    ).json()["status"] == "complete", timeout=120)
    order = f"gone-circle-{secrets.token_hex(4)}"
    assert purchase(stack, stack.register_user()["user_id"], closed["user_id"], order).status_code == 200
    status = wait_until("the follow given up", lambda: (s := purchase_status(stack, order))["follow"] == "failed"
                        and s, timeout=90)
    assert "gone" in status["error"]
    got = requests.get(f"{stack.url}{API}/merchants/{quote(closed['user_id'])}", headers=admin, timeout=30).json()
    assert got["follows_failed"] == 1 and got["follows_queued"] == 0


@pytest.fixture
def own_stack(backend: str, tmp_path: Any) -> Any:
    """A stack of its own: killing Synapse must not disturb the shared one (on SQLite a restarted
    Synapse numbers appservice transactions from 1 again, which the bridge takes for replays)."""
    from tests.harness import services
    from tests.harness.stack import stack_args_for

    databases = []
    if backend in ("postgres", "workers"):
        databases = [services.create_database("wx_synapse"), services.create_database("wx_bridge")]
    running = RunningStack(str(tmp_path / "stack"), stack_args_for(
        backend, services.free_port_block(), f"wx{secrets.token_hex(3)}.test", databases) + ["--no-bot"])
    running.start()
    try:
        yield running
    finally:
        running.stop()
        for db in databases:
            services.drop_database(db)


def test_a_failed_follow_is_retried_across_a_restart(own_stack: RunningStack) -> None:
    stack = own_stack
    merchant, room_id = make_merchant(stack)
    buyer = stack.register_user()
    ban_from_circle(stack, room_id, buyer["user_id"])
    assert purchase(stack, buyer["user_id"], merchant["user_id"]).status_code == 200
    time.sleep(2)  # let the first attempt fail (a ban refuses the join)
    assert membership(stack, buyer, room_id) is None

    old_pid = stack.info["processes"]["synapse"]
    os.kill(old_pid, signal.SIGKILL)  # the supervisor restarts it; the queued follow must survive
    wait_until("Synapse restarted", lambda: stack.reload_info()["processes"].get("synapse") not in (None, old_pid),
               timeout=120)
    wait_until("Synapse healthy", lambda: _healthy(stack), timeout=120)
    r = requests.post(f"{stack.url}/_matrix/client/v3/rooms/{quote(room_id)}/unban",
                      json={"user_id": buyer["user_id"]}, headers=stack.admin_headers(), timeout=30)
    assert r.status_code == 200, r.text
    wait_until(f"{buyer['user_id']} following after the restart",
               lambda: membership(stack, buyer, room_id) == "join", timeout=120)


def _healthy(stack: RunningStack) -> bool:
    try:
        return requests.get(f"{stack.url}/_matrix/client/versions", timeout=5).status_code == 200
    except requests.RequestException:
        return False
