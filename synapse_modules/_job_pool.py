"""Run queued jobs a few users at a time, claiming more as soon as one user's jobs finish.

The merchant circle's follow queue used to claim a batch, run it ``size`` users at a time and
wait for the whole batch before claiming the next: at every batch's end fewer and fewer joins
were in flight, and Synapse, which persists concurrent joins into one room together, batched
fewer of them. The pool keeps ``size`` users' jobs in flight for as long as jobs are due.

Rules it keeps:

- one user's jobs run one after the other, in the order claimed (a user whose jobs are running
  is not started again until they end, even if a later claim brings more of their jobs);
- a job is claimed once per drain: the claim is told which job ids are already waiting or
  running and must not return them again;
- a job's own failure is the runner's business (it records retries); an unexpected error is
  logged and that user's remaining jobs are left for the next drain, so a broken database
  cannot spin the pool.
"""

from __future__ import annotations

import logging
from collections import deque
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, Protocol

from synapse.module_api import make_deferred_yieldable, run_in_background
from twisted.internet import defer

logger = logging.getLogger(__name__)


class PoolJob(Protocol):
    @property
    def job_id(self) -> str: ...

    @property
    def user_id(self) -> str: ...


Claim = Callable[[frozenset[str]], Awaitable[Sequence[Any]]]
RunJob = Callable[[Any], Awaitable[None]]


def by_user(jobs: Sequence[PoolJob]) -> list[list[Any]]:
    """The jobs grouped per user, users in order of their first job, each user's in order."""
    groups: dict[str, list[Any]] = {}
    for job in jobs:
        groups.setdefault(job.user_id, []).append(job)
    return list(groups.values())


class JobPool:
    def __init__(self, size: int, claim: Claim, run_job: RunJob):
        if size < 1:
            raise ValueError("a job pool needs at least one slot")
        self._size = size
        self._claim = claim
        self._run_job = run_job

    async def drain(self) -> int:
        """Run jobs until none is due; returns how many ran to their end (done, or retry recorded)."""
        waiting: deque[list[Any]] = deque()  # claimed, not started: one user's jobs each
        claimed: set[str] = set()  # ids waiting or running (or broken, for this drain)
        running: dict[str, tuple[defer.Deferred[None], list[Any]]] = {}  # user -> (deferred, its jobs)
        broken: set[str] = set()  # users whose run raised: their ids stay claimed
        ran = 0
        exhausted = False
        while True:
            while len(running) < self._size:
                group = _take(waiting, running, broken)
                if group is not None:
                    user_id = group[0].user_id
                    running[user_id] = (run_in_background(self._run_group, group, broken), group)
                    continue
                if waiting or exhausted:
                    break  # only running users' jobs wait, or nothing more is due yet
                fresh = [j for j in await self._claim(frozenset(claimed)) if j.job_id not in claimed]
                if not fresh:
                    exhausted = True
                    break
                claimed.update(j.job_id for j in fresh)
                waiting.extend(by_user(fresh))
            if not running:
                return ran
            deferreds = [d for d, _ in running.values()]
            await make_deferred_yieldable(
                defer.DeferredList(deferreds, fireOnOneCallback=True, fireOnOneErrback=True, consumeErrors=True)
            )
            for user_id, (d, group) in list(running.items()):
                if d.called:
                    del running[user_id]
                    if user_id not in broken:
                        ran += len(group)
                        claimed.difference_update(j.job_id for j in group)
            exhausted = False  # a finished job may have queued the next one (a follow its filing)

    async def _run_group(self, group: list[Any], broken: set[str]) -> None:
        try:
            for job in group:
                await self._run_job(job)
        except Exception:
            logger.exception("Queued jobs of %s failed unexpectedly; they wait for the next run", group[0].user_id)
            broken.add(group[0].user_id)


def _take(waiting: deque[list[Any]], running: dict[str, Any], broken: set[str]) -> list[Any] | None:
    """The first waiting group whose user has nothing running (and no broken run), removed from
    ``waiting``."""
    for i, group in enumerate(waiting):
        if group[0].user_id not in running and group[0].user_id not in broken:
            del waiting[i]
            return group
    return None
