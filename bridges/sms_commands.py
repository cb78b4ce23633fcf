"""Chat commands for texting phone numbers and inviting people by SMS (发短信, 提醒安装).

    sms <number> <text>          text any mobile number; replies come back in a chat with it
    invite-sms                   who from your imports could be invited
    invite-sms all | <number or name> …   text them a personal invitation link
    invite-sms revoke <number or name | all>
    invites                      your invitations and how they're doing

The work is done by ``bridges/sms/chat.py`` and ``bridges/sms/invites.py``; the handlers get
them as ``ctx.services`` (``SmsFeatures`` says what they use of them).
"""

from __future__ import annotations

import re
from typing import Protocol

import attrs

from wangxin_common.commands import CommandContext, CommandGroup


class SmsTexting(Protocol):
    async def command(self, user_id: str, number: str, text: str, command_event_id: str) -> str: ...


class SmsInviting(Protocol):
    async def invite(self, user_id: str, targets: list[str], command_event_id: str) -> str: ...
    async def revoke(self, user_id: str, targets: list[str]) -> str: ...
    async def status(self, user_id: str) -> str: ...


@attrs.frozen
class SmsFeatures:
    chat: SmsTexting
    invites: SmsInviting


Context = CommandContext[SmsFeatures]
COMMANDS: CommandGroup[SmsFeatures] = CommandGroup("Texting phone numbers (SMS)")
_SMS_RE = re.compile(r"^\s*!?sms\s+(\"[^\"]*\"|'[^']*'|\S+)\s*(.*)$", re.DOTALL | re.IGNORECASE)


@COMMANDS.command(
    "sms",
    args="<number> <text>",
    help="text a mobile number (with its country code, e.g. +86 138 1234 5678 in quotes, or +8613812345678); "
    "replies come back in a direct chat with that number",
)
async def _sms(ctx: Context, args: list[str]) -> None:
    match = _SMS_RE.match(ctx.body)
    if not match or not args:
        await ctx.reply("Send “sms <number> <text>”, for example: sms +8613812345678 See you at 6!")
        return
    number, text = match.group(1).strip("\"'"), match.group(2).strip()
    await ctx.reply(await ctx.services.chat.command(ctx.sender, number, text, ctx.event_id))


@COMMANDS.command(
    "invite-sms",
    args="[all | <number or name> …]",
    help="invite people who are not on Wangxin yet by SMS: contacts from your imports, or any mobile number",
)
async def _invite_sms(ctx: Context, args: list[str]) -> None:
    await ctx.reply(await ctx.services.invites.invite(ctx.sender, args, ctx.event_id))


@COMMANDS.command(
    "invite-sms revoke",
    args="<number or name | all>",
    help="withdraw an SMS invitation: its link stops working",
)
async def _revoke(ctx: Context, args: list[str]) -> None:
    await ctx.reply(await ctx.services.invites.revoke(ctx.sender, args))


@COMMANDS.command("invites", help="your SMS invitations and how they're doing")
async def _invites(ctx: Context, args: list[str]) -> None:
    await ctx.reply(await ctx.services.invites.status(ctx.sender))
