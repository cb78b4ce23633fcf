"""Support chats that a Matrix client alone can start, and the people who answer them: a person
who starts a direct chat with an organisation's own user (as Element does) is put in their one
support room with the account, welcomed and shown the menu, and the invitation is declined;
staff that the owner names are seated in the account's support rooms, old and new, answer there
(the server then leaves the conversation to them), and leave them when removed."""

from __future__ import annotations

import asyncio
import secrets
from typing import Any
from urllib.parse import quote

import requests
from nio import AsyncClient

from tests.e2e.test_account_support import SETTINGS, WELCOME, autoreply, by_sender_and_body, open_support
from tests.e2e.test_accounts import ACCOUNTS, _h, error_of, get_account, make_account, new_id, put_account
from tests.e2e.test_merchant_circle import room_state, wait_until
from tests.harness.matrix import client_for, create_dm, is_reply_to, room_events, send_text, wait_for_event
from tests.harness.stack import RunningStack

SUPPORT_TYPE = "org.wangxin.account_support"


def put_staff(stack: RunningStack, account_id: str, user: dict[str, Any], body: Any) -> requests.Response:
    return requests.put(f"{stack.url}{ACCOUNTS}/{quote(account_id)}/staff", json=body, headers=_h(user), timeout=60)


def get_staff(stack: RunningStack, account_id: str, user: dict[str, Any]) -> requests.Response:
    return requests.get(f"{stack.url}{ACCOUNTS}/{quote(account_id)}/staff", headers=_h(user), timeout=30)


def synced(stack: RunningStack, account_id: str, owner: dict[str, Any]) -> dict[str, Any]:
    """The staff once their sync over the account's support rooms is done."""
    return dict(wait_until("the staff's sync", lambda: (lambda r: r if not r["syncing"] else None)(
        get_staff(stack, account_id, owner).json())))


def member(stack: RunningStack, room_id: str, user_id: str) -> dict[str, Any]:
    return room_state(stack, room_id).get(("m.room.member", user_id)) or {}


def support_rooms_of(stack: RunningStack, user: dict[str, Any], account_id: str) -> list[str]:
    joined = requests.get(f"{stack.url}/_matrix/client/v3/joined_rooms", headers=_h(user), timeout=30).json()
    found = []
    for room_id in joined["joined_rooms"]:
        create = room_state(stack, room_id).get(("m.room.create", "")) or {}
        if create.get("type") == SUPPORT_TYPE and create.get("org.wangxin.account") == account_id:
            found.append(room_id)
    return found


def declined(stack: RunningStack, room_id: str, account_user: str) -> dict[str, Any]:
    return dict(wait_until(f"{account_user} declining the invitation into {room_id}", lambda: (
        lambda m: m if m.get("membership") == "leave" else None)(member(stack, room_id, account_user))))


async def no_reply(client: AsyncClient, room_id: str, event_id: str, sender: str) -> bool:
    """Whether ``event_id`` still has no answer from ``sender``, looking a few times."""
    for _ in range(10):
        if any(is_reply_to(event_id, sender)(e) for e in await room_events(client, room_id)):
            return False
        await asyncio.sleep(0.3)
    return True


# -- a direct chat ---------------------------------------------------------------------------------

async def test_a_direct_chat_with_the_account_puts_the_person_in_their_support_room(stack: RunningStack) -> None:
    account_id, owner, made = make_account(stack, name="City Library")
    account_user = made["account_user_id"]
    assert autoreply(stack, account_id, owner, SETTINGS).status_code == 200
    person = stack.register_user()
    client = await client_for(stack.url, person)
    try:
        # Element's "Start chat": a private room with is_direct, the account's user invited.
        dm = await create_dm(client, account_user)
        decline = declined(stack, dm, account_user)
        assert "City Library · 客服" in decline["reason"]
        (room_id,) = wait_until("the support room", lambda: support_rooms_of(stack, person, account_id))
        await wait_for_event(client, room_id, by_sender_and_body(account_user, WELCOME))
        menu = await wait_for_event(client, room_id, lambda e: e.get("sender") == account_user and (
            e.get("content") or {}).get("org.wangxin.autoreply") == "menu")
        assert menu["content"]["body"].splitlines()[1:] == ["1. 营业时间", "2. Address"]
        asked = await send_text(client, room_id, "2")  # the room answers like any support room
        reply = await wait_for_event(client, room_id, is_reply_to(asked, account_user))
        assert reply["content"]["body"] == "1 Library Road"

        # Again, encrypted this time (a client that encrypts anyway): the same room.
        again = await create_dm(client, account_user, encrypted=True)
        declined(stack, again, account_user)
        # A room whose name the person chose, the account invited into it afterwards (on a
        # worker topology, /invite is served by a worker): the same room, and the name goes nowhere.
        marker = f"SPAM-{secrets.token_hex(4)}"
        r = requests.post(f"{stack.url}/_matrix/client/v3/createRoom", headers=_h(person), timeout=30,
                          json={"preset": "private_chat", "name": marker, "topic": marker})
        assert r.status_code == 200, r.text
        group = r.json()["room_id"]
        r = requests.post(f"{stack.url}/_matrix/client/v3/rooms/{quote(group)}/invite", headers=_h(person),
                          json={"user_id": account_user, "reason": marker}, timeout=30)
        assert r.status_code == 200, r.text
        assert marker not in declined(stack, group, account_user)["reason"]
        assert support_rooms_of(stack, person, account_id) == [room_id]
        again_open = open_support(stack, account_id, person).json()
        assert again_open["room_id"] == room_id and again_open["created"] is False
        texts = [str(e.get("content")) for e in await room_events(client, room_id)]
        assert not [t for t in texts if marker in t]
    finally:
        await client.close()
    state = room_state(stack, room_id)
    assert ("m.room.encryption", "") not in state
    assert state[("m.room.member", person["user_id"])]["membership"] == "join"
    # The account's owner sits in it and can answer, as in a room opened by POST /support.
    assert state[("m.room.member", owner["user_id"])]["membership"] == "join"


