"""What expires: locations after their time to live (so no cell outlives it), bottles,
unanswered requests, decided windows, full rate buckets, a day's counted actions, ended waits in
the face-to-face queue, coupons older than 30 days."""

from __future__ import annotations

from typing import Any

from synapse_modules.discovery.rules import DAY_MS
from synapse_modules.discovery.store.coupons import expire_coupons_txn

# Decided windows and their entries are kept this long: every waiting shake has read its
# outcome long before.
WINDOW_KEEP_MS = 3600 * 1000


def cleanup_txn(txn: Any, now: int, location_ttl_ms: int, bottle_ttl_ms: int, request_ttl_ms: int,
                cooldown_ms: int) -> int:
    """Delete what expired; returns how many rows went."""
    deleted = 0
    for statement, args in (
        ("DELETE FROM wangxin_discovery_locations WHERE updated_ts <= ?", (now - location_ttl_ms,)),
        ("DELETE FROM wangxin_discovery_bottles WHERE thrown_ts <= ?", (now - bottle_ttl_ms,)),
        # Open requests nobody answered in time; answered ones once the decline cooldown is over.
        ("DELETE FROM wangxin_discovery_requests WHERE state = 'pending' AND created_ts <= ?",
         (now - request_ttl_ms,)),
        ("DELETE FROM wangxin_discovery_requests WHERE state IN ('accepted', 'declined') AND updated_ts <= ?",
         (now - max(cooldown_ms, DAY_MS),)),
        ("DELETE FROM wangxin_discovery_window_entries WHERE window_start <= ?", (now - WINDOW_KEEP_MS,)),
        ("DELETE FROM wangxin_discovery_windows WHERE window_start <= ?", (now - WINDOW_KEEP_MS,)),
        ("DELETE FROM wangxin_discovery_rates WHERE tat <= ?", (now,)),
        ("DELETE FROM wangxin_discovery_daily WHERE ts <= ?", (now - DAY_MS,)),
        ("DELETE FROM wangxin_discovery_video_queue WHERE expires_ts <= ?", (now,)),
    ):
        txn.execute(statement, args)
        deleted += max(0, txn.rowcount)
    return deleted + expire_coupons_txn(txn, now)
