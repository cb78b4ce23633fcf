"""The merchant bot's core: it accepts a DM made the way Element makes one and answers help."""

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

        post = await wait_for_event(buyer_client, circle, lambda e: e.get("sender") == bot
                                    and e.get("content", {}).get("msgtype") == "m.image")
        content = post["content"]
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
