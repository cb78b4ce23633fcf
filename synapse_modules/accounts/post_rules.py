"""What ``POST /accounts/{id}/posts`` accepts, and what a post looks like in a room: pure, no I/O.

Each check raises a Matrix error that names the field (``body``, ``at``, ``segment``,
``segment.<criterion>``): 400 ``M_BAD_JSON`` / ``M_INVALID_PARAM``, or 413 ``M_TOO_LARGE`` for a
body longer than a circle post may be. Callers check everything before they write anything.
"""

from __future__ import annotations

import re
from typing import Any

import attrs
from synapse.module_api import errors

from synapse_modules._http import USER_ID_RE, text_field
from synapse_modules.accounts.rules import ACCOUNT_ID_RE, bad_json, invalid_param
from synapse_modules.merchant_circle.rules import MAX_BODY_CHARS, validate_category
from wangxin_common.when import parse_instant

POST_KEY = "org.wangxin.account_post"  # in each post's content: {"account_id", "post_id"}
INBOX_ROOM_TYPE = "org.wangxin.account_inbox"  # a platform's room with one person, for targeted posts
POST_ID_RE = re.compile(r"^p[0-9a-f]{16}$")
# A post's life: ``scheduled`` (waiting for its time) -> ``sending`` (the loop has it) -> ``sent``;
# a targeted post is ``delivering`` while its people are served. ``cancelled`` by its owner,
# ``failed`` when it can never be sent.
STATES = ("scheduled", "sending", "delivering", "sent", "cancelled", "failed")
SEGMENT_KEYS = ("category", "merchant", "purchased_within_days")
MAX_SEGMENT_DAYS = 3650
MAX_MERCHANT_CHARS = 255


@attrs.frozen
class Segment:
    """Who a platform's targeted post is for: buyers of a category, of a merchant, within some
    days (every criterion given must hold for one purchase)."""

    category: str | None = None
    merchant: str | None = None  # a merchant's user id or account id, as given (resolved by the caller)
    purchased_within_days: int | None = None

    def as_json(self) -> dict[str, Any]:
        return {k: v for k, v in attrs.asdict(self).items() if v is not None}


@attrs.frozen
class PostInput:
    body: str
    at: int | None  # when to deliver it (ms since the epoch); None: now
    segment: Segment | None


def validate_post(body: dict[str, Any], kind: str, now: int, max_schedule_days: int) -> PostInput:
    text = text_field(body, "body", MAX_BODY_CHARS)
    at = validate_at(body.get("at"), now, max_schedule_days)
    segment = validate_segment(body.get("segment"), kind)
    return PostInput(text, at, segment)


def validate_at(value: Any, now: int, max_days: int) -> int | None:
    """``at``: ms since the epoch, or an ISO 8601 time (UTC unless it carries an offset), in the
    future and at most ``max_days`` days ahead; ``None`` (absent) means now."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, str)):
        raise bad_json("'at' must be a time: milliseconds since the epoch, or like 2026-12-24T18:00+08:00")
    at = value if isinstance(value, int) else parse_instant(value) if len(value) <= 64 else None
    if at is None:
        raise invalid_param("'at' is not a time: give milliseconds since the epoch, or a time like "
                            "2026-12-24T18:00+08:00 (UTC without an offset)")
    if at <= now:
        raise invalid_param("'at' is in the past: leave it out to post now")
    if at > now + max_days * 86_400_000:
        raise invalid_param(f"'at' is more than {max_days} days ahead")
    return at


def validate_segment(value: Any, kind: str) -> Segment | None:
    if value is None:
        return None
    if not isinstance(value, dict):
        raise bad_json("'segment' must be an object with category, merchant and/or purchased_within_days")
    if kind != "platform":
        raise invalid_param(f"'segment': only platform accounts send targeted posts; this one is a {kind}")
    unknown = sorted(set(value) - set(SEGMENT_KEYS))
    if unknown:
        raise bad_json(f"'segment.{unknown[0]}' is not a criterion (category, merchant, purchased_within_days)")
    if all(value.get(k) is None for k in SEGMENT_KEYS):
        raise invalid_param("'segment' has no criterion: give category, merchant and/or purchased_within_days "
                            "(a post to everyone is a plain post)")
    category = None
    if value.get("category") is not None:
        category = validate_category(value["category"], "segment.category")
    merchant = value.get("merchant")
    if merchant is not None:
        if not isinstance(merchant, str) or len(merchant) > MAX_MERCHANT_CHARS or not (
                USER_ID_RE.match(merchant) or ACCOUNT_ID_RE.match(merchant)):
            raise bad_json("'segment.merchant' must be a merchant's user id (@shop:server) or account id")
    days = value.get("purchased_within_days")
    if days is not None and (isinstance(days, bool) or not isinstance(days, int) or not 1 <= days <= MAX_SEGMENT_DAYS):
        raise bad_json(f"'segment.purchased_within_days' must be a whole number from 1 to {MAX_SEGMENT_DAYS}")
    return Segment(category, merchant, days)


def validate_state_filter(value: str | None) -> str | None:
    if value is None or value == "all":
        return None
    if value not in STATES:
        raise invalid_param(f"'state' must be one of {', '.join(STATES)} or all")
    return value


def validate_post_id(value: str) -> str:
    if not POST_ID_RE.match(value):
        raise errors.SynapseError(404, f"No post {value[:40]}", errors.Codes.NOT_FOUND)
    return value


def post_content(text: str, account_id: str, post_id: str) -> dict[str, Any]:
    """The event a post is: plain text, tagged with the account and the post (for clients, and
    for the account's statistics)."""
    return {"msgtype": "m.text", "body": text, POST_KEY: {"account_id": account_id, "post_id": post_id}}


def inbox_name(account_name: str) -> str:
    return f"{account_name} · 定向推送"


def inbox_room_config(account_id: str, account_name: str, avatar_url: str | None, account_user: str,
                      person: str) -> dict[str, Any]:
    """A platform's room with one person, made by the circles' owner (no login; it outranks every
    power level in room version 12): invite-only, never world-readable or open to guests, read-only
    for the person (posting needs 50: the account's user), every state event needs 100."""
    initial_state: list[dict[str, Any]] = [
        {"type": "m.room.history_visibility", "state_key": "", "content": {"history_visibility": "shared"}},
        {"type": "m.room.guest_access", "state_key": "", "content": {"guest_access": "forbidden"}},
        {"type": "m.room.join_rules", "state_key": "", "content": {"join_rule": "invite"}},
    ]
    if avatar_url:
        initial_state.append({"type": "m.room.avatar", "state_key": "", "content": {"url": avatar_url}})
    return {
        "room_version": "12",
        "preset": "private_chat",
        "visibility": "private",
        "name": inbox_name(account_name),
        "topic": f"Posts from {account_name} chosen for you from your purchases. Leave to receive no more.",
        "invite": [account_user, person],
        "creation_content": {"type": INBOX_ROOM_TYPE, "org.wangxin.account": account_id},
        "initial_state": initial_state,
        "power_level_content_override": {
            "users": {account_user: 50},
            "users_default": 0,
            "events_default": 50,
            "state_default": 100,
            "invite": 100,
            "kick": 100,
            "ban": 100,
            "redact": 50,
            "notifications": {"room": 100},
        },
    }
