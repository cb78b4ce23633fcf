"""``stats``: an official account's summary for its owner (数据统计): followers now, new and
unfollowed in the last 7 days, support chats, and how many read the latest posts.

An owner of one account sends ``stats``; an owner of several names one, ``stats #<account id>``.
The figures are the module's (``GET /accounts/{id}/stats``); the whole report, day by day and as
a spreadsheet, is at the link the answer ends with.
"""

from __future__ import annotations

import datetime
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import attrs

from bots.merchant.post_commands import named_account, rest_of
from bots.merchant.posts_api import PostsApi
from bots.merchant.stats_api import API, NotYours, StatsApi, StatsApiError
from wangxin_common.commands import CommandContext, CommandError, CommandGroup

SUMMARY_DAYS = 7
LATEST_POSTS = 5
NO_ACCOUNT = "You own no official account (公众号) on this server, so there are no stats to show."
SOMETHING_WRONG = "I could not read the stats just now; please try again in a minute."


@attrs.frozen
class StatsServices:
    stats: StatsApi
    posts: PostsApi  # which accounts the sender owns


Context = CommandContext[StatsServices]
STATS: CommandGroup[StatsServices] = CommandGroup(
    "Official account stats (数据统计)",
    errors={NotYours: lambda e: f"You own no account #{e}.", StatsApiError: lambda e: SOMETHING_WRONG},
)


def _count(n: int) -> str:
    return f"{n:,}"


def _signed(n: int) -> str:
    return f"+{n:,}" if n > 0 else f"{n:,}"


def summary(report: dict[str, Any]) -> str:
    """The report in a few lines for a chat."""
    try:
        zone = ZoneInfo(str(report.get("time_zone")))
    except (ZoneInfoNotFoundError, ValueError):
        zone = ZoneInfo("UTC")
    followers = int(report["followers"])
    days = report["followers_per_day"]
    lines = [f"{report['name']} (#{report['account_id']}): {_count(followers)} "
             f"follower{'s' if followers != 1 else ''} · 关注 {_count(followers)}"]
    new = [d["new"] for d in days if d["new"] is not None]
    unfollowed = sum(int(d["unfollowed"]) for d in days)
    net = sum(int(d["net"]) for d in days if d["net"] is not None)
    lines.append(f"Last {len(days)} days: {_count(sum(new))} new, {_count(unfollowed)} unfollowed, net {_signed(net)}"
                 + ("" if len(new) == len(days) else " (new and net: days counted since counting began)"))
    lines.append(f"Support chats · 客服会话: {_count(int(report.get('support_rooms', 0)))}")
    posts = report["posts"][:LATEST_POSTS]
    if posts:
        lines.append("Latest posts (read by / followers when posted):")
        for post in posts:
            when = datetime.datetime.fromtimestamp(post["posted_at"] / 1000, tz=zone).strftime("%m-%d %H:%M")
            audience = post["followers_at_post"]
            reads = post["reads"] if post["reads"] is not None else 0
            rate = f" ({post['read_rate']:.0%})" if post["read_rate"] is not None else ""
            title = post["title"] or "post"
            lines.append(f"  {when}  {title[:40]}: {_count(reads)} / "
                         f"{_count(audience) if audience is not None else '?'}{rate}")
    else:
        lines.append(f"No posts in the last {len(days)} days.")
    lines.append(f"Day by day, or as a spreadsheet: {API}/accounts/{report['account_id']}/stats?format=csv")
    return "\n".join(lines)


@STATS.command("stats", args="[#account]", help="your account's followers, new and unfollowed this week, and "
                                                  "how many read your latest posts")
async def _stats(ctx: Context, args: list[str]) -> None:
    wanted, rest = named_account(rest_of(ctx.body))
    if rest:
        raise CommandError("Usage: stats, or stats #<account id> when you own several accounts.")
    owned = await ctx.services.posts.owned(ctx.sender)
    if not owned:
        raise CommandError(NO_ACCOUNT)
    if wanted is None:
        if len(owned) > 1:
            names = ", ".join(f"#{a.account_id} ({a.name})" for a in owned)
            raise CommandError(f"You own several accounts ({names}): say which, e.g. “stats #{owned[0].account_id}”.")
        wanted = owned[0].account_id
    elif wanted not in {a.account_id for a in owned}:
        raise NotYours(wanted)
    await ctx.reply(summary(await ctx.services.stats.stats(wanted, ctx.sender, SUMMARY_DAYS)))
