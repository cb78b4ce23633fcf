"""The messages of a Parcels room, built from a parcel's state. Pure: no I/O.

- **The card**: one ``m.notice`` per shipment, edited in place (``m.replace``) as the parcel
  moves: carrier, tracking number, the status in English and Chinese, last location, ETA,
  detail, a link to the carrier's tracking page and the history. Synapse's default push rules
  keep notices and edits quiet (``.m.rule.suppress_notices``, ``.m.rule.suppress_edits``).
- **The alert**: a short ``m.text`` reply to the card for the statuses that notify; in the
  two-member Parcels room ``.m.rule.room_one_to_one`` notifies it, with no per-user push rule.

Everything a platform sends (location, detail, tracking number, an unknown carrier code) is
escaped in the HTML body; the plain body carries it as text.
"""

from __future__ import annotations

import datetime
import hashlib
import html
import json
from typing import Any
from zoneinfo import ZoneInfo

import attrs

from synapse_modules.parcels.carriers import CarrierRegistry
from synapse_modules.parcels.rules import PARCEL_KEY, STATUS_WORDS, ParcelState, Update

# Lines of history on a card: a parcel's whole history in practice (GET /parcels has all of it).
CARD_HISTORY_LINES = 30


@attrs.frozen
class Parcel:
    """A shipment as the person sees it."""

    shipment_id: str
    carrier: str
    tracking_number: str
    state: ParcelState
    order_id: str | None = None


def format_time(ms: int, tz: ZoneInfo) -> str:
    when = datetime.datetime.fromtimestamp(ms / 1000, tz)
    offset = when.utcoffset() or datetime.timedelta()
    hours, rest = divmod(int(offset.total_seconds()) // 60, 60)
    zone = f"UTC{'+' if offset >= datetime.timedelta() else '-'}{abs(hours)}" + (f":{rest:02d}" if rest else "")
    return f"{when:%Y-%m-%d %H:%M} ({zone})"


def _short_time(ms: int, tz: ZoneInfo) -> str:
    return f"{datetime.datetime.fromtimestamp(ms / 1000, tz):%m-%d %H:%M}"


def status_words(status: str) -> str:
    en, zh = STATUS_WORDS[status]
    return f"{zh} · {en}"


def carrier_words(registry: CarrierRegistry, code: str) -> str:
    name, name_zh = registry.display(code)
    return f"{name_zh} {name}" if name_zh else name


def parcel_json(parcel: Parcel, registry: CarrierRegistry) -> dict[str, Any]:
    """The structured view of a parcel (in its card, and in ``GET /parcels``)."""
    name, name_zh = registry.display(parcel.carrier)
    state = parcel.state
    en, zh = STATUS_WORDS[state.status]
    return {
        "shipment_id": parcel.shipment_id,
        "order_id": parcel.order_id,
        "carrier": {"code": parcel.carrier, "name": name, "name_zh": name_zh},
        "tracking_number": parcel.tracking_number,
        "tracking_url": registry.link(parcel.carrier, parcel.tracking_number),
        "status": state.status,
        "status_text": {"en": en, "zh": zh},
        "at": state.current.at,
        "location": state.location,
        "eta": state.eta,
        "detail": state.current.detail,
    }


def _history_line(update: Update, tz: ZoneInfo) -> str:
    line = f"{_short_time(update.at, tz)}  {status_words(update.status)}"
    if update.location:
        line += f" — {update.location}"
    if update.detail:
        line += f" ({update.detail})"
    return line


def card_content(parcel: Parcel, registry: CarrierRegistry, tz: ZoneInfo) -> dict[str, Any]:
    """The card's content (an ``m.notice``), also the ``m.new_content`` of its edits."""
    state = parcel.state
    link = registry.link(parcel.carrier, parcel.tracking_number)
    lines: list[tuple[str, str]] = []  # (plain, HTML)

    def add(plain: str, markup: str | None = None) -> None:
        lines.append((plain, markup if markup is not None else html.escape(plain)))

    head = f"📦 {carrier_words(registry, parcel.carrier)} · {parcel.tracking_number}"
    add(head, f"📦 <b>{html.escape(head[2:])}</b>")
    status = status_words(state.status)
    add(status, f"<b>{html.escape(status)}</b>")
    if state.location:
        add(f"位置 Location: {state.location}")
    if state.eta is not None:
        add(f"预计送达 ETA: {format_time(state.eta, tz)}")
    if state.current.detail:
        add(f"详情 Detail: {state.current.detail}")
    add(f"更新 Updated: {format_time(state.current.at, tz)}")
    if link:
        add(f"查询 Track: {link}", f'查询 Track: <a href="{html.escape(link)}">{html.escape(link)}</a>')
    history = list(reversed(state.history))  # newest first, as tracking pages list them
    shown = history[:CARD_HISTORY_LINES]
    add("物流记录 History:")
    for update in shown:
        add(f"• {_history_line(update, tz)}")
    if len(history) > len(shown):
        add(f"… {len(history) - len(shown)} earlier updates")
    return {
        "msgtype": "m.notice",
        "body": "\n".join(plain for plain, _ in lines),
        "format": "org.matrix.custom.html",
        "formatted_body": "<br>".join(markup for _, markup in lines),
        "m.mentions": {},
        PARCEL_KEY: parcel_json(parcel, registry),
    }


def content_hash(content: dict[str, Any]) -> str:
    """Whether a card changed since it was last sent (an edit is sent only then)."""
    return hashlib.sha256(json.dumps(content, sort_keys=True, ensure_ascii=False).encode()).hexdigest()[:32]


def edit_content(card_event_id: str, content: dict[str, Any]) -> dict[str, Any]:
    """An ``m.replace`` of the card with its new content (clients show the new content in place)."""
    return {
        "msgtype": content["msgtype"],
        "body": "* " + content["body"],
        "format": content["format"],
        "formatted_body": "* " + content["formatted_body"],
        "m.mentions": {},
        "m.new_content": content,
        "m.relates_to": {"rel_type": "m.replace", "event_id": card_event_id},
    }


def alert_content(parcel: Parcel, registry: CarrierRegistry, card_event_id: str) -> dict[str, Any]:
    """The notifying ``m.text``: a reply to the card saying what happened."""
    words = status_words(parcel.state.status)
    body = f"📦 {words}: {carrier_words(registry, parcel.carrier)} {parcel.tracking_number}"
    if parcel.state.current.detail:
        body += f" — {parcel.state.current.detail}"
    return {
        "msgtype": "m.text",
        "body": body,
        "m.mentions": {},
        "m.relates_to": {"m.in_reply_to": {"event_id": card_event_id}},
        PARCEL_KEY: {"shipment_id": parcel.shipment_id, "status": parcel.state.status, "at": parcel.state.current.at},
    }
