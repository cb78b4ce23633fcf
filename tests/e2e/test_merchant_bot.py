"""The merchant bot's core: it accepts a DM made the way Element makes one and answers help; a
merchant's product posts through it come from the merchant's own user (docs/accounts.md, "Who a
post comes from")."""

from __future__ import annotations

from tests.harness.matrix import client_for, create_dm, is_reply_to, send_text, wait_for_event, wait_joined
from tests.harness.stack import RunningStack


async def test_merchant_bot_joins_a_dm_and_answers_help(stack: RunningStack) -> None:
    user = stack.register_user()
    bot = stack.info["merchant_bot"]["user_id"]
    client = await client_for(stack.url, user)
    try:
        room_id = await create_dm(client, bot)
        await wait_joined(client, room_id, bot)
        asked = await send_text(client, room_id, "help")
        reply = await wait_for_event(client, room_id, is_reply_to(asked, bot))
        assert "merchant circle" in reply["content"]["body"]
        assert "help — show this list of commands" in reply["content"]["body"]
    finally:
        await client.close()


def test_merchant_bot_publishes_no_device_keys(stack: RunningStack) -> None:
    """Element encrypts a new DM only when the other side has device keys: the bot has none,
    so a DM with it stays plain and the bot can read commands."""
    import requests

    user = stack.register_user()
    bot = stack.info["merchant_bot"]["user_id"]
    r = requests.post(
        f"{stack.url}/_matrix/client/v3/keys/query",
        json={"device_keys": {bot: []}},
        headers={"Authorization": f"Bearer {user['access_token']}"},
        timeout=30,
    )
    assert r.status_code == 200, r.text
    assert r.json()["device_keys"].get(bot, {}) == {}


# -- the merchant circle through the bot -------------------------------------------------------

async def _ask(client, room_id: str, bot: str, text: str) -> str:
    asked = await send_text(client, room_id, text)
    reply = await wait_for_event(client, room_id, is_reply_to(asked, bot), timeout=60)
    return str(reply["content"]["body"])


async def test_a_non_merchant_gets_a_clear_answer(stack: RunningStack) -> None:
    user = stack.register_user()
    bot = stack.info["merchant_bot"]["user_id"]
    client = await client_for(stack.url, user)
    try:
        room_id = await create_dm(client, bot)
        await wait_joined(client, room_id, bot)
        for command in ("followers", 'post "Tea" 9.90 https://shop.example/tea', "products"):
            assert "not a merchant" in await _ask(client, room_id, bot, command)
    finally:
        await client.close()


