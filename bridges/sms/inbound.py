"""Inbound texts: stored first (de-duplicated by the gateway's id) and handled after the webhook
has been answered, in order, by one drain loop. Opt-out keywords (STOP, START, HELP) are
handled here; other texts are routed to the user they answer (``routing.py``) and go to the
inbound handler, or, when they answer nobody unambiguously, to no one, with one SMS back saying
how to answer. A text whose handling fails is recorded with its error and the next is handled.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable

from bridges.config import BridgeConfig
from bridges.drain import DrainLoop, each_item
from bridges.sms import keywords, routing, templating
from bridges.sms.api import InboundHandler, InboundSms, QueuedSms, SmsRefused
from bridges.sms.numbers import InvalidNumber, PhoneNumber, parse_phone
from bridges.sms.store import InboundRow, NewSms, Routing, SmsStore

logger = logging.getLogger(__name__)

# Queues one of the service's own answers (``SmsServiceImpl._queue``); raises SmsRefused.
QueueSms = Callable[[NewSms, PhoneNumber, str], Awaitable[QueuedSms]]


class InboundTexts:
    def __init__(self, config: BridgeConfig, store: SmsStore, routing: Routing, queue: QueueSms) -> None:
        self.config = config
        self.store = store
        self.routing = routing
        self._queue = queue
        self.handler: InboundHandler | None = None
        self._loop = DrainLoop(
            each_item(store.pending_inbound, self._handle, self._done, log=logger,
                      what=lambda row: f"inbound SMS {row.message_sid}"),
            log=logger, failed="Inbound SMS handling stopped; it resumes with the next text",
        )

    async def receive(self, row: InboundRow) -> bool:
        """Store an inbound text for handling; False for a replay (already stored)."""
        new = await self.store.record_inbound(row)
        if new:
            self.wake()
        return new

    def wake(self) -> None:
        self._loop.wake()

    async def _done(self, row: InboundRow, error: str | None) -> None:
        await self.store.inbound_done(row.message_sid, error)

    async def _handle(self, row: InboundRow) -> None:
        try:
            sender = parse_phone(row.from_number, self.config.sms.default_region)
        except InvalidNumber as e:
            logger.warning("Inbound SMS %s from an unusable number %r ignored: %s", row.message_sid,
                           row.from_number, e)
            return
        ours = self._our_number(row.to_number)
        # "#2 STOP" stops too: opting out is for the phone, whoever it answers.
        keyword = keywords.keyword_of(routing.parse_reply_code(row.body)[1])
        if keyword == "stop":
            if await self.store.opt_out(sender.e164, row.body.strip()[:20]):
                logger.info("%s opted out of SMS (%r)", sender.e164, row.body.strip())
                await self._system_reply(sender, "stop_confirm", row.message_sid, ours)
            return
        if keyword == "start" and await self.store.opt_in(sender.e164):
            logger.info("%s opted in to SMS again (%r)", sender.e164, row.body.strip())
            await self._system_reply(sender, "start_confirm", row.message_sid, ours)
            return
        if keyword == "help":
            await self._system_reply(sender, "help", row.message_sid, ours)
            return
        if self.handler is None:
            logger.info("Inbound SMS %s from %s: no handler installed; dropped", row.message_sid, sender.e164)
            return
        decision = routing.resolve(await self.store.bindings_for(sender.e164, ours), row.body)
        if isinstance(decision, routing.Unroutable):
            if decision.reason == "unknown":
                logger.warning("Inbound SMS %s from %s to %s: nobody here texts that number from %s; kept, not shown",
                               row.message_sid, sender.e164, row.to_number, row.to_number)
                return
            logger.info("Inbound SMS %s from %s to %s names none of the users who share that number; nobody "
                        "gets it", row.message_sid, sender.e164, row.to_number)
            await self._refuse_reply(sender, row.message_sid, ours)
            return
        await self.handler(InboundSms(message_sid=row.message_sid, sender=sender, to=row.to_number,
                                      body=decision.body, user_id=decision.user_id, media_urls=row.media_urls))

    def _our_number(self, to_number: str) -> str:
        """The pool number an inbound text came through ("" when the provider picks numbers itself)."""
        return "" if self.routing.pool == ("",) else to_number.strip()

    async def _system_reply(self, to: PhoneNumber, template: str, message_sid: str, ours: str) -> None:
        """An answer, from the number that was texted, so it lands in the same thread on the phone."""
        body = templating.render(template, to.language, join_url=self.config.sms_join_url)
        new = NewSms(kind="system", to=to.e164, body="", segments=0, dedup_key=f"sms-{template}:{message_sid}",
                     from_number=ours or None)
        await self._queue(new, to, body)

    async def _refuse_reply(self, to: PhoneNumber, message_sid: str, ours: str) -> None:
        """Tell the phone how to answer: at most once per refusal_interval_s, so an auto-responder
        cannot make a loop of it."""
        body = templating.render("unroutable", to.language)
        new = NewSms(kind="system", to=to.e164, body="", segments=0, dedup_key=f"sms-unroutable:{message_sid}",
                     from_number=ours or None, throttle_key=f"unroutable:{to.e164}",
                     throttle_ms=self.config.sms.routing.refusal_interval_s * 1000)
        try:
            await self._queue(new, to, body)
        except SmsRefused as e:
            if e.reason != "throttled":
                raise
            logger.info("Not telling %s again so soon how to answer", to.e164)
