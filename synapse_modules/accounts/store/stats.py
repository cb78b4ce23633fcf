"""SQL of an account's stats: the audience of each post and the followers at the end of each day
(``wangxin_account_post_audiences``, ``wangxin_account_follower_days``; see ``schema``), read
with the merchant circle's posts and follows, and Synapse's read receipts through the adapter.

The merchant circle's tables are read here, and its posts' ``persisted`` flags brought up to date
through its own ``confirm_pending_posts_txn``, as its quota check does.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

import attrs

from synapse_modules._internals import event_positions_txn, read_positions_txn
from synapse_modules.merchant_circle.store.posts import confirm_pending_posts_txn


@attrs.frozen
class ChannelPost:
    event_id: str
    ts: int
    sender: str
    title: str | None  # the product's title, for a product post
    followers: int | None  # followers when it was sent; None for posts from before that was recorded


def record_post_audience_txn(txn: Any, event_id: str, room_id: str, followers: int, now: int) -> None:
    txn.execute(
        "INSERT INTO wangxin_account_post_audiences (event_id, room_id, followers, ts) VALUES (?, ?, ?, ?)"
        " ON CONFLICT (event_id) DO NOTHING",
        (event_id, room_id, followers, now),
    )


def channel_posts_txn(txn: Any, merchant_id: str, since: int, limit: int, now: int) -> list[ChannelPost]:
    """The channel's posts (the circle's persisted posts: what its quota counted) since ``since``,
    newest first, at most ``limit``, with how many followed when each was sent. Targeted posts,
    which are no event of the channel, are left out."""
    confirm_pending_posts_txn(txn, merchant_id, now)
    txn.execute(
        "SELECT p.event_id, p.ts, p.sender, p.product, a.followers FROM wangxin_circle_posts AS p"
        " LEFT JOIN wangxin_account_post_audiences AS a ON a.event_id = p.event_id"
        " WHERE p.merchant_id = ? AND p.persisted = 1 AND p.ts >= ? AND p.event_id LIKE ?"
        " ORDER BY p.ts DESC LIMIT ?",
        (merchant_id, since, "$%", limit),  # (a literal % in the statement would be psycopg2's)
    )
    posts = []
    for event_id, ts, sender, product, followers in txn.fetchall():
        title = None
        if product:
            value = json.loads(product).get("title")
            title = value if isinstance(value, str) else None
        posts.append(ChannelPost(event_id, int(ts), sender, title, None if followers is None else int(followers)))
    return posts


def post_reads_txn(txn: Any, room_id: str, event_ids: Sequence[str], not_readers: Sequence[str]) -> dict[str, int]:
    """How many people (not ``not_readers``) have read up to each of these events of the room:
    their latest public read receipt is at the event or after it (Synapse's receipts, through the
    adapter). Events Synapse does not have are left out."""
    positions = event_positions_txn(txn, event_ids)
    if not positions:
        return {}
    read = sorted(read_positions_txn(txn, room_id, not_readers), reverse=True)
    reads: dict[str, int] = {}
    for event_id, position in positions.items():
        reads[event_id] = sum(count for at, count in read if at >= position)
    return reads


def unfollows_txn(txn: Any, merchant_id: str, since: int, bucket_ms: int) -> list[tuple[int, int]]:
    """``(bucket start, unfollows)``: the follows of the channel that ended since ``since`` (and
    were not taken up again), in buckets of ``bucket_ms``. One pass over the channel's follow
    rows (their primary key's range)."""
    size = int(bucket_ms)  # in the statement itself: the same expression in SELECT and GROUP BY
    txn.execute(
        f"SELECT updated_ts / {size}, COUNT(*) FROM wangxin_circle_follows WHERE merchant_id = ?"
        f" AND state = 'unfollowed' AND updated_ts >= ? GROUP BY updated_ts / {size}",
        (merchant_id, since),
    )
    return [(int(r[0]) * size, int(r[1])) for r in txn.fetchall()]


def follower_days_txn(txn: Any, account_id: str, first_day: str) -> dict[str, int]:
    """``{day: followers at its end}`` from ``first_day`` (``YYYY-MM-DD``) on."""
    txn.execute("SELECT day, followers FROM wangxin_account_follower_days WHERE account_id = ? AND day >= ?",
                (account_id, first_day))
    return {r[0]: int(r[1]) for r in txn.fetchall()}


def set_follower_days_txn(txn: Any, counts: Sequence[tuple[str, str, int]], now: int) -> int:
    """Store ``(account_id, day, followers)`` counts, writing only those that changed since the
    last count of that day; returns how many were written."""
    written = 0
    for account_id, day, followers in counts:
        txn.execute("SELECT followers FROM wangxin_account_follower_days WHERE account_id = ? AND day = ?",
                    (account_id, day))
        row = txn.fetchone()
        if row is not None and int(row[0]) == followers:
            continue
        txn.execute(
            "INSERT INTO wangxin_account_follower_days (account_id, day, followers, updated_ts) VALUES (?, ?, ?, ?)"
            " ON CONFLICT (account_id, day) DO UPDATE SET followers = excluded.followers,"
            " updated_ts = excluded.updated_ts",
            (account_id, day, followers, now),
        )
        written += 1
    return written


def channels_after_txn(txn: Any, after: str, limit: int) -> list[tuple[str, str, str]]:
    """``(account_id, account user, channel room)`` of accounts with a channel, by account id
    after ``after``: the daily count walks all accounts a batch at a time."""
    txn.execute(
        "SELECT a.account_id, a.merchant_id, m.circle_room_id FROM wangxin_accounts AS a"
        " JOIN wangxin_merchants AS m ON m.user_id = a.merchant_id WHERE a.account_id > ?"
        " ORDER BY a.account_id LIMIT ?",
        (after, limit),
    )
    return [(r[0], r[1], r[2]) for r in txn.fetchall()]
