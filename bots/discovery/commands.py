"""The discovery bot's commands, each declared once with its help, each with the same effect as
its HTTP call (docs/discovery.md, "The discovery bot").

The handlers work on ``DiscoveryServices`` (``ctx.services``): the module's API acting for the
sender, what the bot remembers (the numbers of the lists it showed, the bottle last picked), and
a way to remove a message that carried coordinates. A refusal of the module (``ApiError``)
becomes a plain sentence once, in the bot's dispatcher (``text.plain_error``).

Free text (a greeting, a bottle, a reply, a reason) is the message after the command's words,
as typed, quotes and line breaks included.
"""

from __future__ import annotations

import re
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any

import attrs

from bots.discovery.api import DiscoveryApi
from bots.discovery.coupon_text import coupons_text
from bots.discovery.memory import BotMemory
from bots.discovery.text import (
    accepted_text,
    answerable,
    bottle_text,
    clean,
    degrees,
    duration,
    location_kept_text,
    nearby_text,
    pairing_news,
    parse_angle,
    parse_location_args,
    parse_number,
    parse_user_id,
    profile_text,
    renumber,
    requests_text,
    utc_time,
)
from wangxin_common.commands import CommandContext, CommandGroup

INTRO = ("I'm the Wangxin discovery bot: meet new people near you, by shaking at the same moment, "
         "with drift bottles, by holding your phone at 36.8° at the same moment as someone else (both of you "
         "get a coupon), or face to face on video (附近的人、摇一摇、漂流瓶、你我36.8度、面对面). Nobody sees you "
         "until you send “discover on”. To share where you are, send me a location (Element: the attachment "
         "menu, Location). Commands:")
ANGLE_USAGE = ("Usage: “angle <degrees>”, e.g. “angle 36.8”: the angle you hold your phone at, from 0 to 180 "
               "degrees. Two people at 36.8° at the same moment are paired, and when both accept, each gets a "
               "coupon.")
# The target of 你我36.8度 when the server's answer does not name it (its default).
DEFAULT_ANGLE_TARGET = 36.8
COUPON_REQUESTED = "Your coupon for this 36.8° pairing is being asked of the shop: I'll send it to you here, privately."
NEARBY_LIST = "nearby"
REQUESTS_LIST = "requests"


def _now_ms() -> int:
    return int(time.time() * 1000)


@attrs.frozen
class DiscoveryServices:
    api: DiscoveryApi
    memory: BotMemory
    server_name: str
    # Remove a message (room id, event id) that carried coordinates; False if it could not.
    redact: Callable[[str, str], Awaitable[bool]]
    now_ms: Callable[[], int] = _now_ms


Context = CommandContext[DiscoveryServices]
PROFILE: CommandGroup[DiscoveryServices] = CommandGroup("You in discovery")
MEET: CommandGroup[DiscoveryServices] = CommandGroup("Meeting people")
REQUESTS: CommandGroup[DiscoveryServices] = CommandGroup("Chat requests")
SAFETY: CommandGroup[DiscoveryServices] = CommandGroup("Safety")
COUPONS: CommandGroup[DiscoveryServices] = CommandGroup("Coupons")


def rest_after(body: str, words: int) -> str:
    """The message after its first ``words`` words, as typed (line breaks kept)."""
    text = body.strip()
    for _ in range(words):
        match = re.match(r"\S+\s*", text)
        if not match:
            return ""
        text = text[match.end():]
    return text.strip()


# -- requests lists, shared with the notices -------------------------------------------------------

async def numbered_requests(services: DiscoveryServices, user_id: str) -> tuple[list[dict[str, Any]], dict[int, str]]:
    """The person's open requests, and the numbers they answer them by (kept from the last list
    shown; saved as the list shown now)."""
    entries = await services.api.requests(user_id)
    oldest_first = [str(e["request_id"]) for e in reversed(entries) if answerable(e)]
    numbers = renumber(services.memory.list_of(user_id, REQUESTS_LIST), oldest_first)
    services.memory.set_list(user_id, REQUESTS_LIST, numbers)
    return entries, numbers


def number_of(numbers: Mapping[int, str], request_id: str) -> int | None:
    return next((n for n, rid in numbers.items() if rid == request_id), None)


def entry_of(entries: Sequence[Mapping[str, Any]], request_id: str) -> Mapping[str, Any] | None:
    return next((e for e in entries if e["request_id"] == request_id), None)


def answer_hint(n: int | None) -> str:
    if n is None:
        return "Send “requests” to see it."
    return f"Send “accept {n}” to open a chat with them, or “decline {n}”."


# -- you in discovery --------------------------------------------------------------------------

@PROFILE.command("discover", args="[on [name] | off]",
                 help="turn discovery on (others see you by your display name, or the name you give) or off "
                      "(you leave every list at once; your location, bottles and requests are deleted); "
                      "alone: where you stand")
