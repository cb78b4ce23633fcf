"""SQL of accounts' posts: the scheduled ones and their delivery, targeted posts and the people
they reach (found in the merchant circle's purchases), and each (platform, person) room.

Tables in ``posts_schema``. The state moves only forward, each step one ``UPDATE … WHERE state =``
the step before, so a cancel and the delivery loop never both win: ``scheduled`` → ``sending``
(claimed by the loop) → ``sent`` (or ``delivering`` → ``sent`` for a targeted post); ``scheduled``
→ ``cancelled``; ``sending`` → ``scheduled`` again when the limit holds it back or Synapse stopped
mid-send.
"""

from __future__ import annotations

import json
from typing import Any

import attrs

from synapse_modules.accounts.post_rules import Segment
from synapse_modules.accounts.store.accounts import Account, get_account_txn
from synapse_modules.merchant_circle.quota import PostDecision
from synapse_modules.merchant_circle.store.posts import record_server_post_txn


@attrs.frozen
class Post:
    post_id: str
    account_id: str
    author: str
    body: str
    segment: Segment | None
    state: str
    due_ts: int
    created_ts: int
    sent_ts: int | None
    event_id: str | None
    room_id: str | None
    targeted: int | None
    attempts: int
    last_error: str | None


@attrs.frozen
class Audience:
    """A segment resolved for SQL: its category (normalised), the merchant's user id, and the
    earliest purchase time; ``platform`` is the circle key of the platform (its own user), whose
    unfollowers are left out."""

    platform: str
    category: str | None
    merchant_id: str | None
    since_ts: int | None


_COLUMNS = ("post_id, account_id, author, body, segment, state, due_ts, created_ts, sent_ts, event_id, room_id,"
            " targeted, attempts, last_error")


def _post(row: Any) -> Post:
    segment = Segment(**json.loads(row[4])) if row[4] else None
    return Post(row[0], row[1], row[2], row[3], segment, row[5], int(row[6]), int(row[7]),
                int(row[8]) if row[8] is not None else None, row[9], row[10],
                int(row[11]) if row[11] is not None else None, int(row[12]), row[13])


# -- posts ---------------------------------------------------------------------------------------

def insert_post_txn(txn: Any, post: Post, max_scheduled: int) -> bool:
    """Record a new post; ``False`` (nothing written) when it is scheduled and the account has
    ``max_scheduled`` posts waiting already."""
    if post.state == "scheduled":
        txn.execute("SELECT COUNT(*) FROM wangxin_account_posts WHERE account_id = ? AND state = 'scheduled'",
                    (post.account_id,))
        if int(txn.fetchone()[0]) >= max_scheduled:
            return False
    txn.execute(
        f"INSERT INTO wangxin_account_posts ({_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        (post.post_id, post.account_id, post.author, post.body,
         json.dumps(post.segment.as_json()) if post.segment else None, post.state, post.due_ts, post.created_ts,
         post.sent_ts, post.event_id, post.room_id, post.targeted, post.attempts, post.last_error),
    )
    return True


def get_post_txn(txn: Any, post_id: str) -> Post | None:
    txn.execute(f"SELECT {_COLUMNS} FROM wangxin_account_posts WHERE post_id = ?", (post_id,))
    row = txn.fetchone()
    return _post(row) if row else None


def list_posts_txn(txn: Any, account_id: str, state: str | None, limit: int) -> list[Post]:
    """The account's posts in ``state`` (every state: ``None``): scheduled ones by when they are
    due, soonest first (the bot numbers them so); the others newest first."""
    if state == "scheduled":
        txn.execute(f"SELECT {_COLUMNS} FROM wangxin_account_posts WHERE account_id = ? AND state = ?"
                    " ORDER BY due_ts, post_id LIMIT ?", (account_id, state, limit))
    elif state is not None:
        txn.execute(f"SELECT {_COLUMNS} FROM wangxin_account_posts WHERE account_id = ? AND state = ?"
                    " ORDER BY due_ts DESC, post_id LIMIT ?", (account_id, state, limit))
    else:
        txn.execute(f"SELECT {_COLUMNS} FROM wangxin_account_posts WHERE account_id = ?"
                    " ORDER BY due_ts DESC, post_id LIMIT ?", (account_id, limit))
    return [_post(row) for row in txn.fetchall()]


def cancel_post_txn(txn: Any, account_id: str, post_id: str) -> str | None:
    """Cancel a scheduled post of this account: the post's state afterwards (``cancelled``, or the
    state that kept it from being cancelled), ``None`` for no such post of this account."""
    txn.execute("UPDATE wangxin_account_posts SET state = 'cancelled' WHERE post_id = ? AND account_id = ?"
                " AND state = 'scheduled'", (post_id, account_id))
    txn.execute("SELECT state FROM wangxin_account_posts WHERE post_id = ? AND account_id = ?", (post_id, account_id))
    row = txn.fetchone()
    return str(row[0]) if row else None


