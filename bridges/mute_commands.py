"""Chat commands for muting a group with exemptions, for people on Element.

    mute <room> [except @boss @lead moderators mentions replies]
    unmute <room>
    mutes
    vips [list] | vips add @a @b | vips remove @a

``<room>`` is a room address (#team:example.org), a room id (!abc…), or a link to the room
(Element's "Copy link" or a room pill); people are Matrix ids or user pills. The handlers get
the client of the Wangxin modules' API (``bridges/wangxin_api.py``) as ``ctx.services``.
"""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import quote, unquote

from bridges.matrix_client import MatrixRequestError
from bridges.wangxin_api import WangxinApi
from wangxin_common.commands import CommandContext, CommandError, CommandGroup

Context = CommandContext[WangxinApi]

USER_RE = re.compile(r"@[^\s:<>\"']+:[A-Za-z0-9.\-:\[\]]+")
LINK_RE = re.compile(r"https://matrix\.to/#/([^\s\"'<>?]+)")
FLAGS = {
    "moderators": "exempt_moderators",
    "mods": "exempt_moderators",
    "mentions": "exempt_mentions",
    "replies": "exempt_replies",
}
ROOM_HINT = (
    "Name the room by its address (like #team:example.org), its id (Room settings → Advanced), "
    "or paste a link to it."
)


def _links(ctx: Context) -> list[str]:
    formatted = ctx.content.get("formatted_body") or ""
    return [unquote(m) for m in LINK_RE.findall(formatted + " " + str(ctx.content.get("body") or ""))]


def _users(ctx: Context, words: list[str]) -> list[str]:
    found = [w for w in words if USER_RE.fullmatch(w)]
    found += [link for link in _links(ctx) if link.startswith("@")]
    return list(dict.fromkeys(found))


async def _room(ctx: Context, words: list[str]) -> str:
    candidates = [w for w in words if w.startswith(("!", "#"))] + [
        link for link in _links(ctx) if link.startswith(("!", "#"))
    ]
    for word in words:
        if word.startswith("https://matrix.to/#/"):
            candidates.insert(0, unquote(word.split("#/", 1)[1].split("?")[0]))
    if not candidates:
        raise CommandError("Which room? " + ROOM_HINT)
    target = candidates[0]
    if target.startswith("!"):
        return target
    try:
        return await ctx.services.resolve_alias(target)
    except MatrixRequestError as e:  # an address that names no room is the user's input, not a failure
        raise CommandError(f"I can't find a room with the address {target}. " + ROOM_HINT) from e


def _explain(error: MatrixRequestError) -> str:
    if error.status == 404:
        return "I can't find that room on this server. " + ROOM_HINT
    if error.status == 403:
        return "You are not a member of that room, so there is nothing to mute."
    if error.status == 400:
        return f"That didn't work: {error.error}"
    return "Something went wrong on my side; please try again in a minute."


COMMANDS: CommandGroup[WangxinApi] = CommandGroup("Muting groups", errors={MatrixRequestError: _explain})


def _describe(answer: dict[str, Any]) -> str:
    parts = []
    if answer.get("exempt_users"):
        parts.append(", ".join(answer["exempt_users"]))
    for key, label in (("exempt_moderators", "moderators"), ("exempt_mentions", "mentions of you"),
                       ("exempt_replies", "replies to you")):
        if answer.get(key):
            parts.append(label)
    return "; ".join(parts) if parts else "nobody"


@COMMANDS.command(
    "mute",
    args="<room> [except @person … moderators mentions replies]",
    help="mute a group but still be notified when chosen people speak",
)
async def _mute(ctx: Context, args: list[str]) -> None:
    room_words, _, except_words = _split_except(args)
    room_id = await _room(ctx, room_words)
    body: dict[str, Any] = {"exempt_users": _users(ctx, except_words)}
    unknown = []
    for word in except_words:
        flag = FLAGS.get(word.lower().strip(","))
        if flag:
            body[flag] = True
        elif not USER_RE.fullmatch(word) and not word.startswith("https://matrix.to/"):
            unknown.append(word)
    if unknown and not body["exempt_users"]:
        await ctx.reply(
            f"I don't understand “{' '.join(unknown)}”. After “except”, name people (@name:server or a pill) "
            "or the words moderators, mentions, replies."
        )
        return
    answer = await ctx.services.call("PUT", f"/rooms/{quote(room_id, safe='')}/mute", ctx.sender, body)
    text = f"Muted. You will still be notified about: {_describe(answer)}."
    if answer.get("note"):
        text += " " + answer["note"]
    await ctx.reply(text)


def _split_except(args: list[str]) -> tuple[list[str], bool, list[str]]:
    lowered = [a.lower() for a in args]
    if "except" in lowered:
        i = lowered.index("except")
        return args[:i], True, args[i + 1 :]
    return args, False, []


@COMMANDS.command("unmute", args="<room>", help="unmute a group and remove its exemptions")
async def _unmute(ctx: Context, args: list[str]) -> None:
    room_id = await _room(ctx, args)
    await ctx.services.call("DELETE", f"/rooms/{quote(room_id, safe='')}/mute", ctx.sender)
    await ctx.reply("Unmuted; the exemptions for that room are gone.")


@COMMANDS.command("mutes", help="list the groups you muted and who still gets through")
async def _mutes(ctx: Context, args: list[str]) -> None:
    answer = await ctx.services.call("GET", "/mutes", ctx.sender)
    if not answer["mutes"]:
        await ctx.reply("You have no groups muted through Wangxin.")
        return
    lines = [
        f"• {m['room_id']}: {_describe(m)}" + ("" if m["active"] else " (asleep: you unmuted it in your app)")
        for m in answer["mutes"]
    ]
    await ctx.reply("Muted groups:\n" + "\n".join(lines))


@COMMANDS.command(
    "vips",
    args="[list | add @person … | remove @person …]",
    help="people who get through every group you muted",
)
async def _vips(ctx: Context, args: list[str]) -> None:
    current = (await ctx.services.call("GET", "/vips", ctx.sender))["users"]
    action = args[0].lower() if args else "list"
    if action == "list":
        await ctx.reply("Your VIPs: " + (", ".join(current) if current else "none yet") + ".")
        return
    people = _users(ctx, args[1:])
    if action not in ("add", "remove") or not people:
        await ctx.reply("Use “vips add @name:server” or “vips remove @name:server” (pills work too).")
        return
    wanted = list(dict.fromkeys(current + people)) if action == "add" else [u for u in current if u not in people]
    answer = await ctx.services.call("PUT", "/vips", ctx.sender, {"users": wanted})
    await ctx.reply("Your VIPs: " + (", ".join(answer["users"]) if answer["users"] else "none") + ".")
