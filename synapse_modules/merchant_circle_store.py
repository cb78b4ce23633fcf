"""Every SQL statement of the merchant circle module (SQLite and PostgreSQL).

Each ``*_txn`` function runs on Synapse's database pool through ``api.run_db_interaction``;
Synapse's cursor turns ``?`` into ``%s`` for PostgreSQL. On PostgreSQL a transaction runs at
REPEATABLE READ and Synapse retries it on a serialization failure, which is what makes the
post quota exact under concurrent sends (see :func:`record_post_txn`).
"""

from __future__ import annotations

import json
import logging
import uuid
from typing import Any

import attrs

logger = logging.getLogger(__name__)

DAY_MS = 24 * 3600 * 1000

SCHEMA = [
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
]

# Columns added after the first release of a table: (table, column, definition).
ADDED_COLUMNS = [
    ("wangxin_circle_posts", "device_id", "TEXT"),
    ("wangxin_circle_posts", "persisted", "INTEGER NOT NULL DEFAULT 0"),
]

# Indexes on added columns, created after those columns exist.
ADDED_INDEXES = [
    # The quota reads a merchant's pending posts, and counts its persisted posts of the last day.
    "CREATE INDEX IF NOT EXISTS wangxin_circle_posts_state ON wangxin_circle_posts (merchant_id, persisted, ts)",
    # The repost cooldown reads a product's last post.
    "CREATE INDEX IF NOT EXISTS wangxin_circle_posts_product ON wangxin_circle_posts (merchant_id, product_id, ts)",
]

# A post admitted but not (yet) persisted counts against the quota for this long: it may still
# be on its way to the database. Posts that are still not persisted after RECHECK_MS never will be.
IN_FLIGHT_MS = 30_000
RECHECK_MS = 10 * 60_000


@attrs.frozen
class Merchant:
    user_id: str
    name: str
    avatar_url: str | None
    circle_room_id: str


@attrs.frozen
class Job:
    job_id: str
    kind: str
    user_id: str
    merchant_id: str | None
    room_id: str | None
    reason: str
    attempts: int


@attrs.frozen
class PostDecision:
    """``retry_after_ms`` is ``None`` when the post is allowed (and recorded); otherwise
    ``reason`` says why and ``limit`` names the configuration option that sets the limit."""

    retry_after_ms: int | None
    reason: str | None = None
    limit: str | None = None


@attrs.frozen
class EditDecision:
    """``not_a_post``: the target is no persisted post of this sender in this circle (so the
    event is a new post); otherwise ``post_product_id`` is the edited post's product, and
    ``retry_after_ms`` is set when the post's edits of the day are used up."""

    not_a_post: bool
    post_product_id: str | None = None
    retry_after_ms: int | None = None


def create_schema_txn(txn: Any) -> None:
    for statement in SCHEMA:
        txn.execute(statement)
    for table, column, definition in ADDED_COLUMNS:
        txn.execute(f"SELECT * FROM {table} LIMIT 0")
        if column not in [d[0] for d in txn.description]:
            txn.execute(f"ALTER TABLE {table} ADD COLUMN {column} {definition}")
    for statement in ADDED_INDEXES:
        txn.execute(statement)


# -- merchants ---------------------------------------------------------------------------------

def _merchant(row: Any) -> Merchant | None:
    return Merchant(row[0], row[1], row[2], row[3]) if row else None


def get_merchant_txn(txn: Any, user_id: str) -> Merchant | None:
    txn.execute(
        "SELECT user_id, name, avatar_url, circle_room_id FROM wangxin_merchants WHERE user_id = ?", (user_id,)
    )
    return _merchant(txn.fetchone())


def get_merchant_by_room_txn(txn: Any, room_id: str) -> Merchant | None:
    txn.execute(
        "SELECT user_id, name, avatar_url, circle_room_id FROM wangxin_merchants WHERE circle_room_id = ?",
        (room_id,),
    )
    return _merchant(txn.fetchone())


