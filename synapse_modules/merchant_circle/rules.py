"""What the merchant circle accepts: merchants' profiles, purchases, circle events, moments rooms.

Pure checks, no I/O (``spam_checks.py`` and ``http.py`` apply them). Each raises a Matrix error
(``SynapseError``) that names the field: 400 ``M_BAD_JSON`` for a wrong shape, 413
``M_TOO_LARGE`` for something too long. Callers check everything here before they write
anything, so a refused request changes nothing.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from decimal import Decimal, InvalidOperation
from typing import Any

import attrs
from synapse.module_api import errors

from synapse_modules._http import check_json_value, text_field

CIRCLE_ROOM_TYPE = "org.wangxin.merchant_circle"
# In the create event of a circle's further room (a shard): its number (the first room has none).
SHARD_KEY = "org.wangxin.shard"
# In a mirror of a post (or of its edit) in a circle's further room: the first room's event.
MIRROR_KEY = "org.wangxin.mirror_of"
MOMENTS_ROOM_TYPE = "org.wangxin.moments"
PRODUCT_KEY = "org.wangxin.product"

# Free text: a shop's name (the circle is named "<name> · 商家圈"), a post's caption, a product.
MAX_NAME_CHARS = 80
MAX_AVATAR_URL_CHARS = 255
MAX_BODY_CHARS = 4000
PRODUCT_LIMITS = {"id": 128, "title": 200, "currency": 8, "url": 2048}
MAX_PRICE_CHARS = 32
# The platform's order ids travel in URLs (GET /purchases/{orderId}): letters, digits and
# ``. _ : @ -``, starting with a letter or digit (no ``.`` or ``..`` path segment), 1–128 long.
ORDER_ID_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:@-]{0,127}$")
MAX_ITEMS = 100
MAX_ITEM_BYTES = 1024  # one item, as compact JSON
# An item's optional ``category`` (what platforms target posts by): compared trimmed, ASCII
# letters in lower case.
MAX_CATEGORY_CHARS = 64

_MXC_RE = re.compile(r"^mxc://[A-Za-z0-9.:\[\]-]+/[A-Za-z0-9_-]+$")

# Circle events. Everything a follower's client shows is a post (counted by the daily quota), a
# bounded change of an existing post (an edit, a poll's end), or the removal of a post; anything
# else is refused in circles.
POST_TYPES = frozenset({"m.room.message", "m.sticker", "m.poll.start", "org.matrix.msc3381.poll.start"})
POLL_END_TYPES = frozenset({"m.poll.end", "org.matrix.msc3381.poll.end"})
REDACTION = "m.room.redaction"

# Join rules under which anyone can see a room's name, topic and members (``/room_summary``,
# ``/hierarchy``) or ask to join it: not for friends-only moments.
NOT_FRIENDS_ONLY = frozenset({"public", "knock", "knock_restricted"})


def bad_json(message: str) -> Exception:
    return errors.SynapseError(400, message, errors.Codes.BAD_JSON)


def too_large(message: str) -> Exception:
    return errors.SynapseError(413, message, errors.Codes.TOO_LARGE)


# -- merchants and purchases -------------------------------------------------------------------

def validate_profile(body: dict[str, Any]) -> tuple[str, str | None]:
    """``(name, avatar_url)`` of ``PUT /merchants/{userId}``."""
    name = text_field(body, "name", MAX_NAME_CHARS)
    avatar_url = body.get("avatar_url")
    if avatar_url is not None:
        if not isinstance(avatar_url, str):
            raise bad_json("'avatar_url' must be an mxc:// URI")
        if len(avatar_url) > MAX_AVATAR_URL_CHARS:
            raise too_large(f"'avatar_url' is longer than {MAX_AVATAR_URL_CHARS} characters")
        if not _MXC_RE.match(avatar_url):
            raise bad_json("'avatar_url' must be an mxc:// URI")
    return name, avatar_url


def validate_mxc(value: Any, path: str, max_chars: int = MAX_AVATAR_URL_CHARS) -> str:
    """An ``mxc://<server>/<media id>`` URI of at most ``max_chars`` characters (400 / 413 naming ``path``)."""
    if not isinstance(value, str):
        raise bad_json(f"'{path}' must be an mxc:// URI")
    if len(value) > max_chars:
        raise too_large(f"'{path}' is longer than {max_chars} characters")
    if not _MXC_RE.match(value):
        raise bad_json(f"'{path}' must be an mxc:// URI")
    return value