def due_posts_txn(txn: Any, now: int, limit: int) -> list[Post]:
    txn.execute(f"SELECT {_COLUMNS} FROM wangxin_account_posts WHERE state = 'scheduled' AND due_ts <= ?"
                " ORDER BY due_ts, post_id LIMIT ?", (now, limit))
    return [_post(row) for row in txn.fetchall()]


def claim_post_txn(txn: Any, post_id: str) -> bool:
    """The loop takes a due post (unless it was cancelled meanwhile)."""
    txn.execute("UPDATE wangxin_account_posts SET state = 'sending', attempts = attempts + 1 WHERE post_id = ?"
                " AND state = 'scheduled'", (post_id,))
    return bool(txn.rowcount == 1)


def mark_sent_txn(txn: Any, post_id: str, event_id: str | None, room_id: str | None, now: int) -> None:
    txn.execute("UPDATE wangxin_account_posts SET state = 'sent', event_id = ?, room_id = ?, sent_ts = ?,"
                " last_error = NULL WHERE post_id = ?", (event_id, room_id, now, post_id))


def reschedule_txn(txn: Any, post_id: str, due_ts: int, error: str) -> None:
    """Back to waiting (the limit holds it back, or a passing failure), due at ``due_ts``."""
    txn.execute("UPDATE wangxin_account_posts SET state = 'scheduled', due_ts = ?, last_error = ? WHERE post_id = ?"
                " AND state IN ('sending', 'scheduled')", (due_ts, error[:500], post_id))


def fail_post_txn(txn: Any, post_id: str, error: str) -> None:
    txn.execute("UPDATE wangxin_account_posts SET state = 'failed', last_error = ? WHERE post_id = ?",
                (error[:500], post_id))


def resume_interrupted_txn(txn: Any) -> int:
    """At start-up, before the loop's first round: posts a stopped process was sending wait again
    (and go out once more: a post whose event was stored just before the stop goes out twice)."""
    txn.execute("UPDATE wangxin_account_posts SET state = 'scheduled' WHERE state = 'sending'")
    return int(txn.rowcount)


# -- targeted posts ------------------------------------------------------------------------------

def _audience_sql(audience: Audience) -> tuple[str, list[Any]]:
    """``FROM … WHERE …`` of the buyers a segment matches (column ``buyer``), served by an index
    range: the category's rows, else the merchant's purchases, else every purchase since then."""
    params: list[Any] = []
    if audience.category is not None:
        sql = "FROM wangxin_purchase_categories AS p WHERE p.category = ?"
        params.append(audience.category)
    else:
        sql = "FROM wangxin_purchases AS p WHERE 1 = 1"
    if audience.merchant_id is not None:
        sql += " AND p.merchant_id = ?"
        params.append(audience.merchant_id)
    if audience.since_ts is not None:
        sql += " AND p.received_ts >= ?"
        params.append(audience.since_ts)
    # Not the platform itself, nor anyone who unfollowed the platform's channel.
    sql += (" AND p.buyer <> ? AND NOT EXISTS (SELECT 1 FROM wangxin_circle_follows AS f WHERE f.merchant_id = ?"
            " AND f.user_id = p.buyer AND f.state = 'unfollowed')")
    params += [audience.platform, audience.platform]
    return sql, params


def count_audience_txn(txn: Any, audience: Audience) -> int:
    sql, params = _audience_sql(audience)
    txn.execute(f"SELECT COUNT(DISTINCT p.buyer) {sql}", params)
    return int(txn.fetchone()[0])


@attrs.frozen
class Targeting:
    """What starting a targeted post came to: ``targeted`` people (``delivering``, or ``sent`` at
    once when nobody matched), or refused: more than the allowed number of people
    (``too_many``), or the account's limit (``limit``, with its decision). Refused, it wrote nothing."""

    targeted: int
    too_many: bool = False
    limit: PostDecision | None = None


def begin_targeting_txn(txn: Any, post: Post, new: bool, audience: Audience, max_recipients: int,
                        merchant_id: str, limit_posts: int, window_ms: int, now: int) -> Targeting:
    """Start a targeted post, in one transaction: count its people, take a slot of the account's
    limit (the merchant circle's quota: a targeted post counts as a post), record the post when
    it is ``new`` (else it is the scheduled one the loop claimed), fix its people (one row each,
    ``pending``) and mark it ``delivering``. A segment matching nobody takes no slot."""
    targeted = count_audience_txn(txn, audience)
    if targeted > max_recipients:
        return Targeting(targeted, too_many=True)
    if targeted > 0:
        decision = record_server_post_txn(txn, merchant_id, f"segment:{post.post_id}", merchant_id, now, limit_posts,
                                          window_ms)
        if decision.retry_after_ms is not None:
            return Targeting(targeted, limit=decision)
    state = "delivering" if targeted else "sent"
    if new:
        insert_post_txn(txn, attrs.evolve(post, state=state, targeted=targeted, sent_ts=None if targeted else now), 0)
    else:
        txn.execute("UPDATE wangxin_account_posts SET state = ?, targeted = ?, sent_ts = ? WHERE post_id = ?",
                    (state, targeted, None if targeted else now, post.post_id))
    if targeted:
        sql, params = _audience_sql(audience)
        txn.execute(f"INSERT INTO wangxin_account_post_recipients (post_id, user_id, state)"
                    f" SELECT DISTINCT ?, p.buyer, 'pending' {sql}", [post.post_id, *params])
    return Targeting(targeted)


