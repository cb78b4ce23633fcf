"""Official accounts post under their own name (issue 24, items 3 and 5), as owners, followers and
buyers meet it on a real Synapse: posts from the account's own user within its kind's limit and
429 over it, scheduled posts sent by the server at their time (also across a restart of Synapse),
drafts and cancel through the bot, and a platform's targeted post that reaches exactly the buyers
its segment matches and nobody else."""

from __future__ import annotations

import asyncio
import datetime
import os
import secrets
import signal
import time
from collections.abc import Iterator
from typing import Any
from urllib.parse import quote

import pytest
import requests

from tests.e2e.test_accounts import ACCOUNTS, error_of, make_account, space_children, space_of
from tests.e2e.test_merchant_circle import API, make_merchant, purchase, wait_until
from tests.harness.matrix import client_for, create_dm, is_reply_to, send_text, wait_for_event, wait_joined
from tests.harness.stack import RunningStack
from tests.harness.stack import own_stack as harness_own_stack

CLIENT = "/_matrix/client/v3"


def _h(user: dict[str, Any]) -> dict[str, str]:
    return {"Authorization": f"Bearer {user['access_token']}"}


def post(stack: RunningStack, account_id: str, user: dict[str, Any] | None, body: Any,
         headers: dict[str, str] | None = None) -> requests.Response:
    return requests.post(f"{stack.url}{ACCOUNTS}/{quote(account_id)}/posts", json=body,
                         headers=headers or _h(user or {}), timeout=120)


def posts_of(stack: RunningStack, account_id: str, user: dict[str, Any], state: str | None = None) -> dict[str, Any]:
    r = requests.get(f"{stack.url}{ACCOUNTS}/{quote(account_id)}/posts", params={"state": state} if state else {},
                     headers=_h(user), timeout=30)
    assert r.status_code == 200, r.text
    return dict(r.json())


def follow(stack: RunningStack, account_id: str, user: dict[str, Any]) -> None:
    r = requests.post(f"{stack.url}{ACCOUNTS}/{account_id}/follow", headers=_h(user), timeout=60)
    assert r.status_code == 200, r.text


def messages(stack: RunningStack, user: dict[str, Any], room_id: str) -> requests.Response:
    return requests.get(f"{stack.url}{CLIENT}/rooms/{quote(room_id)}/messages", params={"dir": "b", "limit": 50},
                        headers=_h(user), timeout=30)


def posts_in(stack: RunningStack, user: dict[str, Any], room_id: str) -> list[dict[str, Any]]:
    r = messages(stack, user, room_id)
    assert r.status_code == 200, r.text
    return [e for e in r.json()["chunk"] if "org.wangxin.account_post" in (e.get("content") or {})]


def member_profile(stack: RunningStack, user: dict[str, Any], room_id: str, member: str) -> dict[str, Any]:
    r = requests.get(f"{stack.url}{CLIENT}/rooms/{quote(room_id)}/state/m.room.member/{quote(member)}",
                     headers=_h(user), timeout=30)
    assert r.status_code == 200, r.text
    return dict(r.json())


def iso_in(seconds: float, hours_offset: int = 8) -> str:
    """A time ``seconds`` from now written with an offset, as a person in China would."""
    zone = datetime.timezone(datetime.timedelta(hours=hours_offset))
    return datetime.datetime.fromtimestamp(time.time() + seconds, tz=zone).isoformat(timespec="seconds")


def all_synced_posts(sync: Any, post_id: str) -> list[tuple[str, dict[str, Any]]]:
    """(room, event) of every event carrying ``post_id`` in a nio sync response, joined or invited."""
    found = []
    for room_id, info in sync.rooms.join.items():
        for event in info.timeline.events:
            content = (event.source.get("content") or {}).get("org.wangxin.account_post") or {}
            if content.get("post_id") == post_id:
                found.append((room_id, event.source))
    for room_id, info in sync.rooms.invite.items():
        for event in info.invite_state:
            if post_id in str(getattr(event, "source", "")):
                found.append((room_id, event.source))
    return found