async def _discover(ctx: Context, args: list[str]) -> None:
    s, me = ctx.services, ctx.sender
    choice = args[0].lower() if args else ""
    if not args:
        await ctx.reply(profile_text(await s.api.profile(me), s.now_ms()))
    elif choice == "on":
        name = rest_after(ctx.body, 2) or None
        profile = await s.api.set_profile(me, True, name)
        await ctx.reply(f"Discovery is on: others see you as “{clean(str(profile.get('name') or ''))}”. "
                        "Share your location (send me one) to see people nearby, or try “shake”, "
                        "“throw <text>” or “pick”. “discover off” takes you out of everything at once.")
    elif choice == "off":
        await s.api.set_profile(me, False)
        s.memory.forget_person(me)
        await ctx.reply("Discovery is off: nobody sees you any more. Your location, your bottles and your open "
                        "requests are deleted; your blocks and reports stay.")
    else:
        await ctx.reply("Usage: “discover on [name]”, “discover off”, or “discover” to see where you stand.")


@PROFILE.command("location", args="<latitude> <longitude> | off",
                 help="share where you are (or send me a location instead): only an area of about a "
                      "kilometre is kept, for a while; “location off” stops sharing now")
async def _location(ctx: Context, args: list[str]) -> None:
    s, me = ctx.services, ctx.sender
    if len(args) == 1 and args[0].lower() in ("off", "stop"):
        await s.api.stop_location(me)
        await ctx.reply("You no longer share a location: nobody sees you nearby until you share one again.")
        return
    if not args:
        await ctx.reply("Send me a location (Element: the attachment menu, Location), or type "
                        "“location <latitude> <longitude>”, e.g. “location 31.23 121.47”.")
        return
    # The message holds coordinates: it leaves the chat whatever the server says of them.
    redacted = await s.redact(ctx.room_id, ctx.event_id)
    position = parse_location_args(args)
    if position is None:
        await ctx.reply("I could not read a position there. Write it as “location <latitude> <longitude>” in "
                        "degrees, e.g. “location 31.23 121.47”, or send me a location.")
        return
    answer = await s.api.set_location(me, *position)
    text = location_kept_text(answer, s.now_ms())
    if not redacted:
        text = text.replace(", and removed your message with the coordinates from this chat", "") + (
            " I could not remove your message with the coordinates from this chat: you may delete it yourself.")
    await ctx.reply(text)


# -- meeting people ----------------------------------------------------------------------------

@MEET.command("nearby", help="people in discovery near your shared location, nearest first, by distance band")
async def _nearby(ctx: Context, args: list[str]) -> None:
    s, me = ctx.services, ctx.sender
    people = await s.api.nearby(me)
    s.memory.set_list(me, NEARBY_LIST, {n: str(p["user_id"]) for n, p in enumerate(people, 1)})
    await ctx.reply(nearby_text(people))


@MEET.command("hi", args="<n | @user> [text]",
              help="say hi to someone from your last “nearby” list (their number) or by id: "
                   "they get a chat request, with your text")
async def _hi(ctx: Context, args: list[str]) -> None:
    s, me = ctx.services, ctx.sender
    if not args:
        await ctx.reply("Usage: “hi <n> [text]”, n being someone's number in the last “nearby” list I showed you, "
                        "or “hi @user:server [text]”.")
        return
    number = parse_number(args[0])
    if number is not None:
        target = s.memory.list_of(me, NEARBY_LIST).get(number)
        if target is None:
            await ctx.reply(f"There is no number {number} in the last “nearby” list I showed you. "
                            "Send “nearby” to see who is near.")
            return
    else:
        target = parse_user_id(args[0], s.server_name)
        if target is None:
            await ctx.reply(f"“{clean(args[0], max_chars=80)}” is neither a number from your “nearby” list "
                            "nor a user id like @name:server.")
            return
    await s.api.say_hi(me, target, rest_after(ctx.body, 2) or None)
    await ctx.reply(f"Said hi to {target}: they see your chat request. I'll tell you when they accept; "
                    "the chat opens then.")


async def _paired(ctx: Context, partner: Any, request_id: Any, news: Callable[[str], str]) -> None:
    """Answer a pairing the command made itself (a shake, an angle, the video queue): the answer
    is the news, so no notice follows it. ``news`` words it for the other, ``Name (@id)``."""
    s, me = ctx.services, ctx.sender
    s.memory.mark_told(me, str(request_id), "new")
    entries, numbers = await numbered_requests(s, me)
    entry = entry_of(entries, str(request_id)) or {}
    name = clean(str(entry.get("display_name") or partner))
    await ctx.reply(news(f"{name} ({partner})") + " " + answer_hint(number_of(numbers, str(request_id))))


