"""The merchant bot's commands, each declared once with its help.

The handlers work on ``MerchantServices`` (``ctx.services``): the circle module's API, what the
bot remembers, the publisher, and the parcels module's API (``orders``, ``order``). The bot's
dispatcher answers a sender who is not a merchant, and any failed lookup, once for every command
(``bots/merchant/bot.py``).
"""

from __future__ import annotations

import re
from decimal import Decimal, InvalidOperation
from zoneinfo import ZoneInfo

import attrs

from bots.merchant import post_commands
from bots.merchant.circle_api import CircleApi, NotAMerchant, in_how_long, product_id_for
from bots.merchant.posts_api import PostsApi
from bots.merchant.publisher import Publisher
from bots.merchant.storage import MerchantStorage
from bots.parcels import text as parcel_text
from bots.parcels.api import ParcelsApi
from wangxin_common import WANGXIN_VERSION
from wangxin_common.commands import CommandContext, CommandError, CommandGroup

INTRO = ("I'm the Wangxin merchant bot: merchants publish to their merchant circle (商家圈) through me "
         "and follow the parcels they ship. Send one of these commands:")
NOT_A_MERCHANT = (
    "You are not a merchant on this server, so you have no merchant circle to post to. "
    "Ask the server operator to register your shop; until then I can only show “help”."
)


@attrs.frozen
class MerchantServices:
    circle: CircleApi
    storage: MerchantStorage
    publisher: Publisher
    parcels: ParcelsApi | None = None  # None: the bot has no service secret, `orders` cannot read
    time_zone: ZoneInfo = ZoneInfo("Asia/Shanghai")
    posts: PostsApi | None = None  # official accounts' posts: `post [#account] <text>` (post_commands)


Context = CommandContext[MerchantServices]
GENERAL: CommandGroup[None] = CommandGroup()
CIRCLE: CommandGroup[MerchantServices] = CommandGroup("Merchant circle")
SHIPMENTS: CommandGroup[MerchantServices] = CommandGroup("Shipments (快递)")


@GENERAL.command("version", help="show which version of Wangxin this server runs")
async def _version(ctx: CommandContext[None], args: list[str]) -> None:
    await ctx.reply(f"Wangxin {WANGXIN_VERSION}.")


# -- merchant circle (商家圈) ---------------------------------------------------------------------

MAX_TITLE_CHARS = 200
MAX_PRICE = Decimal(1_000_000_000)  # more than any shop price; catches 1e308 and typos
_PLAIN_PRICE_RE = re.compile(r"[0-9]+(\.[0-9]{1,4})?")
# A QR code (error correction M, as post_image draws it) holds at most 2,331 bytes; real buy
# links are far shorter, and one this long would print as an unreadably dense code.
MAX_LINK_BYTES = 2000
_CURRENCY_RE = re.compile(r"[A-Z]{3}")


def product_problem(title: str, price: str, url: str, currency: str) -> str | None:
    """What is wrong with a ``post`` command's product, in one sentence for the merchant; None if nothing."""
    if len(title) > MAX_TITLE_CHARS:
        return f"The title is {len(title)} characters long; at most {MAX_TITLE_CHARS} fit a post."
    try:
        value = Decimal(price)
    except InvalidOperation:
        return f"The price must be a number like 9.90 (got “{price}”)."
    if not value.is_finite():
        return f"The price must be a number like 9.90; “{price}” is not a number."
    if value < 0:
        return f"The price can't be negative (got “{price}”)."
    if value > MAX_PRICE:
        return f"The price “{price}” is too large: at most {MAX_PRICE:,}."
    if not _PLAIN_PRICE_RE.fullmatch(price):
        return f"Write the price in plain digits like 9.90, with at most 4 decimals (got “{price}”)."
    if not url.startswith(("https://", "http://")):
        return f"The buy link must start with https:// (got “{url[:100]}”)."
    if len(url.encode("utf-8")) > MAX_LINK_BYTES:
        return (f"The buy link is too long for a QR code ({len(url)} characters; at most {MAX_LINK_BYTES}). "
                "Use a shorter link to the product.")
    if not _CURRENCY_RE.fullmatch(currency):
        return f"The currency must be a three-letter code like CNY or USD (got “{currency[:20]}”)."
    return None


@CIRCLE.command("post", args="<title> <price> <buy link> [currency]",
                help="publish a product to your circle with a QR code for the buy link "
                     "(and the last image you sent me, if any); quote titles with spaces. "
                     "Owners of an official account: “post [#account] <text>” posts as the account")