async def test_a_merchant_posts_reposts_and_counts_followers_through_the_bot(stack: RunningStack) -> None:
    import io
    from urllib.parse import quote

    import requests
    from PIL import Image

    from bots.merchant.circle_api import post_image

    merchant = stack.register_user()
    r = requests.put(f"{stack.url}/_synapse/client/wangxin/v1/merchants/{quote(merchant['user_id'])}",
                     json={"name": "Bot Tea"}, headers=stack.admin_headers(), timeout=60)
    assert r.status_code == 200, r.text
    circle = r.json()["circle_room_id"]
    buyer = stack.register_user()
    r = requests.post(f"{stack.url}/_synapse/client/wangxin/v1/purchases",
                      json={"order_id": f"bot-{buyer['user_id']}", "buyer": buyer["user_id"],
                            "merchant": merchant["user_id"], "items": []},
                      headers={"Authorization": f"Bearer {stack.info['merchant_circle']['platform_secret']}"},
                      timeout=30)
    assert r.status_code == 200, r.text
    bot = stack.info["merchant_bot"]["user_id"]
    client = await client_for(stack.url, merchant)
    buyer_client = await client_for(stack.url, buyer)
    try:
        room_id = await create_dm(client, bot)  # exactly as Element: the bot has no device keys
        await wait_joined(client, room_id, bot)
        await wait_joined(buyer_client, circle, buyer["user_id"], timeout=60)
        # The merchant sends a product photo first; the post uses it.
        photo = io.BytesIO()
        Image.new("RGB", (64, 48), "green").save(photo, format="PNG")
        uploaded, _ = await client.upload(io.BytesIO(photo.getvalue()), content_type="image/png",
                                          filename="tea.png", filesize=len(photo.getvalue()))
        await client.room_send(room_id, "m.room.message",
                               {"msgtype": "m.image", "body": "tea.png", "url": uploaded.content_uri,
                                "info": {"mimetype": "image/png"}})
        answer = await _ask(client, room_id, bot, 'post "Green tea" 9.90 https://shop.example/tea')
        assert "Posted “Green tea”" in answer and "1 followers" in answer

        # The post comes from the merchant's own user (the server sends it for the bot), not the bot.
        post = await wait_for_event(buyer_client, circle, lambda e: e.get("sender") == merchant["user_id"]
                                    and e.get("content", {}).get("msgtype") == "m.image")
        content = post["content"]
        assert content["org.wangxin.account_post"]["account_id"]
        product = content["org.wangxin.product"]
        assert {k: product[k] for k in ("title", "price", "currency", "url")} == {
            "title": "Green tea", "price": "9.90", "currency": "CNY", "url": "https://shop.example/tea"}
        assert "Green tea" in content["body"] and content["url"].startswith("mxc://")
        image = requests.get(
            f"{stack.url}/_matrix/client/v1/media/download/{content['url'][len('mxc://'):]}",
            headers={"Authorization": f"Bearer {buyer['access_token']}"}, timeout=30)
        picture = Image.open(io.BytesIO(image.content)).convert("RGB")
        # Pixel for pixel what the bot draws for this link and photo: the QR code encodes the link.
        expected, width, height = post_image("https://shop.example/tea", photo.getvalue())
        assert picture.size == (width, height) and picture.height > picture.width
        assert list(picture.getdata()) == list(Image.open(io.BytesIO(expected)).convert("RGB").getdata())

        assert product["image"] == content["url"]  # what `repost` shows again
        answer = await _ask(client, room_id, bot, f"repost {product['id']}")
        assert answer.startswith("Not posted") and "days" in answer
        answer = await _ask(client, room_id, bot, "products")
        assert product["id"] in answer and "Green tea" in answer
        assert "1 follower." in await _ask(client, room_id, bot, "followers")
        help_text = await _ask(client, room_id, bot, "help")
        for command in ("post", "repost", "products", "followers"):
            assert f"\n  {command}" in help_text
    finally:
        await client.close()
        await buyer_client.close()


# -- hostile input and rate limits -------------------------------------------------------------

def _make_merchant(stack: RunningStack, name: str) -> dict:
    from urllib.parse import quote

    import requests

    merchant = stack.register_user()
    r = requests.put(f"{stack.url}/_synapse/client/wangxin/v1/merchants/{quote(merchant['user_id'])}",
                     json={"name": name}, headers=stack.admin_headers(), timeout=60)
    assert r.status_code == 200, r.text
    return merchant


def _bot_ratelimit(stack: RunningStack, method: str, body: dict | None = None) -> dict:
    from urllib.parse import quote

    import requests

    bot = stack.info["merchant_bot"]["user_id"]
    r = requests.request(method, f"{stack.info['main_process_url']}/_synapse/admin/v1/users/{quote(bot)}"
                         "/override_ratelimit", json=body, headers=stack.admin_headers(), timeout=30)
    assert r.status_code == 200, r.text
    return dict(r.json())


def test_the_stack_exempts_the_merchant_bot_from_the_message_rate_limit(stack: RunningStack) -> None:
    """Synapse's default rc_message (0.2/s, burst 10) is shared by every merchant's replies."""
    assert _bot_ratelimit(stack, "GET") == {"messages_per_second": 0, "burst_count": 0}


