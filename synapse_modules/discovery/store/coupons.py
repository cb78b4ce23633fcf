"""SQL of 你我36.8度's coupons: the job of asking the platform once per accepted pairing, and each
person's coupon (``wangxin_discovery_coupon_jobs``, ``wangxin_discovery_coupons``).

At most once per pairing, across restarts: the job and the people's rows are written in the
transaction that records the accepted pairing (``finish_pairing_txn``), keyed by the pairing's
id; an answer is recorded only while the job is not done, in one transaction that marks it
done, so a second answer (a retried request whose first answer arrived late, a replay) changes
nothing. The platform gets the pairing id too, to deduplicate on its side.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

import attrs

from synapse_modules.discovery.rules import DAY_MS
from synapse_modules.discovery.store.requests import finish_request_txn

# Rows of a person's coupons and finished jobs are kept this long (the platform keeps the coupon).
COUPON_KEEP_MS = 30 * DAY_MS
OWN_COUPONS_LIMIT = 100


@attrs.frozen
class Coupon:
    """What the platform gave one person."""

    code: str
    title: str
    expires_at: str | None = None


@attrs.frozen
class PersonCoupon:
    pairing_id: str
    user_id: str
    partner: str
    state: str  # 'waiting' | 'delayed' | 'issued' | 'none'
    code: str | None
    title: str | None
    expires_at: str | None
    reason: str | None  # for 'none': 'daily_limit' | 'platform_declined' | 'gave_up'
    updated_ts: int


@attrs.frozen
class Job:
    pairing_id: str
    users: tuple[str, ...]
    at_ts: int
    attempts: int  # before this one


_PERSON = "pairing_id, user_id, partner, state, code, title, expires_at, reason, updated_ts"


def _person(row: Any) -> PersonCoupon:
    return PersonCoupon(row[0], row[1], row[2], row[3], row[4], row[5], row[6], row[7], int(row[8]))


def finish_pairing_txn(txn: Any, request_id: str, room_id: str, users: tuple[str, str], now: int,
                       per_day: int) -> list[str]:
    """The pairing's room is made: record it (``finish_request_txn``) and, in the same
    transaction, each person's coupon: asked for if they have had fewer than ``per_day``
    rewarded pairings in the last 24 hours, else none (``daily_limit``). The people asked for."""
    finish_request_txn(txn, request_id, room_id, now)
    txn.execute("SELECT 1 FROM wangxin_discovery_coupons WHERE pairing_id = ?", (request_id,))
    if txn.fetchone() is not None:  # recorded already (a room made again after a crash)
        txn.execute("SELECT users FROM wangxin_discovery_coupon_jobs WHERE pairing_id = ?", (request_id,))
        row = txn.fetchone()
        return list(json.loads(row[0])) if row else []
    rewarded = []
    for user_id, partner in ((users[0], users[1]), (users[1], users[0])):
        txn.execute(
            "SELECT COUNT(*) FROM wangxin_discovery_coupons WHERE user_id = ? AND created_ts > ? AND"
            " (state <> 'none' OR reason <> 'daily_limit')",
            (user_id, now - DAY_MS),
        )
        under_limit = int(txn.fetchone()[0]) < per_day
        txn.execute(
            f"INSERT INTO wangxin_discovery_coupons ({_PERSON}, created_ts)"
            " VALUES (?, ?, ?, ?, NULL, NULL, NULL, ?, ?, ?)",
            (request_id, user_id, partner, "waiting" if under_limit else "none",
             None if under_limit else "daily_limit", now, now),
        )
        if under_limit:
            rewarded.append(user_id)
    if rewarded:
        txn.execute(
            "INSERT INTO wangxin_discovery_coupon_jobs (pairing_id, users, at_ts, next_attempt_ts)"
            " VALUES (?, ?, ?, ?)",
            (request_id, json.dumps(rewarded), now, now),
        )
    return rewarded


def claim_job_txn(txn: Any, pairing_id: str | None, now: int, lease_ms: int, limit: int) -> list[Job]:
    """Jobs due now that nobody holds (one, or up to ``limit``), held for ``lease_ms``: a process
    that dies while asking lets the job go when its lease ends."""
    if pairing_id is not None:
        txn.execute(
            "SELECT pairing_id, users, at_ts, attempts FROM wangxin_discovery_coupon_jobs"
            " WHERE pairing_id = ? AND done = 0 AND lease_until <= ?", (pairing_id, now))
    else:
        txn.execute(
            "SELECT pairing_id, users, at_ts, attempts FROM wangxin_discovery_coupon_jobs"
            " WHERE done = 0 AND next_attempt_ts <= ? AND lease_until <= ? ORDER BY next_attempt_ts LIMIT ?",
            (now, now, limit))
    jobs = [Job(r[0], tuple(json.loads(r[1])), int(r[2]), int(r[3])) for r in txn.fetchall()]
    for job in jobs:
        txn.execute("UPDATE wangxin_discovery_coupon_jobs SET lease_until = ? WHERE pairing_id = ?",
                    (now + lease_ms, job.pairing_id))
    return jobs


def record_answer_txn(txn: Any, pairing_id: str, coupons: Mapping[str, Coupon], now: int) -> bool:
    """The platform answered: each person asked for gets their coupon, or none
    (``platform_declined``) if the answer has none for them. False, changing nothing, if the
    job was done already."""
    txn.execute("SELECT users FROM wangxin_discovery_coupon_jobs WHERE pairing_id = ? AND done = 0", (pairing_id,))
    row = txn.fetchone()
    if row is None:
        return False
    for user_id in json.loads(row[0]):
        coupon = coupons.get(user_id)
        if coupon is None:
            txn.execute(
                "UPDATE wangxin_discovery_coupons SET state = 'none', reason = 'platform_declined', updated_ts = ?"
                " WHERE pairing_id = ? AND user_id = ? AND state IN ('waiting', 'delayed')",
                (now, pairing_id, user_id))
        else:
            txn.execute(
                "UPDATE wangxin_discovery_coupons SET state = 'issued', code = ?, title = ?, expires_at = ?,"
                " updated_ts = ? WHERE pairing_id = ? AND user_id = ? AND state IN ('waiting', 'delayed')",
                (coupon.code, coupon.title, coupon.expires_at, now, pairing_id, user_id))
    txn.execute("UPDATE wangxin_discovery_coupon_jobs SET done = 1, lease_until = 0, last_error = NULL"
                " WHERE pairing_id = ?", (pairing_id,))
    return True


def record_failure_txn(txn: Any, pairing_id: str, error: str, now: int, next_attempt_ts: int | None) -> None:
    """Asking failed: try again at ``next_attempt_ts`` (the people's coupons are now 'delayed':
    on their way), or, with ``None``, give up (none, ``gave_up``)."""
    if next_attempt_ts is None:
        txn.execute("UPDATE wangxin_discovery_coupon_jobs SET done = 1, attempts = attempts + 1, lease_until = 0,"
                    " last_error = ? WHERE pairing_id = ? AND done = 0", (error[:500], pairing_id))
        if txn.rowcount:
            txn.execute("UPDATE wangxin_discovery_coupons SET state = 'none', reason = 'gave_up', updated_ts = ?"
                        " WHERE pairing_id = ? AND state IN ('waiting', 'delayed')", (now, pairing_id))
        return
    txn.execute("UPDATE wangxin_discovery_coupon_jobs SET attempts = attempts + 1, next_attempt_ts = ?,"
                " lease_until = 0, last_error = ? WHERE pairing_id = ? AND done = 0",
                (next_attempt_ts, error[:500], pairing_id))
    if txn.rowcount:
        txn.execute("UPDATE wangxin_discovery_coupons SET state = 'delayed', updated_ts = ?"
                    " WHERE pairing_id = ? AND state = 'waiting'", (now, pairing_id))


def own_coupons_txn(txn: Any, user_id: str, now: int) -> list[PersonCoupon]:
    """The person's coupons (and pairings that earned none) of the last 30 days, newest first."""
    txn.execute(
        f"SELECT {_PERSON} FROM wangxin_discovery_coupons WHERE user_id = ? AND created_ts > ?"
        " ORDER BY created_ts DESC LIMIT ?",
        (user_id, now - COUPON_KEEP_MS, OWN_COUPONS_LIMIT))
    return [_person(r) for r in txn.fetchall()]


