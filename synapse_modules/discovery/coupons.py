"""Asking the platform for the coupons of accepted 36.8° pairings (docs/discovery.md, "Coupons").

The jobs are rows (``store/coupons.py``), written with the accepted pairing, so nothing is lost
when a process stops. The process that recorded the accept asks at once (``kick``); a failure
(5xx, a timeout, an answer not of the protocol's shape, the platform unreachable) is recorded
with the time of the next try, doubling from ``retry_base_ms`` up to ``retry_max_ms``, and the
background-tasks process (``poll``, every ``poll_ms``) tries the jobs that are due, until
``give_up_hours`` after the accept. A job is held by one process at a time (a lease of twice the
request timeout), and an answer is recorded only once per pairing.

The request goes through Synapse's own outgoing HTTP client (``ModuleApi.http_client``), which
applies Synapse's proxy settings; its timeout is ours (``timeout_s``).
"""

from __future__ import annotations

import logging
from typing import cast

from synapse.module_api import ModuleApi, make_deferred_yieldable, run_in_background
from twisted.internet import reactor as _reactor
from twisted.internet.interfaces import IReactorTime
from twisted.web.client import readBody
from twisted.web.http_headers import Headers

from synapse_modules.discovery.config import CouponConfig
from synapse_modules.discovery.coupon_protocol import (
    SIGNATURE_HEADER,
    BadAnswer,
    parse_answer,
    request_body,
    retry_delay_ms,
    signature,
)
from synapse_modules.discovery.store import DiscoveryStore
from synapse_modules.discovery.store.coupons import Coupon, Job, claim_job_txn, record_answer_txn, record_failure_txn

logger = logging.getLogger(__name__)

POLL_BATCH = 20


class CouponDesk:
    def __init__(self, api: ModuleApi, config: CouponConfig, store: DiscoveryStore):
        self._api = api
        self._config = config
        self._store = store
        self._polling = False

    @property
    def enabled(self) -> bool:
        return self._config.url is not None

    def kick(self, pairing_id: str) -> None:
        """Ask for this pairing's coupons now, in the background."""
        if self.enabled:
            self._api.run_as_background_process("wangxin_discovery_coupon", self._claim_and_ask, pairing_id)

    async def poll(self) -> None:
        """Ask for every coupon that is due (the background-tasks process, every ``poll_ms``)."""
        if self._polling or not self.enabled:
            return
        self._polling = True
        try:
            while True:
                jobs = await self._store.run(claim_job_txn, None, self._now(), self._lease_ms, POLL_BATCH)
                for job in jobs:
                    await self._ask(job)
                if len(jobs) < POLL_BATCH:
                    return
        except Exception:
            logger.exception("Looking for coupons due failed; trying again on the next tick")
        finally:
            self._polling = False

    @property
    def _lease_ms(self) -> int:
        return 2 * self._config.timeout_s * 1000 + 5000

    def _now(self) -> int:
        return self._api.get_current_time_msec()

    async def _claim_and_ask(self, pairing_id: str) -> None:
        for job in await self._store.run(claim_job_txn, pairing_id, self._now(), self._lease_ms, 1):
            await self._ask(job)

    async def _ask(self, job: Job) -> None:
        try:
            coupons = await self._post(job)
        except Exception as e:  # every failure is retried (a 5xx, a timeout, a refused connection, a bad answer)
            logger.warning("Coupon request for pairing %s failed (try %d): %s: %s", job.pairing_id,
                           job.attempts + 1, type(e).__name__, e)
            await self._failed(job, f"{type(e).__name__}: {e}")
            return
        recorded = await self._store.run(record_answer_txn, job.pairing_id, coupons, self._now())
        logger.info("Coupons for pairing %s: %d of %d people%s", job.pairing_id, len(coupons), len(job.users),
                    "" if recorded else " (already recorded: this answer changed nothing)")

    async def _failed(self, job: Job, error: str) -> None:
        now = self._now()
        attempts = job.attempts + 1
        next_ts: int | None = now + retry_delay_ms(attempts, self._config.retry_base_ms, self._config.retry_max_ms)
        if next_ts is not None and next_ts > job.at_ts + self._config.give_up_hours * 3600_000:
            next_ts = None
            logger.warning("Giving up on the coupons of pairing %s after %d tries", job.pairing_id, attempts)
        await self._store.run(record_failure_txn, job.pairing_id, error, now, next_ts)

    async def _post(self, job: Job) -> dict[str, Coupon]:
        url, secret = self._config.url, self._config.secret
        assert url is not None and secret is not None
        body = request_body(job.pairing_id, job.users, job.at_ts)
        headers = Headers({"Content-Type": ["application/json"], SIGNATURE_HEADER: [signature(body, secret)]})
        clock = cast(IReactorTime, _reactor)
        d = run_in_background(self._api.http_client.request, "POST", url, body, headers)
        d.addTimeout(self._config.timeout_s, clock)
        response = await make_deferred_yieldable(d)
        read = readBody(response)
        read.addTimeout(self._config.timeout_s, clock)
        raw = await make_deferred_yieldable(read)
        if not 200 <= response.code < 300:
            raise BadAnswer(f"HTTP {response.code}")
        return parse_answer(raw, job.users)
