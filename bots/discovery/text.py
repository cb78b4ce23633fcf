"""Discovery in chat: what people type read into values, and the API's answers written as plain
sentences. Pure: no I/O.

Everything shown about other people (discovery names, greetings, bottles, replies) was written
by strangers: it is cleaned of control and formatting characters (a name with a right-to-left
override, a greeting with new lines that pretend to be the bot's list) and shown as plain text
(``m.notice`` without HTML), so it is shown as written, never as markup or as the bot's words.
"""

from __future__ import annotations

import math
import re
import time
import unicodedata
from collections.abc import Mapping, Sequence
from typing import Any

import attrs

from bots.discovery.api import ApiError

MAX_LISTED_CHARS = 200  # of a greeting in a list (the whole text is in the notice that tells of it)
MAX_NAME_CHARS = 64
_USER_ID_RE = re.compile(r"^@[^:\s]+:[^\s]+$")
_LOCALPART_RE = re.compile(r"^@[a-z0-9._=/+-]+$", re.IGNORECASE)
_NUMBER_RE = re.compile(r"^[+-]?([0-9]+(\.[0-9]*)?|\.[0-9]+)([eE][+-]?[0-9]+)?$|^[+-]?(nan|inf|infinity)$",
                        re.IGNORECASE)


# -- what people type --------------------------------------------------------------------------

def clean(text: str, *, one_line: bool = True, max_chars: int | None = None) -> str:
    """A stranger's text made safe to show: no control or format characters (bidi overrides,
    zero-width joiners used to fake names), and with ``one_line`` no line breaks."""
    kept = []
    for ch in text:
        if ch in "\n\t" and not one_line:
            kept.append(ch)
        elif unicodedata.category(ch) in ("Cc", "Cf", "Zl", "Zp"):
            kept.append(" " if ch in "\n\t\r\u2028\u2029" else "")
        else:
            kept.append(ch)
    result = "".join(kept)
    result = " ".join(result.split()) if one_line else result.strip()
    if max_chars is not None and len(result) > max_chars:
        result = result[: max_chars - 1].rstrip() + "…"
    return result


def parse_number(word: str) -> int | None:
    """A list number as people type it: ``2``, ``#2``, ``2.``; None if it is not one."""
    word = word.strip().lstrip("#").rstrip(".")
    if not word.isascii() or not word.isdigit() or len(word) > 6:
        return None
    return int(word)


def parse_user_id(word: str, server_name: str) -> str | None:
    """``@name:server``, or ``@name`` for someone on this server; None if it is not a user id."""
    word = word.strip()
    if _USER_ID_RE.match(word) and len(word) <= 255:
        return word
    if _LOCALPART_RE.match(word):
        return f"{word.lower()}:{server_name}"
    return None


def parse_coordinate(word: str) -> float | None:
    """A number of degrees as typed (``31.23``, ``-121.4``); ``nan`` and ``inf`` are numbers too,
    for the server to refuse by name. None if it is not a number at all."""
    word = word.strip()
    if not _NUMBER_RE.match(word):
        return None
    return float(word)


def parse_angle(word: str) -> float | None:
    """An angle in degrees as typed: ``36.8``, ``36.8°``, ``36,8`` (a decimal comma), ``36.8度``;
    ``nan``, ``inf`` and ``200`` are numbers too, for the server to refuse by name. None if it is
    not a number at all."""
    word = word.strip().lower()
    for unit in ("°", "度", "degrees", "deg"):
        if word.endswith(unit):
            word = word[: -len(unit)].strip()
            break
    if word.count(",") == 1 and "." not in word:
        word = word.replace(",", ".")
    return parse_coordinate(word)


def degrees(value: float) -> str:
    """``36.8°``, ``200°``: as people write them."""
    return f"{value:g}°"


def parse_location_args(args: Sequence[str]) -> tuple[float, float] | None:
    """``location 31.23 121.47`` or ``location 31.23,121.47`` (or a ``geo:`` URI)."""
    joined = " ".join(args).strip()
    if joined.lower().startswith("geo:"):
        return parse_geo_uri(joined)
    parts = [p for p in re.split(r"[\s,]+", joined) if p]
    if len(parts) != 2:
        return None
    latitude, longitude = parse_coordinate(parts[0]), parse_coordinate(parts[1])
    if latitude is None or longitude is None:
        return None
    return latitude, longitude