def coupon_changes_txn(txn: Any, since_ts: int, after: Sequence[str], until_ts: int, limit: int) -> list[PersonCoupon]:
    """People's coupons changed after the cursor ``(since_ts, pairing id, user id)`` and at or
    before ``until_ts``, in cursor order: the discovery bot's feed, one index range."""
    after_pairing, after_user = (after[0], after[1]) if len(after) == 2 else ("", "")
    txn.execute(
        f"SELECT {_PERSON} FROM wangxin_discovery_coupons WHERE updated_ts >= ? AND updated_ts <= ?"
        " AND (updated_ts > ? OR pairing_id > ? OR (pairing_id = ? AND user_id > ?))"
        " ORDER BY updated_ts, pairing_id, user_id LIMIT ?",
        (since_ts, until_ts, since_ts, after_pairing, after_pairing, after_user, limit))
    return [_person(r) for r in txn.fetchall()]


def expire_coupons_txn(txn: Any, now: int) -> int:
    txn.execute("DELETE FROM wangxin_discovery_coupons WHERE created_ts <= ?", (now - COUPON_KEEP_MS,))
    deleted = max(0, txn.rowcount)
    txn.execute("DELETE FROM wangxin_discovery_coupon_jobs WHERE done = 1 AND at_ts <= ?", (now - COUPON_KEEP_MS,))
    return deleted + max(0, txn.rowcount)