async def synced_post(client: Any, post_id: str, timeout: float = 60) -> list[tuple[str, dict[str, Any]]]:
    """Initial syncs of a matrix-nio client until the post is in one (on workers the sync worker
    learns of new events a moment after they are stored)."""
    deadline = time.monotonic() + timeout
    while True:
        found = all_synced_posts(await client.sync(timeout=0, full_state=True), post_id)
        if found or time.monotonic() > deadline:
            return found
        await asyncio.sleep(0.3)


# -- 3. posting under the account's own name ------------------------------------------------------

async def test_posts_come_from_the_accounts_own_user_and_the_limit_answers_429(stack: RunningStack) -> None:
    account_id, owner, made = make_account(stack, name="Harbour Library", avatar_url="mxc://example.org/harbour")
    identity = made["account_user_id"]
    assert made["sender"] == identity and made["sender_is_shared"] is False
    follower = stack.register_user()
    follow(stack, account_id, follower)
    room_id = made["channel_room_id"]

    r = post(stack, account_id, owner, {"body": "Open late tonight · 今晚开到十点"})
    assert r.status_code == 200, r.text
    answer = r.json()
    assert answer["state"] == "sent" and answer["sender"] == identity and answer["room_id"] == room_id
    event_id = answer["event_id"]

    # The follower's own client (matrix-nio) has it in /sync from the account's user, named as the
    # account.
    client = await client_for(stack.url, follower)
    try:
        synced = await synced_post(client, answer["post_id"])
        assert [(room, e["event_id"], e["sender"]) for room, e in synced] == [(room_id, event_id, identity)]
        assert client.rooms[room_id].user_name(identity) == "Harbour Library"
        seen = await wait_for_event(client, room_id, lambda e: e.get("event_id") == event_id)
        assert seen["sender"] == identity and seen["content"]["body"] == "Open late tonight · 今晚开到十点"
        assert seen["content"]["org.wangxin.account_post"] == {"account_id": account_id,
                                                                "post_id": answer["post_id"]}
    finally:
        await client.close()
    # Its name came with the account; its avatar with the first post (Synapse updates the user's
    # membership in its rooms in the background after a profile change).
    wait_until("the account's avatar on its user in the channel", lambda: member_profile(
        stack, follower, room_id, identity).get("avatar_url") == "mxc://example.org/harbour")
    assert member_profile(stack, follower, room_id, identity)["displayname"] == "Harbour Library"
    profile = requests.get(f"{stack.url}{CLIENT}/profile/{quote(identity)}", timeout=30).json()
    assert profile == {"displayname": "Harbour Library", "avatar_url": "mxc://example.org/harbour"}

    # An organisation posts once a day (WeChat's subscription accounts): the next is refused.
    r = post(stack, account_id, owner, {"body": "And again"})
    assert r.status_code == 429, r.text
    refusal = r.json()
    assert refusal["errcode"] == "M_LIMIT_EXCEEDED" and refusal["org.wangxin.limit"] == "posting.limits.organisation"
    assert 0 < refusal["retry_after_ms"] <= 24 * 3600 * 1000
    listed = posts_of(stack, account_id, owner)
    assert [p["post_id"] for p in listed["posts"]] == [answer["post_id"]]  # the refused one left nothing
    assert listed["limit"] == {"posts": 1, "days": 1, "option": "posting.limits.organisation"}
    assert listed["posts_in_window"] == 1 and listed["next_post_allowed_in_ms"] > 0
    assert [e["event_id"] for e in posts_in(stack, follower, room_id)] == [event_id]