def parse_geo_uri(uri: str) -> tuple[float, float] | None:
    """``geo:<latitude>,<longitude>[,<altitude>][;u=…][;crs=wgs84]`` (RFC 5870, what Element
    sends); None if it is not one, or in another coordinate system."""
    uri = uri.strip()
    if not uri[:4].lower() == "geo:":
        return None
    coordinates, *parameters = uri[4:].split(";")
    for parameter in parameters:
        key, _, value = parameter.partition("=")
        if key.strip().lower() == "crs" and value.strip().lower() != "wgs84":
            return None
    parts = coordinates.split(",")
    if len(parts) not in (2, 3):
        return None
    latitude, longitude = parse_coordinate(parts[0]), parse_coordinate(parts[1])
    if latitude is None or longitude is None:
        return None
    return latitude, longitude


def geo_uri_of(content: Mapping[str, Any]) -> str | None:
    """The ``geo:`` URI of an ``m.location`` message: ``geo_uri``, or the extensible-events form
    (``m.location`` / ``org.matrix.msc3488.location``: ``{"uri"}``) newer clients add."""
    uri = content.get("geo_uri")
    if isinstance(uri, str):
        return uri
    for key in ("m.location", "org.matrix.msc3488.location"):
        block = content.get(key)
        if isinstance(block, Mapping) and isinstance(block.get("uri"), str):
            return str(block["uri"])
    return None


# -- durations and times -----------------------------------------------------------------------

def duration(ms: int) -> str:
    """``45 s``, ``12 min``, ``2 h``, ``1 h 30 min``, ``23 h 59 min``: rounded up, never ``0 s``."""
    ms = max(1, int(ms))
    seconds = math.ceil(ms / 1000)
    if seconds < 60:
        return f"{seconds} s"
    minutes = math.ceil(ms / 60_000)
    if minutes < 60:
        return f"{minutes} min"
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes} min" if minutes else f"{hours} h"


def utc_time(ts_ms: int) -> str:
    return time.strftime("%H:%M UTC", time.gmtime(ts_ms / 1000))


def ago(ts_ms: int, now_ms: int) -> str:
    return "just now" if now_ms - ts_ms < 60_000 else f"{duration(now_ms - ts_ms)} ago"


# -- errors ------------------------------------------------------------------------------------

# The API's fields in words, for a person who typed a command, not a JSON body.
FIELD_WORDS = {
    "latitude": "the latitude",
    "longitude": "the longitude",
    "text": "your text",
    "reason": "the reason",
    "name": "the name",
    "user_id": "the user id",
    "angle": "the angle",
    "language": "the language",
}
OPT_IN_HINT = "Discovery is off for you: send “discover on” to turn it on."
SHARE_HINT = ("Share your location first: send me a location (in Element: the attachment menu, Location), "
              "or type “location <latitude> <longitude>”. Only an area of about a kilometre is kept, for a while.")
NOT_LOCAL = "Discovery is for people with an account on this server."


def _sentence(text: str) -> str:
    text = text.strip()
    if not text:
        return text
    text = text[0].upper() + text[1:]
    return text if text.endswith((".", "!", "?", "…")) else text + "."


def plain_error(error: ApiError) -> str:
    """The module's refusal as a sentence for chat: the fields named in words (``'latitude' must
    be between -90 and 90 degrees`` → ``The latitude must be between -90 and 90 degrees.``), the
    HTTP hints replaced by the chat commands that do the same, and a 429's wait in plain time."""
    message = error.message
    if error.status == 429:
        reason = message.split(": try again in", 1)[0].strip() or "Too many requests"
        if reason == "Too many requests":
            reason = "You are going a little fast"
        wait = f" Try again in {duration(error.retry_after_ms)}." if error.retry_after_ms else " Try again later."
        return _sentence(reason) + wait
    if message.startswith("Discovery is off for you"):
        return OPT_IN_HINT
    if message.startswith("Share your location first"):
        return SHARE_HINT
    if message.startswith("user_id must name a local user"):
        return NOT_LOCAL
    if message.endswith("'user_id' is you"):
        return "That's you: pick someone else."
    if message.startswith("No one by that id is near you"):
        return "No one by that id is near you in discovery. Send “nearby” to see who is."
    if message == "No such request":
        return ("That request is no longer open (it was answered or expired, or the other person left "
                "discovery). Send “requests” to see your open ones.")
    if message == "This request is not yours to answer":
        return "That request is not yours to answer: the other person answers it."
    if error.status not in (400, 403, 404, 409, 413):
        return "Something went wrong on the server; please try again in a minute."
    words = re.sub(r"'(\w+)'", lambda m: FIELD_WORDS.get(m.group(1), m.group(1)), message)
    return _sentence(words)


# -- lists and their numbers -------------------------------------------------------------------

