"""The SMS layer's contract, shared by everything that sends or receives text messages.

``bridges/sms/service.py`` implements :class:`SmsService`; the chat layer
(``bridges/sms/chat.py``), the invitations (``bridges/sms/invites.py``) and the phone-number
sign-up delegate (``bridges/sms/identity.py``) use only what this module declares.

Replies reach the right user: the service sends a user's SMS to a number from that user's own
number of the sender pool (a binding per user and remote number), with a reply code when the
pool is used up for that remote number, and routes each reply by the number it was sent to and
its code (``bridges/sms/routing.py``; docs/sms.md, "Who gets a reply").

Numbers are :class:`bridges.sms.numbers.PhoneNumber` values (E.164, validated by phonenumbers).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Literal, Protocol

import attrs

if TYPE_CHECKING:
    from bridges.sms.numbers import PhoneNumber

# What an outbound SMS is for. Limits and templates depend on it:
#   chat   - a user's message to a phone number (per-user and per-destination daily caps)
#   invite - an invitation to join (same caps as chat)
#   code   - a sign-up / add-number verification code (per-destination caps only)
#   system - the bridge's own answers to STOP/START/HELP (never capped, sent even to opted-out numbers)
SmsKind = Literal["chat", "invite", "code", "system"]

@attrs.frozen
class Route:
    """Where a user's SMS to a remote number comes from, so that the replies find the user."""

    number: str  # our sender number ("" = the provider's own choice, e.g. a Twilio Messaging Service)
    reply_code: int | None  # set when the number is shared for that remote number: replies start with #code


# Life of an outbound SMS. ``queued`` -> ``sending`` -> ``sent`` (the gateway accepted it) ->
# ``delivered`` | ``undelivered``; or ``failed`` after the last retry. Final: delivered,
# undelivered, failed.
SmsState = Literal["queued", "sending", "sent", "delivered", "undelivered", "failed"]


class SmsRefused(Exception):
    """The SMS was not queued. ``str(e)`` is one plain sentence for the user, saying why and what to do."""

    def __init__(self, reason: str, message: str, retry_after_ms: int | None = None):
        super().__init__(message)
        # One of: invalid_number, not_mobile, opted_out, user_daily_cap, destination_daily_cap,
        # too_long, empty, no_route (every pool number is taken for that number, reply codes are
        # off), throttled (an answer of this kind went to that number a moment ago)
        self.reason = reason
        self.retry_after_ms = retry_after_ms


@attrs.frozen
class QueuedSms:
    sms_id: int
    segments: int  # how many SMS segments the body takes (GSM-7 160/153, UCS-2 70/67)
    created: bool  # False when ``dedup_key`` matched an SMS queued earlier (a replay)


@attrs.frozen
class OutboundSms:
    """An outbound SMS as stored, passed to status listeners whenever its state changes."""

    sms_id: int
    kind: SmsKind
    to: str  # E.164 with +
    body: str
    state: SmsState
    sender: str | None  # Matrix user who caused it, if any
    room_id: str | None
    event_id: str | None
    dedup_key: str | None
    provider_id: str | None  # Twilio's MessageSid once accepted
    attempts: int
    error: str | None  # the last gateway error, for failed/undelivered
    from_number: str | None = None  # our number it goes out from; None: the provider's default


@attrs.frozen
class InboundSms:
    """A text message received from a phone, after de-duplication, opt-out keyword handling and
    routing: it answers ``user_id`` (the reply code, if any, is no longer in ``body``)."""

    message_sid: str
    sender: PhoneNumber  # who texted
    to: str  # our number they texted, E.164
    body: str
    user_id: str  # the Wangxin user it answers
    media_urls: tuple[str, ...] = ()


StatusListener = Callable[[OutboundSms], Awaitable[None]]
InboundHandler = Callable[[InboundSms], Awaitable[None]]


class SmsService(Protocol):
    async def send(
        self,
        *,
        to: PhoneNumber,
        body: str | Callable[[Route], str],
        kind: SmsKind,
        sender: str | None = None,
        room_id: str | None = None,
        event_id: str | None = None,
        dedup_key: str | None = None,
        reply_to: str | None = None,
    ) -> QueuedSms:
        """Check the limits and opt-outs, store the SMS durably and return; a background sender
        delivers it at the global rate, retrying gateway errors with back-off.

        ``reply_to``: the user whom replies to this SMS must reach. It goes out from that user's
        number for ``to`` (chosen and kept in the same transaction), and ``body`` may be a
        function of that :class:`Route`, to tell the reply code. Without it the SMS goes out from
        a number nobody texts ``to`` from, if there is one.

        ``dedup_key`` makes the call idempotent: the same key returns the SMS queued before
        (``created=False``) and sends nothing again. Raises :class:`SmsRefused`; a refused SMS
        changes nothing (no count, no binding).
        """
        ...

    async def get(self, sms_id: int) -> OutboundSms | None: ...

    async def is_opted_out(self, phone: PhoneNumber) -> bool: ...

    def add_status_listener(self, kind: SmsKind, listener: StatusListener) -> None:
        """``listener`` is awaited after each state change of an SMS of ``kind`` (at least once per
        change; it must be idempotent). Exceptions are logged, not retried."""
        ...

    def set_inbound_handler(self, handler: InboundHandler) -> None:
        """Ordinary inbound texts (not STOP/START/HELP keywords) that answer a user go to
        ``handler``, once per MessageSid. Texts that answer nobody unambiguously reach no one."""
        ...
