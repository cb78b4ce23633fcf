"""Official accounts answering their followers, and counting them: auto-reply (keywords, the
numbered menu, the welcome) in one support room per follower, filed in their 商家圈 space, where
the owner answers by hand; and the stats (followers, reads from read receipts, a CSV that opens
safely), through the API and the merchant bot's ``stats``."""

from __future__ import annotations

import csv
import io
import secrets
from typing import Any
from urllib.parse import quote

import requests

from tests.e2e.test_accounts import (
    ACCOUNTS,
    _h,
    error_of,
    make_account,
    new_id,
    space_children,
    space_of,
)
from tests.e2e.test_merchant_circle import _login_as, room_state, wait_until
from tests.harness.matrix import client_for, create_dm, is_reply_to, send_text, wait_for_event, wait_joined
from tests.harness.stack import RunningStack

WELCOME = "Welcome to the City Library · 欢迎"
SETTINGS: dict[str, Any] = {
    "keywords": {"营业时间": "9:00–18:00 every day · 每天", "Address": "1 Library Road", "Wi-Fi": "library / books"},
    "menu": ["营业时间", "Address"],
    "welcome": WELCOME,
}


def autoreply(stack: RunningStack, account_id: str, user: dict[str, Any], body: Any) -> requests.Response:
    return requests.put(f"{stack.url}{ACCOUNTS}/{quote(account_id)}/autoreply", json=body, headers=_h(user),
                        timeout=30)


def open_support(stack: RunningStack, account_id: str, user: dict[str, Any]) -> requests.Response:
    return requests.post(f"{stack.url}{ACCOUNTS}/{quote(account_id)}/support", headers=_h(user), timeout=60)


def follow(stack: RunningStack, account_id: str, user: dict[str, Any]) -> None:
    r = requests.post(f"{stack.url}{ACCOUNTS}/{quote(account_id)}/follow", headers=_h(user), timeout=60)
    assert r.status_code == 200, r.text


def stats(stack: RunningStack, account_id: str, user: dict[str, Any], **params: str) -> requests.Response:
    return requests.get(f"{stack.url}{ACCOUNTS}/{quote(account_id)}/stats", params=params, headers=_h(user),
                        timeout=60)


def by_sender_and_body(sender: str, body: str) -> Any:
    return lambda e: e.get("sender") == sender and (e.get("content") or {}).get("body") == body


# -- auto-reply and support rooms ----------------------------------------------------------------