@MEET.command("shake", help="meet someone who shakes at the same moment (I answer when the shake window closes)")
async def _shake(ctx: Context, args: list[str]) -> None:
    s, me = ctx.services, ctx.sender
    answer = await s.api.shake(me)
    partner, request_id = answer.get("paired_with"), answer.get("request_id")
    if not partner or not request_id:
        await ctx.reply("Nobody else shook at the same moment. Try again in a little while.")
        return
    await _paired(ctx, partner, request_id, lambda who: pairing_news("shake", who))


def _number(value: Any) -> float | None:
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None


@MEET.command("angle", args="<degrees>",
              help="你我36.8度: the angle you hold your phone at, e.g. “angle 36.8” (for a phone or client "
                   "without a motion sensor); two people at 36.8° at the same moment are paired, and each gets "
                   "a coupon when both accept (I answer when the window closes)")
async def _angle(ctx: Context, args: list[str]) -> None:
    s, me = ctx.services, ctx.sender
    typed = " ".join(args).strip()
    if not typed:
        await ctx.reply(ANGLE_USAGE)
        return
    value = parse_angle(typed)
    if value is None:
        await ctx.reply(f"“{clean(typed, max_chars=40)}” is not a number of degrees. {ANGLE_USAGE}")
        return
    answer = await s.api.angle(me, value)  # NaN or 200: the server refuses it by name
    partner, request_id = answer.get("paired_with"), answer.get("request_id")
    if answer.get("paired") and partner and request_id:
        await _paired(ctx, partner, request_id, lambda who: pairing_news("angle", who))
        return
    if answer.get("within_tolerance") is False:
        target = _number(answer.get("target"))
        tolerance = _number(answer.get("tolerance"))
        give = f" (±{degrees(tolerance)})" if tolerance is not None else ""
        target_text = degrees(target if target is not None else DEFAULT_ANGLE_TARGET)
        await ctx.reply(f"{degrees(value)} is not close enough: the target is {target_text}{give}. Nobody is "
                        f"paired outside it; try again at {target_text}.")
        return
    await ctx.reply("Nobody else was at that angle at the same moment. Try again in a little while.")


def _video_paired_news(who: str) -> str:
    return f"Face to face: you are paired with {who}! The chat for your video call opens when you both accept."


@MEET.command("video", args="[language]",
              help="面对面: meet a stranger face to face on video: you wait in the queue (for a while; send "
                   "“video” again to stay longer) until someone else joins it, and you are paired; a language "
                   "(e.g. “video zh”) pairs you only with people who gave the same")
async def _video(ctx: Context, args: list[str]) -> None:
    s, me = ctx.services, ctx.sender
    if len(args) == 1 and args[0].lower() in ("off", "leave"):
        await _video_stop(ctx, [])
        return
    if len(args) > 1:
        await ctx.reply("Usage: “video” to join the face-to-face queue, “video <language>” (e.g. “video zh”) to "
                        "meet people who gave the same language, “video stop” to leave the queue.")
        return
    answer = await s.api.join_video(me, args[0].lower() if args else None)
    partner, request_id = answer.get("paired_with"), answer.get("request_id")
    if partner and request_id:
        await _paired(ctx, partner, request_id, _video_paired_news)
        return
    expires = int(answer.get("expires_ts") or s.now_ms())
    await ctx.reply(f"You are in the face-to-face queue until {utc_time(expires)} ({duration(expires - s.now_ms())}). "
                    "When someone else joins it, you are paired and I tell you here; the chat for your video call "
                    "opens when you both accept. Send “video” again to stay longer, or “video stop” to leave.")


@MEET.command("video stop", help="leave the face-to-face queue")
async def _video_stop(ctx: Context, args: list[str]) -> None:
    s, me = ctx.services, ctx.sender
    queued = (await s.api.video(me)).get("state") == "waiting"
    await s.api.leave_video(me)
    if queued:
        await ctx.reply("You left the face-to-face queue: nobody new is paired with you from it. "
                        "Pairings made before stay in your “requests”.")
    else:
        await ctx.reply("You were not in the face-to-face queue. Send “video” to join it.")


@MEET.command("throw", args="<text>", help="throw a drift bottle into the sea (at most 1,000 characters)")
async def _throw(ctx: Context, args: list[str]) -> None:
    s, me = ctx.services, ctx.sender
    text = rest_after(ctx.body, 1)
    if not text:
        await ctx.reply("Usage: “throw <text>”: what you write is what the finder reads.")
        return
    await s.api.throw(me, text)
    await ctx.reply("Your bottle is in the sea. Whoever picks it may reply; I'll tell you when someone does.")


@MEET.command("pick", help="pick a drift bottle someone else threw (never your own, never one picked before)")
async def _pick(ctx: Context, args: list[str]) -> None:
    s, me = ctx.services, ctx.sender
    picked = await s.api.pick(me)
    s.memory.set_picked(me, str(picked["bottle_id"]))
    await ctx.reply(bottle_text(picked, s.now_ms()))