def test_bad_posts_are_refused_naming_the_field_and_change_nothing(stack: RunningStack) -> None:
    account_id, owner, made = make_account(stack, name="Careful Org")
    platform_id, platform_owner, _ = make_account(stack, kind="platform", name="Careful Mall")
    stranger = stack.register_user()
    error_of(post(stack, account_id, owner, {"body": ""}), 400, "body")
    error_of(post(stack, account_id, owner, {}), 400, "body")
    error_of(post(stack, account_id, owner, {"body": "x" * 4001}), 413, "body")
    error_of(post(stack, account_id, owner, {"body": "hi", "at": 1000}), 400, "at")
    error_of(post(stack, account_id, owner, {"body": "hi", "at": "next tuesday"}), 400, "at")
    error_of(post(stack, account_id, owner, {"body": "hi", "at": "2020-01-01T10:00+08:00"}), 400, "at")
    error_of(post(stack, account_id, owner, {"body": "hi", "at": True}), 400, "at")
    error_of(post(stack, account_id, owner, {"body": "hi", "segment": {"category": "tea"}}), 400, "segment")
    error_of(post(stack, platform_id, platform_owner, {"body": "hi", "segment": {}}), 400, "segment")
    error_of(post(stack, platform_id, platform_owner, {"body": "hi", "segment": {"categroy": "tea"}}), 400,
             "segment.categroy")
    error_of(post(stack, platform_id, platform_owner, {"body": "hi", "segment": {"merchant": "@nobody:x.test"}}),
             400, "segment.merchant")
    error_of(post(stack, platform_id, platform_owner, {"body": "hi", "segment": {"purchased_within_days": 0}}),
             400, "segment.purchased_within_days")
    r = post(stack, account_id, stranger, {"body": "hi"})
    assert r.status_code == 403 and r.json()["errcode"] == "M_FORBIDDEN", r.text
    error_of(post(stack, f"none-{secrets.token_hex(3)}", owner, {"body": "hi"}), 404)
    assert requests.post(f"{stack.url}{ACCOUNTS}/{account_id}/posts", json={"body": "hi"}, timeout=30).status_code \
        == 401
    error_of(requests.get(f"{stack.url}{ACCOUNTS}/{account_id}/posts", headers=_h(stranger), timeout=30), 403)
    error_of(requests.delete(f"{stack.url}{ACCOUNTS}/{account_id}/posts/p0123456789abcdef", headers=_h(owner),
                             timeout=30), 404)
    # Nothing of the above was written or sent, and the day's one post is still free.
    assert posts_of(stack, account_id, owner)["posts"] == []
    assert posts_of(stack, platform_id, platform_owner)["posts"] == []
    # A server admin may post for the account (its own token).
    r = post(stack, account_id, None, {"body": "by an admin"}, headers=stack.admin_headers())
    assert r.status_code == 200 and r.json()["author"] == stack.info["admin"]["user_id"], r.text
    assert r.json()["sender"] == made["account_user_id"]


def test_a_merchant_account_posts_as_the_merchant_within_the_circles_quota(stack: RunningStack) -> None:
    account_id, owner, made = make_account(stack, kind="merchant", name="Noodle Bar")
    assert made["sender"] == owner["user_id"]
    r = post(stack, account_id, owner, {"body": "Fresh noodles"})
    assert r.status_code == 200 and r.json()["sender"] == owner["user_id"], r.text
    merchant = requests.get(f"{stack.url}{API}/merchants/{quote(owner['user_id'])}", headers=_h(owner), timeout=30)
    assert merchant.json()["posts_today"] == 1  # the merchant circle's own quota counted it
    listed = posts_of(stack, account_id, owner)
    assert listed["limit"]["option"] == "posts_per_day"
    assert listed["limit"]["posts"] == merchant.json()["posts_per_day"]


PRODUCT = {"id": "tea-stall-1", "title": "Green tea", "price": "9.90", "currency": "CNY",
           "url": "https://shop.example/green"}


