"""A timed rendezvous on the database, correct whichever process each call reaches (shake;
issue 23's angle pairing reuses it with its own pool name and pairer).

``enter`` writes the caller's entry (batched with other callers' into one transaction:
``GroupCommit``); ``outcome`` sleeps until the window has closed and settled, then asks the
store for the window's decision once per process and window (the other waiters of the process
wait for that answer) (``store/windows.py``: the first
process to ask decides, in one transaction, with the pure engine; the others read).
"""

from __future__ import annotations

import secrets
from collections.abc import Callable

from synapse.module_api import ModuleApi, make_deferred_yieldable
from twisted.internet import defer

from synapse_modules._group_commit import GroupCommit
from synapse_modules._internals import resolve_outside_log_context
from synapse_modules.discovery.config import RateLimit
from synapse_modules.discovery.store import DiscoveryStore
from synapse_modules.discovery.store.limits import Limited
from synapse_modules.discovery.store.windows import Entry, Pairer, Pairing, decide_window_txn, enter_windows_txn

# Decisions kept in memory for this many windows after their own: every waiter has read by then.
KEEP_WINDOWS = 4


def new_id() -> str:
    return secrets.token_urlsafe(16)


class Rendezvous:
    def __init__(self, api: ModuleApi, store: DiscoveryStore, pool: str, window_ms: int, settle_ms: int,
                 rate: RateLimit, pair: Pairer, id_factory: Callable[[], str] = new_id,
                 repeat_after_ms: int | None = None):
        self._api = api
        self._store = store
        self._pool = pool
        self.window_ms = window_ms
        self._settle_ms = settle_ms
        self._rate = rate
        self._pair = pair
        self._new_id = id_factory
        self._repeat_after_ms = repeat_after_ms  # the same two are not paired again within this
        self._entries: GroupCommit[Entry, Limited | int] = GroupCommit(self._enter_batch)
        self._decisions: dict[int, dict[str, Pairing | None]] = {}
        # Windows whose decision this process is asking for, and who waits for it.
        self._waiting: dict[int, list[defer.Deferred[dict[str, Pairing | None]]]] = {}

    async def enter(self, user_id: str, region: str | None) -> Limited | int:
        """Enter the window open now; the window's start (the key of ``outcome``) or ``Limited``."""
        now = self._api.get_current_time_msec()
        return await self._entries.submit(Entry(user_id, region, now - now % self.window_ms))

    async def _enter_batch(self, entries: list[Entry]) -> list[Limited | int]:
        now = self._api.get_current_time_msec()
        return await self._store.run(enter_windows_txn, self._pool, entries, self.window_ms, now, self._rate)

    async def outcome(self, window_start: int, user_id: str) -> Pairing | None:
        """Once the window has closed: the caller's partner and request, or ``None``."""
        wait_ms = window_start + self.window_ms + self._settle_ms - self._api.get_current_time_msec()
        if wait_ms > 0:
            await self._api.sleep(wait_ms / 1000)
        decision = self._decisions.get(window_start)
        if decision is None:
            decision = await self._decision(window_start)
        return decision.get(user_id)

    async def _decision(self, window_start: int) -> dict[str, Pairing | None]:
        """The window's decision, asked of the store once per process: the first caller asks, the
        others (hundreds, all woken at the window's close) wait for its answer. Not a lock that
        they pass one by one, which costs a turn of the reactor per waiter."""
        waiters = self._waiting.get(window_start)
        if waiters is not None:
            done: defer.Deferred[dict[str, Pairing | None]] = defer.Deferred()
            waiters.append(done)
            return await make_deferred_yieldable(done)
        self._waiting[window_start] = waiters = []
        try:
            now = self._api.get_current_time_msec()
            decision = await self._store.run(decide_window_txn, self._pool, window_start, now, self._pair,
                                             self._new_id, self._repeat_after_ms)
        except Exception as e:
            del self._waiting[window_start]
            for d in waiters:  # they fail as the asker did; a later caller asks again
                resolve_outside_log_context(d, error=e)
            raise
        self._decisions[window_start] = decision
        del self._waiting[window_start]
        for old in [w for w in self._decisions if w < window_start - KEEP_WINDOWS * self.window_ms]:
            del self._decisions[old]
        for d in waiters:
            resolve_outside_log_context(d, decision)
        return decision