# -- staff -----------------------------------------------------------------------------------------

async def test_staff_are_seated_in_old_and_new_support_rooms_answer_there_and_leave_when_removed(
        stack: RunningStack) -> None:
    account_id, owner, made = make_account(stack, name="River School")
    account_user = made["account_user_id"]
    assert autoreply(stack, account_id, owner, SETTINGS).status_code == 200
    early, late = stack.register_user(), stack.register_user()
    old_room = open_support(stack, account_id, early).json()["room_id"]
    teacher, clerk = stack.register_user(), stack.register_user()

    r = put_staff(stack, account_id, owner, {"user_ids": [teacher["user_id"], clerk["user_id"]]})
    assert r.status_code == 200, r.text
    assert sorted(r.json()["added"]) == sorted([teacher["user_id"], clerk["user_id"]]) and r.json()["removed"] == []
    assert synced(stack, account_id, owner)["user_ids"] == sorted([teacher["user_id"], clerk["user_id"]])
    new_room = open_support(stack, account_id, late).json()["room_id"]  # made with the staff in it
    for room_id in (old_room, new_room):
        state = room_state(stack, room_id)
        for staff in (teacher, clerk):
            assert state[("m.room.member", staff["user_id"])]["membership"] == "join", room_id
            assert state[("m.room.power_levels", "")]["users"][staff["user_id"]] == 50

    # A staff member answers; the follower sees it, and the server leaves the conversation to them.
    early_client, late_client = await client_for(stack.url, early), await client_for(stack.url, late)
    teacher_client = await client_for(stack.url, teacher)
    try:
        by_hand = "The school opens at 8 · 八点开门"
        await send_text(teacher_client, old_room, by_hand)
        await wait_for_event(early_client, old_room, by_sender_and_body(teacher["user_id"], by_hand))
        quiet = await send_text(early_client, old_room, "Address")
        answered = await send_text(late_client, new_room, "Address")  # nobody answered there: the server does
        await wait_for_event(late_client, new_room, is_reply_to(answered, account_user))
        assert await no_reply(early_client, old_room, quiet, account_user)
    finally:
        for client in (early_client, late_client, teacher_client):
            await client.close()

    # The clerk is removed: kicked by the rooms' creator, and loses power 50; the teacher stays.
    r = put_staff(stack, account_id, owner, {"user_ids": [teacher["user_id"]]})
    assert r.status_code == 200 and r.json()["removed"] == [clerk["user_id"]], r.text
    assert synced(stack, account_id, owner)["user_ids"] == [teacher["user_id"]]
    for room_id in (old_room, new_room):
        state = room_state(stack, room_id)
        assert state[("m.room.member", clerk["user_id"])]["membership"] == "leave", room_id
        assert "River School" in state[("m.room.member", clerk["user_id"])]["reason"]
        assert clerk["user_id"] not in state[("m.room.power_levels", "")]["users"]
        assert state[("m.room.member", teacher["user_id"])]["membership"] == "join"
    r = requests.put(f"{stack.url}/_matrix/client/v3/rooms/{quote(old_room)}/send/m.room.message/x1",
                      json={"msgtype": "m.text", "body": "still here?"}, headers=_h(clerk), timeout=30)
    assert r.status_code == 403, r.text