def all_circles_txn(txn: Any) -> list[tuple[str, str]]:
    txn.execute("SELECT user_id, circle_room_id FROM wangxin_merchants")
    return [(r[0], r[1]) for r in txn.fetchall()]


def insert_merchant_txn(txn: Any, merchant: Merchant, now: int) -> Merchant:
    """Insert unless the merchant exists already; returns the stored row (the first one wins).
    The circle's creation is over: its marker goes."""
    txn.execute(
        "INSERT INTO wangxin_merchants (user_id, name, avatar_url, circle_room_id, created_ts)"
        " VALUES (?, ?, ?, ?, ?) ON CONFLICT (user_id) DO NOTHING",
        (merchant.user_id, merchant.name, merchant.avatar_url, merchant.circle_room_id, now),
    )
    txn.execute("DELETE FROM wangxin_circle_creations WHERE merchant_id = ?", (merchant.user_id,))
    stored = get_merchant_txn(txn, merchant.user_id)
    assert stored is not None
    return stored


def start_circle_creation_txn(txn: Any, merchant_id: str, now: int) -> bool:
    """Mark that a circle is being made for ``merchant_id``; returns whether an earlier attempt
    was marked and never finished (its room, if it got that far, is to be found and reused)."""
    txn.execute("SELECT 1 FROM wangxin_circle_creations WHERE merchant_id = ?", (merchant_id,))
    if txn.fetchone() is not None:
        return True
    txn.execute("INSERT INTO wangxin_circle_creations (merchant_id, started_ts) VALUES (?, ?)", (merchant_id, now))
    return False


def update_merchant_profile_txn(txn: Any, user_id: str, name: str, avatar_url: str | None) -> None:
    txn.execute("UPDATE wangxin_merchants SET name = ?, avatar_url = ? WHERE user_id = ?", (name, avatar_url, user_id))


def merchant_ids_among_txn(txn: Any, user_ids: list[str]) -> set[str]:
    if not user_ids:
        return set()
    marks = ", ".join("?" for _ in user_ids)
    txn.execute(f"SELECT user_id FROM wangxin_merchants WHERE user_id IN ({marks})", tuple(user_ids))
    return {r[0] for r in txn.fetchall()}


# -- follows and the job queue -----------------------------------------------------------------

def follow_state_txn(txn: Any, merchant_id: str, user_id: str) -> str | None:
    txn.execute(
        "SELECT state FROM wangxin_circle_follows WHERE merchant_id = ? AND user_id = ?", (merchant_id, user_id)
    )
    row = txn.fetchone()
    return row[0] if row else None


def follow_states_txn(txn: Any, merchant_id: str, user_ids: list[str]) -> dict[str, str]:
    """``{user_id: state}`` of those of ``user_ids`` with a follow state for ``merchant_id``."""
    states: dict[str, str] = {}
    for start in range(0, len(user_ids), 500):
        chunk = user_ids[start : start + 500]
        txn.execute(
            "SELECT user_id, state FROM wangxin_circle_follows WHERE merchant_id = ?"
            f" AND user_id IN ({', '.join('?' * len(chunk))})",
            (merchant_id, *chunk),
        )
        states.update({user_id: state for user_id, state in txn.fetchall()})
    return states


def set_follow_state_txn(txn: Any, merchant_id: str, user_id: str, state: str, now: int) -> None:
    txn.execute(
        "INSERT INTO wangxin_circle_follows (merchant_id, user_id, state, updated_ts) VALUES (?, ?, ?, ?)"
        " ON CONFLICT (merchant_id, user_id) DO UPDATE SET state = excluded.state, updated_ts = excluded.updated_ts",
        (merchant_id, user_id, state, now),
    )


def unfollow_txn(txn: Any, merchant_id: str, user_id: str, now: int) -> None:
    """Remember the unfollow and drop any follow still queued for it."""
    set_follow_state_txn(txn, merchant_id, user_id, "unfollowed", now)
    txn.execute(
        "DELETE FROM wangxin_circle_jobs WHERE kind = 'follow' AND merchant_id = ? AND user_id = ?",
        (merchant_id, user_id),
    )


