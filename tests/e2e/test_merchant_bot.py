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