def delivering_posts_txn(txn: Any, limit: int) -> list[Post]:
    txn.execute(f"SELECT {_COLUMNS} FROM wangxin_account_posts WHERE state = 'delivering'"
                " ORDER BY due_ts, post_id LIMIT ?", (limit,))
    return [_post(row) for row in txn.fetchall()]


def pending_recipients_txn(txn: Any, post_id: str, limit: int) -> list[str]:
    txn.execute("SELECT user_id FROM wangxin_account_post_recipients WHERE post_id = ? AND state = 'pending'"
                " ORDER BY user_id LIMIT ?", (post_id, limit))
    return [r[0] for r in txn.fetchall()]


def set_recipients_txn(txn: Any, post_id: str, results: list[tuple[str, str, str | None, str | None]]) -> None:
    """``(user_id, state, event_id, error)`` of people served, in one transaction."""
    for user_id, state, event_id, error in results:
        txn.execute("UPDATE wangxin_account_post_recipients SET state = ?, event_id = ?, error = ? WHERE post_id = ?"
                    " AND user_id = ?", (state, event_id, error[:300] if error else None, post_id, user_id))


def finish_delivery_txn(txn: Any, post_id: str, now: int) -> bool:
    """Mark the targeted post ``sent`` once nobody is pending; whether it is."""
    txn.execute("SELECT 1 FROM wangxin_account_post_recipients WHERE post_id = ? AND state = 'pending' LIMIT 1",
                (post_id,))
    if txn.fetchone() is not None:
        return False
    txn.execute("UPDATE wangxin_account_posts SET state = 'sent', sent_ts = ? WHERE post_id = ?"
                " AND state = 'delivering'", (now, post_id))
    return True


def recipient_counts_txn(txn: Any, post_ids: list[str]) -> dict[str, dict[str, int]]:
    """Per targeted post, how many of its people are in each state."""
    counts: dict[str, dict[str, int]] = {}
    for start in range(0, len(post_ids), 500):
        chunk = post_ids[start : start + 500]
        marks = ", ".join("?" for _ in chunk)
        txn.execute(f"SELECT post_id, state, COUNT(*) FROM wangxin_account_post_recipients WHERE post_id IN ({marks})"
                    " GROUP BY post_id, state", chunk)
        for post_id, state, n in txn.fetchall():
            counts.setdefault(post_id, {})[state] = int(n)
    return counts


def recipient_txn(txn: Any, post_id: str, user_id: str) -> tuple[str, str | None] | None:
    """``(state, event_id)`` of one person of a targeted post, or ``None`` if it is not for them."""
    txn.execute("SELECT state, event_id FROM wangxin_account_post_recipients WHERE post_id = ? AND user_id = ?",
                (post_id, user_id))
    row = txn.fetchone()
    return (row[0], row[1]) if row else None


def get_inbox_txn(txn: Any, account_id: str, user_id: str) -> str | None:
    txn.execute("SELECT room_id FROM wangxin_account_inboxes WHERE account_id = ? AND user_id = ?",
                (account_id, user_id))
    row = txn.fetchone()
    return str(row[0]) if row else None


def set_inbox_txn(txn: Any, account_id: str, user_id: str, room_id: str, now: int) -> str:
    """Record the (platform, person) room unless one is recorded: the one recorded."""
    txn.execute("INSERT INTO wangxin_account_inboxes (account_id, user_id, room_id, created_ts) VALUES (?, ?, ?, ?)"
                " ON CONFLICT DO NOTHING", (account_id, user_id, room_id, now))
    stored = get_inbox_txn(txn, account_id, user_id)
    assert stored is not None
    return stored


def owned_accounts_txn(txn: Any, owner: str) -> list[Account]:
    """The accounts ``owner`` owns, by account id (an index range on the owner)."""
    txn.execute("SELECT account_id FROM wangxin_accounts WHERE owner = ? ORDER BY account_id LIMIT 100", (owner,))
    found = [get_account_txn(txn, r[0]) for r in txn.fetchall()]
    return [a for a in found if a is not None]