def validate_order_id(value: Any) -> str:
    if not isinstance(value, str) or not ORDER_ID_RE.match(value):
        raise bad_json("'order_id' must be 1 to 128 letters, digits or . _ : @ - (starting with a letter or digit)")
    return value


def validate_items(items: Any) -> list[dict[str, Any]]:
    """A purchase's ``items``: up to ``MAX_ITEMS`` JSON objects of at most ``MAX_ITEM_BYTES``
    each, with finite numbers and valid strings (stored as they are, for the platform)."""
    if not isinstance(items, list):
        raise bad_json("'items' must be a list")
    if len(items) > MAX_ITEMS:
        raise too_large(f"'items' has more than {MAX_ITEMS} entries")
    for n, item in enumerate(items):
        if not isinstance(item, dict):
            raise bad_json(f"'items[{n}]' must be an object")
        check_json_value(item, f"items[{n}]", 8)
        if len(json.dumps(item, ensure_ascii=False, separators=(",", ":")).encode()) > MAX_ITEM_BYTES:
            raise too_large(f"'items[{n}]' is larger than {MAX_ITEM_BYTES} bytes")
        if item.get("category") is not None:
            validate_category(item["category"], f"items[{n}].category")
    return items


def validate_category(value: Any, path: str) -> str:
    """A purchase item's (or a segment's) category: a non-empty string of at most
    ``MAX_CATEGORY_CHARS`` characters; returned as it is compared (:func:`normal_category`)."""
    if not isinstance(value, str) or not value.strip():
        raise bad_json(f"'{path}' must be a non-empty string")
    if len(value) > MAX_CATEGORY_CHARS:
        raise too_large(f"'{path}' is longer than {MAX_CATEGORY_CHARS} characters")
    return normal_category(value)


_ASCII_LOWER = str.maketrans("ABCDEFGHIJKLMNOPQRSTUVWXYZ", "abcdefghijklmnopqrstuvwxyz")


def normal_category(value: str) -> str:
    """``" Tea "`` and ``"tea"`` are one category; other scripts compare as written (茶)."""
    return value.strip().translate(_ASCII_LOWER)


def purchase_categories(items: list[Any]) -> list[str]:
    """The distinct categories of a purchase's (checked) items, in order."""
    found = [normal_category(i["category"]) for i in items
             if isinstance(i, Mapping) and isinstance(i.get("category"), str) and i["category"].strip()]
    return list(dict.fromkeys(found))


# -- circle posts ---------------------------------------------------------------------------------

def validate_product(product: Any, path: str = PRODUCT_KEY) -> dict[str, Any]:
    """The ``org.wangxin.product`` object of a post: ``{id, title, price, currency, url}``."""
    if not isinstance(product, Mapping):
        raise bad_json(f"'{path}' must be an object")
    for field, limit in PRODUCT_LIMITS.items():
        text_field(product, field, limit, path=f"{path}.{field}")
    price = product.get("price")
    if isinstance(price, bool) or not isinstance(price, (str, int, float)):
        raise bad_json(f"'{path}.price' must be a number or a decimal string")
    if isinstance(price, str) and len(price) > MAX_PRICE_CHARS:
        raise too_large(f"'{path}.price' is longer than {MAX_PRICE_CHARS} characters")
    try:
        amount = Decimal(str(price).strip())
    except InvalidOperation:
        raise bad_json(f"'{path}.price' must be a number or a decimal string") from None
    if not amount.is_finite() or amount < 0:
        raise bad_json(f"'{path}.price' must be a finite number, not negative")
    if not product["url"].startswith(("https://", "http://")):
        raise bad_json(f"'{path}.url' must be an http(s) URL")
    return dict(product)


@attrs.frozen
class CircleEvent:
    """What an event sent into a circle by its merchant (or the bot) is.

    ``kind``: ``post`` (takes a quota slot), ``edit`` (changes the post ``target``: an
    ``m.replace``, or the end of a poll), ``redaction`` (removes ``target``) or ``refused``
    (``reason`` says why). ``products`` are the products the event shows (validated)."""

    kind: str
    target: str | None = None
    products: tuple[tuple[str, dict[str, Any]], ...] = ()  # (field path, product)
    reason: str | None = None

    @property
    def product(self) -> dict[str, Any] | None:
        return self.products[0][1] if self.products else None