def follows_of_user_txn(txn: Any, user_id: str) -> list[tuple[Merchant, str]]:
    txn.execute(
        "SELECT m.user_id, m.name, m.avatar_url, m.circle_room_id, f.state FROM wangxin_circle_follows AS f"
        " JOIN wangxin_merchants AS m ON m.user_id = f.merchant_id WHERE f.user_id = ? ORDER BY m.user_id",
        (user_id,),
    )
    return [(Merchant(r[0], r[1], r[2], r[3]), r[4]) for r in txn.fetchall()]


def enqueue_job_txn(
    txn: Any, kind: str, user_id: str, merchant_id: str | None, room_id: str | None, reason: str, now: int
) -> str:
    job_id = uuid.uuid4().hex
    txn.execute(
        "INSERT INTO wangxin_circle_jobs (job_id, kind, user_id, merchant_id, room_id, reason, created_ts,"
        " next_try_ts, attempts) VALUES (?, ?, ?, ?, ?, ?, ?, ?, 0)",
        (job_id, kind, user_id, merchant_id, room_id, reason, now, now),
    )
    return job_id


def enqueue_follow_txn(txn: Any, user_id: str, merchant_id: str, reason: str, now: int) -> str:
    """Queue a follow unless the user unfollowed this merchant; returns what happened."""
    state = follow_state_txn(txn, merchant_id, user_id)
    if state == "unfollowed":
        return "unfollowed_by_user"
    enqueue_job_txn(txn, "follow", user_id, merchant_id, None, reason, now)
    return "queued"


def record_purchase_txn(
    txn: Any, order_id: str, buyer: str, merchant_id: str, items: list[Any], now: int
) -> tuple[bool, str]:
    """Store the purchase and queue the follow in one transaction: ``(new, follow)``.

    A replayed ``order_id`` changes nothing; ``new`` is then false.
    """
    txn.execute("SELECT buyer, merchant_id FROM wangxin_purchases WHERE order_id = ?", (order_id,))
    row = txn.fetchone()
    if row:
        return False, "replay" if (row[0], row[1]) == (buyer, merchant_id) else "conflict"
    txn.execute(
        "INSERT INTO wangxin_purchases (order_id, buyer, merchant_id, items, received_ts) VALUES (?, ?, ?, ?, ?)",
        (order_id, buyer, merchant_id, json.dumps(items), now),
    )
    return True, enqueue_follow_txn(txn, buyer, merchant_id, f"purchase:{order_id}", now)


def record_purchases_txn(txn: Any, purchases: list[tuple[str, str, str, list[Any], int]]) -> list[tuple[bool, str]]:
    """:func:`record_purchase_txn` for several purchases in one transaction (group commit)."""
    return [record_purchase_txn(txn, *purchase) for purchase in purchases]


def any_job_due_txn(txn: Any, now: int) -> bool:
    """Whether any job is due: one indexed read, which is all an idle queue's tick costs."""
    txn.execute("SELECT 1 FROM wangxin_circle_jobs WHERE next_try_ts <= ? LIMIT 1", (now,))
    return txn.fetchone() is not None


def due_jobs_txn(txn: Any, kinds: tuple[str, ...], now: int, limit: int) -> list[Job]:
    marks = ", ".join("?" for _ in kinds)
    txn.execute(
        "SELECT job_id, kind, user_id, merchant_id, room_id, reason, attempts FROM wangxin_circle_jobs"
        f" WHERE kind IN ({marks}) AND next_try_ts <= ? ORDER BY created_ts, job_id LIMIT ?",
        (*kinds, now, limit),
    )
    return [Job(*r) for r in txn.fetchall()]


def finish_job_txn(txn: Any, job_id: str) -> None:
    txn.execute("DELETE FROM wangxin_circle_jobs WHERE job_id = ?", (job_id,))


