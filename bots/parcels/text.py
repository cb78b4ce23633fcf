"""Parcels as chat answers: the JSON of ``GET /parcels`` read into ``ParcelView``s, checks of
what a person types, and the texts of ``track``, ``orders`` and ``order``. Pure: no I/O.

Everything in a parcel came from the shop platform; answers are plain text (``m.notice`` with no
HTML), so it is shown as written, never as markup.
"""

from __future__ import annotations

import datetime
from collections.abc import Iterable, Mapping, Sequence
from typing import Any
from zoneinfo import ZoneInfo

import attrs

# The statuses in words, English and Chinese, as the Parcels cards show them
# (tests/unit/test_parcels_bot.py checks they match synapse_modules.parcels.rules).
STATUS_WORDS: Mapping[str, tuple[str, str]] = {
    "created": ("Shipment created", "待揽收"),
    "picked_up": ("Picked up", "已揽收"),
    "in_transit": ("In transit", "运输中"),
    "out_for_delivery": ("Out for delivery", "派送中"),
    "delivered": ("Delivered", "已签收"),
    "exception": ("Delivery problem", "物流异常"),
    "returned": ("Returned to sender", "已退回"),
}
FINAL = frozenset({"delivered", "returned"})

MAX_TRACKING_NUMBER_CHARS = 64  # as the webhook accepts them
MAX_ORDER_ID_CHARS = 256
LIST_LINES = 20  # parcels or shipments listed in one answer
MERCHANT_API_LIMIT = 100  # shipments GET /parcels/merchant answers at most
HISTORY_LINES = 30  # history lines of one parcel (newest first), as on its card
# An answer stays far below Synapse's 64 KiB per event even when every text a platform sent is
# 256 Chinese characters (3 bytes each).
MAX_ANSWER_CHARS = 12_000
RECENT_DAYS = 30


@attrs.frozen
class Step:
    """One entry of a parcel's history."""

    status: str
    at: int
    location: str | None = None
    detail: str | None = None


@attrs.frozen
class ParcelView:
    """A parcel as ``GET /parcels`` and ``GET /parcels/merchant`` describe it."""

    shipment_id: str
    order_id: str | None
    carrier_code: str
    carrier_name: str
    carrier_name_zh: str | None
    tracking_number: str
    tracking_url: str | None
    status: str
    at: int
    location: str | None = None
    eta: int | None = None
    detail: str | None = None
    history: tuple[Step, ...] = ()  # oldest first

    @property
    def active(self) -> bool:
        """Still on its way: not delivered or returned."""
        return self.status not in FINAL


def _text(raw: Mapping[str, Any], key: str) -> str | None:
    value = raw.get(key)
    return value if isinstance(value, str) and value else None


def _int(raw: Mapping[str, Any], key: str) -> int | None:
    value = raw.get(key)
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def parse_parcel(raw: Mapping[str, Any]) -> ParcelView:
    """A parcel from the API's JSON; ``ValueError`` if it lacks what every parcel has."""
    carrier = raw.get("carrier")
    if not isinstance(carrier, Mapping):
        raise ValueError("parcel without a carrier")
    shipment_id, number, status = _text(raw, "shipment_id"), _text(raw, "tracking_number"), _text(raw, "status")
    code, at = _text(carrier, "code"), _int(raw, "at")
    if shipment_id is None or number is None or status is None or code is None or at is None:
        raise ValueError(f"incomplete parcel: {dict(raw)!r:.200}")
    history = []
    for entry in raw.get("history") or ():
        if isinstance(entry, Mapping) and _text(entry, "status") and _int(entry, "at") is not None:
            history.append(Step(str(entry["status"]), int(entry["at"]), _text(entry, "location"),
                                _text(entry, "detail")))
    return ParcelView(
        shipment_id=shipment_id,
        order_id=_text(raw, "order_id"),
        carrier_code=code,
        carrier_name=_text(carrier, "name") or code,
        carrier_name_zh=_text(carrier, "name_zh"),
        tracking_number=number,
        tracking_url=_text(raw, "tracking_url"),
        status=status,
        at=at,
        location=_text(raw, "location"),
        eta=_int(raw, "eta"),
        detail=_text(raw, "detail"),
        history=tuple(sorted(history, key=lambda s: s.at)),
    )


