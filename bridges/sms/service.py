"""The SMS service (``api.SmsService``): checks, a durable outbound queue, and a sender loop.

``send`` checks the text, the opt-out list and the daily caps and queues the SMS in one
database transaction, so concurrent sends cannot overshoot a cap. The sender loop claims due
SMS in small batches (memory stays flat however long the queue), marks them ``sending``,
sends them through the provider at the global rate with bounded concurrency, and records the
outcome: ``sent``, a retry with exponential back-off, or ``failed``.

Nothing is sent twice: when an attempt ended without a clear answer (a timeout, a broken
connection, a 5xx, a crash while ``sending``) the SMS is marked uncertain, and before any
further attempt the gateway is asked whether it already has it; if so its id is adopted.
Inbound texts are stored and handled by ``inbound.py``. The HTTP surface (webhooks, operator)
is ``http_api.py``, installed by the composition root (``bridges/app.py``).
"""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import attrs
from twisted.internet import defer, reactor, task
from twisted.python.failure import Failure

from bridges.config import BridgeConfig
from bridges.database import Database
from bridges.drain import DrainLoop
from bridges.sms.api import (
    InboundHandler,
    OutboundSms,
    QueuedSms,
    Route,
    SmsKind,
    SmsRefused,
    StatusListener,
)
from bridges.sms.inbound import InboundTexts
from bridges.sms.numbers import InvalidNumber, PhoneNumber, require_mobile
from bridges.sms.providers import LookupFailed, SendResult, SmsProvider, make_provider
from bridges.sms.segments import count_segments, max_characters
from bridges.sms.store import (
    Composer,
    DailyCaps,
    InboundRow,
    NewSms,
    Outcome,
    QueuedRow,
    Refusal,
    Routing,
    SmsStore,
)
from bridges.store import now_ms

logger = logging.getLogger(__name__)

POLL_INTERVAL_S = 5.0  # safety net: the loop also wakes on enqueue and at the next retry time
CLAIM_BATCH = 50
# After the last attempt, an SMS whose fate is unknown gets this many more tries to ask the
# gateway about it, never to send it.
EXTRA_LOOKUPS = 3
# A binding chosen at the same moment for the same remote number (PostgreSQL): choose again.
BIND_TRIES = 3


class TokenBucket:
    """At most ``rate`` takes per second on average, bursts of a tenth of a second."""

    def __init__(self, rate: float, clock: Any = reactor) -> None:
        self.rate = rate
        self.capacity = max(1.0, rate / 10)
        self.tokens = self.capacity
        self._clock = clock
        self._last = clock.seconds()

    async def take(self) -> None:
        while True:
            now = self._clock.seconds()
            self.tokens = min(self.capacity, self.tokens + (now - self._last) * self.rate)
            self._last = now
            if self.tokens >= 1:
                self.tokens -= 1
                return
            await task.deferLater(self._clock, (1 - self.tokens) / self.rate, lambda: None)


class GroupCommit:
    """Outcomes recorded in shared transactions: whatever arrives while one is being written goes
    into the next. Each caller gets back the SMS its outcome changed."""

    def __init__(self, store: SmsStore) -> None:
        self._store = store
        self._pending: list[tuple[Outcome, defer.Deferred[list[OutboundSms]]]] = []
        self._flushing = False

    def submit(self, outcome: Outcome) -> defer.Deferred[list[OutboundSms]]:
        d: defer.Deferred[list[OutboundSms]] = defer.Deferred()
        self._pending.append((outcome, d))
        if not self._flushing:
            defer.ensureDeferred(self._flush())
        return d

    async def _flush(self) -> None:
        self._flushing = True
        try:
            while self._pending:
                batch, self._pending = self._pending, []
                try:
                    changed = await self._store.finish([o for o, _ in batch])
                except Exception as e:
                    for _, d in batch:
                        d.errback(e)
                    continue
                by_id = {sms.sms_id: sms for sms in changed}
                for outcome, d in batch:
                    d.callback([by_id[outcome.sms_id]] if outcome.sms_id in by_id else [])
        finally:
            self._flushing = False


def utc_day(now: datetime | None = None) -> str:
    return (now or datetime.now(UTC)).strftime("%Y-%m-%d")


def ms_until_utc_midnight(now: datetime | None = None) -> int:
    now = now or datetime.now(UTC)
    midnight = (now + timedelta(days=1)).replace(hour=0, minute=0, second=0, microsecond=0)
    return max(1, int((midnight - now).total_seconds() * 1000))


def _hours(ms: int) -> str:
    hours = ms / 3_600_000
    return "less than an hour" if hours < 1 else f"about {round(hours)} hour{'s' if round(hours) != 1 else ''}"


