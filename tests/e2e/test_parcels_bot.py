"""The parcels bot (``track``) and the merchant bot's ``orders``, as people meet them: shipments
come in through the platform's webhook, the person asks in their Parcels room or a DM, the
merchant asks the merchant bot. Real bot processes of the shared stack; the people are plain
HTTP clients and matrix-nio clients."""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

import requests

from tests.e2e.test_merchant_bot import _make_merchant
from tests.e2e.test_parcels import HOUR, Account, bot_of, cards, new_id, now_ms, parcels_room, ship
from tests.harness.http import HttpUser, ask, eventually, open_dm, q, timeline
from tests.harness.matrix import client_for, create_dm, is_reply_to, send_text, wait_for_event, wait_joined
from tests.harness.stack import RunningStack

CLIENT = "/_matrix/client/v3"


def number_of(shipment_id: str) -> str:
    """The tracking number ``ship`` gives a shipment."""
    return f"SF{shipment_id[-8:]}"


def moving_and_delivered(stack: RunningStack, buyer: str, **fields: Any) -> tuple[str, str]:
    """A parcel in transit and one delivered, both the buyer's."""
    moving, delivered = new_id(), new_id()
    t = now_ms() - 6 * HOUR
    ship(stack, moving, "created", t, buyer=buyer, **fields)
    ship(stack, moving, "in_transit", t + HOUR, buyer=buyer, location="Hangzhou hub", detail="arrived at the hub")
    ship(stack, delivered, "created", t, buyer=buyer)
    ship(stack, delivered, "delivered", t + 2 * HOUR, buyer=buyer, location="Xihu", detail="signed")
    return moving, delivered


def wait_for_cards(user: HttpUser, room_id: str, *shipment_ids: str) -> None:
    eventually(lambda: all(cards(user, room_id, s) for s in shipment_ids), timeout=30)


# -- track, in the Parcels room ------------------------------------------------------------------


def test_track_in_the_parcels_room_lists_the_parcels_on_their_way_and_each_ones_history(
        stack: RunningStack) -> None:
    fay, gus = HttpUser(stack), HttpUser(stack)
    bot = bot_of(stack)
    moving, delivered = moving_and_delivered(stack, fay.user_id)
    theirs = new_id()
    ship(stack, theirs, "in_transit", now_ms(), buyer=gus.user_id, location="Chengdu")
    room_id = parcels_room(fay)
    wait_for_cards(fay, room_id, moving, delivered)

    listed = ask(fay, room_id, bot, "track")
    assert listed.startswith("Your parcels on their way (1):"), listed
    assert f"SF Express {number_of(moving)} — 运输中 · In transit, Hangzhou hub" in listed
    assert number_of(delivered) not in listed and number_of(theirs) not in listed

    history = ask(fay, room_id, bot, f"track {number_of(moving).lower()}")
    lines = history.splitlines()
    assert lines[0] == f"📦 顺丰速运 SF Express · {number_of(moving)}"
    assert lines[1].startswith("Status: 运输中 · In transit")
    steps = [line for line in lines if line.startswith("• ")]
    assert len(steps) == 2 and "运输中 · In transit — Hangzhou hub (arrived at the hub)" in steps[0]
    assert "待揽收 · Shipment created" in steps[1]
    done = ask(fay, room_id, bot, f"track {number_of(delivered)}")
    assert "Status: 已签收 · Delivered" in done and "Xihu" in done

    # Gus's parcel, asked about by Fay: the same answer as a number nobody has.
    not_hers = ask(fay, room_id, bot, f"track {number_of(theirs)}")
    nobodys = ask(fay, room_id, bot, "track SF00000000")
    assert not_hers == nobodys.replace("SF00000000", number_of(theirs))
    assert "no parcel with the tracking number" in not_hers and "Chengdu" not in not_hers

    # The bot's own cards and alerts (the delivered parcel's alert is an m.text) are not commands.
    stray = [e for e in timeline(fay, room_id) if e["sender"] == bot
             and "I don't know the command" in e["content"].get("body", "")]
    assert stray == []
    # The replies are the bot's quiet notices, in reply to the question.
    replies = [e for e in timeline(fay, room_id) if e["sender"] == bot and e["content"].get("msgtype") == "m.notice"
               and "m.in_reply_to" in e["content"].get("m.relates_to", {})]
    assert len(replies) == 5


def test_bad_track_input_and_help_get_plain_sentences(stack: RunningStack) -> None:
    hal = HttpUser(stack)
    bot = bot_of(stack)
    ship(stack, new_id(), "created", now_ms(), buyer=hal.user_id)
    room_id = parcels_room(hal)
    too_long = ask(hal, room_id, bot, "track " + "7" * 500)
    assert "500 characters" in too_long and "at most 64" in too_long
    assert "I don't know the command “trak”" in ask(hal, room_id, bot, "trak")
    help_text = ask(hal, room_id, bot, "help")
    assert "parcels bot" in help_text and "\n  track [tracking number] — " in help_text