def parse_parcels(raw: Iterable[Any]) -> list[ParcelView]:
    return [parse_parcel(p) for p in raw if isinstance(p, Mapping)]


# -- what people type -------------------------------------------------------------------------


def _quote(text: str, limit: int = 40) -> str:
    return "“" + (text if len(text) <= limit else text[:limit] + "…") + "”"


def tracking_number_from(args: Sequence[str]) -> str:
    """The tracking number in ``track``'s arguments: spaces people put in a number are dropped
    (a tracking number has none)."""
    return "".join(args)


def tracking_number_problem(number: str) -> str | None:
    """Why ``number`` cannot be a tracking number, in one sentence; None if it can."""
    if len(number) > MAX_TRACKING_NUMBER_CHARS:
        return (f"That is not a tracking number: it is {len(number)} characters long, and tracking numbers "
                f"have at most {MAX_TRACKING_NUMBER_CHARS}.")
    if not number.isprintable():
        return "That is not a tracking number: it contains characters that tracking numbers never have."
    return None


def order_id_problem(order_id: str) -> str | None:
    """Why ``order_id`` cannot be an order id, in one sentence; None if it can."""
    if len(order_id) > MAX_ORDER_ID_CHARS:
        return (f"That is not an order id: it is {len(order_id)} characters long, and order ids have at most "
                f"{MAX_ORDER_ID_CHARS}.")
    if not order_id.isprintable():
        return "That is not an order id: it contains characters that order ids never have."
    return None


def matching(parcels: Iterable[ParcelView], number: str) -> list[ParcelView]:
    """The parcels with this tracking number (letter case does not matter)."""
    wanted = number.casefold()
    return [p for p in parcels if p.tracking_number.casefold() == wanted]


# -- answers ---------------------------------------------------------------------------------


def status_words(status: str) -> str:
    words = STATUS_WORDS.get(status)
    return f"{words[1]} · {words[0]}" if words else status


def carrier_words(parcel: ParcelView) -> str:
    if parcel.carrier_name_zh:
        return f"{parcel.carrier_name_zh} {parcel.carrier_name}"
    return parcel.carrier_name