class SmsServiceImpl:
    def __init__(self, config: BridgeConfig, db: Database, base_dir: str = ".",
                 provider: SmsProvider | None = None, clock: Any = reactor) -> None:
        self.config = config
        self.limits = config.sms.limits
        self.routing = Routing(config.sms.sender_pool, config.sms.routing.reply_codes)
        self.store = SmsStore(db)
        self.provider = provider or make_provider(config.sms, base_dir)
        self._clock = clock
        self._listeners: dict[str, list[StatusListener]] = defaultdict(list)
        self._inbound = InboundTexts(config, self.store, self.routing, self._queue)
        self._bucket = TokenBucket(self.limits.global_per_second, clock)
        self._slots = defer.DeferredSemaphore(self.limits.concurrency)
        self._commit = GroupCommit(self.store)
        self._running = False
        self._sender = DrainLoop(self._send_due, log=logger,
                                 failed="The SMS sender loop failed; it runs again at the next poll",
                                 when_drained=self._schedule_next, clock=clock)
        self._timer: Any = None
        self._poller: task.LoopingCall | None = None
        self._inflight: set[defer.Deferred[None]] = set()
        # SMS claimed (marked sending) per database round trip: a quarter second's worth at the
        # global rate. A crash leaves at most this many more to check with the gateway.
        self._claim_size = max(1, min(CLAIM_BATCH, int(self.limits.global_per_second / 4),
                                      4 * self.limits.concurrency))

    # -- the SmsService contract (api.py) ------------------------------------------------

    async def send(self, *, to: PhoneNumber, body: str | Callable[[Route], str], kind: SmsKind,
                   sender: str | None = None, room_id: str | None = None, event_id: str | None = None,
                   dedup_key: str | None = None, reply_to: str | None = None) -> QueuedSms:
        new = NewSms(kind=kind, to=to.e164, body="", segments=0, sender=sender, room_id=room_id, event_id=event_id,
                     dedup_key=dedup_key, bind_to=reply_to)
        return await self._queue(new, to, body)

    async def _queue(self, new: NewSms, to: PhoneNumber, body: str | Callable[[Route], str]) -> QueuedSms:
        if new.dedup_key is not None:
            # A replay gets what the first call got, whatever the limits say now.
            found = await self.store.by_dedup_key(new.dedup_key)
            if found:
                return QueuedSms(found[0], found[1], created=False)
        if new.kind != "system":
            try:
                require_mobile(to)
            except InvalidNumber as e:
                raise SmsRefused(e.reason, str(e)) from None
        compose: Composer | None = None
        if isinstance(body, str):
            new = attrs.evolve(new, body=body, segments=self.check_body(body))
        else:
            def compose(route: Route) -> tuple[str, int]:
                text = body(route)
                return text, self.check_body(text)

        for attempt in range(1, BIND_TRIES + 1):
            try:
                sms_id, segments, created = await self.store.enqueue(new, self._caps(), self.routing, compose)
                break
            except Refusal as r:
                raise self._refusal(r.reason, to) from None
            except SmsRefused:
                raise
            except Exception as e:
                if not _is_integrity_error(e):
                    raise
                found = await self.store.by_dedup_key(new.dedup_key) if new.dedup_key else None
                if found:
                    return QueuedSms(found[0], found[1], created=False)  # a concurrent call with the same key won
                if attempt == BIND_TRIES:
                    raise
                # Another user's SMS to the same number took the same pool number or code: choose again.
        if created:
            self.wake()
        return QueuedSms(sms_id, segments, created)

    async def get(self, sms_id: int) -> OutboundSms | None:
        return await self.store.get(sms_id)

    async def is_opted_out(self, phone: PhoneNumber) -> bool:
        return await self.store.is_opted_out(phone.e164)

    def add_status_listener(self, kind: SmsKind, listener: StatusListener) -> None:
        self._listeners[kind].append(listener)

    def set_inbound_handler(self, handler: InboundHandler) -> None:
        self._inbound.handler = handler

    # -- checks --------------------------------------------------------------------------

    def check_body(self, body: str) -> int:
        """The number of segments ``body`` takes; raises SmsRefused if it is empty or too long."""
        if not body.strip():
            raise SmsRefused("empty", "There is nothing to send: the message is empty.")
        count = count_segments(body)
        limit = self.limits.max_segments
        if count.segments > limit:
            chars = max_characters(limit, count.encoding)
            kind = "plain Latin text" if count.encoding == "gsm7" else "text with Chinese characters or emoji"
            raise SmsRefused(
                "too_long",
                f"The message is too long for SMS: its {len(body)} characters take {count.segments} SMS and at "
                f"most {limit} are sent, which is {chars} characters of {kind}. Shorten it or split it.",
            )
        return count.segments

    def _caps(self) -> DailyCaps:
        return DailyCaps(utc_day(), self.limits.per_user_per_day, self.limits.per_destination_per_day)

    def _refusal(self, reason: str, to: PhoneNumber) -> SmsRefused:
        wait = ms_until_utc_midnight()
        if reason == "opted_out":
            return SmsRefused(reason, f"{to.pretty} has asked not to get SMS from Wangxin (they replied STOP); "
                                      "nothing is sent to them unless they reply START.")
        if reason == "user_daily_cap":
            return SmsRefused(reason, f"You have sent today's maximum of {self.limits.per_user_per_day} SMS; you can "
                                      f"send more after midnight UTC, in {_hours(wait)}.", wait)
        if reason == "destination_daily_cap":
            return SmsRefused(reason, f"{to.pretty} has had the maximum of {self.limits.per_destination_per_day} SMS "
                                      f"for one number today; try again after midnight UTC, in {_hours(wait)}.",
                              wait)
        if reason == "no_route":
            count = len(self.routing.pool)
            numbers = f"{count} SMS number{'s' if count != 1 else ''}"
            return SmsRefused(reason, f"Each of this server's {numbers} already carries another Wangxin "
                                      f"user's conversation with {to.pretty}, so a reply could not be told apart. "
                                      "Ask the server's operator to add numbers (sms.twilio.from) or to turn reply "
                                      "codes on (sms.routing.reply_codes).")
        if reason == "throttled":
            return SmsRefused(reason, f"{to.pretty} got this answer a moment ago; it is not sent again so soon.")
        return SmsRefused(reason, f"The SMS to {to.pretty} was refused ({reason}).")

    # -- life cycle ----------------------------------------------------------------------

    async def start(self) -> None:
        """Resume: SMS interrupted while sending are checked with the gateway, queued ones sent,
        inbound texts stored but not handled are handled."""
        resumed = await self.store.resume_interrupted()
        if resumed:
            logger.info("%d SMS were being sent when the bridge stopped; asking the gateway about them", resumed)
        await self.store.prune_counters(utc_day(datetime.now(UTC) - timedelta(days=2)))
        self._running = True
        self._poller = task.LoopingCall(self.wake)
        self._poller.clock = self._clock
        self._poller.start(POLL_INTERVAL_S, now=True)
        self._inbound.wake()

    async def stop(self) -> None:
        self._running = False
        if self._poller and self._poller.running:
            self._poller.stop()
        if self._timer is not None and self._timer.active():
            self._timer.cancel()
        # Let requests in flight end, so they need no check at the next start, and the loop give
        # back what it claimed but did not send. (Polled: cancelling them would be worse.)
        sender_stopped = defer.ensureDeferred(self._sender.stop())
        deadline = self._clock.seconds() + self.limits.request_timeout_s + 2
        while (self._inflight or not sender_stopped.called) and self._clock.seconds() < deadline:
            await task.deferLater(self._clock, 0.05, lambda: None)
        if self._inflight:
            logger.warning("Stopping with %d SMS in flight; they are checked at the next start", len(self._inflight))
        await self.provider.close()

    # -- sender loop ---------------------------------------------------------------------

    def wake(self) -> None:
        """Send what is due, or make a running drain look again when it ends."""
        if not self._running:
            return
        self._sender.wake()

    async def _send_due(self) -> bool:
        """Claim a batch of due SMS and start sending them; False when none was due."""
        rows = await self.store.claim_due(self._claim_size)
        if rows:
            await self._start_attempts(rows)
        return bool(rows)

    async def _start_attempts(self, rows: list[QueuedRow]) -> None:
        """Send claimed SMS as slots and the rate allow; give back what stopping leaves unsent."""
        for i, row in enumerate(rows):
            await self._slots.acquire()
            await self._bucket.take()
            if not self._running:
                self._slots.release()
                await self.store.unclaim([r.sms.sms_id for r in rows[i:]])
                return
            d = defer.ensureDeferred(self._attempt(row))
            self._inflight.add(d)
            d.addBoth(self._attempt_done, d)

    def _attempt_done(self, result: Any, d: defer.Deferred[None]) -> None:
        self._inflight.discard(d)
        self._slots.release()
        if isinstance(result, Failure):
            logger.error("SMS attempt failed: %s", result.getTraceback())

    async def _schedule_next(self) -> None:
        due = await self.store.next_due_ts()
        if due is not None:
            self._wake_at(due)

    def _wake_at(self, due_ms: int) -> None:
        """Wake the loop when an SMS becomes due (keeping an earlier wake-up if there is one)."""
        if not self._running:
            return
        delay = max(0.01, (due_ms - now_ms()) / 1000)
        if self._timer is not None and self._timer.active():
            if self._timer.getTime() - self._clock.seconds() <= delay:
                return
            self._timer.cancel()
        self._timer = self._clock.callLater(delay, self.wake)

    async def _attempt(self, row: QueuedRow) -> None:
        sms = row.sms
        delivered = False
        try:
            outcome, delivered = await self._try(row)
        except Exception as e:
            logger.exception("Unexpected error sending SMS %d", sms.sms_id)
            outcome = self._after_error(row, SendResult("retry", error=f"internal error: {e!r}", ambiguous=True))
        if outcome.state == "failed":
            logger.warning("SMS %d to %s failed: %s", sms.sms_id, sms.to, outcome.error)
        elif outcome.state == "queued":
            logger.info("SMS %d to %s: attempt %d failed (%s); retrying", sms.sms_id, sms.to, sms.attempts,
                        outcome.error)
        try:
            changed = await self._commit.submit(outcome)
        except Exception:
            logger.exception("Cannot record the outcome of SMS %d; it is checked again at the next start", sms.sms_id)
            return
        self._notify(changed)
        if outcome.state == "queued":
            self._wake_at(outcome.next_attempt_ts)
        if delivered and outcome.provider_id:
            update = await self.store.apply_status(outcome.provider_id, sms.sms_id, "delivered", None)
            if update:
                self._notify([update])

    async def _try(self, row: QueuedRow) -> tuple[Outcome, bool]:
        sms = row.sms
        if row.uncertain:
            try:
                found = await self._lookup(row)
            except LookupFailed as e:
                return self._after_error(row, SendResult("retry", error=str(e), ambiguous=True)), False
            if found:
                logger.info("SMS %d had reached the gateway as %s; not sending it again", sms.sms_id, found)
                return Outcome(sms.sms_id, "sent", provider_id=found), False
            if sms.attempts > self.limits.max_attempts:
                error = f"{sms.error or 'no answer from the gateway'}; not sent (the gateway has no such SMS)"
                return Outcome(sms.sms_id, "failed", error=error), False
        result = await self.provider.send(sms)
        if result.outcome == "accepted":
            return Outcome(sms.sms_id, "sent", provider_id=result.provider_id), result.delivered
        if result.outcome == "failed":
            return Outcome(sms.sms_id, "failed", error=result.error), False
        return self._after_error(row, result), False

    def _after_error(self, row: QueuedRow, result: SendResult) -> Outcome:
        """A retryable failure: try again later, or give up after the last attempt."""
        attempts = row.sms.attempts
        uncertain = row.uncertain or result.ambiguous
        limit = self.limits.max_attempts + (EXTRA_LOOKUPS if uncertain else 0)
        if attempts >= limit:
            error = f"{result.error} (gave up after {attempts} attempts)"
            if uncertain:
                error += "; the gateway could not confirm whether it had the message"
            return Outcome(row.sms.sms_id, "failed", error=error)
        delay = min(self.limits.retry_base_s * 2 ** max(0, attempts - 1), self.limits.retry_max_s)
        if result.retry_after_s:
            delay = max(delay, min(result.retry_after_s, self.limits.retry_max_s))
        return Outcome(row.sms.sms_id, "queued", error=result.error, next_attempt_ts=now_ms() + int(delay * 1000),
                       uncertain=uncertain)

    async def _lookup(self, row: QueuedRow) -> str | None:
        """The gateway's id of this SMS if an earlier attempt reached it, else None."""
        since = row.first_attempt_ts or row.created_ts
        candidates = await self.provider.find(row.sms, since)
        if not candidates:
            return None
        owned = await self.store.owned_provider_ids(candidates)
        free = [c for c in candidates if c not in owned]
        return free[-1] if free else None  # the oldest: our first attempt came first

    def _notify(self, changed: list[OutboundSms]) -> None:
        for sms in changed:
            for listener in self._listeners.get(sms.kind, ()):
                defer.ensureDeferred(self._call_listener(listener, sms))

    async def _call_listener(self, listener: StatusListener, sms: OutboundSms) -> None:
        try:
            await listener(sms)
        except Exception:
            logger.exception("SMS status listener failed for SMS %d (%s)", sms.sms_id, sms.state)

    async def apply_status(self, provider_id: str, sms_id: int | None, state: Any, error: str | None) -> None:
        """A delivery report from the gateway (``http_api``)."""
        changed = await self.store.apply_status(provider_id, sms_id, state, error)
        if changed:
            self._notify([changed])

    # -- inbound (inbound.py) ------------------------------------------------------------

    async def receive(self, row: InboundRow) -> bool:
        """Store an inbound text for handling; False for a replay (already stored)."""
        return await self._inbound.receive(row)


def _is_integrity_error(e: Exception) -> bool:
    return type(e).__name__ in ("IntegrityError", "UniqueViolation")
