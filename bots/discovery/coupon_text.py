"""你我36.8度's coupons in chat: a person's list (``coupons``) and the notice of each change of
one of theirs (on its way, issued, none). Pure: no I/O.

A coupon's title, code and expiry come from the shop platform, outside the server: they are
cleaned and cut like a stranger's words (``text.clean``), so a platform answer cannot pass for
the bot's own lines. These texts are for the person whose coupon it is, in a chat of only them
and the bot (``private.py``): never in a room anyone else reads.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

from bots.discovery.text import clean

MAX_TITLE_CHARS = 200
MAX_CODE_CHARS = 100
MAX_EXPIRY_CHARS = 64
# Why a pairing earned no coupon (the module's ``reason``), in words.
NONE_REASONS = {
    "daily_limit": "you had reached the daily limit of rewarded pairings",
    "platform_declined": "the shop declined to give one for it",
    "gave_up": "the shop did not answer, however many times it was asked",
}
# The states a person is told of, once each per pairing; "waiting" (asked, no answer yet) is
# not news: most coupons are issued a moment later.
TOLD_STATES = ("delayed", "issued", "none")
NO_COUPONS = ("You have no coupons yet. Send “angle 36.8” (or hold your phone at 36.8° in the app) at the same "
              "moment as someone else: you are paired, and when you both accept, each of you gets a coupon.")


def expiry_text(expires_at: Any) -> str | None:
    """The platform's expiry (a string, as the module passes it on): an ISO time with its zone
    (``2027-12-31T23:59:59Z``) as a UTC date and time, anything else (a date) as it came; a
    timestamp (seconds or milliseconds) as a UTC date and time. None if there is none."""
    if isinstance(expires_at, bool) or expires_at is None:
        return None
    if isinstance(expires_at, int | float):
        seconds = expires_at / 1000 if expires_at >= 1e11 else expires_at
        try:
            return time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime(seconds))
        except (OverflowError, OSError, ValueError):
            return None
    if isinstance(expires_at, str):
        try:
            moment = datetime.fromisoformat(expires_at.strip())
        except ValueError:
            moment = None
        if moment is not None and moment.tzinfo is not None:
            return moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC")
        return clean(expires_at, max_chars=MAX_EXPIRY_CHARS) or None
    return None


def _with(coupon: Mapping[str, Any]) -> str:
    return clean(str(coupon.get("with") or "someone"), max_chars=MAX_TITLE_CHARS)


def _title(coupon: Mapping[str, Any]) -> str:
    return clean(str(coupon.get("title") or "A coupon"), max_chars=MAX_TITLE_CHARS)


def _code(coupon: Mapping[str, Any]) -> str:
    return clean(str(coupon.get("code") or ""), max_chars=MAX_CODE_CHARS)


def none_reason(coupon: Mapping[str, Any]) -> str:
    return NONE_REASONS.get(str(coupon.get("reason")), "no coupon was given for it")


def coupon_line(coupon: Mapping[str, Any]) -> str:
    """One coupon as the list shows it."""
    state, pairing = coupon.get("state"), f"36.8° pairing with {_with(coupon)}"
    if state == "issued":
        code, expiry = _code(coupon), expiry_text(coupon.get("expires_at"))
        details = "".join([f" — code {code}" if code else "", f", valid until {expiry}" if expiry else ""])
        return f"{_title(coupon)}{details} ({pairing})"
    if state == "delayed":
        return f"on its way: the shop is slow to answer and is asked again ({pairing})"
    if state == "none":
        return f"no coupon: {none_reason(coupon)} ({pairing})"
    return f"on its way ({pairing})"


def coupons_text(coupons: Sequence[Mapping[str, Any]]) -> str:
    if not coupons:
        return NO_COUPONS
    return "\n".join(["Your coupons, newest first (only you see them here):",
                      *(f"  • {coupon_line(c)}" for c in coupons)])


def coupon_notice_text(change: Mapping[str, Any]) -> str | None:
    """What the person of a change in the feed of coupons is told; None if it is not news."""
    state, who = change.get("state"), _with(change)
    if state == "delayed":
        return (f"Your coupon from your 36.8° pairing with {who} is on its way: the shop has not answered yet "
                "and is being asked again. I'll send it here as soon as it comes.")
    if state == "issued":
        code, expiry = _code(change), expiry_text(change.get("expires_at"))
        lines = [f"Your coupon from your 36.8° pairing with {who}:", f"  {_title(change)}"]
        if code:
            lines.append(f"  Code: {code}")
        if expiry:
            lines.append(f"  Valid until {expiry}")
        lines.append("Only you see it, in this chat. Send “coupons” to see all of yours.")
        return "\n".join(lines)
    if state == "none":
        return f"Your 36.8° pairing with {who} earned no coupon: {none_reason(change)}."
    return None