def finish_follow_txn(txn: Any, job_id: str, merchant_id: str, user_id: str, room_id: str, now: int) -> None:
    """A follow job joined the user: record the follow, queue the filing in their space, and
    drop the job, all at once (a crash in between would otherwise re-run the follow). Once per
    job: a second finish of the same job (a re-run that found the user joined, while the first
    finish was still being written) changes nothing. An unfollow recorded since the join wins."""
    txn.execute("DELETE FROM wangxin_circle_jobs WHERE job_id = ?", (job_id,))
    if txn.rowcount == 0:
        return
    if follow_state_txn(txn, merchant_id, user_id) == "unfollowed":
        return  # the user left (or unfollowed) between the join and this record: that stays
    set_follow_state_txn(txn, merchant_id, user_id, "following", now)
    enqueue_job_txn(txn, "file", user_id, merchant_id, room_id, "follow", now)


def finish_follows_txn(txn: Any, follows: list[tuple[str, str, str, str, int]]) -> list[None]:
    """:func:`finish_follow_txn` for several follows in one transaction (group commit)."""
    for follow in follows:
        finish_follow_txn(txn, *follow)
    return [None] * len(follows)


def retry_job_txn(txn: Any, job_id: str, attempts: int, next_try_ts: int, error: str) -> None:
    txn.execute(
        "UPDATE wangxin_circle_jobs SET attempts = ?, next_try_ts = ?, last_error = ? WHERE job_id = ?",
        (attempts, next_try_ts, error[:1000], job_id),
    )


def fail_job_txn(txn: Any, job_id: str, attempts: int, error: str, now: int) -> None:
    """End a job that cannot succeed: it leaves the queue and stays as a failure with its reason."""
    txn.execute(
        "INSERT INTO wangxin_circle_failed_jobs (job_id, kind, user_id, merchant_id, room_id, reason, created_ts,"
        " failed_ts, attempts, error) SELECT job_id, kind, user_id, merchant_id, room_id, reason, created_ts, ?, ?, ?"
        " FROM wangxin_circle_jobs WHERE job_id = ? ON CONFLICT (job_id) DO NOTHING",
        (now, attempts, error[:1000], job_id),
    )
    finish_job_txn(txn, job_id)


def follow_counts_txn(txn: Any, merchant_id: str) -> tuple[int, int, int]:
    """``(queued, failed, filings queued)`` follows of a merchant's circle; a filing puts the
    circle (or a chat with the merchant) into a follower's space after the join."""
    txn.execute("SELECT COUNT(*) FROM wangxin_circle_jobs WHERE kind = 'follow' AND merchant_id = ?", (merchant_id,))
    queued = int(txn.fetchone()[0])
    txn.execute("SELECT COUNT(*) FROM wangxin_circle_jobs WHERE kind = 'file' AND merchant_id = ?", (merchant_id,))
    filing = int(txn.fetchone()[0])
    txn.execute(
        "SELECT COUNT(*) FROM wangxin_circle_failed_jobs WHERE kind = 'follow' AND merchant_id = ?", (merchant_id,)
    )
    return queued, int(txn.fetchone()[0]), filing


@attrs.frozen
class PurchaseStatus:
    buyer: str
    merchant_id: str
    follow_state: str | None  # wangxin_circle_follows.state of the pair
    queued_attempts: int | None  # the purchase's follow job, while queued
    last_error: str | None
    failed_error: str | None  # set once the follow job failed for good


def purchase_status_txn(txn: Any, order_id: str) -> PurchaseStatus | None:
    txn.execute("SELECT buyer, merchant_id FROM wangxin_purchases WHERE order_id = ?", (order_id,))
    row = txn.fetchone()
    if row is None:
        return None
    buyer, merchant_id = row[0], row[1]
    reason = f"purchase:{order_id}"
    txn.execute("SELECT attempts, last_error FROM wangxin_circle_jobs WHERE kind = 'follow' AND reason = ?", (reason,))
    job = txn.fetchone()
    txn.execute("SELECT error FROM wangxin_circle_failed_jobs WHERE kind = 'follow' AND reason = ?", (reason,))
    failed = txn.fetchone()
    return PurchaseStatus(
        buyer, merchant_id, follow_state_txn(txn, merchant_id, buyer),
        int(job[0]) if job else None, job[1] if job else None, failed[0] if failed else None,
    )


