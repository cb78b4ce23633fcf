"""The parcels module's tables, created on first use by every process (idempotently)."""

from __future__ import annotations

from synapse_modules._store import Schema

STATEMENTS = (
    # One row per shipment: who it is for, where it is (the current update, from the history
    # below), and its card. ``user_id`` is the person it belongs to: ``buyer``, or the account
    # that holds ``buyer_phone`` (NULL until someone does). ``version`` grows with every change;
    # the card is up to date when ``rendered_version`` has caught up; until then the background
    # drain renders it once ``render_due_ts`` has passed (the request that made the change
    # normally renders it long before). ``alert_key`` names the update to notify the person
    # about, ``alerted_key`` the last one they were notified of.
    """CREATE TABLE IF NOT EXISTS wangxin_parcels_shipments (
        shipment_id TEXT NOT NULL PRIMARY KEY,
        order_id TEXT,
        buyer TEXT,
        buyer_phone TEXT,
        user_id TEXT,
        merchant TEXT,
        carrier TEXT NOT NULL,
        tracking_number TEXT NOT NULL,
        status TEXT NOT NULL,
        status_at BIGINT NOT NULL,
        final INTEGER NOT NULL,
        created_ts BIGINT NOT NULL,
        updated_ts BIGINT NOT NULL,
        version BIGINT NOT NULL,
        rendered_version BIGINT NOT NULL DEFAULT 0,
        render_due_ts BIGINT NOT NULL DEFAULT 0,
        alert_key TEXT,
        alerted_key TEXT,
        card_room_id TEXT,
        card_event_id TEXT,
        card_hash TEXT
    )""",
    "CREATE INDEX IF NOT EXISTS wangxin_parcels_shipments_user ON wangxin_parcels_shipments (user_id, status_at)",
    # Shipments waiting for the account of their phone number.
    "CREATE INDEX IF NOT EXISTS wangxin_parcels_shipments_phone ON wangxin_parcels_shipments (buyer_phone)"
    " WHERE user_id IS NULL",
    "CREATE INDEX IF NOT EXISTS wangxin_parcels_shipments_merchant"
    " ON wangxin_parcels_shipments (merchant, status_at)",
    # Cards behind, for the drain: only those rows are in the index. A mark of its own (a row
    # per person) would make concurrent updates of one person's parcels conflict on PostgreSQL.
    "CREATE INDEX IF NOT EXISTS wangxin_parcels_shipments_behind ON wangxin_parcels_shipments (render_due_ts)"
    " WHERE version > rendered_version AND user_id IS NOT NULL",
    # The history: one row per (shipment, status, at), the idempotency key of the webhook.
    """CREATE TABLE IF NOT EXISTS wangxin_parcels_updates (
        shipment_id TEXT NOT NULL,
        status TEXT NOT NULL,
        at BIGINT NOT NULL,
        location TEXT,
        eta BIGINT,
        detail TEXT,
        received_ts BIGINT NOT NULL,
        PRIMARY KEY (shipment_id, status, at)
    )""",
    # Each person's Parcels room: 'creating' from before the room exists (room_id NULL) until
    # the person is in and the room is closed to joins, then 'ready'.
    """CREATE TABLE IF NOT EXISTS wangxin_parcels_rooms (
        user_id TEXT NOT NULL PRIMARY KEY,
        room_id TEXT,
        state TEXT NOT NULL,
        updated_ts BIGINT NOT NULL
    )""",
    # Phone numbers just bound to an account, whose waiting shipments go to it (durable: queued
    # by the bind's callback, drained by the background-tasks process).
    """CREATE TABLE IF NOT EXISTS wangxin_parcels_claims (
        user_id TEXT NOT NULL,
        msisdn TEXT NOT NULL,
        queued_ts BIGINT NOT NULL,
        PRIMARY KEY (user_id, msisdn)
    )""",
    # Who writes a person's room and cards right now (any process may answer the webhook).
    """CREATE TABLE IF NOT EXISTS wangxin_parcels_leases (
        name TEXT NOT NULL PRIMARY KEY,
        holder TEXT NOT NULL,
        expires_ts BIGINT NOT NULL
    )""",
)


SCHEMA = Schema(STATEMENTS)
create_schema_txn = SCHEMA.create_txn
