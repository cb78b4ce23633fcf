"""The merchant bot's commands, each declared once with its help."""

from __future__ import annotations

from typing import TYPE_CHECKING

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
