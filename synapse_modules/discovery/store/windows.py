"""SQL of timed rendezvous (shake; issue 23's angle): the database is the meeting point, so a
shake may reach any process that loads the module.

Windows are fixed slices of server time (``window_start`` a multiple of the window length).
Entering writes a row; once a window has closed (and a little longer, so that entries made on
other processes just before the close have committed), any process with someone waiting asks
for the decision: the first to insert the window's row in ``wangxin_discovery_windows`` pairs
its entries, in the same transaction; everyone else reads the pairs. On PostgreSQL two
processes deciding at once conflict on that row; Synapse retries the later transaction, which
then finds the window decided.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import attrs

from synapse_modules.discovery.config import RateLimit
from synapse_modules.discovery.pairing import Entrant
from synapse_modules.discovery.store.limits import Limited, take_rate_txn
from synapse_modules.discovery.store.people import blocks_among_txn, visible_sql
from synapse_modules.discovery.store.requests import insert_request_txn, recent_pairs_txn


@attrs.frozen
class Entry:
    user_id: str
    region: str | None
    window_start: int


def enter_windows_txn(txn: Any, pool: str, entries: Sequence[Entry], window_ms: int, now: int,
                      rate: RateLimit) -> list[Limited | int]:
    """Enter each in its window (or the next one, if its window was decided already: a process
    whose clock runs late); the window each went into, or ``Limited``. A second entry of the
    same person in a window is the same entry."""
    results: list[Limited | int] = []
    decided: dict[int, bool] = {}
    for entry in entries:
        limited = take_rate_txn(txn, entry.user_id, pool, now, rate)
        if limited:
            results.append(limited)
            continue
        start = entry.window_start
        while True:
            if start not in decided:
                txn.execute("SELECT 1 FROM wangxin_discovery_windows WHERE pool = ? AND window_start = ?",
                            (pool, start))
                decided[start] = txn.fetchone() is not None
            if not decided[start]:
                break
            start += window_ms
        txn.execute(
            "INSERT INTO wangxin_discovery_window_entries (pool, window_start, user_id, region, entered_ts)"
            " VALUES (?, ?, ?, ?, ?) ON CONFLICT (pool, window_start, user_id) DO NOTHING",
            (pool, start, entry.user_id, entry.region, now),
        )
        results.append(start)
    return results


Pairer = Callable[[list[Entrant], list[tuple[str, str]]], list[tuple[str, str]]]


@attrs.frozen
class Pairing:
    partner: str
    request_id: str


def decide_window_txn(txn: Any, pool: str, window_start: int, now: int, pair: Pairer,
                      new_id: Callable[[], str], repeat_after_ms: int | None = None) -> dict[str, Pairing | None]:
    """Decide the window if nobody has (``pair`` gets its entrants, visible people only, and the
    pairs it must not make: blocks, and with ``repeat_after_ms`` the pairs this pool made within
    that time), then everyone's outcome: a pairing whose request is still there, else ``None``."""
    txn.execute("SELECT 1 FROM wangxin_discovery_windows WHERE pool = ? AND window_start = ?", (pool, window_start))
    if txn.fetchone() is None:
        txn.execute(
            "INSERT INTO wangxin_discovery_windows (pool, window_start, decided_ts) VALUES (?, ?, ?)"
            " ON CONFLICT (pool, window_start) DO NOTHING",
            (pool, window_start, now),
        )
        if txn.rowcount == 1:
            _pair_window_txn(txn, pool, window_start, now, pair, new_id, repeat_after_ms)
    # A pairing whose request has gone since (a block, an opt-out) is no pairing any more.
    txn.execute(
        "SELECT e.user_id, e.partner, r.request_id FROM wangxin_discovery_window_entries AS e"
        " LEFT JOIN wangxin_discovery_requests AS r ON r.request_id = e.request_id"
        " AND r.state IN ('pending', 'accepting', 'accepted')"
        " WHERE e.pool = ? AND e.window_start = ?",
        (pool, window_start),
    )
    return {user_id: Pairing(partner, request_id) if partner and request_id else None
            for user_id, partner, request_id in txn.fetchall()}


def _pair_window_txn(txn: Any, pool: str, window_start: int, now: int, pair: Pairer,
                     new_id: Callable[[], str], repeat_after_ms: int | None) -> None:
    txn.execute(
        "SELECT e.user_id, e.region FROM wangxin_discovery_window_entries AS e"
        f" WHERE e.pool = ? AND e.window_start = ? AND {visible_sql('e.user_id')}",
        (pool, window_start),
    )
    entrants = [Entrant(r[0], r[1]) for r in txn.fetchall()]
    if len(entrants) < 2:
        return
    user_ids = [e.user_id for e in entrants]
    excluded = blocks_among_txn(txn, user_ids)
    if repeat_after_ms is not None:
        excluded += recent_pairs_txn(txn, pool, user_ids, now - repeat_after_ms)
    for a, b in pair(entrants, excluded):
        request_id = new_id()
        insert_request_txn(txn, request_id, pool, a, b, True, None, None, now)
        for me, partner in ((a, b), (b, a)):
            txn.execute(
                "UPDATE wangxin_discovery_window_entries SET partner = ?, request_id = ?"
                " WHERE pool = ? AND window_start = ? AND user_id = ?",
                (partner, request_id, pool, window_start, me),
            )