def record_leave_txn(txn: Any, merchant_id: str, user_id: str, room_id: str, now: int) -> bool:
    """The user left (or was removed from) the circle: an unfollow. Queues taking the circle out
    of their space; returns whether anything changed."""
    state = follow_state_txn(txn, merchant_id, user_id)
    filed = is_filed_txn(txn, user_id, room_id)
    if state == "unfollowed" and not filed:
        return False
    unfollow_txn(txn, merchant_id, user_id, now)
    if filed:
        enqueue_job_txn(txn, "unfile", user_id, merchant_id, room_id, "left", now)
    return True


def get_position_txn(txn: Any, name: str) -> int | None:
    txn.execute("SELECT position FROM wangxin_circle_positions WHERE name = ?", (name,))
    row = txn.fetchone()
    return int(row[0]) if row else None


def set_position_txn(txn: Any, name: str, position: int) -> None:
    txn.execute(
        "INSERT INTO wangxin_circle_positions (name, position) VALUES (?, ?)"
        " ON CONFLICT (name) DO UPDATE SET position = excluded.position",
        (name, position),
    )


def pending_jobs_txn(txn: Any, user_id: str | None = None) -> int:
    if user_id is None:
        txn.execute("SELECT COUNT(*) FROM wangxin_circle_jobs")
    else:
        txn.execute("SELECT COUNT(*) FROM wangxin_circle_jobs WHERE user_id = ?", (user_id,))
    return int(txn.fetchone()[0])


# -- posts: the quota and the repost cooldown ----------------------------------------------------

@attrs.frozen
class PostRow:
    ts: int
    persisted: bool
    device_id: str | None
    product_id: str | None


def counted_posts(rows: list[PostRow], now: int, device_id: str | None) -> list[tuple[int, PostRow]]:
    """The posts that use up quota now, each with the time it stops counting.

    A persisted post counts for a day. A post admitted but not persisted may still be on its way
    (it counts for ``IN_FLIGHT_MS``, so two concurrent posts cannot both take the last slot),
    unless it came from the device sending now: a client sends one event at a time, so that
    earlier attempt is over, and it failed (refused after the quota check).
    """
    counted = []
    for row in rows:
        if row.persisted:
            if row.ts > now - DAY_MS:
                counted.append((row.ts + DAY_MS, row))
        elif row.ts > now - IN_FLIGHT_MS and (device_id is None or row.device_id != device_id):
            counted.append((row.ts + IN_FLIGHT_MS, row))
    return sorted(counted, key=lambda c: c[0])


def post_decision(
    rows: list[PostRow],
    last_product_ts: int | None,
    product_id: str | None,
    device_id: str | None,
    now: int,
    posts_per_day: int,
    cooldown_ms: int,
) -> PostDecision:
    """Whether a new post is allowed: ``rows`` are the merchant's admitted posts of the last day,
    ``last_product_ts`` the last persisted post of ``product_id``."""
    counted = counted_posts(rows, now, device_id)
    waits: list[tuple[int, str, str]] = []
    if len(counted) >= posts_per_day:
        frees_at = counted[len(counted) - posts_per_day][0]
        waits.append((frees_at - now, f"the daily limit of {posts_per_day} posts is reached", "posts_per_day"))
    if product_id is not None and cooldown_ms > 0:
        if last_product_ts is not None and last_product_ts + cooldown_ms > now:
            waits.append((last_product_ts + cooldown_ms - now, f"product {product_id} was posted recently",
                          "repost_cooldown_hours"))
        for until, row in counted:
            if not row.persisted and row.product_id == product_id:
                waits.append((until - now, f"product {product_id} is being posted", "repost_cooldown_hours"))
    if waits:
        wait, reason, limit = max(waits)
        return PostDecision(max(1, wait), reason, limit)
    return PostDecision(None)


