"""SQL of follows and their durable job queue (``wangxin_circle_follows``, ``wangxin_purchases``,
``wangxin_circle_jobs``, ``wangxin_circle_failed_jobs``).

Jobs: ``follow`` (mute and join), ``file`` / ``unfile`` (a room into or out of the follower's
space), ``evict`` (a merchant out of a moments room), and the kinds of modules built on the circle.
"""

from __future__ import annotations

import json
import uuid
from typing import Any

import attrs

from synapse_modules.merchant_circle.rules import purchase_categories
from synapse_modules.merchant_circle.store.merchants import Merchant
from synapse_modules.merchant_circle.store.spaces import is_filed_txn


@attrs.frozen
class Job:
    job_id: str
    kind: str
    user_id: str
    merchant_id: str | None
    room_id: str | None
    reason: str
    attempts: int


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
    # Its items' categories, for platforms' targeted posts (docs/accounts.md, "Targeted posts").
    for category in purchase_categories(items):
        txn.execute(
            "INSERT INTO wangxin_purchase_categories (order_id, category, buyer, merchant_id, received_ts)"
            " VALUES (?, ?, ?, ?, ?) ON CONFLICT DO NOTHING",
            (order_id, category, buyer, merchant_id, now),
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


def finish_job_txn(txn: Any, job_id: str) -> bool:
    """Drop the job; whether it was still queued (another transaction may have dropped it)."""
    txn.execute("DELETE FROM wangxin_circle_jobs WHERE job_id = ?", (job_id,))
    return bool(txn.rowcount == 1)


def drop_jobs_txn(txn: Any, kind: str, merchant_id: str) -> None:
    """Drop the queued jobs of a kind for a merchant (a newer job replaces them)."""
    txn.execute("DELETE FROM wangxin_circle_jobs WHERE kind = ? AND merchant_id = ?", (kind, merchant_id))


def jobs_queued_txn(txn: Any, kind: str, merchant_id: str) -> bool:
    txn.execute("SELECT 1 FROM wangxin_circle_jobs WHERE kind = ? AND merchant_id = ? LIMIT 1", (kind, merchant_id))
    return txn.fetchone() is not None


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