async def test_a_burst_of_commands_is_answered_even_when_the_bot_is_rate_limited(stack: RunningStack) -> None:
    """With a limit on the bot (an operator who did not exempt it), replies wait and retry:
    every command gets its answer, none is dropped."""
    bot = stack.info["merchant_bot"]["user_id"]
    users = [stack.register_user() for _ in range(2)]
    clients = [await client_for(stack.url, u) for u in users]
    before = _bot_ratelimit(stack, "GET")
    try:
        rooms = [await create_dm(c, bot) for c in clients]
        for c, room_id in zip(clients, rooms, strict=True):
            await wait_joined(c, room_id, bot)
        _bot_ratelimit(stack, "POST", {"messages_per_second": 1, "burst_count": 2})
        asked = [(c, room_id, await send_text(c, room_id, "version"))
                 for _ in range(5) for c, room_id in zip(clients, rooms, strict=True)]
        for c, room_id, event_id in asked:
            reply = await wait_for_event(c, room_id, is_reply_to(event_id, bot), timeout=90)
            assert reply["content"]["body"].startswith("Wangxin ")
    finally:
        if before:
            _bot_ratelimit(stack, "POST", before)
        else:
            _bot_ratelimit(stack, "DELETE")
        for c in clients:
            await c.close()


async def test_bad_prices_and_links_are_answered_naming_what_is_wrong(stack: RunningStack) -> None:
    merchant = _make_merchant(stack, "Careful Tea")
    bot = stack.info["merchant_bot"]["user_id"]
    client = await client_for(stack.url, merchant)
    long_link = "https://shop.example/" + "a" * 4000
    try:
        room_id = await create_dm(client, bot)
        await wait_joined(client, room_id, bot)
        for command, expected in [
            ("post Tea nan https://shop.example/tea", ["price", "“nan”", "not a number"]),
            ("post Tea inf https://shop.example/tea", ["price", "“inf”", "not a number"]),
            ("post Tea 1e308 https://shop.example/tea", ["price", "“1e308”", "too large"]),
            ("post Tea -5 https://shop.example/tea", ["price", "“-5”", "negative"]),
            ("post Tea 9.90.1 https://shop.example/tea", ["price", "“9.90.1”", "like 9.90"]),
            (f"post Tea 9.90 {long_link}", ["buy link", f"{len(long_link)} characters", "at most"]),
            ("post Tea 9.90 https://shop.example/tea EURO", ["currency", "“EURO”", "three-letter"]),
        ]:
            answer = await _ask(client, room_id, bot, command)
            assert all(part in answer for part in expected), (command[:60], answer)
            assert "Something went wrong" not in answer and not answer.startswith("Posted")
        assert "not posted any product" in await _ask(client, room_id, bot, "products")
    finally:
        await client.close()


async def test_a_reply_the_bot_cannot_send_is_logged_with_its_room_and_error(stack: RunningStack) -> None:
    """Silence is the failure this guards against: when Synapse refuses a reply for good, the
    operator finds the room and the reason in the bot's log."""
    import os

    from nio import RoomCreateResponse, RoomPreset

    from tests.harness.http import eventually

    bot = stack.info["merchant_bot"]["user_id"]
    user = stack.register_user()
    client = await client_for(stack.url, user)
    log_path = os.path.join(stack.info["logs_dir"], "merchant-bot.log")
    try:
        # A DM where only power 50 may send messages: the bot (power 0) may join but not answer.
        created = await client.room_create(is_direct=True, invite=[bot], preset=RoomPreset.private_chat,
                                           power_level_override={"events_default": 50})
        assert isinstance(created, RoomCreateResponse), created
        room_id = created.room_id
        await wait_joined(client, room_id, bot)
        await send_text(client, room_id, "version")

        def logged() -> bool:
            with open(log_path, encoding="utf-8", errors="replace") as f:
                return any(room_id in line and "Could not send" in line and "M_FORBIDDEN" in line for line in f)

        eventually(logged, timeout=60, interval=0.5)
    finally:
        await client.close()


# -- product posts under the merchant's own name ------------------------------------------------

def _circle_events(stack: RunningStack, user: dict, room_id: str) -> list[dict]:
    from urllib.parse import quote

    import requests

    r = requests.get(f"{stack.url}/_matrix/client/v3/rooms/{quote(room_id)}/messages",
                     params={"dir": "b", "limit": "50"}, headers={"Authorization": f"Bearer {user['access_token']}"},
                     timeout=30)
    assert r.status_code == 200, r.text
    return [e for e in r.json()["chunk"] if e["type"] == "m.room.message"]


