"""A circle (an account's channel) past one room (issue 24, "Performance and scale"), on a stack of
its own whose circles take 2 followers per room: followers spread over further rooms made by the
server, every post, edit and removal in the first room mirrored into the others, counted once
against the quota, followers, reads, the account's state and its storefront over all rooms, and
the refusals that keep the rooms one circle (no posts in a further room; a hand-written mirror key
proves nothing)."""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from typing import Any
from urllib.parse import quote

import pytest
import requests

from tests.e2e.test_accounts import ACCOUNTS, make_account
from tests.e2e.test_merchant_circle import (
    API,
    make_merchant,
    product_post,
    purchase,
    room_state,
    send,
    wait_until,
)
from tests.harness.stack import RunningStack
from tests.harness.stack import own_stack as harness_own_stack

CLIENT = "/_matrix/client/v3"
SHARD_SIZE = 2
MIRROR_KEY = "org.wangxin.mirror_of"


def _h(user: dict[str, Any]) -> dict[str, str]:
    return {"Authorization": f"Bearer {user['access_token']}"}


@pytest.fixture(scope="module")
def shards_stack(backend: str, tmp_path_factory: Any) -> Iterator[RunningStack]:
    with harness_own_stack(backend, str(tmp_path_factory.mktemp("shards") / "stack"),
                           ["--no-bot", "--circle-shard-size", str(SHARD_SIZE)]) as running:
        yield running


def joined_rooms(stack: RunningStack, user: dict[str, Any]) -> set[str]:
    r = requests.get(f"{stack.url}{CLIENT}/joined_rooms", headers=_h(user), timeout=30)
    r.raise_for_status()
    return set(r.json()["joined_rooms"])


def timeline(stack: RunningStack, user: dict[str, Any], room_id: str) -> list[dict[str, Any]]:
    r = requests.get(f"{stack.url}{CLIENT}/rooms/{quote(room_id)}/messages", params={"dir": "b", "limit": 50},
                     headers=_h(user), timeout=30)
    assert r.status_code == 200, r.text
    return list(r.json()["chunk"])


def messages_of(stack: RunningStack, user: dict[str, Any], room_id: str, sender: str) -> list[dict[str, Any]]:
    return [e for e in timeline(stack, user, room_id) if e["type"] == "m.room.message" and e["sender"] == sender]


def circle_room_of(stack: RunningStack, user: dict[str, Any], merchant_id: str) -> str:
    """The room of the merchant's circle the user is in, as ``GET /circle`` tells them."""
    def find() -> str | None:
        r = requests.get(f"{stack.url}{API}/circle", headers=_h(user), timeout=30)
        r.raise_for_status()
        return next((m["circle_room_id"] for m in r.json()["merchants"] if m["merchant"] == merchant_id), None)
    return str(wait_until(f"{user['user_id']} following {merchant_id}", find))


def follow(stack: RunningStack, account_id: str, user: dict[str, Any]) -> str:
    r = requests.post(f"{stack.url}{ACCOUNTS}/{account_id}/follow", headers=_h(user), timeout=60)
    assert r.status_code == 200, r.text
    return str(r.json()["channel_room_id"])


