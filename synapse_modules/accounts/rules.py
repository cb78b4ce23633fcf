"""What the accounts module accepts and the values it derives: pure, no I/O.

Each check raises a Matrix error (``SynapseError``) that names the field: 400 ``M_INVALID_PARAM``
for a value outside what is allowed (an account id, a kind, a storefront URL), 400 ``M_BAD_JSON``
for a wrong shape, 413 ``M_TOO_LARGE`` for something too long. Callers check everything here
before they write anything, so a refused request changes nothing.
"""

from __future__ import annotations

import calendar
import datetime
import hashlib
import ipaddress
import re
from typing import Any
from urllib.parse import quote, urlsplit

import attrs
from synapse.module_api import errors

from synapse_modules._http import USER_ID_RE, text_field
from synapse_modules.merchant_circle.rules import validate_profile

KINDS = ("merchant", "organisation", "platform")
ACCOUNT_ID_RE = re.compile(r"^[a-z0-9_-]{3,32}$")
ACCOUNT_STATE_TYPE = "org.wangxin.account"  # the account's record in its channel (state key "")
WIDGET_TYPE = "im.vector.modular.widgets"  # a room widget, as Element reads it
LAYOUT_TYPE = "io.element.widgets.layout"  # where Element puts the room's widgets (state key "")
STOREFRONT_WIDGET_ID = "org.wangxin.storefront"  # the storefront widget's state key: one per channel
MAX_DESCRIPTION_CHARS = 500
MAX_QUERY_CHARS = 64
MAX_URL_CHARS = 2048
FEE_WAIVERS = ("membership", "verification", "transfer")
# The storefront sits in Element's "top" container (the app drawer above the timeline, beside the
# chat), across its whole width and half its height: the chat stays open below it.
STOREFRONT_LAYOUT = {"container": "top", "index": 0, "width": 100, "height": 50}
LIKE_ESCAPE = "\\"


def invalid_param(message: str) -> Exception:
    return errors.SynapseError(400, message, errors.Codes.INVALID_PARAM)


def bad_json(message: str) -> Exception:
    return errors.SynapseError(400, message, errors.Codes.BAD_JSON)


# -- accounts ------------------------------------------------------------------------------------

def validate_account_id(value: Any) -> str:
    if not isinstance(value, str) or not ACCOUNT_ID_RE.match(value):
        raise invalid_param("'account_id' must be 3 to 32 lower-case letters, digits, '_' or '-'")
    return value


@attrs.frozen
class AccountInput:
    """The body of ``PUT /accounts/{account_id}``, checked."""

    kind: str
    owner: str
    name: str
    avatar_url: str | None
    description: str | None
    verified: bool


def validate_account(body: dict[str, Any]) -> AccountInput:
    kind = body.get("kind")
    if not isinstance(kind, str) or kind not in KINDS:
        raise invalid_param(f"'kind' must be one of {', '.join(KINDS)}")
    owner = body.get("owner")
    if not isinstance(owner, str) or len(owner) > 255 or not USER_ID_RE.match(owner):
        raise bad_json("'owner' must be a Matrix user id like @name:server")
    name, avatar_url = validate_profile(body)
    description = None
    if body.get("description") is not None:
        description = text_field(body, "description", MAX_DESCRIPTION_CHARS)
    verified = body.get("verified", False)
    if not isinstance(verified, bool):
        raise bad_json("'verified' must be true or false")
    return AccountInput(kind, owner, name, avatar_url, description, verified)


def add_months(ms: int, months: int) -> int:
    """``ms`` (a UTC timestamp) plus ``months`` calendar months; a day the target month lacks
    becomes its last day (29 February + 12 months is 28 February)."""
    when = datetime.datetime.fromtimestamp(ms / 1000, tz=datetime.UTC)
    month_index = when.month - 1 + months
    year, month = when.year + month_index // 12, month_index % 12 + 1
    day = min(when.day, calendar.monthrange(year, month)[1])
    return int(when.replace(year=year, month=month, day=day).timestamp() * 1000)


def derived_account_ids(user_id: str) -> list[str]:
    """Account ids for a merchant made without one, best first: its localpart where that is a
    valid account id, else (and when taken) the localpart's allowed characters with a short hash
    of the user id, which is the same every time for the same merchant."""
    localpart = user_id[1:].split(":", 1)[0].lower()
    base = re.sub(r"[^a-z0-9_-]", "-", localpart).strip("-")[:32]
    digest = hashlib.sha256(user_id.encode("utf-8")).hexdigest()
    candidates = [base] if ACCOUNT_ID_RE.match(base) else []
    stem = (base[:25] or "shop").rstrip("-") or "shop"
    candidates += [f"{stem}-{digest[i:i + 6]}" for i in (0, 6, 12)]
    return [c for c in candidates if ACCOUNT_ID_RE.match(c)]


