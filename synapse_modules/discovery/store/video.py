"""SQL of 面对面, the face-to-face queue (``wangxin_discovery_video_queue``).

Joining pairs the newcomer at once with the person who has waited longest among those they may
meet: visible, neither blocked the other, no open request between them and no face-to-face
pairing of the two in the last day, the same region if both shared a location, the same
language if both gave one. Nobody compatible waits: the newcomer waits (until ``expires_ts``).
A pairing is a mutual request of kind ``video``; both leave the queue.

Every join first updates the queue's row in ``wangxin_discovery_pool_locks``: on PostgreSQL two
joins at the same moment then run one after the other (the later one conflicts on that row and
Synapse runs it again), so two people arriving together find each other rather than both
waiting. On SQLite transactions run one at a time anyway.
"""

from __future__ import annotations

from typing import Any

import attrs

from synapse_modules.discovery.config import RateLimit
from synapse_modules.discovery.rules import DAY_MS
from synapse_modules.discovery.store.limits import Limited, take_rate_txn
from synapse_modules.discovery.store.people import unblocked_sql, visible_sql
from synapse_modules.discovery.store.requests import insert_request_txn

POOL = "video"


@attrs.frozen
class VideoOutcome:
    """``partner`` and ``request_id`` when paired at once; else ``expires_ts`` of the wait."""

    partner: str | None = None
    request_id: str | None = None
    expires_ts: int | None = None


def lock_pool_txn(txn: Any, pool: str) -> None:
    txn.execute("UPDATE wangxin_discovery_pool_locks SET version = version + 1 WHERE pool = ?", (pool,))
    if txn.rowcount == 0:
        txn.execute("INSERT INTO wangxin_discovery_pool_locks (pool, version) VALUES (?, 1)"
                    " ON CONFLICT (pool) DO UPDATE SET version = wangxin_discovery_pool_locks.version + 1", (pool,))


def join_video_txn(txn: Any, user_id: str, region: str | None, language: str | None, now: int, ttl_ms: int,
                   rate: RateLimit, request_id: str) -> Limited | VideoOutcome:
    limited = take_rate_txn(txn, user_id, POOL, now, rate)
    if limited:
        return limited
    lock_pool_txn(txn, POOL)
    txn.execute(
        "SELECT q.user_id FROM wangxin_discovery_video_queue AS q"
        " WHERE q.user_id <> ? AND q.expires_ts > ?"
        " AND (q.region IS NULL OR CAST(? AS TEXT) IS NULL OR q.region = ?)"
        " AND (q.language IS NULL OR CAST(? AS TEXT) IS NULL OR q.language = ?)"
        f" AND {visible_sql('q.user_id')} AND {unblocked_sql('?', 'q.user_id')}"
        " AND NOT EXISTS (SELECT 1 FROM wangxin_discovery_requests AS r WHERE"
        " ((r.sender = ? AND r.recipient = q.user_id) OR (r.sender = q.user_id AND r.recipient = ?))"
        " AND (r.state IN ('pending', 'accepting') OR (r.kind = 'video' AND r.created_ts > ?)))"
        " ORDER BY q.entered_ts, q.user_id LIMIT 1",
        (user_id, now, region, region, language, language, user_id, user_id, user_id, user_id, now - DAY_MS),
    )
    row = txn.fetchone()
    if row is None:
        expires = now + ttl_ms
        txn.execute(
            "INSERT INTO wangxin_discovery_video_queue (user_id, region, language, entered_ts, expires_ts)"
            " VALUES (?, ?, ?, ?, ?) ON CONFLICT (user_id) DO UPDATE SET region = excluded.region,"
            " language = excluded.language, expires_ts = excluded.expires_ts",
            (user_id, region, language, now, expires),
        )
        return VideoOutcome(expires_ts=expires)
    partner = row[0]
    txn.execute("DELETE FROM wangxin_discovery_video_queue WHERE user_id IN (?, ?)", (user_id, partner))
    # The one who waited is the sender: the pairing was made when the newcomer came.
    insert_request_txn(txn, request_id, POOL, partner, user_id, True, None, None, now)
    return VideoOutcome(partner=partner, request_id=request_id)


def video_state_txn(txn: Any, user_id: str, now: int) -> int | None:
    """When the person's wait ends, if they are waiting."""
    txn.execute("SELECT expires_ts FROM wangxin_discovery_video_queue WHERE user_id = ? AND expires_ts > ?",
                (user_id, now))
    row = txn.fetchone()
    return int(row[0]) if row else None


def leave_video_txn(txn: Any, user_id: str) -> bool:
    txn.execute("DELETE FROM wangxin_discovery_video_queue WHERE user_id = ?", (user_id,))
    return bool(txn.rowcount)