def test_an_accounts_followers_spread_over_rooms_and_every_post_reaches_all(shards_stack: RunningStack) -> None:
    stack = shards_stack
    account_id, owner, made = make_account(stack, name="Port Museum", verified=True)
    first, identity = made["channel_room_id"], made["account_user_id"]
    r = requests.put(f"{stack.url}{ACCOUNTS}/{account_id}/storefront", json={"url": "https://shop.example/museum"},
                     headers=_h(owner), timeout=60)
    assert r.status_code == 200, r.text

    followers = [stack.register_user() for _ in range(5)]
    rooms = [follow(stack, account_id, f) for f in followers]
    # 2 per room: the first room, then two further rooms made by the server.
    assert rooms[:2] == [first, first]
    assert rooms[2] == rooms[3] != first and rooms[4] not in (first, rooms[2])
    for follower, room in zip(followers, rooms, strict=True):
        assert room in joined_rooms(stack, follower)
        assert not ({first, rooms[2], rooms[4]} - {room}) & joined_rooms(stack, follower)  # one room each
    # Following again changes nothing; the API counts the followers of every room.
    assert follow(stack, account_id, followers[4]) == rooms[4]
    view = requests.get(f"{stack.url}{ACCOUNTS}/{account_id}", headers=_h(followers[4]), timeout=30).json()
    assert view["followers"] == 5 and view["you_follow"] is True

    # The follow page (and its QR code) sends new followers from a client to the room that takes
    # them now; the address still names the first room.
    page = requests.get(f"{stack.url}{ACCOUNTS}/{account_id}/follow", timeout=30)
    assert page.status_code == 200 and "https://matrix.to/#/" + quote(rooms[4], safe=":") in page.text, page.text
    assert view["alias"] == f"#{account_id}:{stack.server_name}"

    # A further room is the same circle to its followers: name, the account's verified state, the
    # storefront beside the chat, filed in the follower's space.
    first_state = room_state(stack, first)
    for further in (rooms[2], rooms[4]):
        state = room_state(stack, further)
        assert state[("m.room.name", "")] == first_state[("m.room.name", "")]
        assert state[("org.wangxin.account", "")] == {"account_id": account_id, "kind": "organisation",
                                                      "verified": True}
        assert state[("im.vector.modular.widgets", "org.wangxin.storefront")]["url"] == "https://shop.example/museum"
        assert state[("m.room.create", "")]["type"] == first_state[("m.room.create", "")]["type"]
        assert state[("m.room.power_levels", "")]["users"].get(identity) == 50
    space = wait_until("the space of a follower of a further room", lambda: requests.get(
        f"{stack.url}{API}/circle", headers=_h(followers[4]), timeout=30).json()["space_room_id"])
    wait_until("the further room filed in the follower's space",
               lambda: ("m.space.child", rooms[4]) in room_state(stack, space))

    # A post through the API reaches every follower in their own room, counted once.
    r = requests.post(f"{stack.url}{ACCOUNTS}/{account_id}/posts", json={"body": "Night opening · 夜场开放"},
                      headers=_h(owner), timeout=60)
    assert r.status_code == 200, r.text
    event_id = r.json()["event_id"]
    for follower, room in zip(followers, rooms, strict=True):
        seen = wait_until("the post in every room", lambda f=follower, rm=room: messages_of(stack, f, rm, identity))
        assert [e["content"]["body"] for e in seen] == ["Night opening · 夜场开放"]
        if room != first:
            assert seen[0]["content"][MIRROR_KEY] == event_id
    listed = requests.get(f"{stack.url}{ACCOUNTS}/{account_id}/posts", headers=_h(owner), timeout=30).json()
    assert listed["posts_in_window"] == 1

    # Reads in further rooms count for the post.
    copy = messages_of(stack, followers[4], rooms[4], identity)[0]["event_id"]
    r = requests.post(f"{stack.url}{CLIENT}/rooms/{quote(rooms[4])}/receipt/m.read/{quote(copy)}", json={},
                      headers=_h(followers[4]), timeout=30)
    assert r.status_code == 200, r.text
    r = requests.post(f"{stack.url}{CLIENT}/rooms/{quote(first)}/receipt/m.read/{quote(event_id)}", json={},
                      headers=_h(followers[0]), timeout=30)
    assert r.status_code == 200, r.text
    stats = requests.get(f"{stack.url}{ACCOUNTS}/{account_id}/stats", headers=_h(owner), timeout=30).json()
    assert stats["followers"] == 5
    assert [(p["event_id"], p["reads"], p["followers_at_post"]) for p in stats["posts"]] == [(event_id, 2, 5)]

    # Unfollowing leaves the further room; the count follows.
    r = requests.delete(f"{stack.url}{ACCOUNTS}/{account_id}/follow", headers=_h(followers[3]), timeout=60)
    assert r.status_code == 200, r.text
    assert rooms[3] not in joined_rooms(stack, followers[3])
    view = requests.get(f"{stack.url}{ACCOUNTS}/{account_id}", headers=_h(owner), timeout=30).json()
    assert view["followers"] == 4