def confirm_pending_posts_txn(txn: Any, merchant_id: str, now: int) -> list[PostRow]:
    """Mark the merchant's admitted posts that reached the database as persisted, forget those
    that, RECHECK_MS after admission, never did, and return the ones still pending.

    A post is checked against Synapse's ``events`` table whenever the merchant's quota is next
    read, however long after: a post stays counted even if the next one comes hours later. Only
    the few pending posts are read (an index range), never the merchant's whole history."""
    from synapse_modules._internals import persisted_event_ids_txn

    txn.execute(
        "SELECT event_id, ts, device_id, product_id FROM wangxin_circle_posts WHERE merchant_id = ? AND persisted = 0",
        (merchant_id,),
    )
    rows = txn.fetchall()
    if not rows:
        return []
    confirmed = persisted_event_ids_txn(txn, [r[0] for r in rows])
    lost = {r[0] for r in rows if r[0] not in confirmed and int(r[1]) <= now - RECHECK_MS}
    _in_chunks(txn, "UPDATE wangxin_circle_posts SET persisted = 1 WHERE event_id IN ({})", sorted(confirmed))
    _in_chunks(txn, "DELETE FROM wangxin_circle_posts WHERE event_id IN ({})", sorted(lost))
    return [PostRow(int(r[1]), False, r[2], r[3]) for r in rows if r[0] not in confirmed and r[0] not in lost]


def recent_posts_txn(txn: Any, merchant_id: str, now: int, posts_per_day: int) -> tuple[int, list[PostRow]]:
    """``(posts persisted in the last day, rows)``: ``rows`` are the pending posts, plus the
    newest ``posts_per_day`` persisted posts of the last day when the quota could bind at all.

    That is all :func:`post_decision` needs: the quota frees when the ``posts_per_day``-th latest
    counted post expires, and that one is among these rows. The cost is a count over an index
    range and at most ``posts_per_day`` rows, however many posts the merchant made."""
    pending = confirm_pending_posts_txn(txn, merchant_id, now)
    txn.execute(
        "SELECT COUNT(*) FROM wangxin_circle_posts WHERE merchant_id = ? AND persisted = 1 AND ts > ?",
        (merchant_id, now - DAY_MS),
    )
    persisted = int(txn.fetchone()[0])
    if persisted + len(pending) < posts_per_day:
        return persisted, pending
    txn.execute(
        "SELECT ts, device_id, product_id FROM wangxin_circle_posts WHERE merchant_id = ? AND persisted = 1"
        " AND ts > ? ORDER BY ts DESC LIMIT ?",
        (merchant_id, now - DAY_MS, posts_per_day),
    )
    return persisted, pending + [PostRow(int(r[0]), True, r[1], r[2]) for r in txn.fetchall()]


def _in_chunks(txn: Any, sql: str, values: list[str]) -> None:
    for start in range(0, len(values), 500):
        chunk = values[start : start + 500]
        txn.execute(sql.format(", ".join("?" for _ in chunk)), chunk)


def record_post_txn(
    txn: Any,
    merchant_id: str,
    event_id: str,
    sender: str,
    device_id: str | None,
    product_id: str | None,
    product: dict[str, Any] | None,
    now: int,
    posts_per_day: int,
    cooldown_ms: int,
) -> PostDecision:
    """Admit and record a post, or say when the next one is allowed.

    The UPDATE first takes the merchant's row lock, so concurrent posts of one merchant run one
    after the other (on PostgreSQL the loser is retried by Synapse). Only persisted posts (and
    posts still in flight from another device) count; see :func:`counted_posts`.
    """
    txn.execute("UPDATE wangxin_merchants SET last_post_ts = last_post_ts WHERE user_id = ?", (merchant_id,))
    _, rows = recent_posts_txn(txn, merchant_id, now, posts_per_day)
    last_product_ts = None
    if product_id is not None:
        txn.execute(
            "SELECT MAX(ts) FROM wangxin_circle_posts WHERE merchant_id = ? AND product_id = ? AND persisted = 1",
            (merchant_id, product_id),
        )
        row = txn.fetchone()
        last_product_ts = int(row[0]) if row and row[0] is not None else None
    decision = post_decision(rows, last_product_ts, product_id, device_id, now, posts_per_day, cooldown_ms)
    if decision.retry_after_ms is None:
        txn.execute(
            "INSERT INTO wangxin_circle_posts (event_id, merchant_id, sender, product_id, product, ts, device_id,"
            " persisted) VALUES (?, ?, ?, ?, ?, ?, ?, 0) ON CONFLICT (event_id) DO NOTHING",
            (event_id, merchant_id, sender, product_id, json.dumps(product) if product else None, now, device_id),
        )
    return decision


