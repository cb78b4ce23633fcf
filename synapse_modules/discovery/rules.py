"""What discovery accepts and how its limits decide: pure, no I/O.

Each check raises a Matrix error (``SynapseError``) that names the field and never echoes a
coordinate (Synapse logs error messages). The HTTP handlers check everything here before they
write anything, so a refused request changes nothing. The pairing engine is in ``pairing.py``
and the cells and distance bands in ``cells.py``, both pure too.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from typing import Any

import attrs
from synapse.module_api import errors

from synapse_modules._http import USER_ID_RE

DAY_MS = 24 * 3600 * 1000
MAX_NAME_CHARS = 64
MAX_REASON_CHARS = 1000
GENDERS = ("female", "male", "nonbinary", "other")
# Discovery is for adults: the ranges start at 18 (docs/discovery.md, "Safety").
AGE_RANGES = ("18-24", "25-34", "35-44", "45-54", "55-64", "65+")
# Ids the server hands out (requests, bottles, reports): what ``new_id`` makes.
ID_RE = re.compile(r"^[A-Za-z0-9_-]{8,64}$")

_ABSENT: Any = object()


def bad_json(message: str) -> Exception:
    return errors.SynapseError(400, message, errors.Codes.BAD_JSON)


def invalid(message: str) -> Exception:
    return errors.SynapseError(400, message, errors.Codes.INVALID_PARAM)


def forbidden(message: str) -> Exception:
    return errors.SynapseError(403, message, errors.Codes.FORBIDDEN)


def not_found(message: str) -> Exception:
    return errors.SynapseError(404, message, errors.Codes.NOT_FOUND)


def conflict(message: str) -> Exception:
    return errors.SynapseError(409, message, errors.Codes.UNKNOWN)


def limit_exceeded(limit: str, reason: str, retry_after_ms: int) -> Exception:
    """429 ``M_LIMIT_EXCEEDED`` naming the limit (``org.wangxin.limit``) and when to try again."""
    retry_after_ms = max(1, int(retry_after_ms))
    return errors.SynapseError(
        429, f"{reason}: try again in {_duration(retry_after_ms)}", errors.Codes.LIMIT_EXCEEDED,
        additional_fields={"retry_after_ms": retry_after_ms, "org.wangxin.limit": limit},
        headers={"Retry-After": str(-(-retry_after_ms // 1000))},
    )


def _duration(ms: int) -> str:
    if ms < 60_000:
        return f"{-(-ms // 1000)} s"
    minutes = -(-ms // 60_000)
    if minutes < 60:
        return f"{minutes} min"
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes} min" if minutes else f"{hours} h"


# -- request bodies ---------------------------------------------------------------------------

def only_fields(body: Mapping[str, Any], known: Sequence[str]) -> None:
    for key in body:
        if key not in known:
            raise bad_json(f"Unknown field '{key}'; expected {', '.join(repr(k) for k in known)}")


@attrs.frozen
class ProfileChange:
    """``PUT /profile``: ``enabled``, and the fields given (``None`` clears one)."""

    enabled: bool
    fields: Mapping[str, str | None]


def parse_profile(body: Mapping[str, Any]) -> ProfileChange:
    only_fields(body, ("enabled", "name", "gender", "age_range"))
    enabled = body.get("enabled")
    if not isinstance(enabled, bool):
        raise bad_json("'enabled' must be true or false")
    fields: dict[str, str | None] = {}
    name = body.get("name", _ABSENT)
    if name is not _ABSENT:
        if name is not None:
            if not isinstance(name, str) or not name.strip():
                raise bad_json("'name' must be a non-empty string, or null")
            if len(name) > MAX_NAME_CHARS:
                raise bad_json(f"'name' is longer than {MAX_NAME_CHARS} characters")
            name = name.strip()
        fields["name"] = name
    for key, allowed in (("gender", GENDERS), ("age_range", AGE_RANGES)):
        value = body.get(key, _ABSENT)
        if value is _ABSENT:
            continue
        if value is not None and value not in allowed:
            raise bad_json(f"'{key}' must be one of {', '.join(allowed)}, or null")
        fields[key] = value
    return ProfileChange(enabled, fields)


def parse_location(body: Mapping[str, Any]) -> tuple[float, float]:
    """``{"latitude", "longitude"}`` in degrees. The messages name the field, never its value."""
    only_fields(body, ("latitude", "longitude"))
    found = []
    for key, limit in (("latitude", 90.0), ("longitude", 180.0)):
        value = body.get(key)
        if value is None:
            raise bad_json(f"'{key}' is missing: send a number of degrees")
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise bad_json(f"'{key}' must be a number of degrees")
        if not math.isfinite(value):
            raise bad_json(f"'{key}' must be a finite number")
        if not -limit <= value <= limit:
            raise invalid(f"'{key}' must be between {-limit:g} and {limit:g} degrees")
        found.append(float(value))
    return found[0], found[1]


def parse_angle(body: Mapping[str, Any]) -> float:
    """``{"angle"}``: the phone's tilt in degrees, 0 (flat) to 180."""
    only_fields(body, ("angle",))
    value = body.get("angle")
    if value is None:
        raise bad_json("'angle' is missing: send the phone's angle in degrees, e.g. 36.8")
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise bad_json("'angle' must be a number of degrees")
    if not math.isfinite(value):
        raise bad_json("'angle' must be a finite number")
    if not 0 <= value <= 180:
        raise invalid("'angle' must be between 0 and 180 degrees")
    return float(value)