async def test_product_posts_come_from_the_merchant_and_over_the_quota_the_bot_answers_a_sentence(
        stack: RunningStack) -> None:
    import io
    from urllib.parse import quote

    import requests
    from PIL import Image

    from bots.merchant.circle_api import post_image

    merchant = _make_merchant(stack, "Quota Tea")
    circle = requests.get(f"{stack.url}/_synapse/client/wangxin/v1/merchants/{quote(merchant['user_id'])}",
                          headers=stack.admin_headers(), timeout=30).json()["circle_room_id"]
    bot = stack.info["merchant_bot"]["user_id"]
    client = await client_for(stack.url, merchant)
    try:
        room_id = await create_dm(client, bot)
        await wait_joined(client, room_id, bot)
        links = [f"https://shop.example/quota-{n}" for n in range(3)]
        for n, (title, link) in enumerate(zip(("Black tea", "Oolong", "Puer"), links, strict=True)):
            answer = await _ask(client, room_id, bot, f'post "{title}" 1{n}.50 {link}')
            assert answer.startswith(f"Posted “{title}”"), answer
        # The fourth of the day (posts_per_day: 3): a sentence saying when, no error code or JSON.
        over = await _ask(client, room_id, bot, 'post "Jasmine" 8 https://shop.example/quota-9')
        assert over.startswith("Not posted: your circle's posts for today are used up"), over
        assert "next post is allowed in " in over and "UTC" in over, over
        assert "{" not in over and "M_LIMIT_EXCEEDED" not in over and "Something went wrong" not in over
    finally:
        await client.close()

    # In the circle: the three posts, each from the merchant, each carrying its image (the QR
    # code of its buy link, pixel for pixel what the bot draws) and its product; nothing from the bot.
    events = _circle_events(stack, merchant, circle)
    assert [e["sender"] for e in events] == [merchant["user_id"]] * 3
    for event, link in zip(events, reversed(links), strict=True):
        content = event["content"]
        assert content["msgtype"] == "m.image" and content["org.wangxin.product"]["url"] == link
        assert content["org.wangxin.product"]["image"] == content["url"]
        assert content["info"]["mimetype"] == "image/png" and content["info"]["size"] > 0
        picture = requests.get(f"{stack.url}/_matrix/client/v1/media/download/{content['url'][len('mxc://'):]}",
                               headers={"Authorization": f"Bearer {merchant['access_token']}"}, timeout=30)
        assert picture.status_code == 200
        expected, width, height = post_image(link, None)
        assert (content["info"]["w"], content["info"]["h"]) == (width, height)
        assert list(Image.open(io.BytesIO(picture.content)).convert("RGB").getdata()) == \
            list(Image.open(io.BytesIO(expected)).convert("RGB").getdata())
    got = requests.get(f"{stack.url}/_synapse/client/wangxin/v1/merchants/{quote(merchant['user_id'])}",
                       headers=stack.admin_headers(), timeout=30).json()
    assert got["posts_today"] == 3


def test_product_posts_the_bot_made_itself_can_still_be_edited_and_removed(stack: RunningStack) -> None:
    """Posts from before the change came from the bot: the bot may still edit them, and they
    (and their removal) still belong to the circle."""
    from urllib.parse import quote

    import requests

    from tests.e2e.test_merchant_circle import _edit, _login_as, make_merchant, product_post, send

    merchant, circle = make_merchant(stack, "Old Posts Tea")
    bot = _login_as(stack, stack.info["merchant_bot"]["user_id"])
    old = send(stack, bot, circle, product_post("old-1"))
    assert old.status_code == 200, old.text
    fixed = dict(product_post("old-1")["org.wangxin.product"], price="8.80")
    edit = send(stack, bot, circle, _edit(old.json()["event_id"], "Green tea, now 8.80", fixed))
    assert edit.status_code == 200, edit.text
    for who, event_id in ((bot, edit.json()["event_id"]), (merchant, old.json()["event_id"])):
        r = requests.put(f"{stack.url}/_matrix/client/v3/rooms/{quote(circle)}/redact/{quote(event_id)}/"
                         f"r{event_id[1:9]}", json={}, headers={"Authorization": f"Bearer {who['access_token']}"},
                         timeout=30)
        assert r.status_code == 200, r.text
