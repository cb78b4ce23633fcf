"""What the parcels module accepts and decides: the shipment webhook's fields, the statuses and
their order, which update is a parcel's current one, and which changes notify. Pure: no I/O.

Validation raises a Matrix error (``SynapseError``) naming the field, always HTTP 400 (the
issue's contract for the platform): ``M_BAD_JSON`` for a missing field or a wrong type,
``M_INVALID_PARAM`` for a value that is not allowed, ``M_TOO_LARGE`` for a text over its limit.
The HTTP handler checks everything here before it writes anything, so a refused update changes
nothing.

**The current status never moves backwards.** A parcel's history is kept in time order (``at``,
then the status order for updates stamped the same millisecond). The current update is found by
reading the history in that order: a status of the same or a later stage than the furthest one
so far becomes current (``in_transit`` at a new place updates the card), an earlier stage stays
history, an ``exception`` becomes current whenever it comes (it says something went wrong since),
and after ``delivered`` or ``returned`` nothing changes any more. The stage reached can only
grow when an update is added, whatever the arrival order, and the outcome does not depend on the
order in which updates arrive: replays and out-of-order deliveries end in the same state.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import attrs
import phonenumbers
from synapse.module_api import errors

from synapse_modules._http import USER_ID_RE
from synapse_modules.parcels.carriers import CARRIER_CODE_RE

PARCELS_ROOM_TYPE = "org.wangxin.parcels"
PARCEL_KEY = "org.wangxin.parcel"  # the structured view of a parcel in its card's content

STATUSES = ("created", "picked_up", "in_transit", "out_for_delivery", "delivered", "exception", "returned")
# How far a parcel has come; ``exception`` is no stage (it can happen at any of them).
STAGE = {"created": 0, "picked_up": 1, "in_transit": 2, "out_for_delivery": 3, "delivered": 4, "returned": 4}
FINAL = frozenset({"delivered", "returned"})
# Statuses that the person is told about with a notification (the others only edit the card).
NOTIFYING = frozenset({"out_for_delivery", "delivered", "exception", "returned"})
# Ties of ``at``: the later stage is the later update; an exception after the stage it interrupted.
_TIE_ORDER = {s: i for i, s in enumerate(("created", "picked_up", "in_transit", "out_for_delivery", "exception",
                                           "delivered", "returned"))}

STATUS_WORDS: Mapping[str, tuple[str, str]] = {
    "created": ("Shipment created", "待揽收"),
    "picked_up": ("Picked up", "已揽收"),
    "in_transit": ("In transit", "运输中"),
    "out_for_delivery": ("Out for delivery", "派送中"),
    "delivered": ("Delivered", "已签收"),
    "exception": ("Delivery problem", "物流异常"),
    "returned": ("Returned to sender", "已退回"),
}

MAX_TRACKING_NUMBER_CHARS = 64
MAX_TEXT_CHARS = 256  # shipment_id, order_id, location, detail
MAX_PHONE_CHARS = 32
MAX_USER_ID_CHARS = 255
MAX_MS = 2**53 - 1
# Updates one shipment may have (its card lists them; a carrier scans a parcel a few dozen
# times at most).
MAX_UPDATES_PER_SHIPMENT = 200
# A shipment id is read back in a URL (GET /shipments/{shipment_id}).
SHIPMENT_ID_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:@-]*$")


def bad_json(message: str) -> errors.SynapseError:
    return errors.SynapseError(400, message, errors.Codes.BAD_JSON)


def invalid(message: str) -> errors.SynapseError:
    return errors.SynapseError(400, message, errors.Codes.INVALID_PARAM)


def too_long(field: str, limit: int) -> errors.SynapseError:
    return errors.SynapseError(400, f"'{field}' is longer than {limit} characters", errors.Codes.TOO_LARGE)


@attrs.frozen
class Update:
    """One entry of a parcel's history; ``(shipment, status, at)`` identifies it."""

    status: str
    at: int
    location: str | None = None
    eta: int | None = None
    detail: str | None = None

    @property
    def key(self) -> str:
        return f"{self.status}@{self.at}"

    def to_json(self) -> dict[str, Any]:
        return {"status": self.status, "at": self.at, "location": self.location, "eta": self.eta,
                "detail": self.detail}