def test_a_product_post_comes_from_the_merchant_with_its_image_and_counts_as_a_product_post(
        stack: RunningStack) -> None:
    account_id, owner, made = make_account(stack, kind="merchant", name="Tea Stall")
    follower = stack.register_user()
    follow(stack, account_id, follower)
    room_id = made["channel_room_id"]
    image = {"url": f"mxc://{stack.server_name}/greenTea1", "filename": "green.jpg",
             "info": {"mimetype": "image/jpeg", "size": 20_000, "w": 480, "h": 800}}
    good = {"body": "Green tea — 9.90 CNY\nBuy: https://shop.example/green", "product": PRODUCT, "image": image}
    # Every new field is checked, naming it, before anything is written.
    for bad, status, field in [
        ({**good, "product": {**PRODUCT, "price": "nan"}}, 400, "product.price"),
        ({**good, "product": {**PRODUCT, "url": "javascript:alert(1)"}}, 400, "product.url"),
        ({**good, "product": {**PRODUCT, "colour": "green"}}, 400, "product.colour"),
        ({**good, "product": {**PRODUCT, "title": "t" * 201}}, 413, "product.title"),
        ({**good, "image": {**image, "url": "https://shop.example/green.jpg"}}, 400, "image.url"),
        ({**good, "image": {**image, "info": {"mimetype": "text/html"}}}, 400, "image.info.mimetype"),
        ({**good, "image": {**image, "info": {"size": -1}}}, 400, "image.info.size"),
        ({**good, "at": int(time.time() * 1000) + 3_600_000}, 400, "product"),
    ]:
        error_of(post(stack, account_id, owner, bad), status, field)
    assert posts_of(stack, account_id, owner)["posts"] == []
    merchant_url = f"{stack.url}{API}/merchants/{quote(owner['user_id'])}"
    assert requests.get(merchant_url, headers=_h(owner), timeout=30).json()["posts_today"] == 0

    r = post(stack, account_id, owner, good)
    assert r.status_code == 200, r.text
    answer = r.json()
    assert answer["sender"] == owner["user_id"] and answer["state"] == "sent"
    assert answer["product"] == {**PRODUCT, "image": image["url"]}
    seen = wait_until("the product post", lambda: [e for e in posts_in(stack, follower, room_id)
                                                   if e["event_id"] == answer["event_id"]])
    event = seen[0]
    assert event["sender"] == owner["user_id"]
    content = event["content"]
    assert content["msgtype"] == "m.image" and content["url"] == image["url"] and content["info"] == image["info"]
    assert content["filename"] == "green.jpg" and content["body"] == good["body"]
    assert content["org.wangxin.product"] == {**PRODUCT, "image": image["url"]}
    assert content["org.wangxin.account_post"] == {"account_id": account_id, "post_id": answer["post_id"]}
    # The merchant circle counted it as a product post: a slot of the day, and the product's cooldown.
    assert requests.get(merchant_url, headers=_h(owner), timeout=30).json()["posts_today"] == 1
    products = requests.get(f"{merchant_url}/products", headers=_h(owner), timeout=30).json()["products"]
    assert [p["product"] for p in products] == [{**PRODUCT, "image": image["url"]}]
    again = post(stack, account_id, owner, good)
    assert again.status_code == 429 and again.json()["org.wangxin.limit"] == "repost_cooldown_hours", again.text
    assert again.json()["retry_after_ms"] > 6 * 24 * 3600 * 1000
    assert [p["post_id"] for p in posts_of(stack, account_id, owner)["posts"]] == [answer["post_id"]]


# -- scheduling -----------------------------------------------------------------------------------

def test_a_scheduled_post_is_sent_at_its_time_and_a_cancelled_one_never(stack: RunningStack) -> None:
    account_id, owner, made = make_account(stack, name="Evening Talks")
    follower = stack.register_user()
    follow(stack, account_id, follower)
    room_id = made["channel_room_id"]
    cancelled = post(stack, account_id, owner, {"body": "never", "at": int(time.time() * 1000) + 2000})
    kept = post(stack, account_id, owner, {"body": "The talk starts now", "at": iso_in(4)})
    assert cancelled.status_code == 200 and kept.status_code == 200, (cancelled.text, kept.text)
    assert kept.json()["state"] == "scheduled" and kept.json()["sender"] == made["account_user_id"]
    waiting = posts_of(stack, account_id, owner, "scheduled")["posts"]
    assert [p["post_id"] for p in waiting] == [cancelled.json()["post_id"], kept.json()["post_id"]]
    url = f"{stack.url}{ACCOUNTS}/{account_id}/posts/{cancelled.json()['post_id']}"
    r = requests.delete(url, headers=_h(owner), timeout=30)
    assert r.status_code == 200 and r.json()["state"] == "cancelled", r.text
    again = requests.delete(url, headers=_h(owner), timeout=30)  # cancelling twice is cancelling
    assert again.status_code == 200 and again.json()["state"] == "cancelled", again.text

    sent = wait_until("the scheduled post sent", lambda: [e for e in posts_in(stack, follower, room_id)
                                                          if e["content"]["body"] == "The talk starts now"])
    assert sent[0]["sender"] == made["account_user_id"]
    # The cancelled one was due before the one that came: it never will.
    assert [e["content"]["body"] for e in posts_in(stack, follower, room_id)] == ["The talk starts now"]
    states = {p["post_id"]: p for p in posts_of(stack, account_id, owner)["posts"]}
    assert states[cancelled.json()["post_id"]]["state"] == "cancelled"
    assert states[kept.json()["post_id"]]["state"] == "sent"
    assert states[kept.json()["post_id"]]["event_id"] == sent[0]["event_id"]
    # Cancelling a sent post is too late.
    error_of(requests.delete(f"{stack.url}{ACCOUNTS}/{account_id}/posts/{kept.json()['post_id']}",
                             headers=_h(owner), timeout=30), 409)


