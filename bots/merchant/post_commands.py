"""The bot's commands for official accounts' owners (公众号): post as the account, schedule a post,
list what is scheduled, cancel one (docs/accounts.md, "Posting").

``post <text>`` shares its name with the merchants' product post: a merchant's ``post`` stays the
product post it always was (``commands._post``), unless it names an account (``post #tea Hello``);
anyone else who owns an account posts text. An owner of several accounts names one with
``#<account id>`` (its alias without the server) before the text.

The server sends a scheduled post at its time, from its own tables: the bot only asks for it.
``drafts`` numbers the scheduled posts and the bot remembers which post each number was, so
``cancel 2`` cancels what the owner saw as 2, even if another was sent meanwhile.
"""

from __future__ import annotations

import re
import time

import attrs

from bots.merchant.circle_api import in_how_long
from bots.merchant.posts_api import Answer, OwnedAccount, PostsApi
from bots.merchant.storage import MerchantStorage
from wangxin_common.commands import CommandContext, CommandError, CommandGroup
from wangxin_common.when import format_utc, parse_when

NO_ACCOUNT = ("You own no official account (公众号) on this server, so there is nothing to post to. "
              "Ask the server operator to register your organisation.")
WHEN_HELP = ("Say when as “in 2h”, “in 30m”, “in 1d”, or a time like “2026-12-24 18:00” (UTC) or "
             "“2026-12-24 18:00+08:00”.")
_COMMAND_RE = re.compile(r"^\s*!?\S+\s*")
_ACCOUNT_RE = re.compile(r"^#([a-z0-9_-]{3,32})(?::\S+)?(?:\s+|$)")
SNIPPET_CHARS = 60


@attrs.frozen
class PostServices:
    api: PostsApi
    storage: MerchantStorage


Context = CommandContext[PostServices]
ACCOUNTS: CommandGroup[PostServices] = CommandGroup("Official accounts (公众号)")


def rest_of(body: str) -> str:
    """The message after its command word, as typed (line breaks kept)."""
    return _COMMAND_RE.sub("", body, count=1).strip()


def named_account(text: str) -> tuple[str | None, str]:
    """``(account id, the rest)`` when ``text`` starts with ``#<account id>``."""
    match = _ACCOUNT_RE.match(text)
    if match is None:
        return None, text
    return match[1], text[match.end():].strip()


async def choose_account(api: PostsApi, sender: str, wanted: str | None) -> OwnedAccount:
    owned = await api.owned(sender)
    if not owned:
        raise CommandError(NO_ACCOUNT)
    if wanted is not None:
        for account in owned:
            if account.account_id == wanted:
                return account
        raise CommandError(f"You own no account #{wanted}. Yours: {_names(owned)}.")
    texts = [a for a in owned if a.kind != "merchant"] or owned
    if len(texts) == 1:
        return texts[0]
    raise CommandError(f"You own several accounts ({_names(owned)}): say which, e.g. "
                       f"“post #{owned[0].account_id} Hello”.")


def _names(owned: list[OwnedAccount]) -> str:
    return ", ".join(f"#{a.account_id} ({a.name})" for a in owned)


def _snippet(text: str) -> str:
    line = " ".join(text.split())
    return line if len(line) <= SNIPPET_CHARS else line[: SNIPPET_CHARS - 1] + "…"


def refused(answer: Answer, account: OwnedAccount) -> str:
    retry = answer.body.get("retry_after_ms")
    if answer.status == 429 and isinstance(retry, int):
        return f"Not posted: {account.name}'s limit allows its next post {in_how_long(retry)}."
    return f"Not posted: {answer.error}"


async def wants_text_post(api: PostsApi, sender: str, text: str, is_merchant: bool) -> bool:
    """Whether a ``post`` is a text post as an account: it names one, or the sender is no
    merchant (whose ``post`` is the product post) but owns an account."""
    if named_account(text)[0] is not None:
        return True
    return not is_merchant and bool(await api.owned(sender))


async def post_text(api: PostsApi, sender: str, text: str) -> str:
    """``post [#account] <text>``: the answer for the owner."""
    wanted, text = named_account(text)
    account = await choose_account(api, sender, wanted)
    if not text:
        return "What should I post? Send “post <text>”."
    answer = await api.post(account.account_id, sender, text)
    if answer.status != 200:
        return refused(answer, account)
    return f"Posted to {account.name} (#{account.account_id}) as {answer.body.get('sender')}."


