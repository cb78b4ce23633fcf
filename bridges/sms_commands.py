"""Chat commands for texting phone numbers and inviting people by SMS (发短信, 提醒安装).

    sms <number> <text>          text any mobile number; replies come back in a chat with it
    invite-sms                   who from your imports could be invited
    invite-sms all | <number or name> …   text them a personal invitation link
    invite-sms revoke <number or name | all>
    invites                      your invitations and how they're doing

The work is done by ``bridges/sms/chat.py`` and ``bridges/sms/invites.py``.
"""

from __future__ import annotations

import re

from bridges.management import CommandContext, commands

SECTION = "Texting phone numbers (SMS)"
NOT_SET_UP = "SMS is not set up on this server."
_SMS_RE = re.compile(r"^\s*!?sms\s+(\"[^\"]*\"|'[^']*'|\S+)\s*(.*)$", re.DOTALL | re.IGNORECASE)


@commands.command(
    "sms",
    args="<number> <text>",
    help="text a mobile number (with its country code, e.g. +86 138 1234 5678 in quotes, or +8613812345678); "
    "replies come back in a direct chat with that number",
    section=SECTION,
)
async def _sms(ctx: CommandContext, args: list[str]) -> None:
    if ctx.bot.sms_chat is None:
        await ctx.reply(NOT_SET_UP)
        return
    match = _SMS_RE.match(str(ctx.content.get("body") or ""))
    if not match or not args:
        await ctx.reply("Send “sms <number> <text>”, for example: sms +8613812345678 See you at 6!")
        return
    number, text = match.group(1).strip("\"'"), match.group(2).strip()
    await ctx.reply(await ctx.bot.sms_chat.command(ctx.sender, number, text, ctx.event_id))


@commands.command(
    "invite-sms",
    args="[all | <number or name> …]",
    help="invite people who are not on Wangxin yet by SMS: contacts from your imports, or any mobile number",
    section=SECTION,
)
async def _invite_sms(ctx: CommandContext, args: list[str]) -> None:
    if await _invites_ready(ctx):
        await ctx.reply(await ctx.bot.sms_invites.invite(ctx.sender, args, ctx.event_id))


@commands.command(
    "invite-sms revoke",
    args="<number or name | all>",
    help="withdraw an SMS invitation: its link stops working",
    section=SECTION,
)
async def _revoke(ctx: CommandContext, args: list[str]) -> None:
    if await _invites_ready(ctx):
        await ctx.reply(await ctx.bot.sms_invites.revoke(ctx.sender, args))


@commands.command("invites", help="your SMS invitations and how they're doing", section=SECTION)
async def _invites(ctx: CommandContext, args: list[str]) -> None:
    if await _invites_ready(ctx):
        await ctx.reply(await ctx.bot.sms_invites.status(ctx.sender))


async def _invites_ready(ctx: CommandContext) -> bool:
    if ctx.bot.sms_invites is None:
        await ctx.reply(NOT_SET_UP)
        return False
    return True