async def _ask(client: Any, room_id: str, bot: str, text: str) -> str:
    asked = await send_text(client, room_id, text)
    reply = await wait_for_event(client, room_id, is_reply_to(asked, bot), timeout=60)
    return str(reply["content"]["body"])


async def test_the_bot_posts_schedules_lists_drafts_and_cancels(stack: RunningStack) -> None:
    account_id, owner, made = make_account(stack, name="River School")
    follower = stack.register_user()
    follow(stack, account_id, follower)
    bot = stack.info["merchant_bot"]["user_id"]
    client = await client_for(stack.url, owner)
    try:
        dm = await create_dm(client, bot)
        await wait_joined(client, dm, bot)
        answer = await _ask(client, dm, bot, "schedule in 2h Sports day is on Friday")
        assert answer.startswith("Scheduled for") and "River School" in answer, answer
        day = (datetime.datetime.now(datetime.UTC) + datetime.timedelta(days=100)).date().isoformat()
        answer = await _ask(client, dm, bot, f"schedule {day} 09:00+08:00 New term starts")
        assert f"{day} 01:00 UTC" in answer, answer
        assert "Usage: schedule" in await _ask(client, dm, bot, "schedule someday Hello")
        drafts = await _ask(client, dm, bot, "drafts")
        assert "1. " in drafts and "Sports day is on Friday" in drafts and f"2. {day} 01:00 UTC" in drafts, drafts
        assert "Cancelled 1" in await _ask(client, dm, bot, "cancel 1")
        assert "no 5" in await _ask(client, dm, bot, "cancel 5")
        drafts = await _ask(client, dm, bot, "drafts")
        assert "Sports day" not in drafts and f"1. {day} 01:00 UTC" in drafts, drafts
        waiting = posts_of(stack, account_id, owner, "scheduled")["posts"]
        assert [p["body"] for p in waiting] == ["New term starts"]

        answer = await _ask(client, dm, bot, "post Term photos are up · 照片已上传")
        assert answer.startswith("Posted to River School") and made["account_user_id"] in answer, answer
        seen = wait_until("the bot's post in the channel", lambda: posts_in(stack, follower, made["channel_room_id"]))
        assert seen[0]["sender"] == made["account_user_id"]
        assert seen[0]["content"]["body"] == "Term photos are up · 照片已上传"
        assert "limit allows its next post in" in await _ask(client, dm, bot, "post One more")
    finally:
        await client.close()
    # Someone who owns no account is told so.
    stranger = stack.register_user()
    other = await client_for(stack.url, stranger)
    try:
        dm = await create_dm(other, bot)
        await wait_joined(other, dm, bot)
        assert "own no official account" in await _ask(other, dm, bot, "drafts")
    finally:
        await other.close()


# -- 5. targeted posts ----------------------------------------------------------------------------

def _buy(stack: RunningStack, buyer: dict[str, Any], merchant: dict[str, Any], *categories: str) -> None:
    items = [{"sku": f"s{n}", "qty": 1, "category": c} for n, c in enumerate(categories)]
    r = purchase(stack, buyer["user_id"], merchant["user_id"], overrides={"items": items})
    assert r.status_code == 200, r.text