LANGUAGE_RE = re.compile(r"^[a-z]{2,3}$")


def parse_language(body: Mapping[str, Any]) -> str | None:
    """``{"language"?}``: a language to meet in, as two or three lowercase letters (ISO 639)."""
    only_fields(body, ("language",))
    value = body.get("language")
    if value is None:
        return None
    if not isinstance(value, str) or not LANGUAGE_RE.match(value):
        raise invalid("'language' must be a language code of two or three lowercase letters, like 'zh' or 'en'")
    return value


def parse_user_id(body: Mapping[str, Any], key: str = "user_id") -> str:
    value = body.get(key)
    if not isinstance(value, str) or len(value) > 255 or not USER_ID_RE.match(value):
        raise bad_json(f"'{key}' must be a Matrix user id like @name:server")
    return value


def parse_text(body: Mapping[str, Any], key: str, max_chars: int, *, required: bool = True) -> str | None:
    """A non-empty string of at most ``max_chars`` characters; too long is a 400 (``M_TOO_LARGE``)."""
    value = body.get(key)
    if value is None and not required:
        return None
    if not isinstance(value, str) or not value.strip():
        raise bad_json(f"'{key}' must be a non-empty string")
    if len(value) > max_chars:
        raise errors.SynapseError(400, f"'{key}' is longer than {max_chars} characters ({len(value)})",
                                  errors.Codes.TOO_LARGE)
    return value


def check_id(value: str, what: str) -> str:
    if not ID_RE.match(value):
        raise not_found(f"No such {what}")
    return value


def parse_resolve_action(body: Mapping[str, Any]) -> str:
    only_fields(body, ("action",))
    action = body.get("action")
    if action not in ("restore", "ban"):
        raise bad_json("'action' must be \"restore\" (back into discovery) or \"ban\" (out of discovery for good)")
    return str(action)


# -- limits -----------------------------------------------------------------------------------

@attrs.frozen
class RateDecision:
    allowed: bool
    tat: int  # the bucket's new "theoretical arrival time" (what the store keeps)
    retry_after_ms: int = 0


def rate_decision(tat: int | None, now: int, burst: int, interval_ms: int) -> RateDecision:
    """A leaky bucket as one timestamp (GCRA): each call moves ``tat`` one interval on; a call is
    allowed while ``tat`` is at most ``burst - 1`` intervals ahead of now."""
    tat = max(tat or now, now)
    allowed_from = tat - (burst - 1) * interval_ms
    if allowed_from > now:
        return RateDecision(False, tat, allowed_from - now)
    return RateDecision(True, tat + interval_ms)


def daily_retry_after(timestamps: Sequence[int], now: int, per_day: int) -> int | None:
    """``None`` if one more is allowed in the rolling 24 h, else how long until one is."""
    recent = sorted(ts for ts in timestamps if ts > now - DAY_MS)
    if len(recent) < per_day:
        return None
    return recent[len(recent) - per_day] + DAY_MS - now
