"""Times people type for a scheduled post, read the same way by the bot and the server: pure.

- an instant: ``2026-12-24 18:00`` (UTC), or with its offset: ``2026-12-24 18:00+08:00``,
  ``2026-12-24T18:00:00Z``, ``2026-12-24 18:00 +0800``; seconds are optional;
- from now (the bot only): ``in 2h``, ``in 45m``, ``in 1d``, ``in 1h30m``, ``in 90min``.

Anything else is not a time (``None``): the caller names the field or the command that is wrong.
"""

from __future__ import annotations

import datetime
import re

_OFFSET = r"(?:Z|UTC|[+-]\d{2}(?::?\d{2})?)"
_INSTANT_RE = re.compile(
    r"(?P<y>\d{4})-(?P<mo>\d{2})-(?P<d>\d{2})[T ](?P<h>\d{1,2}):(?P<mi>\d{2})(?::(?P<s>\d{2}))?"
    rf"(?:\s?(?P<off>{_OFFSET}))?"
)
_DURATION_PART_RE = re.compile(r"(\d{1,6})(d|h|min|m)")
_IN_RE = re.compile(r"in\s+(?P<dur>(?:\d{1,6}(?:d|h|min|m)){1,3})(?=\s|$)", re.IGNORECASE)
_UNIT_MS = {"d": 86_400_000, "h": 3_600_000, "m": 60_000, "min": 60_000}


def _offset_minutes(text: str | None) -> int | None:
    if text is None or text in ("Z", "UTC"):
        return 0
    sign = -1 if text[0] == "-" else 1
    digits = text[1:].replace(":", "")
    hours, minutes = int(digits[:2]), int(digits[2:] or 0)
    if hours > 14 or minutes > 59:
        return None
    return sign * (hours * 60 + minutes)


def _instant_at_start(text: str) -> tuple[int, int] | None:
    """``(ms since the epoch, characters read)`` of an instant at the start of ``text``. What
    follows must be a space or the end; so must follow an offset, else it is text (``-50% off``)."""
    match = _INSTANT_RE.match(text)
    if match is None:
        return None
    offset = _offset_minutes(match["off"])
    end = match.end()
    if match["off"] is not None and (offset is None or (end < len(text) and not text[end].isspace())):
        offset, end = 0, match.end("mi") if match["s"] is None else match.end("s")
    if offset is None or (end < len(text) and not text[end].isspace()):
        return None
    try:
        when = datetime.datetime(int(match["y"]), int(match["mo"]), int(match["d"]), int(match["h"]),
                                 int(match["mi"]), int(match["s"] or 0),
                                 tzinfo=datetime.timezone(datetime.timedelta(minutes=offset)))
    except ValueError:  # 2026-02-30, 25:00, …
        return None
    return int(when.timestamp() * 1000), end


def parse_instant(text: str) -> int | None:
    """An instant alone (the whole text, trimmed), in ms since the epoch; no offset means UTC."""
    text = text.strip()
    found = _instant_at_start(text)
    if found is None or found[1] != len(text):
        return None
    return found[0]


def duration_ms(text: str) -> int | None:
    """``2h``, ``1h30m``, ``90min``, ``1d``: the whole text as a duration, or ``None``."""
    total, position = 0, 0
    for part in _DURATION_PART_RE.finditer(text.lower()):
        if part.start() != position:
            return None
        total += int(part[1]) * _UNIT_MS[part[2]]
        position = part.end()
    return total if position == len(text) and total > 0 else None


def parse_when(text: str, now_ms: int) -> tuple[int, str] | None:
    """``(ms since the epoch, the rest of the text)`` for text that starts with a time, either an
    instant or ``in <duration>`` from ``now_ms``; ``None`` if it does not start with one."""
    text = text.lstrip()
    relative = _IN_RE.match(text)
    if relative is not None:
        ms = duration_ms(relative["dur"])
        if ms is None:
            return None
        return now_ms + ms, text[relative.end():].strip()
    found = _instant_at_start(text)
    if found is None:
        return None
    at, end = found
    return at, text[end:].strip()


def format_utc(ms: int) -> str:
    """``2026-12-24 10:00 UTC``: how a scheduled time is shown back."""
    return datetime.datetime.fromtimestamp(ms / 1000, tz=datetime.UTC).strftime("%Y-%m-%d %H:%M UTC")