async def test_a_targeted_post_reaches_exactly_the_matching_buyers(stack: RunningStack) -> None:
    tea_shop, _ = make_merchant(stack, "Tea Shop")
    other_shop, _ = make_merchant(stack, "Other Shop")
    platform_id, platform_owner, made = make_account(stack, kind="platform", name="Big Mall")
    identity = made["account_user_id"]
    tea_buyer, coffee_buyer, tea_elsewhere, nobody = (stack.register_user() for _ in range(4))
    _buy(stack, tea_buyer, tea_shop, "Tea", "cups")
    _buy(stack, coffee_buyer, tea_shop, "coffee")
    _buy(stack, tea_elsewhere, other_shop, " TEA ")
    # The category must be text: nothing is recorded otherwise.
    bad = purchase(stack, nobody["user_id"], tea_shop["user_id"], overrides={"items": [{"category": 7}]})
    error_of(bad, 400, "items[0].category")

    r = post(stack, platform_id, platform_owner, {"body": "New oolong for tea lovers",
                                                  "segment": {"category": "tea", "merchant": tea_shop["user_id"],
                                                              "purchased_within_days": 30}})
    assert r.status_code == 200, r.text
    answer = r.json()
    assert answer["targeted"] == 1 and answer["segment"]["category"] == "tea", answer
    post_id = answer["post_id"]
    done = wait_until("the targeted post delivered", lambda: next(
        (p for p in posts_of(stack, platform_id, platform_owner)["posts"] if p["state"] == "sent"), None))
    assert done["targeted"] == 1 and done["delivered"] == 1 and done["failed"] == 0, done

    # The buyer has it in /sync (a matrix-nio client), from the platform's own user, in a room of
    # their own with the platform, muted and filed in their 商家圈 space.
    client = await client_for(stack.url, tea_buyer)
    try:
        found = await synced_post(client, post_id)
        assert len(found) == 1, found
        inbox, event = found[0]
        assert event["sender"] == identity and event["content"]["body"] == "New oolong for tea lovers"
    finally:
        await client.close()
    joined = requests.get(f"{stack.url}{CLIENT}/rooms/{quote(inbox)}/joined_members", headers=_h(tea_buyer),
                          timeout=30).json()["joined"]
    assert set(joined) == {identity, tea_buyer["user_id"], f"@wangxin-circles:{stack.server_name}"}
    assert member_profile(stack, tea_buyer, inbox, identity)["displayname"] == "Big Mall"
    space_id = space_of(stack, tea_buyer)
    wait_until("the room filed in the buyer's space", lambda: inbox in space_children(stack, space_id))
    rule = requests.get(f"{stack.url}{CLIENT}/pushrules/global/override/{quote(inbox)}", headers=_h(tea_buyer),
                        timeout=30)
    assert rule.status_code == 200 and rule.json()["actions"] in (["dont_notify"], []), rule.text
    # The buyer reads, only the platform posts.
    r = requests.put(f"{stack.url}{CLIENT}/rooms/{quote(inbox)}/send/m.room.message/t{secrets.token_hex(4)}",
                     json={"msgtype": "m.text", "body": "hi"}, headers=_h(tea_buyer), timeout=30)
    assert r.status_code == 403, r.text

    # Nobody else has it in /sync, nor can read the room or the event by id.
    for outsider in (coffee_buyer, tea_elsewhere, nobody, stack.register_user()):
        other = await client_for(stack.url, outsider)
        try:
            assert all_synced_posts(await other.sync(timeout=0, full_state=True), post_id) == []
        finally:
            await other.close()
        assert messages(stack, outsider, inbox).status_code == 403
        r = requests.get(f"{stack.url}{CLIENT}/rooms/{quote(inbox)}/event/{quote(event['event_id'])}",
                         headers=_h(outsider), timeout=30)
        assert r.status_code in (403, 404), r.text
        r = requests.post(f"{stack.url}{CLIENT}/join/{quote(inbox)}", json={}, headers=_h(outsider), timeout=30)
        assert r.status_code == 403, r.text

    # Tea from anyone: both tea buyers; the first gets it in the same room as before.
    r = post(stack, platform_id, platform_owner, {"body": "Tea week", "segment": {"category": "TEA"}})
    assert r.status_code == 200 and r.json()["targeted"] == 2, r.text
    second = r.json()["post_id"]
    wait_until("the second targeted post delivered", lambda: next(
        (p for p in posts_of(stack, platform_id, platform_owner)["posts"] if p["post_id"] == second
         and p["state"] == "sent"), None))
    assert [e["content"]["body"] for e in posts_in(stack, tea_buyer, inbox)] == ["Tea week",
                                                                                  "New oolong for tea lovers"]
    # Leaving the room is saying "no more": the next post skips them, and the room leaves their space.
    joined = requests.get(f"{stack.url}{CLIENT}/joined_rooms", headers=_h(tea_elsewhere), timeout=30).json()
    their_inbox = next(room for room in joined["joined_rooms"] if any(
        e["content"]["body"] == "Tea week" for e in posts_in(stack, tea_elsewhere, room)))
    left = requests.post(f"{stack.url}{CLIENT}/rooms/{quote(their_inbox)}/leave", json={}, headers=_h(tea_elsewhere),
                         timeout=30)
    assert left.status_code == 200, left.text
    r = post(stack, platform_id, platform_owner, {"body": "Last call", "segment": {"category": "tea"}})
    assert r.status_code == 200 and r.json()["targeted"] == 2, r.text
    third = r.json()["post_id"]
    done = wait_until("the third targeted post delivered", lambda: next(
        (p for p in posts_of(stack, platform_id, platform_owner)["posts"] if p["post_id"] == third
         and p["state"] == "sent"), None))
    assert (done["delivered"], done["skipped"]) == (1, 1), done
    wait_until("the left room out of their space",
               lambda: their_inbox not in space_children(stack, space_of(stack, tea_elsewhere)))
    # A segment nobody matches reaches nobody, and takes no slot of the limit.
    r = post(stack, platform_id, platform_owner, {"body": "Nobody", "segment": {"category": "kites"}})
    assert r.status_code == 200 and r.json()["targeted"] == 0 and r.json()["state"] == "sent", r.text
    assert posts_of(stack, platform_id, platform_owner)["posts_in_window"] == 3
    # The fourth post of the month is the last a platform may make (WeChat's service accounts).
    assert post(stack, platform_id, platform_owner, {"body": "Fourth"}).status_code == 200
    r = post(stack, platform_id, platform_owner, {"body": "Fifth", "segment": {"category": "tea"}})
    assert r.status_code == 429 and r.json()["org.wangxin.limit"] == "posting.limits.platform", r.text
    assert r.json()["retry_after_ms"] > 29 * 24 * 3600 * 1000


