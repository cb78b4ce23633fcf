"""What ``POST /accounts/{id}/posts`` accepts, and what a post looks like in a room: pure, no I/O.

Each check raises a Matrix error that names the field (``body``, ``at``, ``segment``,
``segment.<criterion>``, ``product.<field>``, ``image.<field>``): 400 ``M_BAD_JSON`` /
``M_INVALID_PARAM``, or 413 ``M_TOO_LARGE`` for a body longer than a circle post may be. Callers
check everything before they write anything.

A post may carry a **product** and an **image**: the merchant bot's product post (the photo above a
QR code of the buy link, a caption, ``org.wangxin.product``), sent by the server from the
account's own user. Its content is what the bot used to send itself, so the merchant circle
(``classify_circle_event``) counts it as a product post: the daily quota and the product's
cooldown apply.
"""

from __future__ import annotations

import re
from typing import Any

import attrs
from synapse.module_api import errors

from synapse_modules._http import USER_ID_RE, text_field
from synapse_modules.accounts.rules import ACCOUNT_ID_RE, bad_json, invalid_param
from synapse_modules.merchant_circle.rules import (
    MAX_BODY_CHARS,
    PRODUCT_KEY,
    validate_category,
    validate_mxc,
    validate_product,
)
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
# A product post: the product as the merchant circle stores it (``image`` is added from the post's
# image), and the image as an ``m.image`` event carries it.
PRODUCT_FIELDS = ("id", "title", "price", "currency", "url")
IMAGE_FIELDS = ("url", "filename", "info")
IMAGE_INFO_FIELDS = ("mimetype", "size", "w", "h")
MAX_FILENAME_CHARS = 255
MAX_MIMETYPE_CHARS = 100
MAX_IMAGE_BYTES = 2**53 - 1  # JSON's largest safe integer: any size a client may report
MAX_IMAGE_SIDE = 100_000  # pixels


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
class PostImage:
    """A post's picture: ``url`` (mxc), and what ``m.image`` carries beside it."""

    url: str
    filename: str | None = None
    info: dict[str, Any] = attrs.field(factory=dict)  # mimetype, size, w, h: as given


@attrs.frozen
class PostInput:
    body: str
    at: int | None  # when to deliver it (ms since the epoch); None: now
    segment: Segment | None
    product: dict[str, Any] | None = None  # {id, title, price, currency, url}: a product post
    image: PostImage | None = None


def validate_post(body: dict[str, Any], kind: str, now: int, max_schedule_days: int) -> PostInput:
    text = text_field(body, "body", MAX_BODY_CHARS)
    at = validate_at(body.get("at"), now, max_schedule_days)
    segment = validate_segment(body.get("segment"), kind)
    product = validate_post_product(body.get("product"))
    image = validate_post_image(body.get("image"))
    if product is not None or image is not None:
        field = "product" if product is not None else "image"
        if at is not None:
            raise invalid_param(f"'{field}': a post with a product or an image is posted now; it cannot be "
                                "scheduled (leave out 'at')")
        if segment is not None:
            raise invalid_param(f"'{field}': a targeted post carries text only (leave out 'segment')")
    return PostInput(text, at, segment, product, image)


def _known_fields(value: dict[str, Any], path: str, fields: tuple[str, ...]) -> None:
    unknown = sorted(str(k) for k in set(value) - set(fields))
    if unknown:
        raise bad_json(f"'{path}.{unknown[0]}' is not a field of {path} ({', '.join(fields)})")


def validate_post_product(value: Any) -> dict[str, Any] | None:
    """``product``: ``{id, title, price, currency, url}``, checked as the merchant circle checks
    a post's product (so a product the API accepts is one the circle accepts)."""
    if value is None:
        return None
    if not isinstance(value, dict):
        raise bad_json(f"'product' must be an object with {', '.join(PRODUCT_FIELDS)}")
    _known_fields(value, "product", PRODUCT_FIELDS)
    return {k: v for k, v in validate_product(value, "product").items() if k in PRODUCT_FIELDS}


def validate_post_image(value: Any) -> PostImage | None:
    """``image``: ``{url: mxc://…, filename?, info?: {mimetype?, size?, w?, h?}}``."""
    if value is None:
        return None
    if not isinstance(value, dict):
        raise bad_json("'image' must be an object with url (mxc://…), and optionally filename and info")
    _known_fields(value, "image", IMAGE_FIELDS)
    url = validate_mxc(value.get("url"), "image.url")
    filename = None
    if value.get("filename") is not None:
        filename = text_field(value, "filename", MAX_FILENAME_CHARS, path="image.filename")
    info = value.get("info")
    if info is None:
        return PostImage(url, filename, {})
    if not isinstance(info, dict):
        raise bad_json("'image.info' must be an object with mimetype, size, w and/or h")
    _known_fields(info, "image.info", IMAGE_INFO_FIELDS)
    checked: dict[str, Any] = {}
    if info.get("mimetype") is not None:
        mimetype = text_field(info, "mimetype", MAX_MIMETYPE_CHARS, path="image.info.mimetype")
        if not mimetype.startswith("image/"):
            raise bad_json("'image.info.mimetype' must be an image type, like image/jpeg")
        checked["mimetype"] = mimetype
    for key, top in (("size", MAX_IMAGE_BYTES), ("w", MAX_IMAGE_SIDE), ("h", MAX_IMAGE_SIDE)):
        number = info.get(key)
        if number is None:
            continue
        if isinstance(number, bool) or not isinstance(number, int) or not 0 <= number <= top:
            raise bad_json(f"'image.info.{key}' must be a whole number from 0 to {top}")
        checked[key] = number
    return PostImage(url, filename, checked)


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


def post_content(text: str, account_id: str, post_id: str, product: dict[str, Any] | None = None,
                 image: PostImage | None = None) -> dict[str, Any]:
    """The event a post is: plain text, tagged with the account and the post (for clients, and
    for the account's statistics); with an image an ``m.image`` whose caption is the text; with a
    product its ``org.wangxin.product`` (carrying the image's mxc, as the bot's posts always did,
    so ``repost`` can show it again)."""
    content: dict[str, Any] = {"msgtype": "m.text", "body": text,
                               POST_KEY: {"account_id": account_id, "post_id": post_id}}
    if image is not None:
        content["msgtype"] = "m.image"
        content["url"] = image.url
        if image.filename is not None:
            content["filename"] = image.filename
        content["info"] = dict(image.info)
    if product is not None:
        content[PRODUCT_KEY] = {**product, "image": image.url} if image is not None else dict(product)
    return content


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