@attrs.frozen
class ShipmentUpdate:
    """A validated ``POST /shipments`` body."""

    shipment_id: str
    carrier: str  # lower case
    tracking_number: str
    update: Update
    buyer: str | None = None
    buyer_phone: str | None = None  # E.164 digits without '+', as Synapse stores msisdns
    merchant: str | None = None
    order_id: str | None = None


# -- the webhook body ----------------------------------------------------------------------------


def _text(body: Mapping[str, Any], key: str, limit: int, *, required: bool) -> str | None:
    """A one-line text of at most ``limit`` characters; an optional one may be absent, null or ""."""
    value = body.get(key)
    if value is None or (value == "" and not required):
        if required:
            raise bad_json(f"'{key}' is missing: expected a string")
        return None
    if not isinstance(value, str):
        raise bad_json(f"'{key}' must be a string")
    if not value.strip():
        raise bad_json(f"'{key}' must not be blank")
    if len(value) > limit:
        raise too_long(key, limit)
    if any(unicodedata.category(c) in ("Cc", "Cf", "Zl", "Zp") for c in value):
        raise invalid(f"'{key}' must be one line of text without control characters")
    return value


def _ms(body: Mapping[str, Any], key: str, *, required: bool) -> int | None:
    value = body.get(key)
    if value is None:
        if required:
            raise bad_json(f"'{key}' is missing: expected an integer (milliseconds since the epoch)")
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        raise bad_json(f"'{key}' must be an integer (milliseconds since the epoch)")
    if not 0 <= value <= MAX_MS:
        raise invalid(f"'{key}' must be between 0 and {MAX_MS}")
    return value


def _user_id(body: Mapping[str, Any], key: str) -> str | None:
    value = body.get(key)
    if value is None:
        return None
    if not isinstance(value, str):
        raise bad_json(f"'{key}' must be a Matrix user id like @name:server")
    if len(value) > MAX_USER_ID_CHARS:
        raise too_long(key, MAX_USER_ID_CHARS)
    if not USER_ID_RE.match(value):
        raise invalid(f"'{key}' must be a Matrix user id like @name:server")
    return value


def parse_phone(value: Any, key: str = "buyer_phone") -> str:
    """An E.164 number (``+8613812345678``; spaces and dashes are tolerated) as Synapse stores
    msisdns: the digits without ``+``."""
    if not isinstance(value, str):
        raise bad_json(f"'{key}' must be a phone number in E.164 form, like +8613812345678")
    if len(value) > MAX_PHONE_CHARS:
        raise too_long(key, MAX_PHONE_CHARS)
    if not value.startswith("+"):
        raise invalid(f"'{key}' must be in E.164 form, starting with + and the country code")
    try:
        number = phonenumbers.parse(value, None)
    except phonenumbers.NumberParseException:
        raise invalid(f"'{key}' is not a phone number") from None
    if not phonenumbers.is_valid_number(number):
        raise invalid(f"'{key}' is not a valid phone number")
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)[1:]