def test_a_merchants_own_posts_edits_and_removals_are_mirrored(shards_stack: RunningStack) -> None:
    stack = shards_stack
    merchant, first = make_merchant(stack, name="Dock Tea")
    buyers = [stack.register_user() for _ in range(3)]
    for buyer in buyers:
        assert purchase(stack, buyer["user_id"], merchant["user_id"]).status_code == 200
    rooms = [circle_room_of(stack, b, merchant["user_id"]) for b in buyers]
    further = next(room for room in rooms if room != first)
    reader = buyers[rooms.index(further)]
    info = requests.get(f"{stack.url}{API}/merchants/{quote(merchant['user_id'])}", headers=_h(merchant),
                        timeout=30).json()
    assert info["followers"] == 3 and info["circle_rooms"] == 2

    # The merchant posts from its own client in the first room: the copy follows.
    r = send(stack, merchant, first, product_post(f"p-{secrets.token_hex(3)}", "Oolong"))
    assert r.status_code == 200, r.text
    original = r.json()["event_id"]
    copies = wait_until("the copy in the further room",
                        lambda: messages_of(stack, reader, further, merchant["user_id"]))
    assert copies[0]["content"][MIRROR_KEY] == original
    assert copies[0]["content"]["org.wangxin.product"]["title"] == "Oolong"

    # An edit is mirrored as an edit of the copy; a removal removes the copy.
    edit = {"msgtype": "m.text", "body": "* Oolong, fresh", "m.new_content": {"msgtype": "m.text", "body":
            "Oolong, fresh"}, "m.relates_to": {"rel_type": "m.replace", "event_id": original}}
    assert send(stack, merchant, first, edit).status_code == 200
    wait_until("the edit of the copy", lambda: any(
        e["content"].get("m.relates_to", {}).get("event_id") == copies[0]["event_id"]
        for e in messages_of(stack, reader, further, merchant["user_id"])))
    r = requests.put(f"{stack.url}{CLIENT}/rooms/{quote(first)}/redact/{quote(original)}/{secrets.token_hex(6)}",
                     json={"reason": "sold out"}, headers=_h(merchant), timeout=60)
    assert r.status_code == 200, r.text
    wait_until("the copy removed", lambda: not next(
        e for e in timeline(stack, reader, further) if e["event_id"] == copies[0]["event_id"])["content"])

    # Posting in a further room is refused with a sentence saying where to post; a hand-written
    # mirror key in the first room is an ordinary post, counted against the quota.
    r = send(stack, merchant, further, {"msgtype": "m.text", "body": "Here too"})
    assert r.status_code == 403 and "first room" in r.json()["error"], r.text
    before = requests.get(f"{stack.url}{API}/merchants/{quote(merchant['user_id'])}", headers=_h(merchant),
                          timeout=30).json()["posts_today"]
    r = send(stack, merchant, first, {"msgtype": "m.text", "body": "free post?", MIRROR_KEY: original})
    assert r.status_code == 200, r.text
    after = requests.get(f"{stack.url}{API}/merchants/{quote(merchant['user_id'])}", headers=_h(merchant),
                         timeout=30).json()["posts_today"]
    assert after == before + 1

    # A room made later starts with the circle's latest posts (the removed one left out).
    late = [stack.register_user() for _ in range(2)]
    for buyer in late:
        assert purchase(stack, buyer["user_id"], merchant["user_id"]).status_code == 200
    newest = circle_room_of(stack, late[-1], merchant["user_id"])
    assert newest not in (first, further)
    backfilled = wait_until("the latest posts in the new room", lambda: [
        e["content"]["body"] for e in messages_of(stack, late[-1], newest, merchant["user_id"])])
    assert backfilled == ["free post?"]
