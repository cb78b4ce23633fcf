"""SQL of shipments, their histories and their cards (``wangxin_parcels_shipments``,
``wangxin_parcels_updates``)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import attrs

from synapse_modules.parcels.rules import (
    FINAL,
    MAX_UPDATES_PER_SHIPMENT,
    ShipmentUpdate,
    Update,
    alert_for,
    parcel_state,
)

_COLUMNS = (
    "shipment_id, order_id, buyer, buyer_phone, user_id, merchant, carrier, tracking_number, status, status_at,"
    " updated_ts, version, rendered_version, alert_key, alerted_key, card_room_id, card_event_id, card_hash"
)
# Fields fixed by a shipment's first update; a later update naming another value is refused.
FIXED_FIELDS = ("buyer", "buyer_phone", "carrier", "tracking_number")
# Fields a later update may fill in when the first left them out, but not change.
FILL_IN_FIELDS = ("order_id", "merchant")


# How long the background drain leaves a changed card to the request that changed it.
RENDER_GRACE_MS = 5000


@attrs.frozen
class Shipment:
    shipment_id: str
    order_id: str | None
    buyer: str | None
    buyer_phone: str | None
    user_id: str | None
    merchant: str | None
    carrier: str
    tracking_number: str
    status: str
    status_at: int
    updated_ts: int
    version: int
    rendered_version: int
    alert_key: str | None
    alerted_key: str | None
    card_room_id: str | None
    card_event_id: str | None
    card_hash: str | None
    history: tuple[Update, ...] = ()


@attrs.frozen
class Recorded:
    """What ``POST /shipments`` did: the current status, whether anything new was stored, and
    who the shipment is for (``None``: a phone number with no account yet). ``conflict`` names
    a field the update contradicts; ``full``: the shipment has its maximum of updates."""

    status: str | None
    changed: bool
    user_id: str | None = None
    conflict: str | None = None
    full: bool = False


def _shipment(row: Any) -> Shipment:
    return Shipment(*row)


def _select(txn: Any, where: str, args: Sequence[Any]) -> list[Shipment]:
    txn.execute(f"SELECT {_COLUMNS} FROM wangxin_parcels_shipments WHERE {where}", tuple(args))
    return [_shipment(r) for r in txn.fetchall()]


def _histories(txn: Any, shipment_ids: Sequence[str]) -> dict[str, list[Update]]:
    found: dict[str, list[Update]] = {s: [] for s in shipment_ids}
    for start in range(0, len(shipment_ids), 500):
        chunk = list(shipment_ids[start : start + 500])
        marks = ", ".join("?" for _ in chunk)
        txn.execute(
            "SELECT shipment_id, status, at, location, eta, detail FROM wangxin_parcels_updates"
            f" WHERE shipment_id IN ({marks})",
            chunk,
        )
        for shipment_id, status, at, location, eta, detail in txn.fetchall():
            found[shipment_id].append(Update(status, int(at), location, None if eta is None else int(eta), detail))
    return found


def _with_histories(txn: Any, shipments: list[Shipment]) -> list[Shipment]:
    histories = _histories(txn, [s.shipment_id for s in shipments])
    return [attrs.evolve(s, history=tuple(histories[s.shipment_id])) for s in shipments]


def get_shipment_txn(txn: Any, shipment_id: str) -> Shipment | None:
    found = _with_histories(txn, _select(txn, "shipment_id = ?", (shipment_id,)))
    return found[0] if found else None


def record_update_txn(txn: Any, s: ShipmentUpdate, user_id: str | None, now: int) -> Recorded:
    """Store one webhook update: the shipment (first update), the update in its history, and
    the current state read again from the whole history; then mark the person's cards for
    rendering. A replay of ``(shipment_id, status, at)`` changes nothing."""
    update = s.update
    existing = _select(txn, "shipment_id = ?", (s.shipment_id,))
    if existing:
        row = existing[0]
        for field in FIXED_FIELDS:
            if getattr(row, field) != getattr(s, field):
                return Recorded(None, False, conflict=field)
        for field in FILL_IN_FIELDS:
            if getattr(s, field) is not None and getattr(row, field) not in (None, getattr(s, field)):
                return Recorded(None, False, conflict=field)
        txn.execute(
            "SELECT 1 FROM wangxin_parcels_updates WHERE shipment_id = ? AND status = ? AND at = ?",
            (s.shipment_id, update.status, update.at),
        )
        if txn.fetchone() is not None:
            return Recorded(row.status, False, row.user_id)
        txn.execute("SELECT COUNT(*) FROM wangxin_parcels_updates WHERE shipment_id = ?", (s.shipment_id,))
        if int(txn.fetchone()[0]) >= MAX_UPDATES_PER_SHIPMENT:
            return Recorded(row.status, False, row.user_id, full=True)
        previous: Update | None = Update(row.status, row.status_at)
    else:
        previous = None
        # ON CONFLICT, not a plain INSERT: on PostgreSQL, when another process stored the same
        # shipment's first update since this transaction began, a plain INSERT fails with a
        # unique violation (an error, a 500), whereas this fails with a serialization error,
        # which Synapse retries; the retry finds the row. (SQLite runs one writer at a time.)
        txn.execute(
            "INSERT INTO wangxin_parcels_shipments (shipment_id, order_id, buyer, buyer_phone, user_id, merchant,"
            " carrier, tracking_number, status, status_at, final, created_ts, updated_ts, version)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 0, ?, ?, 0) ON CONFLICT (shipment_id) DO NOTHING",
            (s.shipment_id, s.order_id, s.buyer, s.buyer_phone, user_id, s.merchant, s.carrier, s.tracking_number,
             update.status, update.at, now, now),
        )
    txn.execute(
        "INSERT INTO wangxin_parcels_updates (shipment_id, status, at, location, eta, detail, received_ts)"
        " VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT (shipment_id, status, at) DO NOTHING",
        (s.shipment_id, update.status, update.at, update.location, update.eta, update.detail, now),
    )
    if txn.rowcount == 0:  # the same update, stored by another request since the check above
        return Recorded(previous.status if previous else update.status, False, existing[0].user_id if existing
                        else user_id)
    state = parcel_state(_histories(txn, [s.shipment_id])[s.shipment_id])
    current = state.current
    changed_current = previous is None or previous.key != current.key
    alert = changed_current and alert_for(previous, current)
    txn.execute(
        "UPDATE wangxin_parcels_shipments SET status = ?, status_at = ?, final = ?, updated_ts = ?,"
        " version = version + 1, render_due_ts = ?, user_id = COALESCE(user_id, ?), order_id = COALESCE(order_id, ?),"
        " merchant = COALESCE(merchant, ?)" + (", alert_key = ?" if alert else "") + " WHERE shipment_id = ?",
        (current.status, current.at, int(current.status in FINAL), now, now + RENDER_GRACE_MS, user_id, s.order_id,
         s.merchant)
        + ((current.key,) if alert else ()) + (s.shipment_id,),
    )
    txn.execute("SELECT user_id FROM wangxin_parcels_shipments WHERE shipment_id = ?", (s.shipment_id,))
    return Recorded(current.status, True, txn.fetchone()[0])


def stale_cards_txn(txn: Any, user_id: str) -> list[Shipment]:
    """The person's shipments whose card is behind (with their histories)."""
    return _with_histories(
        txn, _select(txn, "user_id = ? AND version > rendered_version ORDER BY created_ts, shipment_id", (user_id,))
    )