@ACCOUNTS.command("schedule", args="[#account] <when> <text>",
                  help="post as your account at a time: “schedule in 2h Doors open at 7” or "
                       "“schedule 2026-12-24 18:00+08:00 Merry Christmas” (the server sends it)")
async def _schedule(ctx: Context, args: list[str]) -> None:
    wanted, text = named_account(rest_of(ctx.body))
    when = parse_when(text, int(time.time() * 1000))
    if when is None:
        await ctx.reply(f"Usage: schedule [#account] <when> <text>. {WHEN_HELP}")
        return
    at, text = when
    if not text:
        await ctx.reply("What should I post then? Send “schedule <when> <text>”.")
        return
    account = await choose_account(ctx.services.api, ctx.sender, wanted)
    answer = await ctx.services.api.post(account.account_id, ctx.sender, text, at=at)
    if answer.status != 200:
        await ctx.reply(f"Not scheduled: {answer.error}")
        return
    due = int(answer.body.get("at", at))
    await ctx.reply(f"Scheduled for {format_utc(due)} ({in_how_long(max(0, due - int(time.time() * 1000)))}) "
                    f"on {account.name}: “{_snippet(text)}”. Send “drafts” to see what is waiting.")


@ACCOUNTS.command("drafts", args="[#account]", help="list your scheduled posts, numbered (for “cancel”)")
async def _drafts(ctx: Context, args: list[str]) -> None:
    wanted, _ = named_account(rest_of(ctx.body))
    owned = await ctx.services.api.owned(ctx.sender)
    if not owned:
        raise CommandError(NO_ACCOUNT)
    accounts = [a for a in owned if wanted is None or a.account_id == wanted]
    if not accounts:
        raise CommandError(f"You own no account #{wanted}. Yours: {_names(owned)}.")
    waiting: list[tuple[OwnedAccount, dict[str, object]]] = []
    for account in accounts:
        waiting += [(account, post) for post in await ctx.services.api.scheduled(account.account_id, ctx.sender)]
    waiting.sort(key=lambda entry: (int(str(entry[1]["at"])), str(entry[1]["post_id"])))
    ctx.services.storage.save_drafts_shown(ctx.sender, [[a.account_id, str(p["post_id"])] for a, p in waiting])
    if not waiting:
        await ctx.reply("Nothing is scheduled. Send “schedule <when> <text>” to schedule a post.")
        return
    lines = ["Scheduled posts:"]
    for n, (account, post) in enumerate(waiting, 1):
        note = f" (held back: {post['error']})" if post.get("error") else ""
        when = format_utc(int(str(post["at"])))
        lines.append(f"  {n}. {when} — {account.name}: “{_snippet(str(post['body']))}”{note}")
    lines.append("Send “cancel <number>” to cancel one.")
    await ctx.reply("\n".join(lines))


@ACCOUNTS.command("cancel", args="<number>", help="cancel a scheduled post by its number in “drafts”")
async def _cancel(ctx: Context, args: list[str]) -> None:
    shown = ctx.services.storage.drafts_shown(ctx.sender)
    if len(args) != 1 or not args[0].isdigit():
        await ctx.reply("Usage: cancel <number>, the number “drafts” showed.")
        return
    n = int(args[0])
    if not shown:
        await ctx.reply("Send “drafts” first: cancel takes a number from that list.")
        return
    if not 1 <= n <= len(shown):
        await ctx.reply(f"There is no {n} in the last list of drafts (1 to {len(shown)}); send “drafts” again.")
        return
    account_id, post_id = shown[n - 1]
    answer = await ctx.services.api.cancel(account_id, ctx.sender, post_id)
    if answer.status == 200:
        await ctx.reply(f"Cancelled {n}: it will not be posted.")
    elif answer.status == 409:
        await ctx.reply(f"Too late to cancel {n}: {answer.error}.")
    elif answer.status == 404:
        await ctx.reply(f"I can't find {n} any more; send “drafts” again.")
    else:
        await ctx.reply(f"Not cancelled: {answer.error}")
