"""The follow queue: durable jobs (``wangxin_circle_jobs``) drained by the background-tasks process.

A job is written in the same transaction as its cause (a purchase, an invite, a join, a leave)
and runs here: ``follow`` (mute and join), ``file`` / ``unfile`` (a room into or out of the
follower's space), ``evict`` (a merchant out of a moments room), and the kinds that modules built on
the circle register with :meth:`FollowQueue.handle` (the accounts module's). Different users' jobs run at
once (``follow_concurrency``, the :class:`JobPool`), each user's in order. A job that fails is
retried with back-off, across restarts; one that can never succeed ends in
``wangxin_circle_failed_jobs`` with its reason. The handlers of each kind are the parts that own
them (``follows``, ``spaces``, ``moments``); the composition root registers them.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable

from synapse.module_api import ModuleApi

from synapse_modules._job_pool import JobPool
from synapse_modules.merchant_circle.config import MerchantCircleConfig
from synapse_modules.merchant_circle.mutes import Mutes
from synapse_modules.merchant_circle.store import MerchantCircleStore
from synapse_modules.merchant_circle.store.follows import (
    Job,
    any_job_due_txn,
    due_jobs_txn,
    fail_job_txn,
    finish_job_txn,
    retry_job_txn,
)

logger = logging.getLogger(__name__)

MAX_JOB_ATTEMPTS = 40  # with back-off capped at 5 minutes: about three hours of retries
EVICT_BATCH = FILE_BATCH = OTHER_BATCH = 20
BUILTIN_KINDS = ("evict", "follow", "file", "unfile")

# Runs one job; returns true when it finished the job itself (else the queue drops it).
JobHandler = Callable[[Job], Awaitable[bool | None]]


class Permanent(Exception):
    """A job that no retry can make succeed (the buyer is deactivated, the circle is gone, ...)."""


class NotYet(Exception):
    """What a chat-started job waits for (the invite) is not in the database (yet)."""


def chat_confirm_delays(wait_s: int) -> tuple[int, ...]:
    """Steps 1, 1, 2, 2, 4, 4, 8, 8, ... adding up to ``wait_s`` (30 gives exactly those eight)."""
    delays: list[int] = []
    step = 1
    while sum(delays) < wait_s:
        delays.append(min(step, wait_s - sum(delays)))
        if len(delays) % 2 == 0:
            step *= 2
    return tuple(delays)


class FollowQueue:
    def __init__(self, api: ModuleApi, config: MerchantCircleConfig, store: MerchantCircleStore, mutes: Mutes,
                 *, runs_here: bool):
        self._api = api
        self._config = config
        self._store = store
        self._mutes = mutes
        self._runs_here = runs_here
        self._handlers: dict[str, JobHandler] = {}
        self._processing = False
        self._rerun = False
        # Different users' jobs at once (``follow_concurrency``), each user's in order: joins into
        # one room that arrive together are persisted by Synapse in one batch, as concurrent
        # admin-API joins are; one at a time, a big follow wave would take far longer.
        self._pool = JobPool(config.follow_concurrency, self._claim_jobs, self._run_job)
        # jobs done whose bookkeeping is still being written: not claimed again meanwhile
        self._recording: set[str] = set()

    def handle(self, kind: str, handler: JobHandler) -> None:
        self._handlers[kind] = handler

    def hold(self, job_id: str) -> None:
        """A handler finishes ``job_id`` in the background: until :meth:`release`, no claim takes it."""
        self._recording.add(job_id)

    def release(self, job_id: str) -> None:
        self._recording.discard(job_id)

    def kick(self) -> None:
        """New jobs were queued: drain now rather than on the next tick (where the queue runs)."""
        if self._runs_here:
            self._api.run_as_background_process("wangxin_circle_follow_queue", self.process)

    async def process(self) -> None:
        """Drain the queue; a kick while draining drains again after."""
        if self._processing:
            self._rerun = True
            return
        self._processing = True
        try:
            while True:
                self._rerun = False
                # One read when nothing is due, instead of the drain's read per kind of job.
                if await self._store.run(any_job_due_txn, self._api.get_current_time_msec()):
                    await self._pool.drain()
                if not self._rerun:
                    return
        finally:
            self._processing = False

    async def _claim_jobs(self, exclude: frozenset[str]) -> list[Job]:
        """Due jobs not already claimed: evictions from moments first; then follows, so a
        follower is in the circle before the slower filing in spaces; then filings. While jobs of
        a kind are due or running, the next kind waits (a follow wave's last joins do not share
        the server with the first space creations)."""
        now = self._api.get_current_time_msec()
        exclude = exclude | self._recording
        groups: list[tuple[tuple[str, ...], int]] = [
            (("evict",), EVICT_BATCH), (("follow",), self._config.follow_batch_size), (("file", "unfile"), FILE_BATCH)]
        # Kinds other modules handle (the accounts module's support chats and staff) come last.
        others = tuple(kind for kind in self._handlers if kind not in BUILTIN_KINDS)
        if others:
            groups.append((others, OTHER_BATCH))
        for kinds, limit in groups:
            due = await self._store.run(due_jobs_txn, kinds, now, limit + len(exclude))
            if due:
                jobs = [j for j in due if j.job_id not in exclude][:limit]
                if kinds == ("follow",):
                    await self._mutes.write_ahead(jobs)
                return jobs
        return []

    async def _run_job(self, job: Job) -> None:
        now = self._api.get_current_time_msec()
        try:
            finished = await self._handlers[job.kind](job)  # true: the handler finished the job itself
        except Permanent as e:
            await self._fail_job(job, str(e))
            return
        except NotYet as e:
            delays = chat_confirm_delays(self._config.chat_follow_wait_s)
            if job.attempts >= len(delays):
                await self._fail_job(job, str(e))
                return
            delay_s = delays[job.attempts]
            logger.debug("Circle job %s waits %ss: %s", job.job_id, delay_s, e)
            await self._store.run(retry_job_txn, job.job_id, job.attempts + 1, now + delay_s * 1000, str(e))
            return
        except Exception as e:
            if job.attempts >= MAX_JOB_ATTEMPTS:
                await self._fail_job(job, f"gave up after {job.attempts + 1} attempts: {e!r}", unexpected=True)
                return
            delay_s = min(2 ** min(job.attempts, 8), 300)
            logger.warning("Circle job %s (%s %s) failed, retrying in %ss: %s", job.job_id, job.kind,
                           job.user_id, delay_s, e)
            await self._store.run(retry_job_txn, job.job_id, job.attempts + 1, now + delay_s * 1000, repr(e))
            return
        if not finished:
            await self._store.run(finish_job_txn, job.job_id)

    async def _fail_job(self, job: Job, error: str, unexpected: bool = False) -> None:
        # A deactivated buyer, a circle shut down or an invite refused is an outcome (its status
        # is shown to the platform and the merchant), not a fault; giving up on retries is.
        log = logger.error if unexpected else logger.warning
        log("Circle job %s (%s of %s, %s, merchant %s) failed for good: %s", job.job_id, job.kind,
            job.user_id, job.reason, job.merchant_id, error)
        await self._store.run(fail_job_txn, job.job_id, job.attempts + 1, error, self._api.get_current_time_msec())