def set_card_txn(txn: Any, shipment_id: str, room_id: str, event_id: str, card_hash: str) -> None:
    """A new card was posted: recorded at once, so that nothing posts a second one."""
    txn.execute(
        "UPDATE wangxin_parcels_shipments SET card_room_id = ?, card_event_id = ?, card_hash = ? WHERE shipment_id = ?",
        (room_id, event_id, card_hash, shipment_id),
    )


def set_alerted_txn(txn: Any, shipment_id: str, alert_key: str) -> None:
    """The person was notified of ``alert_key``: recorded at once, so that nothing notifies twice."""
    txn.execute("UPDATE wangxin_parcels_shipments SET alerted_key = ? WHERE shipment_id = ?", (alert_key, shipment_id))


@attrs.frozen
class Rendered:
    shipment_id: str
    version: int
    card_hash: str


def cards_rendered_txn(txn: Any, rendered: Sequence[Rendered]) -> None:
    for r in rendered:
        txn.execute(
            "UPDATE wangxin_parcels_shipments SET rendered_version = ?, card_hash = ?"
            " WHERE shipment_id = ? AND rendered_version < ?",
            (r.version, r.card_hash, r.shipment_id, r.version),
        )


def recent_of_user_txn(txn: Any, user_id: str, since: int) -> list[Shipment]:
    """The person's parcels still on their way, and those delivered or returned since ``since``."""
    shipments = _select(txn, "user_id = ? AND (final = 0 OR status_at >= ?) ORDER BY status_at DESC",
                        (user_id, since))
    return _with_histories(txn, shipments)


def recent_of_merchant_txn(txn: Any, merchant: str, since: int, order_id: str | None, limit: int) -> list[Shipment]:
    """A merchant's shipments still on their way and those that ended since ``since`` (one order's if given)."""
    where = "merchant = ? AND (final = 0 OR status_at >= ?)"
    args: list[Any] = [merchant, since]
    if order_id is not None:
        where += " AND order_id = ?"
        args.append(order_id)
    return _with_histories(txn, _select(txn, where + " ORDER BY status_at DESC LIMIT ?", args + [limit]))


def redo_cards_elsewhere_txn(txn: Any, user_id: str, room_id: str, since: int) -> int:
    """The person has a new Parcels room: their recent parcels get a card there."""
    txn.execute(
        "UPDATE wangxin_parcels_shipments SET version = version + 1, render_due_ts = 0"
        " WHERE user_id = ? AND (final = 0 OR status_at >= ?) AND (card_room_id IS NULL OR card_room_id <> ?)",
        (user_id, since, room_id),
    )
    return int(txn.rowcount)
