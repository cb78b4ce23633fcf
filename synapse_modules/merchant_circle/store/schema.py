"""The merchant circle's tables, created on first use by every process (idempotently)."""

from __future__ import annotations

from synapse_modules._store import Schema

STATEMENTS = (
    """CREATE TABLE IF NOT EXISTS wangxin_merchants (
        user_id TEXT NOT NULL PRIMARY KEY,
        name TEXT NOT NULL,
        avatar_url TEXT,
        circle_room_id TEXT NOT NULL UNIQUE,
        created_ts BIGINT NOT NULL,
        last_post_ts BIGINT NOT NULL DEFAULT 0
    )""",
    # state: 'following' (we joined them, or they joined) or 'unfollowed' (remembered: chats and
    # purchases never re-add them).
    """CREATE TABLE IF NOT EXISTS wangxin_circle_follows (
        merchant_id TEXT NOT NULL,
        user_id TEXT NOT NULL,
        state TEXT NOT NULL,
        updated_ts BIGINT NOT NULL,
        PRIMARY KEY (merchant_id, user_id)
    )""",
    """CREATE TABLE IF NOT EXISTS wangxin_purchases (
        order_id TEXT NOT NULL PRIMARY KEY,
        buyer TEXT NOT NULL,
        merchant_id TEXT NOT NULL,
        items TEXT NOT NULL,
        received_ts BIGINT NOT NULL
    )""",
    # The durable work queue: 'follow' (mute + join) and 'file' (put a room in the user's space).
    """CREATE TABLE IF NOT EXISTS wangxin_circle_jobs (
        job_id TEXT NOT NULL PRIMARY KEY,
        kind TEXT NOT NULL,
        user_id TEXT NOT NULL,
        merchant_id TEXT,
        room_id TEXT,
        reason TEXT NOT NULL,
        created_ts BIGINT NOT NULL,
        next_try_ts BIGINT NOT NULL,
        attempts INTEGER NOT NULL DEFAULT 0,
        last_error TEXT
    )""",
    "CREATE INDEX IF NOT EXISTS wangxin_circle_jobs_due ON wangxin_circle_jobs (next_try_ts)",
    # Follows and other jobs that can never succeed end here, with the reason (the status the
    # platform and the merchant see), instead of being retried forever.
    """CREATE TABLE IF NOT EXISTS wangxin_circle_failed_jobs (
        job_id TEXT NOT NULL PRIMARY KEY,
        kind TEXT NOT NULL,
        user_id TEXT NOT NULL,
        merchant_id TEXT,
        room_id TEXT,
        reason TEXT NOT NULL,
        created_ts BIGINT NOT NULL,
        failed_ts BIGINT NOT NULL,
        attempts INTEGER NOT NULL,
        error TEXT NOT NULL
    )""",
    "CREATE INDEX IF NOT EXISTS wangxin_circle_failed_jobs_merchant ON wangxin_circle_failed_jobs (merchant_id)",
    # Posts admitted by the quota check. `persisted` is 0 until the event is seen in Synapse's
    # events table: a post refused after the check (auth, rate limit, another module) never
    # gets there and stops counting (see `record_post_txn`).
    """CREATE TABLE IF NOT EXISTS wangxin_circle_posts (
        event_id TEXT NOT NULL PRIMARY KEY,
        merchant_id TEXT NOT NULL,
        sender TEXT NOT NULL,
        product_id TEXT,
        product TEXT,
        ts BIGINT NOT NULL,
        device_id TEXT,
        persisted INTEGER NOT NULL DEFAULT 0
    )""",
    "CREATE INDEX IF NOT EXISTS wangxin_circle_posts_merchant ON wangxin_circle_posts (merchant_id, ts)",
    """CREATE TABLE IF NOT EXISTS wangxin_circle_spaces (
        user_id TEXT NOT NULL PRIMARY KEY,
        space_room_id TEXT NOT NULL
    )""",
    """CREATE TABLE IF NOT EXISTS wangxin_circle_space_children (
        user_id TEXT NOT NULL,
        room_id TEXT NOT NULL,
        PRIMARY KEY (user_id, room_id)
    )""",
    # Edits of posts (and ends of polls), which take no quota slot but are bounded per post and
    # day. Like posts, they count once persisted (see `record_edit_txn`).
    """CREATE TABLE IF NOT EXISTS wangxin_circle_edits (
        event_id TEXT NOT NULL PRIMARY KEY,
        post_event_id TEXT NOT NULL,
        merchant_id TEXT NOT NULL,
        ts BIGINT NOT NULL,
        device_id TEXT,
        persisted INTEGER NOT NULL DEFAULT 0
    )""",
    "CREATE INDEX IF NOT EXISTS wangxin_circle_edits_post ON wangxin_circle_edits (post_event_id, ts)",
    # A circle being made for a merchant: written before its room is created and removed with the
    # merchant's record, so a retried PUT after a failure in between finds that room again.
    """CREATE TABLE IF NOT EXISTS wangxin_circle_creations (
        merchant_id TEXT NOT NULL PRIMARY KEY,
        started_ts BIGINT NOT NULL
    )""",
    # How far the module has read Synapse's streams (the membership delta stream), so a leave
    # seen by nobody before a restart is still seen after it.
    """CREATE TABLE IF NOT EXISTS wangxin_circle_positions (
        name TEXT NOT NULL PRIMARY KEY,
        position BIGINT NOT NULL
    )""",
    # The categories of a purchase's items (optional, from the platform's webhook), one row each,
    # with the buyer, merchant and time copied: a platform's targeted post finds the buyers of a
    # category over an index range (docs/accounts.md, "Targeted posts").
    """CREATE TABLE IF NOT EXISTS wangxin_purchase_categories (
        order_id TEXT NOT NULL,
        category TEXT NOT NULL,
        buyer TEXT NOT NULL,
        merchant_id TEXT NOT NULL,
        received_ts BIGINT NOT NULL,
        PRIMARY KEY (order_id, category)
    )""",
    "CREATE INDEX IF NOT EXISTS wangxin_purchase_categories_category ON wangxin_purchase_categories"
    " (category, received_ts)",
    # Targeted posts also find the buyers of a merchant, or of anything, since some day.
    "CREATE INDEX IF NOT EXISTS wangxin_purchases_merchant ON wangxin_purchases (merchant_id, received_ts)",
    "CREATE INDEX IF NOT EXISTS wangxin_purchases_received ON wangxin_purchases (received_ts)",
    # A circle's further rooms (shards) past its first, the merchant's circle_room_id (shard 0):
    # docs/merchant-circle.md, "Circles past one room". ``room_id`` is NULL while a process makes
    # the room (``started_ts`` says since when: a claim left by a stopped process is taken over).
    """CREATE TABLE IF NOT EXISTS wangxin_circle_shards (
        merchant_id TEXT NOT NULL,
        shard_no INTEGER NOT NULL,
        room_id TEXT UNIQUE,
        started_ts BIGINT NOT NULL,
        PRIMARY KEY (merchant_id, shard_no)
    )""",
    # A post (or an edit or removal of one) in a sharded circle's first room, to be mirrored into
    # the other rooms; ``done_ts`` once every room has its mirror.
    """CREATE TABLE IF NOT EXISTS wangxin_circle_fanouts (
        event_id TEXT NOT NULL PRIMARY KEY,
        merchant_id TEXT NOT NULL,
        created_ts BIGINT NOT NULL,
        done_ts BIGINT
    )""",
    "CREATE INDEX IF NOT EXISTS wangxin_circle_fanouts_open ON wangxin_circle_fanouts (done_ts, created_ts)",
    # Each mirror: the first room's event and its copy in another room of the circle.
    """CREATE TABLE IF NOT EXISTS wangxin_circle_mirrors (
        event_id TEXT NOT NULL,
        room_id TEXT NOT NULL,
        mirror_event_id TEXT NOT NULL,
        PRIMARY KEY (event_id, room_id)
    )""",
)

# Columns added after the first release of a table: (table, column, definition).
ADDED_COLUMNS = (
    ("wangxin_circle_posts", "device_id", "TEXT"),
    ("wangxin_circle_posts", "persisted", "INTEGER NOT NULL DEFAULT 0"),
)

# Indexes on added columns, created after those columns exist.
ADDED_INDEXES = (
    # The quota reads a merchant's pending posts, and counts its persisted posts of the last day.
    "CREATE INDEX IF NOT EXISTS wangxin_circle_posts_state ON wangxin_circle_posts (merchant_id, persisted, ts)",
    # The repost cooldown reads a product's last post.
    "CREATE INDEX IF NOT EXISTS wangxin_circle_posts_product ON wangxin_circle_posts (merchant_id, product_id, ts)",
)


SCHEMA = Schema(STATEMENTS, ADDED_COLUMNS, ADDED_INDEXES)
create_schema_txn = SCHEMA.create_txn