def record_edit_txn(
    txn: Any,
    merchant_id: str,
    event_id: str,
    sender: str,
    device_id: str | None,
    post_event_id: str,
    now: int,
    edits_per_post: int,
) -> EditDecision:
    """Admit and record an edit of ``post_event_id`` (or a poll's end), or say why not.

    Only an edit of a persisted post of the same sender in this merchant's circle is an edit;
    anything else is a new post (``not_a_post``). A post's edits count like posts do (once
    persisted, or while in flight from another device; :func:`counted_posts`), at most
    ``edits_per_post`` in any 24 hours. Reads the post's few edits of the last day, no more.
    """
    from synapse_modules._internals import persisted_event_ids_txn

    txn.execute("UPDATE wangxin_merchants SET last_post_ts = last_post_ts WHERE user_id = ?", (merchant_id,))
    txn.execute(
        "SELECT sender, product_id, persisted FROM wangxin_circle_posts WHERE event_id = ? AND merchant_id = ?",
        (post_event_id, merchant_id),
    )
    post = txn.fetchone()
    if post is None or post[0] != sender:
        return EditDecision(True)
    if not post[2]:
        if not persisted_event_ids_txn(txn, [post_event_id]):
            return EditDecision(True)
        txn.execute("UPDATE wangxin_circle_posts SET persisted = 1 WHERE event_id = ?", (post_event_id,))
    txn.execute("DELETE FROM wangxin_circle_edits WHERE post_event_id = ? AND ts <= ?", (post_event_id, now - DAY_MS))
    txn.execute(
        "SELECT event_id, ts, device_id, persisted FROM wangxin_circle_edits WHERE post_event_id = ?",
        (post_event_id,),
    )
    edits = txn.fetchall()
    pending = [r[0] for r in edits if not r[3]]
    confirmed = persisted_event_ids_txn(txn, pending) if pending else set()
    _in_chunks(txn, "UPDATE wangxin_circle_edits SET persisted = 1 WHERE event_id IN ({})", sorted(confirmed))
    rows = [PostRow(int(r[1]), bool(r[3]) or r[0] in confirmed, r[2], None) for r in edits]
    counted = counted_posts(rows, now, device_id)
    if len(counted) >= edits_per_post:
        frees_at = counted[len(counted) - edits_per_post][0]
        return EditDecision(False, post[1], max(1, frees_at - now))
    txn.execute(
        "INSERT INTO wangxin_circle_edits (event_id, post_event_id, merchant_id, ts, device_id, persisted)"
        " VALUES (?, ?, ?, ?, ?, 0) ON CONFLICT (event_id) DO NOTHING",
        (event_id, post_event_id, merchant_id, now, device_id),
    )
    return EditDecision(False, post[1])


def is_circle_post_txn(txn: Any, merchant_id: str, event_id: str) -> bool:
    """Whether ``event_id`` is a post (or an edit of one) in this merchant's circle."""
    txn.execute("SELECT 1 FROM wangxin_circle_posts WHERE event_id = ? AND merchant_id = ?", (event_id, merchant_id))
    if txn.fetchone() is not None:
        return True
    txn.execute("SELECT 1 FROM wangxin_circle_edits WHERE event_id = ? AND merchant_id = ?", (event_id, merchant_id))
    return txn.fetchone() is not None


