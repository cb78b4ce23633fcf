"""What a sliding-sync client (Element X) shows first: Wangxin's rooms, named, and the merchant
circles recognisable by their room type, so a client can keep them out of the chat list
(docs/operating.md, "Deploying for speed")."""

from __future__ import annotations

import secrets
from typing import Any
from urllib.parse import quote

import requests

from tests.harness.http import HttpUser, eventually
from wangxin_stack.running import RunningStack

API = "/_synapse/client/wangxin/v1"
SLIDING_SYNC = "/_matrix/client/unstable/org.matrix.simplified_msc3575/sync"
CIRCLE_TYPE = "org.wangxin.merchant_circle"
SPACE_NAME = "Merchant Circle / 商家圈"  # the module's default space_name

# The state matrix-rust-sdk's room list asks for (abridged to what names and tells rooms apart).
REQUIRED_STATE = [["m.room.name", ""], ["m.room.avatar", ""], ["m.room.encryption", ""], ["m.room.create", ""],
                  ["m.room.member", "$LAZY"], ["m.room.member", "$ME"], ["m.space.child", "*"]]


def first_screen(user: HttpUser, filters: dict[str, Any]) -> dict[str, Any]:
    """The first page of the room list, a new connection each time, answered at once."""
    body = {"conn_id": f"room-list-{secrets.token_hex(4)}",
            "lists": {"all_rooms": {"ranges": [[0, 19]], "timeline_limit": 1, "required_state": REQUIRED_STATE,
                                    "filters": filters}}}
    answer: dict[str, Any] = user.call("POST", SLIDING_SYNC, body, timeout="0")
    return answer


def listed(answer: dict[str, Any]) -> set[str]:
    return set(answer.get("rooms", {}))


def room_type(room: dict[str, Any]) -> str | None:
    """The type in the room's create event, as a client reads it from ``required_state``."""
    create = [e for e in room.get("required_state", []) if e["type"] == "m.room.create"]
    assert len(create) == 1, f"no create event in the room's required_state: {room.get('required_state')}"
    value = create[0]["content"].get("type")
    return value if isinstance(value, str) else None


def follow_by_purchase(stack: RunningStack, buyer: HttpUser, merchant_name: str) -> str:
    """A merchant (made by the admin) and the buyer's purchase from it; returns the circle, once joined."""
    merchant = stack.register_user()
    r = requests.put(f"{stack.url}{API}/merchants/{quote(merchant['user_id'])}", json={"name": merchant_name},
                     headers=stack.admin_headers(), timeout=60)
    assert r.status_code == 200, r.text
    circle = str(r.json()["circle_room_id"])
    r = requests.post(f"{stack.url}{API}/purchases",
                      json={"order_id": f"o-{secrets.token_hex(6)}", "buyer": buyer.user_id,
                            "merchant": merchant["user_id"], "items": [{"sku": "tea-1", "qty": 1}]},
                      headers={"Authorization": f"Bearer {stack.info['merchant_circle']['platform_secret']}"},
                      timeout=60)
    assert r.status_code == 200, r.text
    eventually(lambda: circle in buyer.call("GET", "/_matrix/client/v3/joined_rooms")["joined_rooms"], timeout=60)
    return circle


def test_sliding_sync_names_wangxin_rooms_and_tells_circles_by_room_type(stack: RunningStack) -> None:
    buyer, friend = HttpUser(stack), HttpUser(stack)
    group = buyer.create_room(name="家人群", invite=[friend.user_id])
    friend.join(group)
    friend.say(group, "晚饭吃什么？")
    circle = follow_by_purchase(stack, buyer, "茶叶店")

    # Everything, as a client with no filter sees it: the follow also filed the circle in the
    # buyer's 商家圈 space (a background job, so wait for the space to list it, with its name: on
    # PostgreSQL a first answer once came without the space's name while the space was new).
    def everything() -> dict[str, Any]:
        answer = first_screen(buyer, {})
        spaces = [r for r in answer["rooms"].values() if room_type(r) == "m.space"]
        assert any(e["type"] == "m.space.child" and e["state_key"] == circle and e["content"]
                   for s in spaces for e in s["required_state"]), "the circle is not in the buyer's space yet"
        assert all("name" in s for s in spaces), f"a space without its name: {spaces}"
        return answer

    answer = eventually(everything, timeout=60)
    rooms = answer["rooms"]
    assert {group, circle} <= set(rooms)
    assert rooms[group]["name"] == "家人群" and room_type(rooms[group]) is None
    assert rooms[circle]["name"] == "茶叶店 · 商家圈"
    assert room_type(rooms[circle]) == CIRCLE_TYPE
    (space_id,) = [room_id for room_id, room in rooms.items() if room_type(room) == "m.space"]
    assert rooms[space_id]["name"] == SPACE_NAME

    # The chat list without Wangxin's service rooms: one filter, answered by Synapse.
    chats = first_screen(buyer, {"not_room_types": ["m.space", CIRCLE_TYPE]})
    assert group in listed(chats) and not listed(chats) & {circle, space_id}
    assert chats["lists"]["all_rooms"]["count"] == len(listed(chats))
    # And the circles alone, for a 商家圈 tab.
    circles = first_screen(buyer, {"room_types": [CIRCLE_TYPE]})
    assert listed(circles) == {circle}
    assert circles["rooms"][circle]["name"] == "茶叶店 · 商家圈"
