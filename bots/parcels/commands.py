"""The parcels bot's commands, each declared once with its help.

The handlers work on ``ParcelsServices`` (``ctx.services``): the parcels module's API and the
time zone of the answers. Every answer is about the sender's own parcels: the module is asked
for the sender's and nobody else's, so a tracking number of someone else's parcel gets the same
answer as one that does not exist.
"""

from __future__ import annotations

from zoneinfo import ZoneInfo

import attrs

from bots.parcels import text
from bots.parcels.api import ParcelsApi
from wangxin_common.commands import CommandContext, CommandError, CommandGroup

INTRO = ("I'm the Wangxin parcels bot (快递): I tell you where your parcels are. Your shop sends me their "
         "updates; each parcel has a card in your “Parcels · 快递” room, kept up to date. Ask me there or in a "
         "direct chat. Send one of these commands:")


NOT_LOCAL = ("I only know the parcels of people with an account on this server, and yours is on another one. "
             "Ask the parcels bot of your own server.")


@attrs.frozen
class ParcelsServices:
    parcels: ParcelsApi
    time_zone: ZoneInfo
    server_name: str  # the bot's own: parcels belong to this server's people only


Context = CommandContext[ParcelsServices]
TRACK: CommandGroup[ParcelsServices] = CommandGroup("Parcels (快递)")


@TRACK.command("track", args="[tracking number]",
               help="your parcels on their way; with a tracking number, that parcel's whole history")
async def _track(ctx: Context, args: list[str]) -> None:
    tz = ctx.services.time_zone
    if ctx.sender.partition(":")[2] != ctx.services.server_name:
        raise CommandError(NOT_LOCAL)
    if not args:
        await ctx.reply(text.active_parcels_answer(await ctx.services.parcels.parcels_of(ctx.sender), tz))
        return
    number = text.tracking_number_from(args)
    problem = text.tracking_number_problem(number)
    if problem:
        await ctx.reply(problem + " Send “track” to list your parcels.")
        return
    found = text.matching(await ctx.services.parcels.parcels_of(ctx.sender), number)
    await ctx.reply(text.tracked_parcel_answer(number, found, tz))