def test_the_stack_exempts_the_parcels_bot_from_the_message_rate_limit(stack: RunningStack) -> None:
    bot = bot_of(stack)
    r = requests.get(f"{stack.info['main_process_url']}/_synapse/admin/v1/users/{quote(bot)}/override_ratelimit",
                     headers=stack.admin_headers(), timeout=30)
    assert r.status_code == 200 and r.json() == {"messages_per_second": 0, "burst_count": 0}, r.text
    assert stack.info["parcels"]["bot_running"] is True and bot in stack.info["bot_user_ids"]


# -- track, in a DM ------------------------------------------------------------------------------


async def test_a_dm_made_as_element_makes_it_answers_track(stack: RunningStack) -> None:
    ida = stack.register_user()
    bot = bot_of(stack)
    moving, delivered = moving_and_delivered(stack, ida["user_id"])
    client = await client_for(stack.url, ida)
    try:
        room_id = await create_dm(client, bot)
        await wait_joined(client, room_id, bot)
        asked = await send_text(client, room_id, "track")
        reply = await wait_for_event(client, room_id, is_reply_to(asked, bot), timeout=60)
        body = reply["content"]["body"]
        assert number_of(moving) in body and number_of(delivered) not in body
        asked = await send_text(client, room_id, f"track {number_of(moving)}")
        reply = await wait_for_event(client, room_id, is_reply_to(asked, bot), timeout=60)
        assert "History (newest first):" in reply["content"]["body"]
    finally:
        await client.close()


def test_in_an_encrypted_dm_the_bot_says_it_cannot_read(stack: RunningStack) -> None:
    jo = HttpUser(stack)
    bot = bot_of(stack)
    room_id = jo.create_room(encrypted=True, invite=[bot], is_direct=True)
    eventually(lambda: any(e["sender"] == bot for e in timeline(jo, room_id)), timeout=60)
    event_id = jo.send_encrypted(room_id)

    def notice() -> str | None:
        for e in timeline(jo, room_id):
            relates = e["content"].get("m.relates_to", {})
            if e["sender"] == bot and relates.get("m.in_reply_to", {}).get("event_id") == event_id:
                return str(e["content"]["body"])
        return None

    assert "end-to-end encrypted and I can't read it" in eventually(notice, timeout=60)


def test_the_bot_declines_an_invitation_to_a_group(stack: RunningStack) -> None:
    kim, lee = HttpUser(stack), HttpUser(stack)
    bot = bot_of(stack)
    room_id = kim.create_room(invite=[lee.user_id, bot])

    def bot_membership() -> str | None:
        r = kim.raw("GET", f"{CLIENT}/rooms/{q(room_id)}/state/m.room.member/{q(bot)}")
        membership = r.json().get("membership") if r.status_code == 200 else None
        return membership if membership != "invite" else None

    assert eventually(bot_membership, timeout=60) == "leave"


# -- the merchant bot's orders ----------------------------------------------------------------------


def test_orders_and_order_answer_the_merchant_with_its_own_shipments_only(stack: RunningStack) -> None:
    merchant = _make_merchant(stack, "Parcel Tea")
    other = _make_merchant(stack, "Other Tea")
    buyer = HttpUser(stack)
    first, second, others = new_id(), new_id(), new_id()
    t = now_ms() - 3 * HOUR
    ship(stack, first, "created", t, buyer=buyer.user_id, merchant=merchant["user_id"], order_id="o-1")
    ship(stack, first, "out_for_delivery", t + HOUR, buyer=buyer.user_id, location="Xihu")
    ship(stack, second, "delivered", t + 2 * HOUR, buyer=buyer.user_id, merchant=merchant["user_id"],
         order_id="o-2")
    ship(stack, others, "in_transit", t, buyer=buyer.user_id, merchant=other["user_id"], order_id="o-x")

    shop = Account(stack, merchant["user_id"], merchant["access_token"])
    merchant_bot = stack.info["merchant_bot"]["user_id"]
    room_id = open_dm(shop, merchant_bot)

    orders = ask(shop, room_id, merchant_bot, "orders")
    assert orders.startswith("Your recent shipments (2), newest first:"), orders
    assert f"• order o-1: 顺丰速运 SF Express {number_of(first)} — 派送中 · Out for delivery, Xihu" in orders
    assert f"• order o-2: 顺丰速运 SF Express {number_of(second)} — 已签收 · Delivered" in orders
    assert number_of(others) not in orders and "o-x" not in orders
    assert buyer.user_id not in orders

    one = ask(shop, room_id, merchant_bot, "order o-1")
    assert "Order: o-1" in one and "派送中 · Out for delivery — Xihu" in one and number_of(second) not in one
    # Another merchant's order: as unknown as one that does not exist.
    assert "no recent shipment for the order “o-x”" in ask(shop, room_id, merchant_bot, "order o-x")
    assert "300 characters" in ask(shop, room_id, merchant_bot, "order " + "o" * 300)
    help_text = ask(shop, room_id, merchant_bot, "help")
    assert "\n  orders — " in help_text and "\n  order <order id> — " in help_text


def test_orders_from_someone_who_is_not_a_merchant_is_answered_so(stack: RunningStack) -> None:
    mo = HttpUser(stack)
    merchant_bot = stack.info["merchant_bot"]["user_id"]
    room_id = open_dm(mo, merchant_bot)
    assert "not a merchant" in ask(mo, room_id, merchant_bot, "orders")