def classify_circle_event(event_type: str, content: Any, redacts: str | None = None) -> CircleEvent:
    """Sort a circle event and check its content (400 / 413 naming the field)."""
    content = content if isinstance(content, Mapping) else {}
    if event_type == REDACTION:
        return CircleEvent("redaction", target=redacts if isinstance(redacts, str) else None)
    relation = content.get("m.relates_to")
    relation = relation if isinstance(relation, Mapping) else {}
    target = relation.get("event_id") if isinstance(relation.get("event_id"), str) else None
    if event_type in POLL_END_TYPES:
        if relation.get("rel_type") == "m.reference" and target:
            return CircleEvent("edit", target=target)
        return CircleEvent("post")
    if event_type not in POST_TYPES:
        if event_type == "m.room.encrypted":
            reason = "Circles are not encrypted: the server reads each post to count it against the quota"
        else:
            reason = (f"'{event_type}' events are not allowed in a circle: post messages, stickers or polls, "
                      "edit or end them, or remove them")
        return CircleEvent("refused", reason=reason)
    products: list[tuple[str, dict[str, Any]]] = []
    _check_post_content(event_type, content, "", products)
    if relation.get("rel_type") == "m.replace" and target:
        new_content = content.get("m.new_content")
        if not isinstance(new_content, Mapping):
            raise bad_json("'m.new_content' must be an object")
        _check_post_content(event_type, new_content, "m.new_content.", products)
        return CircleEvent("edit", target=target, products=tuple(products))
    return CircleEvent("post", products=tuple(products))


def _check_post_content(event_type: str, content: Mapping[str, Any], prefix: str,
                        products: list[tuple[str, dict[str, Any]]]) -> None:
    if event_type == "m.room.message":
        text_field(content, "body", MAX_BODY_CHARS, path=f"{prefix}body")
    elif "body" in content:
        text_field(content, "body", MAX_BODY_CHARS, path=f"{prefix}body")
    if content.get(PRODUCT_KEY) is not None:
        path = f"{prefix}{PRODUCT_KEY}"
        products.append((path, validate_product(content[PRODUCT_KEY], path)))


def edit_product_error(event: CircleEvent, original_product_id: str | None) -> Exception | None:
    """An edit may change a product's details but not which product a post shows (that would
    be a new post of another product, past its cooldown)."""
    for path, product in event.products:
        if product["id"] != original_product_id:
            what = f"product {original_product_id}" if original_product_id else "no product"
            return bad_json(f"'{path}.id' cannot change in an edit: the post shows {what}; post the product instead")
    return None


# -- moments ------------------------------------------------------------------------------------

def creation_join_rule(room_config: dict[str, Any]) -> str:
    """The join rule a ``createRoom`` body gives the room: its ``initial_state`` wins over the
    preset, whose default follows ``visibility`` (Synapse's ``_room_preset_config``)."""
    rule = None
    for state in room_config.get("initial_state") or []:
        if isinstance(state, dict) and state.get("type") == "m.room.join_rules" and not state.get("state_key"):
            content = state.get("content")
            rule = content.get("join_rule") if isinstance(content, dict) else None
    if rule is not None:
        return str(rule)
    preset = room_config.get("preset")
    if preset is None:
        preset = "public_chat" if room_config.get("visibility") == "public" else "private_chat"
    return "public" if preset == "public_chat" else "invite"


def not_friends_only_reason(room_config: dict[str, Any]) -> str | None:
    """Why a moments room created this way would not be friends-only, or ``None``."""
    if room_config.get("visibility") == "public":
        return "Moments are friends-only: they cannot be listed in the room directory"
    rule = creation_join_rule(room_config)
    if rule in NOT_FRIENDS_ONLY:
        return f"Moments are friends-only: the join rule cannot be '{rule}'"
    return None


def world_readable(event_type: Any, content: Any) -> bool:
    """Whether this state event would make a room's history readable by anyone (not for moments)."""
    return (
        event_type == "m.room.history_visibility"
        and isinstance(content, dict)
        and content.get("history_visibility") == "world_readable"
    )