def renumber(previous: Mapping[int, str], current: Sequence[str]) -> dict[int, str]:
    """Numbers for the ids of a list shown again: an id keeps the number it had; a new one gets
    a number never used in the previous list, so a number someone is about to type never
    changes its meaning under them (a notice may show the list again meanwhile). Once the list
    is empty, numbers start again at 1."""
    kept = {n: i for n, i in previous.items() if i in set(current)}
    numbered = set(kept.values())
    next_number = max(previous, default=0) + 1 if kept else 1
    for item in current:
        if item not in numbered:
            kept[next_number] = item
            numbered.add(item)
            next_number += 1
    return dict(sorted(kept.items()))


def nearby_text(people: Sequence[Mapping[str, Any]]) -> str:
    if not people:
        return ("Nobody in discovery is near you right now. Try again later, or “shake” to meet someone "
                "who is shaking at the same moment.")
    lines = ["People near you (send “hi <n> [text]” to say hi):"]
    for n, p in enumerate(people, 1):
        about = ", ".join(str(p[k]) for k in ("gender", "age_range") if p.get(k))
        lines.append(f"  {n}. {clean(str(p.get('display_name') or ''), max_chars=MAX_NAME_CHARS)} "
                     f"({p['user_id']}) — {p['distance']}{f' — {about}' if about else ''}")
    return "\n".join(lines)


KIND_WORDS = {"hi": "said hi", "bottle": "replied to your bottle", "shake": "shake pairing",
              "angle": "36.8° pairing", "video": "face-to-face pairing"}
# Requests that pair two people at once (a shake, 你我36.8度, 面对面): both accept.
PAIRING_KINDS = ("shake", "angle", "video")
VIDEO_CALL_HINT = "Start the video call there (in Element: the camera button at the top of the chat)."


def pairing_name(kind: Any) -> str:
    """``shake pairing``, ``36.8° pairing``, ``face-to-face pairing``."""
    return KIND_WORDS[kind] if kind in PAIRING_KINDS else "pairing"


def pairing_news(kind: Any, who: str) -> str:
    """A new pairing as its two people hear of it (``who``: the other, as ``Name (@id)``)."""
    if kind == "angle":
        return (f"Your 36.8° pairing matched you with {who}! The chat opens when you both accept, and then "
                "each of you gets a coupon from the shop, here (within the daily limit).")
    if kind == "video":
        return (f"{who} wants to meet face to face (video): the face-to-face queue paired you. The chat for "
                "your call opens when you both accept.")
    return f"Your shake paired you with {who}! The chat opens when you both accept."


def _quoted(text: Any, max_chars: int = MAX_LISTED_CHARS) -> str:
    return f"“{clean(str(text), max_chars=max_chars)}”" if text else ""


def request_line(entry: Mapping[str, Any], now_ms: int) -> str:
    """One open request as a list shows it (without its number)."""
    who = f"{clean(str(entry.get('display_name') or ''), max_chars=MAX_NAME_CHARS)} ({entry['user_id']})"
    when = ago(int(entry.get("created_ts") or now_ms), now_ms)
    text = _quoted(entry.get("text"))
    kind = entry.get("kind")
    if entry.get("direction") == "outgoing":
        what = "your reply to their bottle" if kind == "bottle" else "you said hi"
        return f"{who}: {what}{' ' + text if text else ''} — waiting for their answer ({when})"
    if kind in PAIRING_KINDS:
        state = ("you accepted, waiting for them" if entry.get("accepted_by_you")
                 else "they accepted, waiting for you" if entry.get("accepted_by_them") else "waiting for you both")
        return f"{who}: {pairing_name(kind)} — {state} ({when})"
    return f"{who} {KIND_WORDS.get(str(kind), 'asked')}{': ' + text if text else ''} ({when})"


def answerable(entry: Mapping[str, Any]) -> bool:
    """Whether the person may accept or decline it (not their own hi or reply)."""
    return entry.get("direction") != "outgoing"


def requests_text(entries: Sequence[Mapping[str, Any]], numbers: Mapping[int, str], now_ms: int,
                  heading: str = "Your open requests") -> str:
    """The open requests: the ones to answer numbered (``numbers``: number -> request id), the
    ones waiting for the other person after them."""
    by_id = {str(e["request_id"]): e for e in entries}
    numbered = [(n, by_id[rid]) for n, rid in numbers.items() if rid in by_id]
    waiting = [e for e in entries if not answerable(e)]
    if not numbered and not waiting:
        return "You have no open requests."
    lines = []
    if numbered:
        lines.append(f"{heading} (send “accept <n>” or “decline <n>”):")
        lines += [f"  {n}. {request_line(e, now_ms)}" for n, e in numbered]
    if waiting:
        lines.append("Waiting for the other person:" if numbered else f"{heading}, waiting for the other person:")
        lines += [f"  • {request_line(e, now_ms)}" for e in waiting]
    return "\n".join(lines)


