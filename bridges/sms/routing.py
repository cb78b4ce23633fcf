"""Who gets an SMS reply (pure): the remote person answers one user, and only that user reads it.

One gateway number shared by everyone cannot tell whom a reply is for. So, as SMS proxies do,
the bridge sends from a *pool* of numbers (``sms.twilio.from``) and binds each (user, remote
number) pair to one of them: each remote number sees each Wangxin user from a number of its own,
and a reply is routed by the number it was sent to. When more users text one remote number than
the pool has numbers, users share a number for it and each of their SMS carries a *reply code*
(``#2``), which the reply must start with. A reply that matches no single user reaches nobody;
the remote person gets one SMS saying how to answer (at most once per ``refusal_interval_s``).

The bindings and their SQL are in ``bridges/sms/store.py``; this module decides, from the
bindings of the (remote number, our number) pair, whom a reply is for.
"""

from __future__ import annotations

import re

import attrs

# "#2 hi", "#2: hi", "＃２，好" (Chinese input methods type fullwidth): a code of up to 4 digits.
_CODE_RE = re.compile(r"\A\s*[#＃]\s*(\d{1,4})(?!\d)[\s:：,，.。;；\-]*")


@attrs.frozen
class Binding:
    user_id: str
    pool_number: str  # "" for conversations from before the pool (any of our numbers)
    reply_code: int | None


@attrs.frozen
class Resolved:
    user_id: str
    body: str  # without the reply code


@attrs.frozen
class Unroutable:
    # "unknown": nobody texts this person from that number; "ambiguous": several do, and the
    # reply names none of them by a code.
    reason: str


def parse_reply_code(body: str) -> tuple[int | None, str]:
    """The reply code a text starts with, and the text without it."""
    match = _CODE_RE.match(body)
    if not match:
        return None, body
    return int(match.group(1)), body[match.end():]  # int() reads fullwidth digits too


def resolve(bindings: list[Binding], body: str) -> Resolved | Unroutable:
    """Whom a reply is for, among the users bound to the pair it came through."""
    if not bindings:
        return Unroutable("unknown")
    code, rest = parse_reply_code(body)
    if len(bindings) == 1:
        only = bindings[0]
        # A lone user's own code is dropped; any other "#n" is part of what the person wrote.
        return Resolved(only.user_id, rest if code is not None and code == only.reply_code and rest else body)
    named = [b for b in bindings if code is not None and b.reply_code == code]
    if len(named) != 1:
        return Unroutable("ambiguous")
    return Resolved(named[0].user_id, rest or body)
