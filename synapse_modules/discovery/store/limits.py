"""SQL of the limits (``wangxin_discovery_rates``, ``wangxin_discovery_daily``).

Both are read and written inside the transaction of the action they limit, so concurrent
calls on several processes cannot both take the last slot; a refused action writes nothing.
"""

from __future__ import annotations

from typing import Any

import attrs

from synapse_modules.discovery.config import RateLimit
from synapse_modules.discovery.rules import DAY_MS, daily_retry_after, rate_decision


@attrs.frozen
class Limited:
    """What an action's transaction returns instead of its result when a limit refused it."""

    limit: str  # the option that sets it: ``rate_limits.<action>``, ``throws_per_day``, ...
    reason: str
    retry_after_ms: int


def take_rate_txn(txn: Any, user_id: str, action: str, now: int, limit: RateLimit) -> Limited | None:
    """Count one ``action`` of ``user_id`` against its leaky bucket; ``Limited`` if the bucket is full."""
    txn.execute("SELECT tat FROM wangxin_discovery_rates WHERE user_id = ? AND action = ?", (user_id, action))
    row = txn.fetchone()
    decision = rate_decision(int(row[0]) if row else None, now, limit.burst, limit.interval_ms)
    if not decision.allowed:
        return Limited(f"rate_limits.{action}", "Too many requests", decision.retry_after_ms)
    txn.execute(
        "INSERT INTO wangxin_discovery_rates (user_id, action, tat) VALUES (?, ?, ?)"
        " ON CONFLICT (user_id, action) DO UPDATE SET tat = excluded.tat",
        (user_id, action, decision.tat),
    )
    return None


def daily_check_txn(txn: Any, user_id: str, action: str, now: int, per_day: int, option: str,
                    what: str) -> Limited | None:
    """``Limited`` if ``user_id`` did ``action`` ``per_day`` times in the last 24 h."""
    txn.execute(
        "SELECT ts FROM wangxin_discovery_daily WHERE user_id = ? AND action = ? AND ts > ?",
        (user_id, action, now - DAY_MS),
    )
    retry = daily_retry_after([int(r[0]) for r in txn.fetchall()], now, per_day)
    if retry is None:
        return None
    return Limited(option, f"You have {what} {per_day} times in the last 24 hours", retry)


def record_daily_txn(txn: Any, user_id: str, action: str, now: int) -> None:
    txn.execute("INSERT INTO wangxin_discovery_daily (user_id, action, ts) VALUES (?, ?, ?)", (user_id, action, now))