def test_a_transfer_seats_the_new_owner_in_every_support_room_and_removes_the_old(stack: RunningStack) -> None:
    account_id, owner, _ = make_account(stack, name="Harbour Museum")
    assert autoreply(stack, account_id, owner, SETTINGS).status_code == 200
    heir, clerk, visitor = stack.register_user(), stack.register_user(), stack.register_user()
    room_id = open_support(stack, account_id, visitor).json()["room_id"]
    assert put_staff(stack, account_id, owner, {"user_ids": [heir["user_id"], clerk["user_id"]]}).status_code == 200
    synced(stack, account_id, owner)
    body = {"kind": "organisation", "owner": heir["user_id"], "name": "Harbour Museum", "verified": True}

    # Only a server admin transfers; a transfer to nobody, or of a merchant's own account, changes nothing.
    error_of(put_account(stack, account_id, body, headers=_h(owner)), 403)
    error_of(put_account(stack, account_id, {**body, "owner": f"@nobody-{new_id()}:{stack.server_name}"}), 400,
             "owner")
    shop_id, shop_owner, _ = make_account(stack, kind="merchant", name="Tea Shop")
    error_of(put_account(stack, shop_id, {"kind": "merchant", "owner": heir["user_id"], "name": "Tea Shop"}), 409,
             "owner")
    assert get_account(stack, shop_id, shop_owner).json()["owner"] == shop_owner["user_id"]
    assert get_account(stack, account_id, owner).json()["owner"] == owner["user_id"]

    r = put_account(stack, account_id, body)
    assert r.status_code == 200 and r.json()["owner"] == heir["user_id"] and r.json()["verified"] is True, r.text
    # The heir owns it now and is no longer staff; the sync seats them and removes the old owner.
    assert synced(stack, account_id, heir)["user_ids"] == [clerk["user_id"]]
    state = room_state(stack, room_id)
    levels = state[("m.room.power_levels", "")]["users"]
    assert state[("m.room.member", heir["user_id"])]["membership"] == "join" and levels[heir["user_id"]] == 50
    assert state[("m.room.member", clerk["user_id"])]["membership"] == "join" and levels[clerk["user_id"]] == 50
    gone = state[("m.room.member", owner["user_id"])]
    assert gone["membership"] == "leave" and "Harbour Museum" in gone["reason"]
    assert owner["user_id"] not in levels
    # The old owner lost the account's rights, the new one has them.
    error_of(get_staff(stack, account_id, owner), 403)
    assert "owner" not in get_account(stack, account_id, owner).json()
    assert put_staff(stack, account_id, heir, {"user_ids": []}).status_code == 200
    # A support room opened now seats the new owner from the start.
    newcomer = stack.register_user()
    fresh = room_state(stack, open_support(stack, account_id, newcomer).json()["room_id"])
    assert fresh[("m.room.member", heir["user_id"])]["membership"] == "join"
    assert ("m.room.member", owner["user_id"]) not in fresh


def test_bad_staff_requests_are_refused_naming_the_field(stack: RunningStack) -> None:
    account_id, owner, made = make_account(stack, name="Town Hall")
    person, stranger = stack.register_user(), stack.register_user()
    error_of(put_staff(stack, account_id, stranger, {"user_ids": [person["user_id"]]}), 403)
    error_of(get_staff(stack, account_id, stranger), 403)
    error_of(put_staff(stack, new_id(), owner, {"user_ids": []}), 404)
    error_of(put_staff(stack, account_id, owner, {"user_ids": person["user_id"]}), 400, "user_ids")
    error_of(put_staff(stack, account_id, owner, {"user_ids": [f"@p{i}:x.test" for i in range(21)]}), 400,
             "user_ids")
    bad = [
        owner["user_id"],  # the owner is in every support room already
        made["account_user_id"],
        stack.info["merchant_bot"]["user_id"],
        f"@nobody-{secrets.token_hex(3)}:{stack.server_name}",
        "@someone:elsewhere.example",
    ]
    for user_id in bad:
        error_of(put_staff(stack, account_id, owner, {"user_ids": [person["user_id"], user_id]}), 400,
                 "user_ids[1]")
    error_of(put_staff(stack, account_id, owner, {"user_ids": [person["user_id"], person["user_id"]]}), 400,
             "user_ids[1]")
    assert get_staff(stack, account_id, owner).json()["user_ids"] == []  # nothing was written
    # A server admin may set them; staff have no support room of their own with the account.
    r = put_staff(stack, account_id, stack.info["admin"], {"user_ids": [person["user_id"]]})
    assert r.status_code == 200, r.text
    error_of(open_support(stack, account_id, person), 400, "user_id")