async def _post(ctx: Context, args: list[str]) -> None:
    if ctx.services.posts is not None and await _is_account_post(ctx):
        await ctx.reply(await post_commands.post_text(ctx.services.posts, ctx.sender,
                                                      post_commands.rest_of(ctx.body)))
        return
    if len(args) not in (3, 4):
        await ctx.reply("Usage: post <title> <price> <buy link> [currency], e.g. "
                        "post \"Green tea\" 9.90 https://shop.example/tea CNY")
        return
    title, price, url = args[0], args[1], args[2]
    currency = args[3].upper() if len(args) == 4 else "CNY"
    problem = product_problem(title, price, url, currency)
    if problem:
        await ctx.reply(problem)
        return
    merchant = await ctx.services.circle.merchant(ctx.sender)
    product = {"id": product_id_for(url), "title": title, "price": price, "currency": currency, "url": url}
    photo_mxc = ctx.services.storage.last_image(ctx.sender)
    await ctx.reply(await ctx.services.publisher.publish(merchant, product, photo_mxc))


async def _is_account_post(ctx: Context) -> bool:
    """A text post as an official account rather than a merchant's product post (post_commands)."""
    assert ctx.services.posts is not None
    try:
        await ctx.services.circle.merchant(ctx.sender)
        is_merchant = True
    except NotAMerchant:
        is_merchant = False
    return await post_commands.wants_text_post(ctx.services.posts, ctx.sender, post_commands.rest_of(ctx.body),
                                               is_merchant)


@CIRCLE.command("repost", args="<product id>", help="publish a product you posted before again (limits apply)")
async def _repost(ctx: Context, args: list[str]) -> None:
    if len(args) != 1:
        await ctx.reply("Usage: repost <product id>; send “products” to see your product ids.")
        return
    merchant = await ctx.services.circle.merchant(ctx.sender)
    for entry in await ctx.services.circle.products(ctx.sender):
        if entry["product"]["id"] == args[0] or entry["product"]["title"].lower() == args[0].lower():
            product = dict(entry["product"])
            await ctx.reply(await ctx.services.publisher.publish(merchant, product, None, image=product.get("image")))
            return
    await ctx.reply(f"I know no product “{args[0]}” of yours; send “products” to see them.")


@CIRCLE.command("products", help="list the products you posted")
async def _products(ctx: Context, args: list[str]) -> None:
    await ctx.services.circle.merchant(ctx.sender)  # a non-merchant is told so, not "no products"
    products = await ctx.services.circle.products(ctx.sender)
    if not products:
        await ctx.reply("You have not posted any product yet. Send “post” to publish one.")
        return
    lines = ["Your products:"]
    for entry in products:
        p = entry["product"]
        wait = entry["repost_allowed_in_ms"]
        when = "repost now" if wait <= 0 else f"repost {in_how_long(wait)}"
        lines.append(f"  {p['id']} — {p['title']}, {p['price']} {p['currency']} ({when})")
    await ctx.reply("\n".join(lines))


@CIRCLE.command("followers", help="how many people follow your circle")
async def _followers(ctx: Context, args: list[str]) -> None:
    merchant = await ctx.services.circle.merchant(ctx.sender)
    n = merchant.followers
    await ctx.reply(f"Your circle has {n} follower{'s' if n != 1 else ''}.")


# -- shipments (快递) --------------------------------------------------------------------------

NO_PARCELS_API = ("I can't read shipments on this server: my operator has not given me the modules' "
                  "service secret (service_secret in merchant-bot.yaml).")


def _parcels_api(ctx: Context) -> ParcelsApi:
    if ctx.services.parcels is None:
        raise CommandError(NO_PARCELS_API)
    return ctx.services.parcels


@SHIPMENTS.command("orders", help="list your recent shipments (on their way, or over in the last 30 days) "
                                  "with their status")
async def _orders(ctx: Context, args: list[str]) -> None:
    if args:
        await ctx.reply("“orders” takes nothing after it; send “order <order id>” for one order.")
        return
    await ctx.services.circle.merchant(ctx.sender)  # a non-merchant is told so, not "no shipments"
    shipments = await _parcels_api(ctx).shipments_of_merchant(ctx.sender)
    await ctx.reply(parcel_text.merchant_orders_answer(shipments, ctx.services.time_zone))


@SHIPMENTS.command("order", args="<order id>", help="one order's shipments with their whole history")
async def _order(ctx: Context, args: list[str]) -> None:
    order_id = " ".join(args)
    if not order_id:
        await ctx.reply("Usage: order <order id>; send “orders” to see your recent shipments and their orders.")
        return
    problem = parcel_text.order_id_problem(order_id)
    if problem:
        await ctx.reply(problem)
        return
    await ctx.services.circle.merchant(ctx.sender)
    shipments = await _parcels_api(ctx).shipments_of_merchant(ctx.sender, order_id)
    await ctx.reply(parcel_text.merchant_order_answer(order_id, shipments, ctx.services.time_zone))
