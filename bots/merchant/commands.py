"""The merchant bot's commands, each declared once with its help."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import attrs

from wangxin_common import WANGXIN_VERSION
from wangxin_common.commands import CommandRegistry

if TYPE_CHECKING:
    from bots.merchant.bot import MerchantBot

commands: CommandRegistry[CommandContext] = CommandRegistry(
    "Wangxin merchant bot",
    "I'm the Wangxin merchant bot: merchants publish to their merchant circle (商家圈) through me. "
    "Send one of these commands:",
)


@attrs.define
class CommandContext:
    bot: MerchantBot
    room_id: str
    sender: str
    event_id: str

    async def reply(self, text: str) -> None:
        await self.bot.reply(self.room_id, self.event_id, text)


@commands.command("help", help="show this list of commands")
async def _help(ctx: CommandContext, args: list[str]) -> None:
    await ctx.reply(commands.help_text())


@commands.command("version", help="show which version of Wangxin this server runs")
async def _version(ctx: CommandContext, args: list[str]) -> None:
    await ctx.reply(f"Wangxin {WANGXIN_VERSION}.")


# -- merchant circle (商家圈) ---------------------------------------------------------------------

NOT_A_MERCHANT = (
    "You are not a merchant on this server, so you have no merchant circle to post to. "
    "Ask the server operator to register your shop; until then I can only show “help”."
)


def _duration(ms: int) -> str:
    minutes = max(1, round(ms / 60000))
    if minutes < 120:
        return f"{minutes} min"
    hours = minutes / 60
    if hours < 48:
        return f"{hours:.0f} h"
    return f"{hours / 24:.1f} days"


def in_how_long(ms: int) -> str:
    import time

    at = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime(time.time() + ms / 1000))
    return f"in {_duration(ms)} (at {at})"


async def _merchant_or_explain(ctx: CommandContext) -> Any:
    from bots.merchant.circle_api import NotAMerchant

    try:
        return await ctx.bot.circle.merchant(ctx.sender)
    except NotAMerchant:
        await ctx.reply(NOT_A_MERCHANT)
        return None


@commands.command("post", args="<title> <price> <buy link> [currency]", section="Merchant circle",
                  help="publish a product to your circle with a QR code for the buy link "
                       "(and the last image you sent me, if any); quote titles with spaces")
async def _post(ctx: CommandContext, args: list[str]) -> None:
    from bots.merchant.circle_api import product_id_for

    if len(args) not in (3, 4):
        await ctx.reply("Usage: post <title> <price> <buy link> [currency], e.g. "
                        "post \"Green tea\" 9.90 https://shop.example/tea CNY")
        return
    title, price, url = args[0], args[1], args[2]
    currency = args[3].upper() if len(args) == 4 else "CNY"
    if not url.startswith(("https://", "http://")):
        await ctx.reply(f"The buy link must start with https:// (got “{url}”).")
        return
    try:
        float(price)
    except ValueError:
        await ctx.reply(f"The price must be a number like 9.90 (got “{price}”).")
        return
    merchant = await _merchant_or_explain(ctx)
    if merchant is None:
        return
    product = {"id": product_id_for(url), "title": title, "price": price, "currency": currency, "url": url}
    photo_mxc = ctx.bot.storage.last_image(ctx.sender)
    await ctx.bot.publish(ctx, merchant, product, photo_mxc)


@commands.command("repost", args="<product id>", section="Merchant circle",
                  help="publish a product you posted before again (limits apply)")
async def _repost(ctx: CommandContext, args: list[str]) -> None:
    if len(args) != 1:
        await ctx.reply("Usage: repost <product id>; send “products” to see your product ids.")
        return
    merchant = await _merchant_or_explain(ctx)
    if merchant is None:
        return
    for entry in await ctx.bot.circle.products(ctx.sender):
        if entry["product"]["id"] == args[0] or entry["product"]["title"].lower() == args[0].lower():
            product = dict(entry["product"])
            await ctx.bot.publish(ctx, merchant, product, None, image=product.get("image"))
            return
    await ctx.reply(f"I know no product “{args[0]}” of yours; send “products” to see them.")


@commands.command("products", section="Merchant circle", help="list the products you posted")
async def _products(ctx: CommandContext, args: list[str]) -> None:
    merchant = await _merchant_or_explain(ctx)
    if merchant is None:
        return
    products = await ctx.bot.circle.products(ctx.sender)
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


@commands.command("followers", section="Merchant circle", help="how many people follow your circle")
async def _followers(ctx: CommandContext, args: list[str]) -> None:
    merchant = await _merchant_or_explain(ctx)
    if merchant is None:
        return
    n = merchant.followers
    await ctx.reply(f"Your circle has {n} follower{'s' if n != 1 else ''}.")