def quota_view_txn(txn: Any, merchant_id: str, now: int, posts_per_day: int) -> tuple[int, int]:
    """``(posts_today, next_post_allowed_in_ms)`` as a post sent now from a new device would see."""
    persisted, rows = recent_posts_txn(txn, merchant_id, now, posts_per_day)
    decision = post_decision(rows, None, None, None, now, posts_per_day, 0)
    return persisted, decision.retry_after_ms or 0


def products_txn(txn: Any, merchant_id: str, now: int) -> list[tuple[dict[str, Any], int, int]]:
    """``(product, last_posted_ts, times_posted)`` of every product the merchant posted, newest first."""
    confirm_pending_posts_txn(txn, merchant_id, now)
    txn.execute(
        "SELECT product_id, MAX(ts), COUNT(*) FROM wangxin_circle_posts WHERE merchant_id = ?"
        " AND product_id IS NOT NULL AND persisted = 1 GROUP BY product_id ORDER BY MAX(ts) DESC",
        (merchant_id,),
    )
    rows = txn.fetchall()
    out = []
    for product_id, last_ts, count in rows:
        txn.execute(
            "SELECT product FROM wangxin_circle_posts WHERE merchant_id = ? AND product_id = ? AND ts = ?"
            " AND persisted = 1",
            (merchant_id, product_id, last_ts),
        )
        product = json.loads(txn.fetchone()[0])
        out.append((product, int(last_ts), int(count)))
    return out


# -- the per-user Merchant Circle space ----------------------------------------------------------

def get_space_txn(txn: Any, user_id: str) -> str | None:
    txn.execute("SELECT space_room_id FROM wangxin_circle_spaces WHERE user_id = ?", (user_id,))
    row = txn.fetchone()
    return row[0] if row else None


def set_space_txn(txn: Any, user_id: str, space_room_id: str) -> str:
    txn.execute(
        "INSERT INTO wangxin_circle_spaces (user_id, space_room_id) VALUES (?, ?) ON CONFLICT (user_id) DO NOTHING",
        (user_id, space_room_id),
    )
    stored = get_space_txn(txn, user_id)
    assert stored is not None
    return stored


def is_filed_txn(txn: Any, user_id: str, room_id: str) -> bool:
    txn.execute(
        "SELECT 1 FROM wangxin_circle_space_children WHERE user_id = ? AND room_id = ?", (user_id, room_id)
    )
    return txn.fetchone() is not None


def set_filed_txn(txn: Any, user_id: str, room_id: str, filed: bool) -> None:
    if filed:
        txn.execute(
            "INSERT INTO wangxin_circle_space_children (user_id, room_id) VALUES (?, ?) ON CONFLICT DO NOTHING",
            (user_id, room_id),
        )
    else:
        txn.execute(
            "DELETE FROM wangxin_circle_space_children WHERE user_id = ? AND room_id = ?", (user_id, room_id)
        )


class MerchantCircleStore:
    """Async wrappers; the schema is created on first use (every process, idempotently)."""

    def __init__(self, api: Any):
        self._api = api
        self._ready = False

    async def _run(self, desc: str, func: Any, *args: Any) -> Any:
        if not self._ready:
            await self._ensure_schema()
        return await self._api.run_db_interaction(f"wangxin_circle_{desc}", func, *args)

    async def _ensure_schema(self) -> None:
        # Several processes may start at once; a concurrent CREATE on PostgreSQL can fail once.
        for attempt in range(5):
            try:
                await self._api.run_db_interaction("wangxin_circle_schema", create_schema_txn)
                self._ready = True
                return
            except Exception:
                if attempt == 4:
                    raise
                logger.info("Merchant circle schema creation raced another process; retrying")
                await self._api.sleep(0.2 * (attempt + 1))

    def __getattr__(self, name: str) -> Any:
        """``store.get_merchant(...)`` runs ``get_merchant_txn`` in a transaction."""
        func = globals().get(f"{name}_txn")
        if func is None:
            raise AttributeError(name)

        async def call(*args: Any) -> Any:
            return await self._run(name, func, *args)

        return call