def format_time(ms: int, tz: ZoneInfo) -> str:
    when = datetime.datetime.fromtimestamp(ms / 1000, tz)
    offset = when.utcoffset() or datetime.timedelta()
    hours, rest = divmod(abs(int(offset.total_seconds())) // 60, 60)
    sign = "+" if offset >= datetime.timedelta() else "-"
    return f"{when:%Y-%m-%d %H:%M} (UTC{sign}{hours}" + (f":{rest:02d})" if rest else ")")


def short_time(ms: int, tz: ZoneInfo) -> str:
    return f"{datetime.datetime.fromtimestamp(ms / 1000, tz):%m-%d %H:%M}"


def parcel_line(parcel: ParcelView, tz: ZoneInfo, *, with_order: bool = False) -> str:
    """One parcel in a list: carrier, number, status, where and when, and the ETA."""
    line = f"• {carrier_words(parcel)} {parcel.tracking_number} — {status_words(parcel.status)}"
    if parcel.location:
        line += f", {parcel.location}"
    line += f", {short_time(parcel.at, tz)}"
    if parcel.eta is not None and parcel.active:
        line += f"; ETA {short_time(parcel.eta, tz)}"
    if with_order:
        line = f"• order {parcel.order_id or '(none)'}: " + line[2:]
    return line


def _bounded(lines: list[str], omitted: int = 0) -> str:
    """Lines joined, cut to ``MAX_ANSWER_CHARS`` with a last line saying how many were left out."""
    kept: list[str] = []
    size = 0
    for i, line in enumerate(lines):
        if size + len(line) + 1 > MAX_ANSWER_CHARS - 80:
            omitted += len(lines) - i
            break
        kept.append(line)
        size += len(line) + 1
    if omitted:
        kept.append(f"… and {omitted} more (not shown).")
    return "\n".join(kept)


def parcel_history(parcel: ParcelView, tz: ZoneInfo, *, with_order: bool = False) -> str:
    """A parcel's full answer: where it is, and its history, newest first."""
    lines = [f"📦 {carrier_words(parcel)} · {parcel.tracking_number}",
             f"Status: {status_words(parcel.status)} ({format_time(parcel.at, tz)})"]
    if parcel.location:
        lines.append(f"Location: {parcel.location}")
    if parcel.eta is not None and parcel.active:
        lines.append(f"ETA: {format_time(parcel.eta, tz)}")
    if parcel.detail:
        lines.append(f"Detail: {parcel.detail}")
    if with_order or parcel.order_id:
        lines.append(f"Order: {parcel.order_id or '(none)'}")
    if parcel.tracking_url:
        lines.append(f"Track: {parcel.tracking_url}")
    lines.append("History (newest first):")
    history = list(reversed(parcel.history))
    for step in history[:HISTORY_LINES]:
        line = f"• {short_time(step.at, tz)}  {status_words(step.status)}"
        if step.location:
            line += f" — {step.location}"
        if step.detail:
            line += f" ({step.detail})"
        lines.append(line)
    if len(history) > HISTORY_LINES:
        lines.append(f"… {len(history) - HISTORY_LINES} earlier updates")
    return "\n".join(lines)


def active_parcels_answer(parcels: Sequence[ParcelView], tz: ZoneInfo) -> str:
    """``track``: the person's parcels on their way."""
    active = [p for p in parcels if p.active]
    ended = len(parcels) - len(active)
    if not active:
        answer = "You have no parcel on its way right now."
        if ended:
            answer += (f" {ended} {'was' if ended == 1 else 'were'} delivered or returned in the last "
                       f"{RECENT_DAYS} days: send “track <tracking number>” to see one.")
        return answer
    head = f"Your parcels on their way ({len(active)}):"
    lines = [parcel_line(p, tz) for p in active[:LIST_LINES]]
    tail = ["", "Send “track <tracking number>” for a parcel's whole history."]
    return _bounded([head, *lines], len(active) - len(lines)) + "\n" + "\n".join(tail)


def tracked_parcel_answer(number: str, found: Sequence[ParcelView], tz: ZoneInfo) -> str:
    """``track <number>``: the parcel's history, or that the person has no such parcel."""
    if not found:
        return (f"You have no parcel with the tracking number {_quote(number)} (parcels delivered or returned "
                f"more than {RECENT_DAYS} days ago are no longer shown). Send “track” to list your parcels.")
    return _bounded("\n\n".join(parcel_history(p, tz) for p in found).split("\n"))


def merchant_orders_answer(shipments: Sequence[ParcelView], tz: ZoneInfo) -> str:
    """``orders``: a merchant's recent shipments with their status."""
    if not shipments:
        return (f"You have no shipment on its way or delivered in the last {RECENT_DAYS} days. Shipments appear "
                "here when your shop platform sends them with your account as their merchant.")
    count = f"{len(shipments)}+" if len(shipments) >= MERCHANT_API_LIMIT else str(len(shipments))
    head = f"Your recent shipments ({count}), newest first:"
    lines = [parcel_line(p, tz, with_order=True) for p in shipments[:LIST_LINES]]
    tail = "\nSend “order <order id>” for one order's shipments and their history."
    return _bounded([head, *lines], len(shipments) - len(lines)) + tail


def merchant_order_answer(order_id: str, shipments: Sequence[ParcelView], tz: ZoneInfo) -> str:
    """``order <order id>``: one order's shipments with their history."""
    if not shipments:
        return (f"You have no recent shipment for the order {_quote(order_id)} (shipments delivered or returned "
                f"more than {RECENT_DAYS} days ago are no longer shown). Send “orders” to list them.")
    return _bounded("\n\n".join(parcel_history(p, tz, with_order=True) for p in shipments).split("\n"))