async def test_a_follower_gets_the_welcome_keyword_answers_and_the_menu_and_the_owner_answers_by_hand(
        stack: RunningStack) -> None:
    account_id, owner, made = make_account(stack, name="City Library")
    account_user = made["account_user_id"]
    r = autoreply(stack, account_id, owner, SETTINGS)
    assert r.status_code == 200, r.text
    got = requests.get(f"{stack.url}{ACCOUNTS}/{account_id}/autoreply", headers=_h(owner), timeout=30).json()
    assert {k: got[k] for k in SETTINGS} == SETTINGS

    follower = stack.register_user()
    follow(stack, account_id, follower)
    r = open_support(stack, account_id, follower)
    assert r.status_code == 200 and r.json()["created"] is True, r.text
    room_id = r.json()["room_id"]
    again = open_support(stack, account_id, follower)  # one room per (account, follower)
    assert again.status_code == 200 and again.json() == {"account_id": account_id, "room_id": room_id,
                                                         "created": False}

    client = await client_for(stack.url, follower)
    owner_client = await client_for(stack.url, owner)
    try:
        welcome = await wait_for_event(client, room_id, by_sender_and_body(account_user, WELCOME))
        assert welcome["content"]["msgtype"] == "m.notice" and welcome["content"]["org.wangxin.autoreply"] == "welcome"

        asked = await send_text(client, room_id, "请问营业时间是几点？")  # the keyword inside a question
        reply = await wait_for_event(client, room_id, is_reply_to(asked, account_user))
        assert reply["content"]["body"] == "9:00–18:00 every day · 每天"
        assert reply["content"]["org.wangxin.autoreply"] == "keyword"

        asked = await send_text(client, room_id, "do you sell coffee?")  # nothing matches: the menu
        menu = await wait_for_event(client, room_id, is_reply_to(asked, account_user))
        assert menu["content"]["body"].splitlines()[1:] == ["1. 营业时间", "2. Address"]

        asked = await send_text(client, room_id, "2")  # a number picks that menu entry
        reply = await wait_for_event(client, room_id, is_reply_to(asked, account_user))
        assert reply["content"]["body"] == "1 Library Road"

        asked = await send_text(client, room_id, "WI-FI")
        reply = await wait_for_event(client, room_id, is_reply_to(asked, account_user))
        assert reply["content"]["body"] == "library / books"

        # The owner is in the room and answers by hand; the follower sees it.
        await wait_joined(owner_client, room_id, owner["user_id"])
        by_hand = "We also open on Sundays in December"
        await send_text(owner_client, room_id, by_hand)
        await wait_for_event(client, room_id, by_sender_and_body(owner["user_id"], by_hand))
    finally:
        await client.close()
        await owner_client.close()

    # Filed in the follower's 商家圈 space beside the channel.
    space_id = space_of(stack, follower)
    wait_until("the support room filed in the space", lambda: room_id in space_children(stack, space_id))

    state = room_state(stack, room_id)
    assert state[("m.room.create", "")]["type"] == "org.wangxin.account_support"
    assert state[("m.room.create", "")]["org.wangxin.account"] == account_id
    assert ("m.room.encryption", "") not in state
    levels = state[("m.room.power_levels", "")]
    assert levels["users"][account_user] == 50 and levels["users"][owner["user_id"]] == 50
    assert levels["events"]["m.room.encryption"] == 100 and follower["user_id"] not in levels["users"]
    for user_id in (account_user, owner["user_id"], follower["user_id"]):
        assert state[("m.room.member", user_id)]["membership"] == "join"
    # Nobody can turn encryption on (the server must read what followers ask), nor invite others.
    r = requests.put(f"{stack.url}/_matrix/client/v3/rooms/{quote(room_id)}/state/m.room.encryption",
                     json={"algorithm": "m.megolm.v1.aes-sha2"}, headers=_h(owner), timeout=30)
    assert r.status_code == 403, r.text
    stranger = stack.register_user()
    r = requests.post(f"{stack.url}/_matrix/client/v3/rooms/{quote(room_id)}/invite",
                      json={"user_id": stranger["user_id"]}, headers=_h(follower), timeout=30)
    assert r.status_code == 403, r.text

    # Another follower has a room of their own.
    other = stack.register_user()
    r = open_support(stack, account_id, other)
    assert r.status_code == 200 and r.json()["room_id"] != room_id and r.json()["created"] is True


async def test_an_encrypted_message_is_answered_with_a_notice_and_a_merchant_answers_as_itself(
        stack: RunningStack) -> None:
    """A merchant account's user is the merchant: its auto-replies come from the merchant's own
    account, and the merchant is in each support room. A client that encrypts anyway is told."""
    account_id, merchant, made = make_account(stack, kind="merchant", name="Tea House")
    assert autoreply(stack, account_id, merchant, {"keywords": {"price": "From 9.90 CNY"}}).status_code == 200
    follower = stack.register_user()
    room_id = open_support(stack, account_id, follower).json()["room_id"]
    user = {"Authorization": f"Bearer {follower['access_token']}"}
    base = f"{stack.url}/_matrix/client/v3/rooms/{quote(room_id)}"
    sent = requests.put(f"{base}/send/m.room.encrypted/{secrets.token_hex(6)}", headers=user, timeout=30, json={
        "algorithm": "m.megolm.v1.aes-sha2", "ciphertext": "AwgA", "device_id": "D", "sender_key": "k",
        "session_id": "s"})
    assert sent.status_code == 200, sent.text
    encrypted_id = sent.json()["event_id"]
    client = await client_for(stack.url, follower)
    try:
        notice = await wait_for_event(client, room_id, is_reply_to(encrypted_id, merchant["user_id"]))
        assert notice["content"]["org.wangxin.autoreply"] == "encrypted"
        assert "cannot read encrypted messages" in notice["content"]["body"]
        asked = await send_text(client, room_id, "what is the price?")
        reply = await wait_for_event(client, room_id, is_reply_to(asked, merchant["user_id"]))
        assert reply["content"]["body"] == "From 9.90 CNY"
    finally:
        await client.close()
    state = room_state(stack, room_id)
    assert state[("m.room.member", merchant["user_id"])]["membership"] == "join"