# -- answers -----------------------------------------------------------------------------------

def area_text(answer: Mapping[str, Any]) -> str:
    area = answer.get("area_km")
    if isinstance(area, Mapping) and area.get("height") and area.get("width"):
        return f"an area of about {area['height']} km × {area['width']} km"
    return "an area of about a kilometre"


def location_kept_text(answer: Mapping[str, Any], now_ms: int) -> str:
    """What the server kept of a shared position: a cell, never the position, and until when."""
    expires = int(answer.get("expires_ts") or now_ms)
    return (f"Location shared: I kept only {area_text(answer)} that holds your position, not the position "
            f"itself, for {duration(expires - now_ms)} (until {utc_time(expires)}), and removed your "
            "message with the coordinates from this chat. Send “nearby” to see who is around, "
            "or “location off” to stop sharing now.")


def bottle_text(picked: Mapping[str, Any], now_ms: int) -> str:
    sender = picked.get("from") or {}
    name = clean(str(sender.get("display_name") or ""), max_chars=MAX_NAME_CHARS)
    body = clean(str(picked.get("text") or ""), one_line=False)
    quoted = "\n".join(f"    {line}" for line in body.splitlines() or [""])
    thrown = ago(int(picked.get("thrown_ts") or now_ms), now_ms)
    return (f"You picked a bottle thrown by {name} ({sender.get('user_id')}) {thrown}:\n{quoted}\n"
            "Send “reply <text>” to answer it (they see your reply as a chat request), or just leave it.")


def profile_text(profile: Mapping[str, Any], now_ms: int) -> str:
    if not profile.get("enabled"):
        if profile.get("status") == "banned":
            return "You may no longer use discovery on this server."
        return "Discovery is off for you: nobody sees you. Send “discover on” to turn it on."
    name = clean(str(profile.get("name") or ""), max_chars=MAX_NAME_CHARS)
    lines = [f"Discovery is on: others see you as “{name}”."]
    if profile.get("status") == "under_review":
        lines.append("Your profile is under review by the server's admins: until then you are out of every list.")
    location = profile.get("location") or {}
    if location.get("shared") and location.get("expires_ts"):
        until = utc_time(int(location["expires_ts"]))
        lines.append(f"Your location (an area of about a kilometre, not your position) is kept until {until}.")
    else:
        lines.append("You are not sharing a location: send me one to see people nearby.")
    return " ".join(lines)


@attrs.frozen
class Notice:
    """Someone to tell about a change of a request: ``what`` is ``new`` (a hi, a reply to their
    bottle, a pairing: shake, 36.8°, face to face), ``accepted_by_other`` (the partner of a
    pairing accepted first) or ``accepted`` (the chat is open)."""

    user_id: str
    what: str


def notices_for(change: Mapping[str, Any]) -> list[Notice]:
    """Who should hear of a change in the feed of requests. A decline is told to nobody."""
    state, mutual = change.get("state"), bool(change.get("mutual"))
    sender, recipient = str(change["sender"]), str(change["recipient"])
    if state == "pending" and change.get("created_ts") == change.get("updated_ts"):
        return [Notice(sender, "new"), Notice(recipient, "new")] if mutual else [Notice(recipient, "new")]
    if state == "pending" and mutual and change.get("sender_accepted") != change.get("recipient_accepted"):
        return [Notice(recipient if change.get("sender_accepted") else sender, "accepted_by_other")]
    if state == "accepted":
        return [Notice(sender, "accepted"), Notice(recipient, "accepted")] if mutual else [Notice(sender, "accepted")]
    return []


def other_of(change: Mapping[str, Any], user_id: str) -> tuple[str, str]:
    """The other party of a change, as ``(user id, discovery name or the id)``."""
    if change["sender"] == user_id:
        return str(change["recipient"]), clean(str(change.get("recipient_name") or change["recipient"]))
    return str(change["sender"]), clean(str(change.get("sender_name") or change["sender"]))


def matrix_to(room_id: str) -> str:
    return f"https://matrix.to/#/{room_id}"


def accepted_text(other_id: str, other_name: str, room_id: str | None, encrypted: bool | None = None,
                  kind: Any = None) -> str:
    where = f" {matrix_to(room_id)}" if room_id else ""
    note = " It is end-to-end encrypted: only the two of you can read it." if encrypted else ""
    call = f" {VIDEO_CALL_HINT}" if kind == "video" else ""
    return (f"You and {clean(other_name, max_chars=MAX_NAME_CHARS)} ({other_id}) have a direct chat now: "
            f"look for it in your chat list.{where}{note}{call}")
