"""SQL of what is still to do and who does it: people whose cards are behind (shipments whose
``version`` is ahead of ``rendered_version``), phone numbers just bound
(``wangxin_parcels_claims``), and the leases that give one process at a time a person's room and
cards (``wangxin_parcels_leases``)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import attrs

from synapse_modules._internals import user_by_msisdn_txn
from synapse_modules.parcels.store.rooms import RoomRecord, get_room_txn
from synapse_modules.parcels.store.shipments import (
    RENDER_GRACE_MS,
    Rendered,
    Shipment,
    cards_rendered_txn,
    stale_cards_txn,
)

# -- leases ---------------------------------------------------------------------------------------


def acquire_lease_txn(txn: Any, name: str, holder: str, now: int, ttl_ms: int) -> bool:
    """Take the lease ``name`` for ``holder`` if nobody holds it or its holder's time ran out
    (a holder that crashed). On PostgreSQL two takers of one lease conflict and one is retried."""
    txn.execute(
        "INSERT INTO wangxin_parcels_leases (name, holder, expires_ts) VALUES (?, ?, ?)"
        " ON CONFLICT (name) DO UPDATE SET holder = excluded.holder, expires_ts = excluded.expires_ts"
        " WHERE wangxin_parcels_leases.expires_ts < ?",
        (name, holder, now + ttl_ms, now),
    )
    txn.execute("SELECT holder FROM wangxin_parcels_leases WHERE name = ?", (name,))
    row = txn.fetchone()
    return row is not None and row[0] == holder


def release_lease_txn(txn: Any, name: str, holder: str) -> None:
    txn.execute("DELETE FROM wangxin_parcels_leases WHERE name = ? AND holder = ?", (name, holder))


@attrs.frozen
class RenderWork:
    room: RoomRecord | None
    stale: list[Shipment]


def begin_render_txn(txn: Any, user_id: str, lease: str, holder: str, now: int, ttl_ms: int) -> RenderWork | None:
    """Take the person's lease and, if it was free, read what to render: the person's room and
    their cards that are behind (read after taking the lease, so the last update is in)."""
    if not acquire_lease_txn(txn, lease, holder, now, ttl_ms):
        return None
    return RenderWork(get_room_txn(txn, user_id), stale_cards_txn(txn, user_id))


# -- cards to bring up to date ------------------------------------------------------------------


def render_done_txn(txn: Any, lease: str, holder: str, rendered: Sequence[Rendered] = ()) -> None:
    """Cards rendered: each recorded as up to date (to the version it showed; a change since
    keeps it behind); the lease is released."""
    cards_rendered_txn(txn, rendered)
    release_lease_txn(txn, lease, holder)


def due_renders_txn(txn: Any, now: int, limit: int) -> list[str]:
    """People with a card behind whose due time has passed (the partial index holds only those)."""
    txn.execute(
        "SELECT user_id, MIN(render_due_ts) FROM wangxin_parcels_shipments"
        " WHERE version > rendered_version AND user_id IS NOT NULL AND render_due_ts <= ?"
        " GROUP BY user_id ORDER BY MIN(render_due_ts) LIMIT ?",
        (now, limit),
    )
    return [r[0] for r in txn.fetchall()]


def due_work_txn(txn: Any, now: int, claim_limit: int, render_limit: int) -> tuple[list[tuple[str, str, int]],
                                                                                  list[str]]:
    """The drain's one read per tick: phone claims queued, and people whose cards are due."""
    return due_claims_txn(txn, claim_limit), due_renders_txn(txn, now, render_limit)


def postpone_render_txn(txn: Any, user_id: str, due_ts: int) -> None:
    """A render failed: the drain tries again at ``due_ts`` (not at every tick)."""
    txn.execute(
        "UPDATE wangxin_parcels_shipments SET render_due_ts = ?"
        " WHERE user_id = ? AND version > rendered_version AND user_id IS NOT NULL",
        (due_ts, user_id),
    )


# -- phone numbers just bound ---------------------------------------------------------------------


def add_claim_txn(txn: Any, user_id: str, msisdn: str, now: int) -> None:
    txn.execute(
        "INSERT INTO wangxin_parcels_claims (user_id, msisdn, queued_ts) VALUES (?, ?, ?)"
        " ON CONFLICT (user_id, msisdn) DO UPDATE SET queued_ts = excluded.queued_ts",
        (user_id, msisdn, now),
    )


def due_claims_txn(txn: Any, limit: int) -> list[tuple[str, str, int]]:
    txn.execute("SELECT user_id, msisdn, queued_ts FROM wangxin_parcels_claims ORDER BY queued_ts LIMIT ?", (limit,))
    return [(r[0], r[1], int(r[2])) for r in txn.fetchall()]


def apply_claim_txn(txn: Any, user_id: str, msisdn: str, queued_ts: int, now: int, settle_ms: int) -> int:
    """The shipments waiting for ``msisdn`` go to ``user_id`` if that account (still, and
    active) holds the number; returns how many. The claim stays ``settle_ms`` after it was
    queued and is applied again at every drain: a shipment whose webhook looked the number up
    just before the bind and stored it just after is still found. Parcels already over when
    claimed do not notify the new owner."""
    if user_by_msisdn_txn(txn, msisdn) != user_id:
        txn.execute("DELETE FROM wangxin_parcels_claims WHERE user_id = ? AND msisdn = ?", (user_id, msisdn))
        return 0
    txn.execute(
        "UPDATE wangxin_parcels_shipments SET user_id = ?, version = version + 1, updated_ts = ?, render_due_ts = ?,"
        " alerted_key = CASE WHEN final = 1 THEN alert_key ELSE alerted_key END"
        " WHERE buyer_phone = ? AND user_id IS NULL",
        (user_id, now, now + RENDER_GRACE_MS, msisdn),
    )
    claimed = int(txn.rowcount)
    if queued_ts + settle_ms <= now:
        txn.execute(
            "DELETE FROM wangxin_parcels_claims WHERE user_id = ? AND msisdn = ? AND queued_ts = ?",
            (user_id, msisdn, queued_ts),
        )
    return claimed


def drop_claim_txn(txn: Any, user_id: str, msisdn: str) -> None:
    txn.execute("DELETE FROM wangxin_parcels_claims WHERE user_id = ? AND msisdn = ?", (user_id, msisdn))