def test_bad_auto_reply_and_support_requests_are_refused_naming_the_field(stack: RunningStack) -> None:
    account_id, owner, made = make_account(stack, name="Museum")
    stranger = stack.register_user()
    error_of(autoreply(stack, account_id, stranger, SETTINGS), 403)
    error_of(requests.get(f"{stack.url}{ACCOUNTS}/{account_id}/autoreply", headers=_h(stranger), timeout=30), 403)
    error_of(autoreply(stack, new_id(), owner, SETTINGS), 404)
    error_of(autoreply(stack, account_id, owner, {"keywords": {f"w{i}": "a" for i in range(201)}}), 400, "keywords")
    error_of(autoreply(stack, account_id, owner, {"keywords": {"hours": "a"}, "menu": ["price"]}), 400, "menu[0]")
    error_of(autoreply(stack, account_id, owner, {"keywords": {"7": "seven"}}), 400, "keywords")
    error_of(autoreply(stack, account_id, owner, {"keywords": {"hours": "a" * 2001}}), 413, "keywords.hours")
    got = requests.get(f"{stack.url}{ACCOUNTS}/{account_id}/autoreply", headers=_h(owner), timeout=30).json()
    assert got["keywords"] == {} and got["menu"] == [] and got["welcome"] is None  # nothing was written
    # A server admin may set them; 200 keywords is the limit, not over it.
    settings = {"keywords": {f"w{i}": "a" for i in range(200)}}
    assert autoreply(stack, account_id, stack.info["admin"], settings).status_code == 200

    error_of(open_support(stack, new_id(), stranger), 404)
    error_of(open_support(stack, account_id, owner), 400, "user_id")
    error_of(open_support(stack, account_id, _login_as(stack, made["account_user_id"])), 400, "user_id")
    # A client cannot make a room that looks like a support room.
    r = requests.post(f"{stack.url}/_matrix/client/v3/createRoom", headers=_h(stranger), timeout=30, json={
        "creation_content": {"type": "org.wangxin.account_support", "org.wangxin.account": account_id}})
    assert r.status_code == 403, r.text


# -- stats ---------------------------------------------------------------------------------------

def _post(stack: RunningStack, user: dict[str, Any], room_id: str, content: dict[str, Any]) -> str:
    r = requests.put(f"{stack.url}/_matrix/client/v3/rooms/{quote(room_id)}/send/m.room.message/"
                     f"{secrets.token_hex(6)}", json=content, headers=_h(user), timeout=30)
    assert r.status_code == 200, r.text
    return str(r.json()["event_id"])


def _read(stack: RunningStack, user: dict[str, Any], room_id: str, event_id: str, kind: str = "m.read") -> None:
    r = requests.post(f"{stack.url}/_matrix/client/v3/rooms/{quote(room_id)}/receipt/{kind}/{quote(event_id)}",
                      json={}, headers=_h(user), timeout=30)
    assert r.status_code == 200, r.text


