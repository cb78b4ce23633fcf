"""The merchant circle (商家圈) as merchants, buyers and the shopping platform meet it."""

from __future__ import annotations

import os
import secrets
import signal
import time
from collections.abc import Iterator
from typing import Any
from urllib.parse import quote

import pytest
import requests
from nio import RoomLeaveResponse

from tests.harness.matrix import client_for, create_dm
from tests.harness.stack import RunningStack
from tests.harness.stack import own_stack as harness_own_stack

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
    # Open to everyone in a room of friends (a restricted join rule), which the merchant is in too:
    # only the module keeps it out.
    friends = requests.post(f"{stack.url}/_matrix/client/v3/createRoom", json={"preset": "public_chat"},
                            headers=_h(owner), timeout=30).json()["room_id"]
    for member in (merchant, friend):
        assert requests.post(f"{stack.url}/_matrix/client/v3/join/{quote(friends)}", json={}, headers=_h(member),
                             timeout=30).status_code == 200
    moments: dict[str, Any] = {"creation_content": {"type": "org.wangxin.moments"}, "preset": "private_chat",
                               "name": "My moments", "initial_state": [_restricted_to(friends)]}
    r = requests.post(f"{stack.url}/_matrix/client/v3/createRoom", json={**moments, "invite": [merchant["user_id"]]},
                      headers=_h(owner), timeout=30)
    assert r.status_code == 403, r.text
    r = requests.post(f"{stack.url}/_matrix/client/v3/createRoom",
                      json={**moments, "initial_state": [_restricted_to(friends), {
                          "type": "m.room.history_visibility", "state_key": "",
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
    other = requests.post(f"{stack.url}/_matrix/client/v3/createRoom", json={"preset": "public_chat"},
                          headers=_h(owner), timeout=30).json()["room_id"]
    assert requests.post(f"{stack.url}/_matrix/client/v3/join/{quote(other)}", json={}, headers=_h(shopkeeper),
                         timeout=30).status_code == 200
    # Open to the members of `other` (so only the module can keep the shopkeeper out later).
    joined = create_moments(stack, owner, preset="private_chat", initial_state=[_restricted_to(other)])
    invited = create_moments(stack, owner, preset="private_chat", invite=[shopkeeper["user_id"]])
    assert requests.post(f"{stack.url}/_matrix/client/v3/join/{quote(joined)}", json={}, headers=_h(shopkeeper),
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

    # A merchant who is also a server admin joins a moments room open to a room of friends it is
    # in: out again, and forgotten.
    friends = requests.post(f"{stack.url}/_matrix/client/v3/createRoom", json={"preset": "public_chat"},
                            headers=_h(owner), timeout=30).json()["room_id"]
    public = create_moments(stack, owner, preset="private_chat", initial_state=[_restricted_to(friends)])
    boss = stack.register_user(admin=True)
    assert requests.post(f"{stack.url}/_matrix/client/v3/join/{quote(friends)}", json={}, headers=_h(boss),
                         timeout=30).status_code == 200
    r = requests.put(f"{stack.url}{API}/merchants/{quote(boss['user_id'])}", json={"name": "Boss Shop"},
                     headers=stack.admin_headers(), timeout=60)
    assert r.status_code == 200, r.text
    r = requests.post(f"{stack.url}/_matrix/client/v3/join/{quote(public)}", json={}, headers=_h(boss), timeout=30)
    assert r.status_code == 200, r.text
    wait_until("the merchant out again", lambda: member_state(stack, public, boss["user_id"]) == "leave")
    wait_until("the moments forgotten", lambda: cannot_read(stack, boss, public))

    # A knock (no spam check runs for knocks) is withdrawn. Only a server admin, whom Synapse does
    # not check, can make a moments room knockable.
    knockable = create_moments(stack, owner, preset="private_chat", invite=[admin["user_id"]])
    assert requests.post(f"{stack.url}/_matrix/client/v3/join/{quote(knockable)}", json={},
                         headers=stack.admin_headers(), timeout=30).status_code == 200
    url = f"{stack.url}/_matrix/client/v3/rooms/{quote(knockable)}/state/m.room.power_levels/"
    levels = requests.get(url, headers=_h(owner), timeout=30).json()
    levels["users"][admin["user_id"]] = 100
    assert requests.put(url, json=levels, headers=_h(owner), timeout=30).status_code == 200
    r = requests.put(f"{stack.url}/_matrix/client/v3/rooms/{quote(knockable)}/state/m.room.join_rules/",
                     json={"join_rule": "knock"}, headers=stack.admin_headers(), timeout=30)
    assert r.status_code == 200, r.text
    knocker, _ = make_merchant(stack, "Knocker")
    r = requests.post(f"{stack.url}/_matrix/client/v3/knock/{quote(knockable)}", json={}, headers=_h(knocker),
                      timeout=30)
    assert r.status_code == 200, r.text
    wait_until("the knock withdrawn", lambda: member_state(stack, knockable, knocker["user_id"]) == "leave")


# -- 6. hostile input and half-written state ---------------------------------------------------

def _put_merchant(stack: RunningStack, user_id: str, body: Any = None, data: bytes | None = None) -> requests.Response:
    headers = {**stack.admin_headers(), "Content-Type": "application/json"}
    return requests.put(f"{stack.url}{API}/merchants/{quote(user_id)}", json=body, data=data, headers=headers,
                        timeout=60)


def _post_purchase_raw(stack: RunningStack, data: bytes) -> requests.Response:
    headers = {"Authorization": f"Bearer {stack.info['merchant_circle']['platform_secret']}",
               "Content-Type": "application/json"}
    return requests.post(f"{stack.url}{API}/purchases", data=data, headers=headers, timeout=60)


def _owner_rooms(stack: RunningStack) -> set[str]:
    """The rooms the circles' service account is in: every circle room ever made, orphans too."""
    owner = f"@wangxin-circles:{stack.server_name}"
    r = requests.get(f"{stack.url}/_synapse/admin/v1/users/{quote(owner)}/joined_rooms",
                     headers=stack.admin_headers(), timeout=30)
    if r.status_code == 404:  # no circle made yet on this stack
        return set()
    r.raise_for_status()
    return set(r.json()["joined_rooms"])


def _merchant_view(stack: RunningStack, user_id: str) -> requests.Response:
    return requests.get(f"{stack.url}{API}/merchants/{quote(user_id)}", headers=stack.admin_headers(), timeout=30)


def _error(r: requests.Response, status: int, errcode: str, field: str | None = None) -> None:
    assert r.status_code == status, (r.status_code, r.text[:300])
    assert r.json()["errcode"] == errcode, r.text[:300]
    if field is not None:
        assert f"'{field}'" in r.json()["error"], r.text[:300]


def test_a_merchant_put_that_fails_changes_nothing(stack: RunningStack) -> None:
    make_merchant(stack, "Warm-up")  # the owner account exists: every new circle is one more of its rooms
    user = stack.register_user()
    before = _owner_rooms(stack)
    # A lone UTF-16 surrogate cannot be stored or sent: refused before any room is made.
    r = _put_merchant(stack, user["user_id"], data=b'{"name": "\\ud800x"}')
    _error(r, 400, "M_BAD_JSON", "name")
    r = _put_merchant(stack, user["user_id"], {"name": "x" * 1000})
    _error(r, 413, "M_TOO_LARGE", "name")
    r = _put_merchant(stack, user["user_id"], {"name": "Fine", "avatar_url": "mxc://" + "a" * 5000})
    _error(r, 413, "M_TOO_LARGE", "avatar_url")
    assert _owner_rooms(stack) == before
    _error(_merchant_view(stack, user["user_id"]), 404, "M_NOT_FOUND")
    # Then a good request makes exactly one circle, and a retry reuses it.
    r = _put_merchant(stack, user["user_id"], {"name": "Tea House"})
    assert r.status_code == 200, r.text
    room_id = r.json()["circle_room_id"]
    assert _owner_rooms(stack) == before | {room_id}
    assert _put_merchant(stack, user["user_id"], {"name": "Tea House"}).json()["circle_room_id"] == room_id
    assert _owner_rooms(stack) == before | {room_id}

    # An existing merchant: an over-long (or huge) name is refused and the old one stays, in the
    # module and in the room.
    r = _put_merchant(stack, user["user_id"], {"name": "n" * 1000})
    _error(r, 413, "M_TOO_LARGE", "name")
    r = _put_merchant(stack, user["user_id"], {"name": "n" * 5_000_000})
    _error(r, 413, "M_TOO_LARGE")
    r = _put_merchant(stack, user["user_id"], data=b'{"name": "\\udfffTea"}')
    _error(r, 400, "M_BAD_JSON", "name")
    assert _merchant_view(stack, user["user_id"]).json()["name"] == "Tea House"
    assert room_state(stack, room_id)[("m.room.name", "")]["name"] == "Tea House · 商家圈"
    # A rename reaches the room's name and topic.
    assert _put_merchant(stack, user["user_id"], {"name": "Tea Garden"}).status_code == 200
    state = room_state(stack, room_id)
    assert state[("m.room.name", "")]["name"] == "Tea Garden · 商家圈"
    assert "Tea Garden" in state[("m.room.topic", "")]["topic"]
    assert _merchant_view(stack, user["user_id"]).json()["name"] == "Tea Garden"


def test_concurrent_puts_make_one_circle(stack: RunningStack) -> None:
    """PUTs for a new merchant that overlap (an admin's double click, a retry after a timeout)
    end with one circle: a second attempt reuses the room of the first, or leaves its own."""
    from concurrent.futures import ThreadPoolExecutor

    make_merchant(stack, "Warm-up")
    user = stack.register_user()
    before = _owner_rooms(stack)
    with ThreadPoolExecutor(3) as pool:
        answers = list(pool.map(lambda _: _put_merchant(stack, user["user_id"], {"name": "Busy Shop"}), range(3)))
    assert [r.status_code for r in answers] == [200] * 3, [r.text for r in answers]
    rooms = {r.json()["circle_room_id"] for r in answers}
    assert len(rooms) == 1
    assert _owner_rooms(stack) == before | rooms


def test_bad_json_bodies_get_400_on_every_endpoint(stack: RunningStack) -> None:
    merchant, _ = make_merchant(stack)
    buyer = stack.register_user()
    nested = b"[" * 100_000
    for send_body in (lambda d: _put_merchant(stack, merchant["user_id"], data=d),
                      lambda d: _post_purchase_raw(stack, d)):
        _error(send_body(nested), 400, "M_BAD_JSON")
        _error(send_body(b'{"a": ' + b"[" * 50 + b"]" * 50 + b"}"), 400, "M_BAD_JSON")
        _error(send_body(b"this is not json"), 400, "M_NOT_JSON")
        _error(send_body(b'{"name": "\xff\xfe"}'), 400, "M_NOT_JSON")
        _error(send_body(b'{"name": NaN}'), 400, "M_NOT_JSON")
        _error(send_body(b'["an", "array"]'), 400, "M_BAD_JSON")
    order = f"nan-{secrets.token_hex(4)}"
    body = (f'{{"order_id": "{order}", "buyer": "{buyer["user_id"]}", "merchant": "{merchant["user_id"]}", '
            f'"items": [{{"sku": "tea", "qty": Infinity}}]}}').encode()
    _error(_post_purchase_raw(stack, body), 400, "M_NOT_JSON")
    body = body.replace(b"Infinity", b"1e400")
    _error(_post_purchase_raw(stack, body), 400, "M_BAD_JSON", "items[0].qty")
    r = requests.get(f"{stack.url}{API}/purchases/{order}",
                     headers={"Authorization": f"Bearer {stack.info['merchant_circle']['platform_secret']}"},
                     timeout=30)
    _error(r, 404, "M_NOT_FOUND")
    assert _merchant_view(stack, merchant["user_id"]).json()["name"] == "Tea House"


def test_order_ids_and_items_are_bounded(stack: RunningStack) -> None:
    merchant, _ = make_merchant(stack)
    buyer = stack.register_user()
    for bad in ("a/b", "../x", "x" * 129, "tea order", "订单1", ".hidden"):
        r = purchase(stack, buyer["user_id"], merchant["user_id"], order_id=bad)
        _error(r, 400, "M_BAD_JSON", "order_id")
    big_item = {"sku": "tea", "note": "x" * 2000}
    for items, status, field in (
        ([{"sku": "tea"}] * 101, 413, "items"),
        ([big_item], 413, "items[0]"),
        (["tea"], 400, "items[0]"),
        ([{"sku": "tea", "qty": 2**60}], 400, "items[0].qty"),
        ([{"sku": "tea\ud800"}], 400, "items[0].sku"),
    ):
        r = purchase(stack, buyer["user_id"], merchant["user_id"], overrides={"items": items})
        _error(r, status, "M_BAD_JSON" if status == 400 else "M_TOO_LARGE", field)
    r = purchase(stack, buyer["user_id"], merchant["user_id"], overrides={"items": [{"sku": "x" * 900}] * 5000})
    _error(r, 413, "M_TOO_LARGE")  # a 5 MB body
    # What is accepted can be read back by its id.
    order = f"Shop-7:{secrets.token_hex(3)}_A.1-b"
    r = purchase(stack, buyer["user_id"], merchant["user_id"], order_id=order)
    assert r.status_code == 200, r.text
    assert purchase_status(stack, order)["buyer"] == buyer["user_id"]


def _register_ghost(stack: RunningStack) -> str:
    r = requests.post(f"{stack.url}/_matrix/client/v3/register",
                      json={"type": "m.login.application_service", "username": f"wx_test{secrets.token_hex(4)}",
                            "inhibit_login": True},
                      headers={"Authorization": f"Bearer {stack.info['bridge']['as_token']}"}, timeout=30)
    assert r.status_code == 200, r.text
    return str(r.json()["user_id"])


def test_service_accounts_are_neither_buyers_nor_merchants(stack: RunningStack) -> None:
    merchant, _ = make_merchant(stack)
    service = [f"@wangxin-circles:{stack.server_name}", stack.info["merchant_bot"]["user_id"],
               stack.info["bridge"]["bot_user_id"], _register_ghost(stack)]
    before = _owner_rooms(stack)
    for account in service:
        r = purchase(stack, account, merchant["user_id"])
        _error(r, 400, "M_INVALID_PARAM", "buyer")
        r = _put_merchant(stack, account, {"name": "Not a shop"})
        _error(r, 400, "M_INVALID_PARAM", "userId")
        _error(_merchant_view(stack, account), 404, "M_NOT_FOUND")
    assert _owner_rooms(stack) == before
    assert _merchant_view(stack, merchant["user_id"]).json()["follows_queued"] == 0


def _poll(question: str, unstable: bool) -> tuple[str, dict[str, Any]]:
    """A poll as Element sends it (unstable MSC3381), or in the stable form of Matrix 1.7."""
    if unstable:
        text = "org.matrix.msc1767.text"
        return "org.matrix.msc3381.poll.start", {
            "org.matrix.msc3381.poll.start": {
                "kind": "org.matrix.msc3381.poll.disclosed", "max_selections": 1, "question": {text: question},
                "answers": [{"id": "a", text: "Yes"}, {"id": "b", text: "No"}]},
            text: question}
    return "m.poll.start", {
        "m.poll": {"kind": "m.disclosed", "max_selections": 1, "question": {"m.text": [{"body": question}]},
                   "answers": [{"m.id": "a", "m.text": [{"body": "Yes"}]}, {"m.id": "b", "m.text": [{"body": "No"}]}]},
        "m.text": [{"body": question}]}


def _event_id_of_state(stack: RunningStack, user: dict[str, Any], room_id: str, event_type: str) -> str:
    r = requests.get(f"{stack.url}/_matrix/client/v3/rooms/{quote(room_id)}/state/{event_type}/",
                     params={"format": "event"}, headers=_h(user), timeout=30)
    r.raise_for_status()
    return str(r.json()["event_id"])


def test_every_event_type_followers_see_counts_toward_the_quota_or_is_refused(stack: RunningStack) -> None:
    merchant, room_id = make_merchant(stack)
    sticker = {"body": "Tea!", "url": "mxc://example.org/sticker", "info": {"w": 64, "h": 64}}
    posted = send(stack, merchant, room_id, sticker, "m.sticker")
    assert posted.status_code == 200, posted.text
    for unstable in (True, False):
        event_type, content = _poll("More tea?", unstable)
        r = send(stack, merchant, room_id, content, event_type)
        assert r.status_code == 200, r.text
    got = _merchant_view(stack, merchant["user_id"]).json()
    assert got["posts_today"] == 3, got
    for event_type, content in (("m.room.message", {"msgtype": "m.text", "body": "One more"}),
                                ("m.sticker", sticker), _poll("Again?", True)):
        r = send(stack, merchant, room_id, content, event_type)
        assert r.status_code == 429 and r.json()["errcode"] == "M_LIMIT_EXCEEDED", (event_type, r.text)
        assert r.json()["org.wangxin.limit"] == "posts_per_day" and r.json()["retry_after_ms"] > 0
    # A post can be taken down (which frees no slot); nothing else in the circle can.
    for target, status in ((_event_id_of_state(stack, merchant, room_id, "m.room.name"), 403),
                           (posted.json()["event_id"], 200)):
        r = requests.put(f"{stack.url}/_matrix/client/v3/rooms/{quote(room_id)}/redact/{quote(target)}/"
                         f"{secrets.token_hex(4)}", json={}, headers=_h(merchant), timeout=30)
        assert r.status_code == status, r.text
    assert _merchant_view(stack, merchant["user_id"]).json()["posts_today"] == 3
    # What the server could not count, or no follower needs from a circle, is refused outright.
    other, other_room = make_merchant(stack, "Fresh Quota")
    create_id = _event_id_of_state(stack, other, other_room, "m.room.create")
    for event_type, content in (
        ("m.room.encrypted", {"algorithm": "m.megolm.v1.aes-sha2", "ciphertext": "AwgAEn", "sender_key": "k",
                              "device_id": "D", "session_id": "s"}),
        ("m.reaction", {"m.relates_to": {"rel_type": "m.annotation", "event_id": create_id, "key": "SALE 50% OFF"}}),
        ("m.call.invite", {"call_id": "c", "version": 1, "lifetime": 60000,
                           "offer": {"type": "offer", "sdp": "v=0"}}),
        ("com.example.banner", {"body": "Buy now"}),
    ):
        r = send(stack, other, other_room, content, event_type)
        assert r.status_code == 403 and r.json()["errcode"] == "M_FORBIDDEN", (event_type, r.text)
    assert _merchant_view(stack, other["user_id"]).json()["posts_today"] == 0


def _edit(post_id: str, body: str, product: dict[str, Any] | None = None) -> dict[str, Any]:
    new_content: dict[str, Any] = {"msgtype": "m.text", "body": body}
    if product is not None:
        new_content["org.wangxin.product"] = product
    return {"msgtype": "m.text", "body": f"* {body}", "m.new_content": new_content,
            "m.relates_to": {"rel_type": "m.replace", "event_id": post_id}}


def test_edits_of_a_post_take_no_slot_and_are_bounded(stack: RunningStack) -> None:
    merchant, room_id = make_merchant(stack)
    posts = []
    for n in range(3):
        r = send(stack, merchant, room_id, product_post(f"tea-{n}") if n == 0 else
                 {"msgtype": "m.text", "body": f"Post {n}"})
        assert r.status_code == 200, r.text
        posts.append(r.json()["event_id"])
    over = send(stack, merchant, room_id, {"msgtype": "m.text", "body": "A fourth"})
    assert over.status_code == 429 and over.json()["org.wangxin.limit"] == "posts_per_day", over.text
    assert "3 posts" in over.json()["error"]
    # A typo fix after the last post of the day goes through, and takes no slot ...
    r = send(stack, merchant, room_id, _edit(posts[2], "Post two, fixed"))
    assert r.status_code == 200, r.text
    # ... up to edits_per_post_per_day (5) per post.
    for n in range(4):
        assert send(stack, merchant, room_id, _edit(posts[2], f"Fix {n}")).status_code == 200
    r = send(stack, merchant, room_id, _edit(posts[2], "One fix too many"))
    assert r.status_code == 429 and r.json()["org.wangxin.limit"] == "edits_per_post_per_day", r.text
    assert 0 < r.json()["retry_after_ms"] <= 24 * 3600 * 1000
    assert send(stack, merchant, room_id, _edit(posts[1], "Another post's fix")).status_code == 200
    # An edit may change a product's details but not turn a post into another product's.
    product = dict(product_post("tea-0")["org.wangxin.product"], price="8.80")
    assert send(stack, merchant, room_id, _edit(posts[0], "Now 8.80", product)).status_code == 200
    r = send(stack, merchant, room_id, _edit(posts[0], "Other tea", dict(product, id="tea-9")))
    _error(r, 400, "M_BAD_JSON", "m.new_content.org.wangxin.product.id")
    r = send(stack, merchant, room_id, _edit(posts[1], "Sneak a product in", product))
    _error(r, 400, "M_BAD_JSON", "m.new_content.org.wangxin.product.id")
    # An "edit" of something that is not one of the sender's posts is a new post.
    create_id = _event_id_of_state(stack, merchant, room_id, "m.room.create")
    r = send(stack, merchant, room_id, _edit(create_id, "Broadcast in disguise"))
    assert r.status_code == 429 and r.json()["org.wangxin.limit"] == "posts_per_day", r.text
    assert _merchant_view(stack, merchant["user_id"]).json()["posts_today"] == 3


def _login_as(stack: RunningStack, user_id: str) -> dict[str, Any]:
    r = requests.post(f"{stack.url}/_synapse/admin/v1/users/{quote(user_id)}/login", json={},
                      headers=stack.admin_headers(), timeout=30)
    assert r.status_code == 200, r.text
    return {"user_id": user_id, "access_token": r.json()["access_token"]}


def test_the_merchant_bot_keeps_out_of_moments_as_merchants_do(stack: RunningStack) -> None:
    owner = stack.register_user()
    bot = _login_as(stack, stack.info["merchant_bot"]["user_id"])
    r = requests.post(f"{stack.url}/_matrix/client/v3/createRoom",
                      json={**MOMENTS, "invite": [bot["user_id"]]}, headers=_h(owner), timeout=30)
    assert r.status_code == 403, r.text
    friends = requests.post(f"{stack.url}/_matrix/client/v3/createRoom", json={"preset": "public_chat"},
                            headers=_h(owner), timeout=30).json()["room_id"]
    room_id = create_moments(stack, owner, initial_state=[_restricted_to(friends)])
    r = requests.post(f"{stack.url}/_matrix/client/v3/rooms/{quote(room_id)}/invite",
                      json={"user_id": bot["user_id"]}, headers=_h(owner), timeout=30)
    assert r.status_code == 403, r.text
    assert requests.post(f"{stack.url}/_matrix/client/v3/join/{quote(friends)}", json={}, headers=_h(bot),
                         timeout=30).status_code == 200
    r = requests.post(f"{stack.url}/_matrix/client/v3/join/{quote(room_id)}", json={}, headers=_h(bot), timeout=30)
    assert r.status_code == 403, r.text
    assert cannot_read(stack, bot, room_id)


def _restricted_to(room_id: str) -> dict[str, Any]:
    return {"type": "m.room.join_rules", "state_key": "",
            "content": {"join_rule": "restricted", "allow": [{"type": "m.room_membership", "room_id": room_id}]}}


def test_moments_can_never_be_public(stack: RunningStack) -> None:
    owner, outsider = stack.register_user(), stack.register_user()
    for extra in ({"preset": "public_chat"}, {"visibility": "public"},
                  {"visibility": "public", "preset": "private_chat"},
                  {"initial_state": [{"type": "m.room.join_rules", "state_key": "",
                                      "content": {"join_rule": "public"}}]},
                  {"initial_state": [{"type": "m.room.join_rules", "state_key": "",
                                      "content": {"join_rule": "knock"}}]}):
        r = requests.post(f"{stack.url}/_matrix/client/v3/createRoom", json={**MOMENTS, **extra}, headers=_h(owner),
                          timeout=30)
        assert r.status_code == 403 and r.json()["errcode"] == "M_FORBIDDEN", (extra, r.text)
    room_id = create_moments(stack, owner, preset="private_chat", topic="Our holiday")
    for rule in ("public", "knock", "knock_restricted"):
        r = requests.put(f"{stack.url}/_matrix/client/v3/rooms/{quote(room_id)}/state/m.room.join_rules/",
                         json={"join_rule": rule, "allow": []}, headers=_h(owner), timeout=30)
        assert r.status_code == 403 and r.json()["errcode"] == "M_FORBIDDEN", (rule, r.text)
    r = requests.put(f"{stack.url}/_matrix/client/v3/directory/list/room/{quote(room_id)}",
                     json={"visibility": "public"}, headers=_h(owner), timeout=30)
    assert r.status_code == 403, r.text
    # Nobody outside sees its name, topic or member count.
    summary = requests.get(f"{stack.url}/_matrix/client/v1/room_summary/{quote(room_id)}", headers=_h(outsider),
                           timeout=30)
    assert summary.status_code in (403, 404) and "Our holiday" not in summary.text, summary.text
    hierarchy = requests.get(f"{stack.url}/_matrix/client/v1/rooms/{quote(room_id)}/hierarchy",
                             headers=_h(outsider), timeout=30)
    assert hierarchy.status_code == 403 and "Our holiday" not in hierarchy.text, hierarchy.text
    # Friends-only join rules stay allowed: invite (above) and restricted to a room of friends.
    friends = requests.post(f"{stack.url}/_matrix/client/v3/createRoom", json={"preset": "private_chat"},
                            headers=_h(owner), timeout=30).json()["room_id"]
    r = requests.put(f"{stack.url}/_matrix/client/v3/rooms/{quote(room_id)}/state/m.room.join_rules/",
                     json=_restricted_to(friends)["content"], headers=_h(owner), timeout=30)
    assert r.status_code == 200, r.text


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
def own_stack(backend: str, tmp_path: Any) -> Iterator[RunningStack]:
    """A stack of its own: killing Synapse must not disturb the shared one (on SQLite a restarted
    Synapse numbers appservice transactions from 1 again, which the bridge takes for replays)."""
    with harness_own_stack(backend, str(tmp_path / "stack"), ["--no-bot"]) as running:
        yield running


def test_a_failed_follow_is_retried_across_a_restart(own_stack: RunningStack) -> None:
    stack = own_stack
    merchant, room_id = make_merchant(stack)
    buyer = stack.register_user()
    ban_from_circle(stack, room_id, buyer["user_id"])
    order = f"banned-{secrets.token_hex(4)}"
    assert purchase(stack, buyer["user_id"], merchant["user_id"], order).status_code == 200
    # The first attempt failed (a ban refuses the join), and the follow waits for its next one.
    wait_until("the first attempt refused", lambda: purchase_status(stack, order)["follow"] == "retrying")
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