# -- a scheduled post survives a restart of Synapse ------------------------------------------------

@pytest.fixture
def own_stack(backend: str, tmp_path: Any) -> Iterator[RunningStack]:
    """A stack of its own: killing Synapse must not disturb the shared one."""
    with harness_own_stack(backend, str(tmp_path / "stack"), ["--no-bot"]) as running:
        yield running


def _healthy(stack: RunningStack) -> bool:
    try:
        return requests.get(f"{stack.url}/_matrix/client/versions", timeout=5).status_code == 200
    except requests.RequestException:
        return False


def test_a_scheduled_post_is_sent_after_synapse_restarts(own_stack: RunningStack) -> None:
    """The post is in the database, not in a timer: Synapse is killed (SIGKILL) before the post is
    due, the stack's supervisor starts it again, and the restarted Synapse sends it."""
    stack = own_stack
    account_id, owner, made = make_account(stack, name="Night Owls")
    follower = stack.register_user()
    follow(stack, account_id, follower)
    r = post(stack, account_id, owner, {"body": "Sent by a restarted server", "at": iso_in(15, hours_offset=-5)})
    assert r.status_code == 200, r.text
    assert [p["state"] for p in posts_of(stack, account_id, owner)["posts"]] == ["scheduled"]

    old_pid = stack.info["processes"]["synapse"]
    os.kill(old_pid, signal.SIGKILL)
    wait_until("Synapse restarted", lambda: stack.reload_info()["processes"].get("synapse") not in (None, old_pid),
               timeout=120)
    wait_until("Synapse healthy", lambda: _healthy(stack), timeout=120)
    sent = wait_until("the post sent after the restart", lambda: posts_in(stack, follower, made["channel_room_id"]),
                      timeout=120)
    assert sent[0]["content"]["body"] == "Sent by a restarted server"
    assert sent[0]["sender"] == made["account_user_id"]
    assert [p["state"] for p in posts_of(stack, account_id, owner)["posts"]] == ["sent"]