@MEET.command("reply", args="<text>",
              help="answer the bottle you picked last: its thrower gets a chat request with your text")
async def _reply(ctx: Context, args: list[str]) -> None:
    s, me = ctx.services, ctx.sender
    text = rest_after(ctx.body, 1)
    bottle = s.memory.picked(me)
    if bottle is None:
        await ctx.reply("Pick a bottle first (“pick”): “reply <text>” answers the last bottle you picked.")
        return
    if not text:
        await ctx.reply("Usage: “reply <text>”: your answer to the last bottle you picked.")
        return
    await s.api.reply(me, bottle, text)
    await ctx.reply("Your reply is on its way: the thrower sees it as a chat request. "
                    "I'll tell you if they accept; the chat opens then.")


# -- requests ----------------------------------------------------------------------------------

@REQUESTS.command("requests", help="your open chat requests, numbered for “accept” and “decline”")
async def _requests(ctx: Context, args: list[str]) -> None:
    s, me = ctx.services, ctx.sender
    entries, numbers = await numbered_requests(s, me)
    await ctx.reply(requests_text(entries, numbers, s.now_ms()))


async def _answer(ctx: Context, args: list[str], accept: bool) -> None:
    s, me = ctx.services, ctx.sender
    verb = "accept" if accept else "decline"
    number = parse_number(args[0]) if len(args) == 1 else None
    if number is None:
        await ctx.reply(f"Usage: “{verb} <n>”, n being the request's number in the last list of requests "
                        "I showed you (send “requests” to see them).")
        return
    request_id = s.memory.list_of(me, REQUESTS_LIST).get(number)
    if request_id is None:
        await ctx.reply(f"There is no request number {number} in the last list of requests I showed you. "
                        "Send “requests” to see them.")
        return
    entry = entry_of(await s.api.requests(me), request_id) or {}
    answer = await s.api.answer(me, request_id, accept)
    other = str(answer.get("user_id") or answer.get("waiting_for") or entry.get("user_id") or "them")
    name = clean(str(entry.get("display_name") or other))
    state = answer.get("state")
    if state == "accepted":
        s.memory.mark_told(me, request_id, "accepted")
        text = accepted_text(other, name, answer.get("room_id"), answer.get("encrypted"), kind=entry.get("kind"))
        if answer.get("coupon") == "requested":
            text += " " + COUPON_REQUESTED
        await ctx.reply(text)
    elif state == "waiting":
        await ctx.reply(f"You accepted. The chat with {name} ({other}) opens when they accept too; "
                        "I'll tell you when they do.")
    else:
        await ctx.reply(f"Declined: the request of {name} ({other}) is gone. They are not told.")


@REQUESTS.command("accept", args="<n>", help="accept request n: the direct chat opens once everyone has accepted")
async def _accept(ctx: Context, args: list[str]) -> None:
    await _answer(ctx, args, True)


@REQUESTS.command("decline", args="<n>", help="decline request n (the other person is not told)")
async def _decline(ctx: Context, args: list[str]) -> None:
    await _answer(ctx, args, False)


# -- safety ------------------------------------------------------------------------------------

@SAFETY.command("block", args="@user", help="you and they never see each other in discovery again")
async def _block(ctx: Context, args: list[str]) -> None:
    s, me = ctx.services, ctx.sender
    target = parse_user_id(args[0], s.server_name) if len(args) == 1 else None
    if target is None:
        await ctx.reply("Usage: “block @user:server” (the id I showed you with their name).")
        return
    await s.api.block(me, target)
    await ctx.reply(f"Blocked {target}: you and they will never see each other in discovery again.")


@SAFETY.command("report", args="@user <reason>",
                help="report someone to the server's admins (blocks them too, and takes them out of "
                     "discovery until an admin has looked)")
async def _report(ctx: Context, args: list[str]) -> None:
    s, me = ctx.services, ctx.sender
    target = parse_user_id(args[0], s.server_name) if args else None
    reason = rest_after(ctx.body, 2)
    if target is None or not reason:
        await ctx.reply("Usage: “report @user:server <reason>”, e.g. “report @someone:example.org rude messages”.")
        return
    await s.api.report(me, target, reason)
    await ctx.reply(f"Reported {target} to the server's admins, and blocked them. They are out of discovery "
                    "until an admin has looked. Thank you.")


# -- coupons -----------------------------------------------------------------------------------

@COUPONS.command("coupons", help="your coupons from 36.8° pairings: their codes, and the ones still on their way")
async def _coupons(ctx: Context, args: list[str]) -> None:
    s, me = ctx.services, ctx.sender
    await ctx.reply(coupons_text(await s.api.coupons(me)))