def parse_shipment(body: Mapping[str, Any]) -> ShipmentUpdate:
    """Check every field of a ``POST /shipments`` body (all of them, before anything is written)."""
    shipment_id = _text(body, "shipment_id", MAX_TEXT_CHARS, required=True)
    assert shipment_id is not None
    if not SHIPMENT_ID_RE.match(shipment_id):
        raise invalid("'shipment_id' must be letters, digits or . _ : @ - (starting with a letter or digit)")
    buyer_given, phone_given = body.get("buyer") is not None, body.get("buyer_phone") is not None
    if buyer_given == phone_given:
        raise bad_json("Give exactly one of 'buyer' (a Matrix user id) and 'buyer_phone' (an E.164 number)")
    buyer = _user_id(body, "buyer")
    buyer_phone = parse_phone(body["buyer_phone"]) if phone_given else None
    merchant = _user_id(body, "merchant")
    carrier = body.get("carrier")
    if carrier is None:
        raise bad_json("'carrier' is missing: expected a carrier code such as 'sf'")
    if not isinstance(carrier, str):
        raise bad_json("'carrier' must be a string (a carrier code such as 'sf')")
    if not CARRIER_CODE_RE.match(carrier.lower()):
        raise invalid("'carrier' must be a code of 1 to 32 letters, digits or . _ - (such as 'sf' or 'zto')")
    tracking_number = _text(body, "tracking_number", MAX_TRACKING_NUMBER_CHARS, required=True)
    assert tracking_number is not None
    if any(c.isspace() for c in tracking_number):
        raise invalid("'tracking_number' must not contain spaces")
    status = body.get("status")
    if status is None:
        raise bad_json("'status' is missing")
    if not isinstance(status, str) or status not in STAGE and status != "exception":
        raise invalid(f"'status' must be one of {', '.join(STATUSES)}")
    at = _ms(body, "at", required=True)
    assert at is not None
    update = Update(
        status=status,
        at=at,
        location=_text(body, "location", MAX_TEXT_CHARS, required=False),
        eta=_ms(body, "eta", required=False),
        detail=_text(body, "detail", MAX_TEXT_CHARS, required=False),
    )
    return ShipmentUpdate(
        shipment_id=shipment_id,
        carrier=carrier.lower(),
        tracking_number=tracking_number,
        update=update,
        buyer=buyer,
        buyer_phone=buyer_phone,
        merchant=merchant,
        order_id=_text(body, "order_id", MAX_TEXT_CHARS, required=False),
    )


# -- a parcel's state ----------------------------------------------------------------------------


def history_order(updates: Iterable[Update]) -> list[Update]:
    """Oldest first: by ``at``, then by the order of the statuses."""
    return sorted(updates, key=lambda u: (u.at, _TIE_ORDER[u.status]))


def current_of(updates: Iterable[Update]) -> Update | None:
    """The update the parcel's card shows (see the module docstring)."""
    current: Update | None = None
    stage = -1
    for update in history_order(updates):
        if current is not None and current.status in FINAL:
            break
        if update.status == "exception":
            current = update
        elif STAGE[update.status] >= stage:
            current, stage = update, STAGE[update.status]
    return current


@attrs.frozen
class ParcelState:
    """What a parcel's card shows: the current update and, where it has none of its own, the
    last location and ETA given up to it."""

    current: Update
    location: str | None
    eta: int | None
    history: tuple[Update, ...]  # oldest first

    @property
    def status(self) -> str:
        return self.current.status

    @property
    def is_final(self) -> bool:
        return self.current.status in FINAL


def parcel_state(updates: Sequence[Update]) -> ParcelState:
    history = history_order(updates)
    current = current_of(history)
    if current is None:
        raise ValueError("a parcel has at least one update")
    location, eta = current.location, current.eta
    for update in reversed(history[: history.index(current) + 1]):
        location = location or update.location
        eta = eta if eta is not None else update.eta
    return ParcelState(current, location, None if current.status in FINAL else eta, tuple(history))


def alert_for(previous: Update | None, current: Update) -> bool:
    """Whether a change of the current update from ``previous`` to ``current`` notifies the
    person: when the status changes into one of ``NOTIFYING`` (a second exception while the
    card already shows one only edits the card)."""
    if current.status not in NOTIFYING:
        return False
    return previous is None or previous.status != current.status


def stage_of(update: Update | None) -> int:
    """The stage an update says the parcel reached (-1 for none or an exception)."""
    if update is None or update.status == "exception":
        return -1
    return STAGE[update.status]
