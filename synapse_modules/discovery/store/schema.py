"""Discovery's tables, created on first use by every process (idempotently).

No table has a column for coordinates: a position becomes a cell (``cells.cell_of``) before
anything is stored, and ``wangxin_discovery_locations`` keeps that cell and a time only.
Flags are INTEGER 0/1 (one text for SQLite and PostgreSQL).
"""

from __future__ import annotations

from synapse_modules._store import Schema

SCHEMA = Schema((
    # Only people who opted in have a row; opting out deletes it (and everything of theirs in
    # the pools: ``people.opt_out_txn``).
    """CREATE TABLE IF NOT EXISTS wangxin_discovery_profiles (
        user_id TEXT NOT NULL PRIMARY KEY,
        name TEXT NOT NULL,
        gender TEXT,
        age_range TEXT,
        updated_ts BIGINT NOT NULL
    )""",
    # A coarse cell (geohash) and when it was shared; expired rows are deleted by the cleanup.
    """CREATE TABLE IF NOT EXISTS wangxin_discovery_locations (
        user_id TEXT NOT NULL PRIMARY KEY,
        cell TEXT NOT NULL,
        updated_ts BIGINT NOT NULL
    )""",
    "CREATE INDEX IF NOT EXISTS wangxin_discovery_locations_cell ON wangxin_discovery_locations (cell, updated_ts)",
    "CREATE INDEX IF NOT EXISTS wangxin_discovery_locations_ts ON wangxin_discovery_locations (updated_ts)",
    # Blocks are for good; a report adds one too.
    """CREATE TABLE IF NOT EXISTS wangxin_discovery_blocks (
        blocker TEXT NOT NULL,
        blocked TEXT NOT NULL,
        ts BIGINT NOT NULL,
        PRIMARY KEY (blocker, blocked)
    )""",
    "CREATE INDEX IF NOT EXISTS wangxin_discovery_blocks_blocked ON wangxin_discovery_blocks (blocked)",
    # People out of every pool: 'held' (reported, until a server admin reviews) or 'banned'.
    """CREATE TABLE IF NOT EXISTS wangxin_discovery_standing (
        user_id TEXT NOT NULL PRIMARY KEY,
        state TEXT NOT NULL,
        since_ts BIGINT NOT NULL
    )""",
    """CREATE TABLE IF NOT EXISTS wangxin_discovery_reports (
        report_id TEXT NOT NULL PRIMARY KEY,
        reporter TEXT NOT NULL,
        reported TEXT NOT NULL,
        reason TEXT NOT NULL,
        created_ts BIGINT NOT NULL,
        state TEXT NOT NULL,
        resolved_by TEXT,
        resolved_ts BIGINT
    )""",
    "CREATE INDEX IF NOT EXISTS wangxin_discovery_reports_state ON wangxin_discovery_reports (state, created_ts)",
    "CREATE INDEX IF NOT EXISTS wangxin_discovery_reports_reported ON wangxin_discovery_reports (reported, state)",
    # state: 'sea' (can be picked) or 'picked' (by picker; only they may reply, once).
    # rand: a random key, so a random pick is an index range scan, not a sort of the sea.
    """CREATE TABLE IF NOT EXISTS wangxin_discovery_bottles (
        bottle_id TEXT NOT NULL PRIMARY KEY,
        thrower TEXT NOT NULL,
        text TEXT NOT NULL,
        thrown_ts BIGINT NOT NULL,
        rand BIGINT NOT NULL,
        state TEXT NOT NULL,
        picker TEXT,
        picked_ts BIGINT,
        replied INTEGER NOT NULL DEFAULT 0
    )""",
    "CREATE INDEX IF NOT EXISTS wangxin_discovery_bottles_sea ON wangxin_discovery_bottles (state, rand)",
    "CREATE INDEX IF NOT EXISTS wangxin_discovery_bottles_thrower ON wangxin_discovery_bottles (thrower)",
    "CREATE INDEX IF NOT EXISTS wangxin_discovery_bottles_picker ON wangxin_discovery_bottles (picker)",
    # Chat requests: kind 'hi' | 'bottle' (from sender to recipient: the sender has accepted by
    # asking) | 'shake' (mutual: both must accept). state: 'pending', 'accepting' (the room is
    # being made; claimed at updated_ts), 'accepted' (room_id), 'declined'.
    """CREATE TABLE IF NOT EXISTS wangxin_discovery_requests (
        request_id TEXT NOT NULL PRIMARY KEY,
        kind TEXT NOT NULL,
        sender TEXT NOT NULL,
        recipient TEXT NOT NULL,
        mutual INTEGER NOT NULL,
        sender_accepted INTEGER NOT NULL,
        recipient_accepted INTEGER NOT NULL,
        state TEXT NOT NULL,
        text TEXT,
        bottle_id TEXT,
        created_ts BIGINT NOT NULL,
        updated_ts BIGINT NOT NULL,
        room_id TEXT
    )""",
    "CREATE INDEX IF NOT EXISTS wangxin_discovery_requests_recipient ON wangxin_discovery_requests (recipient, state)",
    "CREATE INDEX IF NOT EXISTS wangxin_discovery_requests_sender ON wangxin_discovery_requests (sender, state)",
    "CREATE INDEX IF NOT EXISTS wangxin_discovery_requests_updated ON wangxin_discovery_requests (updated_ts)",
    # Timed rendezvous (shake; issue 23's angle): who entered which window of which pool, and
    # once the window is decided, with whom they were paired.
    """CREATE TABLE IF NOT EXISTS wangxin_discovery_window_entries (
        pool TEXT NOT NULL,
        window_start BIGINT NOT NULL,
        user_id TEXT NOT NULL,
        region TEXT,
        entered_ts BIGINT NOT NULL,
        partner TEXT,
        request_id TEXT,
        PRIMARY KEY (pool, window_start, user_id)
    )""",
    "CREATE INDEX IF NOT EXISTS wangxin_discovery_window_entries_user ON wangxin_discovery_window_entries (user_id)",
    # A row per decided window: written by whichever process decides it first.
    """CREATE TABLE IF NOT EXISTS wangxin_discovery_windows (
        pool TEXT NOT NULL,
        window_start BIGINT NOT NULL,
        decided_ts BIGINT NOT NULL,
        PRIMARY KEY (pool, window_start)
    )""",
    # Per-user rate limits: one leaky bucket per action, as its "theoretical arrival time".
    """CREATE TABLE IF NOT EXISTS wangxin_discovery_rates (
        user_id TEXT NOT NULL,
        action TEXT NOT NULL,
        tat BIGINT NOT NULL,
        PRIMARY KEY (user_id, action)
    )""",
    # Daily limits (throws, picks): one row per counted action, kept for a day.
    """CREATE TABLE IF NOT EXISTS wangxin_discovery_daily (
        user_id TEXT NOT NULL,
        action TEXT NOT NULL,
        ts BIGINT NOT NULL
    )""",
    "CREATE INDEX IF NOT EXISTS wangxin_discovery_daily_user ON wangxin_discovery_daily (user_id, action, ts)",
    "CREATE INDEX IF NOT EXISTS wangxin_discovery_daily_ts ON wangxin_discovery_daily (ts)",
    # 你我36.8度's coupons: one job per accepted pairing (the platform is asked once per pairing id,
    # retried until it answers), and one row per person of it, whose state the person and the
    # discovery bot read. state: 'waiting' (asked), 'delayed' (the platform failed at least
    # once; still asked), 'issued' (code, title), 'none' (no coupon: ``reason``).
    """CREATE TABLE IF NOT EXISTS wangxin_discovery_coupon_jobs (
        pairing_id TEXT NOT NULL PRIMARY KEY,
        users TEXT NOT NULL,
        at_ts BIGINT NOT NULL,
        done INTEGER NOT NULL DEFAULT 0,
        attempts INTEGER NOT NULL DEFAULT 0,
        next_attempt_ts BIGINT NOT NULL,
        lease_until BIGINT NOT NULL DEFAULT 0,
        last_error TEXT
    )""",
    "CREATE INDEX IF NOT EXISTS wangxin_discovery_coupon_jobs_due"
    " ON wangxin_discovery_coupon_jobs (done, next_attempt_ts)",
    """CREATE TABLE IF NOT EXISTS wangxin_discovery_coupons (
        pairing_id TEXT NOT NULL,
        user_id TEXT NOT NULL,
        partner TEXT NOT NULL,
        state TEXT NOT NULL,
        code TEXT,
        title TEXT,
        expires_at TEXT,
        reason TEXT,
        created_ts BIGINT NOT NULL,
        updated_ts BIGINT NOT NULL,
        PRIMARY KEY (pairing_id, user_id)
    )""",
    "CREATE INDEX IF NOT EXISTS wangxin_discovery_coupons_user ON wangxin_discovery_coupons (user_id, created_ts)",
    "CREATE INDEX IF NOT EXISTS wangxin_discovery_coupons_updated ON wangxin_discovery_coupons (updated_ts)",
    # 面对面: who waits in the face-to-face queue, until when. ``wangxin_discovery_pool_locks``
    # has one row per queue that every entry updates first: on PostgreSQL two entries at once
    # then run one after the other (the later one is retried), so two people who arrive
    # together see each other instead of both waiting.
    """CREATE TABLE IF NOT EXISTS wangxin_discovery_video_queue (
        user_id TEXT NOT NULL PRIMARY KEY,
        region TEXT,
        language TEXT,
        entered_ts BIGINT NOT NULL,
        expires_ts BIGINT NOT NULL
    )""",
    "CREATE INDEX IF NOT EXISTS wangxin_discovery_video_queue_entered ON wangxin_discovery_video_queue (entered_ts)",
    """CREATE TABLE IF NOT EXISTS wangxin_discovery_pool_locks (
        pool TEXT NOT NULL PRIMARY KEY,
        version BIGINT NOT NULL
    )""",
))

create_schema_txn = SCHEMA.create_txn
