"""SQL of the post quota, the repost cooldown and edits (``wangxin_circle_posts``,
``wangxin_circle_edits``); the decisions themselves are pure (``merchant_circle.quota``).

On PostgreSQL a transaction runs at REPEATABLE READ and Synapse retries it on a serialization
failure, which is what makes the post quota exact under concurrent sends (see
:func:`record_post_txn`).
"""

from __future__ import annotations

import json
from typing import Any

from synapse_modules._internals import persisted_event_ids_txn
from synapse_modules.merchant_circle.quota import (
    DAY_MS,
    RECHECK_MS,
    EditDecision,
    PostDecision,
    PostRow,
    counted_posts,
    post_decision,
)


def confirm_pending_posts_txn(txn: Any, merchant_id: str, now: int) -> list[PostRow]:
    """Mark the merchant's admitted posts that reached the database as persisted, forget those
    that, RECHECK_MS after admission, never did, and return the ones still pending.

    A post is checked against Synapse's ``events`` table whenever the merchant's quota is next
    read, however long after: a post stays counted even if the next one comes hours later. Only
    the few pending posts are read (an index range), never the merchant's whole history."""
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


def recent_posts_txn(txn: Any, merchant_id: str, now: int, posts_per_day: int,
                     window_ms: int = DAY_MS) -> tuple[int, list[PostRow]]:
    """``(posts persisted in the last day, rows)``: ``rows`` are the pending posts, plus the
    newest ``posts_per_day`` persisted posts of the last day when the quota could bind at all.
    (``window_ms`` instead of a day: an account's limit may span more days.)

    That is all :func:`post_decision` needs: the quota frees when the ``posts_per_day``-th latest
    counted post expires, and that one is among these rows. The cost is a count over an index
    range and at most ``posts_per_day`` rows, however many posts the merchant made."""
    pending = confirm_pending_posts_txn(txn, merchant_id, now)
    txn.execute(
        "SELECT COUNT(*) FROM wangxin_circle_posts WHERE merchant_id = ? AND persisted = 1 AND ts > ?",
        (merchant_id, now - window_ms),
    )
    persisted = int(txn.fetchone()[0])
    if persisted + len(pending) < posts_per_day:
        return persisted, pending
    txn.execute(
        "SELECT ts, device_id, product_id FROM wangxin_circle_posts WHERE merchant_id = ? AND persisted = 1"
        " AND ts > ? ORDER BY ts DESC LIMIT ?",
        (merchant_id, now - window_ms, posts_per_day),
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
    window_ms: int = DAY_MS,
) -> PostDecision:
    """Admit and record a post, or say when the next one is allowed (at most ``posts_per_day``
    in any ``window_ms``).

    The UPDATE first takes the merchant's row lock, so concurrent posts of one merchant run one
    after the other (on PostgreSQL the loser is retried by Synapse). Only persisted posts (and
    posts still in flight from another device) count; see :func:`counted_posts`.
    """
    txn.execute("UPDATE wangxin_merchants SET last_post_ts = last_post_ts WHERE user_id = ?", (merchant_id,))
    _, rows = recent_posts_txn(txn, merchant_id, now, posts_per_day, window_ms)
    last_product_ts = None
    if product_id is not None:
        txn.execute(
            "SELECT MAX(ts) FROM wangxin_circle_posts WHERE merchant_id = ? AND product_id = ? AND persisted = 1",
            (merchant_id, product_id),
        )
        row = txn.fetchone()
        last_product_ts = int(row[0]) if row and row[0] is not None else None
    decision = post_decision(rows, last_product_ts, product_id, device_id, now, posts_per_day, cooldown_ms,
                             window_ms)
    if decision.retry_after_ms is None:
        txn.execute(
            "INSERT INTO wangxin_circle_posts (event_id, merchant_id, sender, product_id, product, ts, device_id,"
            " persisted) VALUES (?, ?, ?, ?, ?, ?, ?, 0) ON CONFLICT (event_id) DO NOTHING",
            (event_id, merchant_id, sender, product_id, json.dumps(product) if product else None, now, device_id),
        )
    return decision


def record_server_post_txn(txn: Any, merchant_id: str, post_key: str, sender: str, now: int, posts: int,
                           window_ms: int) -> PostDecision:
    """Admit and record a post that is no event of the circle (an account's targeted post, sent
    to each person it targets), or say when the next one is allowed: it takes a slot of the same
    quota as the circle's posts, at once (there is no event whose persistence to wait for).
    ``post_key`` names it (``segment:<post id>``); it never matches a real event id."""
    txn.execute("UPDATE wangxin_merchants SET last_post_ts = last_post_ts WHERE user_id = ?", (merchant_id,))
    _, rows = recent_posts_txn(txn, merchant_id, now, posts, window_ms)
    decision = post_decision(rows, None, None, None, now, posts, 0, window_ms)
    if decision.retry_after_ms is None:
        txn.execute(
            "INSERT INTO wangxin_circle_posts (event_id, merchant_id, sender, ts, persisted) VALUES (?, ?, ?, ?, 1)"
            " ON CONFLICT (event_id) DO NOTHING",
            (post_key, merchant_id, sender, now),
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


def quota_view_txn(txn: Any, merchant_id: str, now: int, posts_per_day: int,
                   window_ms: int = DAY_MS) -> tuple[int, int]:
    """``(posts_today, next_post_allowed_in_ms)`` as a post sent now from a new device would see
    (posts in the last ``window_ms``, for an account's limit of more days)."""
    persisted, rows = recent_posts_txn(txn, merchant_id, now, posts_per_day, window_ms)
    decision = post_decision(rows, None, None, None, now, posts_per_day, 0, window_ms)
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
