"""SQL of drift bottles (``wangxin_discovery_bottles``).

A bottle is in the sea until someone picks it; a pick takes it out for good (so nobody picks
it twice, and nobody picks their own), and only its picker may reply, once: the reply is a
chat request to the thrower. A random pick is a range scan from a random point of the
bottles' random keys, wrapping round once.
"""

from __future__ import annotations

from typing import Any

import attrs

from synapse_modules.discovery.config import RateLimit
from synapse_modules.discovery.store.limits import Limited, daily_check_txn, record_daily_txn, take_rate_txn
from synapse_modules.discovery.store.people import NOT_HELD, unblocked_sql, visible_sql
from synapse_modules.discovery.store.requests import insert_request_txn

# Candidates read per pick: the merchant check (outside the transaction) drops a few at most.
PICK_CANDIDATES = 16


def throw_txn(txn: Any, user_id: str, bottle_id: str, text: str, rand: int, now: int, per_day: int,
              rate: RateLimit) -> Limited | None:
    limited = take_rate_txn(txn, user_id, "throw", now, rate) or daily_check_txn(
        txn, user_id, "throw", now, per_day, "throws_per_day", "thrown a bottle")
    if limited:
        return limited
    txn.execute(
        "INSERT INTO wangxin_discovery_bottles (bottle_id, thrower, text, thrown_ts, rand, state)"
        " VALUES (?, ?, ?, ?, ?, 'sea')",
        (bottle_id, user_id, text, now, rand),
    )
    record_daily_txn(txn, user_id, "throw", now)
    return None


@attrs.frozen
class Bottle:
    bottle_id: str
    thrower: str
    thrower_name: str
    text: str
    thrown_ts: int


def pick_candidates_txn(txn: Any, user_id: str, start: int, now: int, per_day: int,
                        rate: RateLimit) -> Limited | list[Bottle]:
    """Bottles in the sea the caller may pick, from a random point on (counts a pick attempt)."""
    limited = take_rate_txn(txn, user_id, "pick", now, rate) or daily_check_txn(
        txn, user_id, "pick", now, per_day, "picks_per_day", "picked a bottle")
    if limited:
        return limited
    found: list[Bottle] = []
    for where, args in (("b.rand >= ?", (start,)), ("b.rand < ?", (start,))):
        txn.execute(
            "SELECT b.bottle_id, b.thrower, p.name, b.text, b.thrown_ts FROM wangxin_discovery_bottles AS b"
            " JOIN wangxin_discovery_profiles AS p ON p.user_id = b.thrower"
            f" WHERE b.state = 'sea' AND {where} AND b.thrower <> ?"
            f" AND {NOT_HELD.format(u='b.thrower')}"
            f" AND {unblocked_sql('?', 'b.thrower')}"
            " ORDER BY b.rand LIMIT ?",
            (*args, user_id, user_id, user_id, PICK_CANDIDATES - len(found)),
        )
        found += [Bottle(r[0], r[1], r[2], r[3], int(r[4])) for r in txn.fetchall()]
        if len(found) >= PICK_CANDIDATES:
            break
    return found


def claim_bottle_txn(txn: Any, user_id: str, bottle_id: str, now: int, per_day: int) -> Limited | bool:
    """Take ``bottle_id`` out of the sea for ``user_id``; ``False`` if someone was quicker."""
    limited = daily_check_txn(txn, user_id, "pick", now, per_day, "picks_per_day", "picked a bottle")
    if limited:
        return limited
    txn.execute(
        "UPDATE wangxin_discovery_bottles SET state = 'picked', picker = ?, picked_ts = ?"
        " WHERE bottle_id = ? AND state = 'sea'",
        (user_id, now, bottle_id),
    )
    if txn.rowcount != 1:
        return False
    record_daily_txn(txn, user_id, "pick", now)
    return True


@attrs.frozen
class ReplyOutcome:
    """``request_id`` of the chat request to the thrower, or ``not_found`` (no bottle this
    caller picked by that id, or its thrower is gone for them) or ``replied`` (already)."""

    request_id: str | None = None
    thrower: str | None = None
    not_found: bool = False
    replied: bool = False


def reply_txn(txn: Any, user_id: str, bottle_id: str, text: str, now: int, request_id: str,
              rate: RateLimit) -> Limited | ReplyOutcome:
    limited = take_rate_txn(txn, user_id, "reply", now, rate)
    if limited:
        return limited
    txn.execute(
        "SELECT b.thrower, b.replied FROM wangxin_discovery_bottles AS b"
        " WHERE b.bottle_id = ? AND b.state = 'picked' AND b.picker = ?"
        f" AND {visible_sql('b.thrower')} AND {unblocked_sql('?', 'b.thrower')}",
        (bottle_id, user_id, user_id, user_id),
    )
    row = txn.fetchone()
    if row is None:
        return ReplyOutcome(not_found=True)
    thrower, replied = row[0], bool(row[1])
    if replied:
        return ReplyOutcome(replied=True)
    txn.execute("UPDATE wangxin_discovery_bottles SET replied = 1 WHERE bottle_id = ?", (bottle_id,))
    insert_request_txn(txn, request_id, "bottle", user_id, thrower, False, text, bottle_id, now)
    return ReplyOutcome(request_id=request_id, thrower=thrower)