def alias_of(account_id: str, server_name: str) -> str:
    return f"#{account_id}:{server_name}"


def matrix_to_link(alias: str) -> str:
    """A link any Matrix client opens (``#`` escaped, as matrix.to expects in the fragment)."""
    return "https://matrix.to/#/" + quote(alias, safe=":")


def matrix_to_room_link(room_id: str, server_name: str) -> str:
    """A link to a room by its id (``!`` escaped), with the server that can let the client in."""
    return "https://matrix.to/#/" + quote(room_id, safe=":") + "?via=" + quote(server_name)


def follow_link(public_baseurl: str, api_prefix: str, account_id: str) -> str:
    return f"{public_baseurl.rstrip('/')}{api_prefix}/accounts/{account_id}/follow"


def account_state(account_id: str, kind: str, verified: bool) -> dict[str, Any]:
    """The ``org.wangxin.account`` state event of the channel (clients show the verified badge from it)."""
    return {"account_id": account_id, "kind": kind, "verified": verified}


# -- search --------------------------------------------------------------------------------------

def validate_query(value: str | None) -> str:
    if value is None or not value.strip():
        raise invalid_param("'q' must be the text to search for")
    text = value.strip()
    if len(text) > MAX_QUERY_CHARS:
        raise errors.SynapseError(413, f"'q' is longer than {MAX_QUERY_CHARS} characters", errors.Codes.TOO_LARGE)
    return text


def validate_limit(value: str | None, default: int, maximum: int) -> int:
    if value is None:
        return default
    if not value.isdigit() or not 1 <= int(value) <= maximum:
        raise invalid_param(f"'limit' must be a whole number from 1 to {maximum}")
    return int(value)


_ASCII_LOWER = str.maketrans("ABCDEFGHIJKLMNOPQRSTUVWXYZ", "abcdefghijklmnopqrstuvwxyz")


def ascii_lower(text: str) -> str:
    """Lower case as SQLite's ``LOWER`` and PostgreSQL's under the C locale Synapse requires: ASCII only."""
    return text.translate(_ASCII_LOWER)


def like_escaped(text: str) -> str:
    """``text`` for a ``LIKE … ESCAPE '\\'`` pattern: its ``%``, ``_`` and ``\\`` match themselves."""
    return text.replace(LIKE_ESCAPE, LIKE_ESCAPE * 2).replace("%", LIKE_ESCAPE + "%").replace("_", LIKE_ESCAPE + "_")


# -- the storefront ------------------------------------------------------------------------------

def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def validate_storefront_url(body: dict[str, Any], allow_http_loopback: bool) -> str:
    """An ``https://`` URL with a host and no user name or password in it (``http://`` only to a
    loopback host, and only where the deployment allows it: a development stack)."""
    url = body.get("url")
    if not isinstance(url, str) or not url:
        raise bad_json("'url' must be an https:// URL")
    if len(url) > MAX_URL_CHARS:
        raise errors.SynapseError(413, f"'url' is longer than {MAX_URL_CHARS} characters", errors.Codes.TOO_LARGE)
    if any(c.isspace() or ord(c) < 0x20 or c == "\x7f" for c in url):
        raise invalid_param("'url' must not contain spaces or control characters")
    try:
        parts = urlsplit(url)
        host = parts.hostname
        parts.port  # noqa: B018 (raises ValueError for a port that is not a number)
    except ValueError:
        raise invalid_param("'url' is not a valid URL") from None
    if not host:
        raise invalid_param("'url' must name a host")
    if parts.username is not None or parts.password is not None:
        raise invalid_param("'url' must not carry a user name or password")
    if parts.scheme == "https":
        return url
    if parts.scheme == "http" and allow_http_loopback and _is_loopback(host):
        return url
    raise invalid_param("'url' must be an https:// URL" + (" (or http:// to a loopback host)" if allow_http_loopback
                                                           else ""))


def storefront_widget(url: str, name: str, creator: str) -> dict[str, Any]:
    """The widget's state content, as Element's own "add widget" writes a custom one."""
    return {
        "id": STOREFRONT_WIDGET_ID,
        "type": "m.custom",
        "url": url,
        "name": f"{name} · 店铺",
        "creatorUserId": creator,
        "data": {"title": name},
    }


def storefront_layout(pinned: bool) -> dict[str, Any]:
    return {"widgets": {STOREFRONT_WIDGET_ID: dict(STOREFRONT_LAYOUT)} if pinned else {}}
