"""SQL of an account's staff (``wangxin_account_staff``), the sync that seats them in the account's
support rooms, and the support chats started from a direct chat.

Both kinds of work are jobs of the merchant circle's durable queue (``wangxin_circle_jobs``,
written through its own ``*_txn`` functions), run on the background-tasks process:

- ``account_staff``: ``user_id`` and ``merchant_id`` are the account's user (one sync at a time
  per account), ``reason`` the cursor (``staff_rules.staff_cursor``) after which it goes on; each
  step queues the next in the transaction that ends it, unless a newer PUT dropped it meanwhile;
- ``account_dm``: ``user_id`` the person who invited the account's user (``merchant_id``) into
  ``room_id``; ``reason`` the account id.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from synapse_modules.accounts.staff_rules import CURSOR_PREFIX
from synapse_modules.accounts.store.accounts import get_account_txn, update_account_txn
from synapse_modules.merchant_circle.store.follows import (
    drop_jobs_txn,
    enqueue_job_txn,
    finish_job_txn,
    jobs_queued_txn,
)

STAFF_JOB = "account_staff"
DM_JOB = "account_dm"
ROUTED_KINDS = ("organisation", "platform")  # accounts whose own user a direct chat is routed from


def get_staff_txn(txn: Any, account_id: str) -> list[str]:
    txn.execute("SELECT user_id FROM wangxin_account_staff WHERE account_id = ? ORDER BY user_id", (account_id,))
    return [str(r[0]) for r in txn.fetchall()]


def set_staff_txn(txn: Any, account_id: str, merchant_id: str, user_ids: Sequence[str],
                  now: int) -> tuple[list[str], list[str]]:
    """Replace the staff and start their sync over the account's support rooms from the first
    (a sync still queued is dropped: the new one covers it). Returns ``(added, removed)``."""
    current = get_staff_txn(txn, account_id)
    added = [u for u in user_ids if u not in current]
    removed = [u for u in current if u not in user_ids]
    for user_id in removed:
        txn.execute("DELETE FROM wangxin_account_staff WHERE account_id = ? AND user_id = ?", (account_id, user_id))
    for user_id in added:
        txn.execute("INSERT INTO wangxin_account_staff (account_id, user_id, added_ts) VALUES (?, ?, ?)",
                    (account_id, user_id, now))
    _restart_staff_sync_txn(txn, merchant_id, now)
    return added, removed


def _restart_staff_sync_txn(txn: Any, merchant_id: str, now: int) -> None:
    """A staff sync over the account's support rooms from the first, replacing one still queued."""
    drop_jobs_txn(txn, STAFF_JOB, merchant_id)
    enqueue_job_txn(txn, STAFF_JOB, merchant_id, merchant_id, None, CURSOR_PREFIX, now)


def transfer_account_txn(txn: Any, account_id: str, merchant_id: str, owner: str, name: str,
                         avatar_url: str | None, description: str | None, verified: bool, now: int) -> None:
    """An account's profile with a new owner, in one transaction: the new owner is no longer
    staff (the owner answers anyway), and a staff sync over the support rooms from the first
    seats the new owner and removes the old (``SupportSeats.reconcile``)."""
    update_account_txn(txn, account_id, name, avatar_url, description, verified)
    txn.execute("UPDATE wangxin_accounts SET owner = ? WHERE account_id = ?", (owner, account_id))
    txn.execute("DELETE FROM wangxin_account_staff WHERE account_id = ? AND user_id = ?", (account_id, owner))
    _restart_staff_sync_txn(txn, merchant_id, now)


def staff_sync_queued_txn(txn: Any, merchant_id: str) -> bool:
    return jobs_queued_txn(txn, STAFF_JOB, merchant_id)


def support_rooms_after_txn(txn: Any, account_id: str, after_ts: int, after_room: str,
                            limit: int) -> list[tuple[int, str, str]]:
    """``(created_ts, room_id, follower)`` of the account's support rooms after the given one, in
    the order they were made (a room made during a sync comes after every older one)."""
    txn.execute(
        "SELECT created_ts, room_id, user_id FROM wangxin_account_support_rooms WHERE account_id = ?"
        " AND (created_ts > ? OR (created_ts = ? AND room_id > ?)) ORDER BY created_ts, room_id LIMIT ?",
        (account_id, after_ts, after_ts, after_room, limit),
    )
    return [(int(r[0]), str(r[1]), str(r[2])) for r in txn.fetchall()]


def next_staff_step_txn(txn: Any, job_id: str, merchant_id: str, cursor: str | None, now: int) -> bool:
    """End a step of the sync and queue the next (from ``cursor``; ``None``: it was the last).
    A step whose job a newer PUT dropped queues nothing: the newer sync goes on instead. Returns
    whether a next step is queued."""
    if not finish_job_txn(txn, job_id) or cursor is None:
        return False
    enqueue_job_txn(txn, STAFF_JOB, merchant_id, merchant_id, None, cursor, now)
    return True


def queue_dm_txn(txn: Any, account_id: str, inviter: str, room_id: str, now: int) -> bool:
    """Queue routing ``inviter``'s direct chat to their support room, if ``account_id`` is an
    organisation or a platform; returns whether it was queued."""
    account = get_account_txn(txn, account_id)
    if account is None or account.kind not in ROUTED_KINDS:
        return False
    enqueue_job_txn(txn, DM_JOB, inviter, account.merchant_id, room_id, account_id, now)
    return True