async def test_stats_count_followers_and_reads_and_the_csv_opens_safely(stack: RunningStack) -> None:
    account_id, merchant, made = make_account(stack, kind="merchant", name="=Tea House")
    channel = made["channel_room_id"]
    readers = [stack.register_user() for _ in range(3)]
    for reader in readers:
        follow(stack, account_id, reader)
    title = '=HYPERLINK("http://evil.example","click")'
    post_id = _post(stack, merchant, channel, {
        "msgtype": "m.text", "body": "Green tea, 9.90",
        "org.wangxin.product": {"id": "tea-1", "title": title, "price": "9.90", "currency": "CNY",
                                "url": "https://shop.example/tea"}})

    def post_row(report: dict[str, Any]) -> dict[str, Any] | None:
        return next((p for p in report["posts"] if p["event_id"] == post_id), None)

    r = stats(stack, account_id, merchant)
    assert r.status_code == 200, r.text
    report = r.json()
    assert report["followers"] == 3 and report["followers_per_day"][-1]["followers"] == 3
    assert len(report["followers_per_day"]) == 30 and report["time_zone"] == "Asia/Shanghai"
    row = post_row(report)
    assert row is not None and row["followers_at_post"] == 3 and row["title"] == title and row["reads"] == 0

    # One reader sends a read receipt for the post, another a private one (not counted).
    _read(stack, readers[0], channel, post_id)
    _read(stack, readers[1], channel, post_id, "m.read.private")
    counted = wait_until("the read counted", lambda: (lambda p: p if p and p["reads"] == 1 else None)(
        post_row(stats(stack, account_id, merchant).json())))
    assert counted["read_rate"] == 0.333
    # An unfollow shows on today's row.
    r = requests.delete(f"{stack.url}{ACCOUNTS}/{account_id}/follow", headers=_h(readers[2]), timeout=60)
    assert r.status_code == 200, r.text
    today = stats(stack, account_id, merchant, days="1").json()
    assert today["followers"] == 2 and len(today["followers_per_day"]) == 1
    assert today["followers_per_day"][0]["unfollowed"] == 1
    assert post_row(today)["followers_at_post"] == 3  # type: ignore[index]

    # The spreadsheet: UTF-8 with a BOM, parsed by the csv module, no cell starting a formula.
    r = stats(stack, account_id, merchant, format="csv")
    assert r.status_code == 200 and r.headers["Content-Type"].startswith("text/csv"), r.text
    assert f'filename="{account_id}-stats.csv"' in r.headers["Content-Disposition"]
    assert r.content.startswith("\ufeff".encode())
    rows = list(csv.reader(io.StringIO(r.content.decode("utf-8-sig"))))
    assert rows[0][0].startswith("'=Tea House") and rows[1] == ["date", "followers", "new", "unfollowed", "net"]
    post_line = next(line for line in rows if len(line) > 1 and line[1] == post_id)
    assert post_line[2] == "'" + title and post_line[3:5] == ["3", "1"]
    texts = [cell for line in rows for cell in line if not cell.lstrip("-").replace(".", "", 1).isdigit()]
    assert texts and not [cell for cell in texts if cell.startswith(("=", "+", "-", "@"))]
    posts_only = list(csv.reader(io.StringIO(stats(stack, account_id, merchant, format="csv", table="posts")
                                             .content.decode("utf-8-sig"))))
    assert posts_only[0] == ["posted_at", "event_id", "title", "followers_at_post", "reads", "read_rate"]

    # Who may read them, and bad input.
    stranger = stack.register_user()
    error_of(stats(stack, account_id, stranger), 403)
    error_of(stats(stack, new_id(), merchant), 404)
    error_of(stats(stack, account_id, merchant, format="xlsx"), 400, "format")
    error_of(stats(stack, account_id, merchant, days="0"), 400, "days")
    error_of(stats(stack, account_id, merchant, format="csv", table="x"), 400, "table")
    assert stats(stack, account_id, stack.info["admin"]).status_code == 200
    # The merchant bot reads them for the owner who asks it, and for nobody else.
    bot = _login_as(stack, stack.info["merchant_bot"]["user_id"])
    assert stats(stack, account_id, bot, user_id=merchant["user_id"]).status_code == 200
    error_of(stats(stack, account_id, bot, user_id=stranger["user_id"]), 403)

    # ... and answers `stats` with the summary.
    bot_id = stack.info["merchant_bot"]["user_id"]
    client = await client_for(stack.url, merchant)
    try:
        dm = await create_dm(client, bot_id)
        await wait_joined(client, dm, bot_id)
        asked = await send_text(client, dm, "stats")
        answer = (await wait_for_event(client, dm, is_reply_to(asked, bot_id), timeout=60))["content"]["body"]
        assert answer.startswith(f"=Tea House (#{account_id}): 2 followers"), answer
        assert "1 unfollowed" in answer and ": 1 / 3 (33%)" in answer, answer
    finally:
        await client.close()
