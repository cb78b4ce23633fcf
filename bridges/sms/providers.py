"""SMS gateways behind one small interface: ``outbox`` (a local file, the dev default) and
``twilio`` (Twilio's Programmable Messaging REST API, over treq).

A provider sends one SMS and says how the attempt ended; the service (``service.py``) decides
about retries. ``ambiguous`` marks the dangerous case: the gateway may have accepted the SMS
although we got no answer (a timeout, a dropped connection, a 5xx). Such an SMS is never sent
again before :meth:`SmsProvider.find` has looked for it at the gateway.
"""

from __future__ import annotations

import base64
import email.utils
import json
import logging
import os
import time
from typing import Any, Literal, Protocol
from urllib.parse import urlencode

import attrs
import treq
from twisted.internet import defer, reactor
from twisted.internet import error as net_error
from twisted.web.client import HTTPConnectionPool

from bridges.config import SmsConfig, TwilioConfig
from bridges.sms.api import OutboundSms

logger = logging.getLogger(__name__)

STATUS_PATH = "/_wangxin/v1/sms/twilio/status"
INBOUND_PATH = "/_wangxin/v1/sms/twilio/inbound"


@attrs.frozen
class SendResult:
    outcome: Literal["accepted", "retry", "failed"]
    provider_id: str | None = None
    error: str | None = None
    ambiguous: bool = False  # the gateway may have the SMS although the attempt looked failed
    delivered: bool = False  # the provider knows it reached the phone (the outbox does)
    retry_after_s: float | None = None  # the gateway asked us to wait (HTTP 429 Retry-After)


class LookupFailed(Exception):
    """The gateway could not be asked whether it has an SMS."""


class SmsProvider(Protocol):
    name: str

    async def send(self, sms: OutboundSms) -> SendResult: ...

    async def find(self, sms: OutboundSms, since_ms: int) -> list[str]:
        """Ids of messages at the gateway to ``sms.to`` with ``sms.body``, created at or after
        ``since_ms``, newest first. Raises :class:`LookupFailed`."""
        ...

    async def close(self) -> None: ...


def make_provider(config: SmsConfig, base_dir: str) -> SmsProvider:
    if config.provider == "twilio":
        assert config.twilio is not None
        return TwilioProvider(config.twilio, config.limits.request_timeout_s, config.limits.concurrency)
    path = config.outbox_path if os.path.isabs(config.outbox_path) else os.path.join(base_dir, config.outbox_path)
    return OutboxProvider(path, config.outbox_from[0])


# -- outbox --------------------------------------------------------------------------------


class OutboxProvider:
    """Appends every SMS to a JSON-lines file and the log: the product runs with no account anywhere."""

    name = "outbox"

    def __init__(self, path: str, sender: str = "Wangxin"):
        self.path = path
        self.sender = sender  # for SMS that name no number of the pool
        os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
        self._file = open(path, "a", encoding="utf-8")  # noqa: SIM115 (kept open for the bridge's life)

    async def send(self, sms: OutboundSms) -> SendResult:
        line = {"ts": int(time.time() * 1000), "sms_id": sms.sms_id, "to": sms.to,
                "from": sms.from_number or self.sender, "body": sms.body}
        self._file.write(json.dumps(line, ensure_ascii=False) + "\n")
        self._file.flush()
        logger.info("SMS %d to %s (outbox %s): %s", sms.sms_id, sms.to, self.path, sms.body)
        return SendResult("accepted", provider_id=f"outbox-{sms.sms_id}", delivered=True)

    async def find(self, sms: OutboundSms, since_ms: int) -> list[str]:
        """Whether a crash came between writing the line and recording it: read the file."""
        self._file.flush()
        found = []
        with open(self.path, encoding="utf-8") as f:
            for raw in f:
                try:
                    line = json.loads(raw)
                except ValueError:
                    continue
                if line.get("sms_id") == sms.sms_id:
                    found.append(f"outbox-{sms.sms_id}")
        return found[:1]

    async def close(self) -> None:
        self._file.close()


# -- Twilio --------------------------------------------------------------------------------

# Twilio error codes worth a sentence of their own (https://www.twilio.com/docs/api/errors).
TWILIO_ERRORS = {
    21211: "the number is not a valid phone number",
    21408: "SMS to this region are not enabled on the Twilio account",
    21610: "the recipient has unsubscribed from our number (they replied STOP to Twilio)",
    21612: "Twilio cannot route SMS to this number",
    21614: "the number is not a mobile number",
    30003: "the phone is unreachable (switched off or out of coverage)",
    30004: "the message was blocked by the recipient or their carrier",
    30005: "the number does not exist (unknown destination)",
    30006: "the number is a landline or cannot receive SMS",
    30007: "the carrier filtered the message",
    30008: "delivery failed for an unknown reason",
}


def twilio_error_text(code: Any, message: str | None = None, more_info: str | None = None) -> str:
    """``Twilio error 21211: the number is not a valid phone number (https://…)``."""
    try:
        known = TWILIO_ERRORS.get(int(code))
    except (TypeError, ValueError):
        known = None
    text = f"Twilio error {code}: {known or message or 'no description'}"
    return f"{text} ({more_info})" if more_info else text


class TwilioProvider:
    name = "twilio"

    def __init__(self, config: TwilioConfig, timeout_s: float, concurrency: int):
        self.config = config
        self.timeout_s = timeout_s
        self._messages_url = f"{config.base_url}/2010-04-01/Accounts/{config.account_sid}/Messages.json"
        user, secret = (config.api_key_sid, config.api_key_secret) if config.api_key_sid else (
            config.account_sid, config.auth_token)
        token = base64.b64encode(f"{user}:{secret}".encode()).decode("ascii")
        self._headers: dict[bytes | str, bytes | str] = {
            "Authorization": f"Basic {token}", "Accept": "application/json", "User-Agent": "wangxin-bridge"}
        self._pool = HTTPConnectionPool(reactor, persistent=True)
        self._pool.maxPersistentPerHost = concurrency + 2
        self._pool.retryAutomatically = False  # a silent resend could send an SMS twice

    def status_callback(self, sms_id: int) -> str:
        return f"{self.config.webhook_base_url}{STATUS_PATH}?{urlencode({'sms_id': sms_id})}"

    async def send(self, sms: OutboundSms) -> SendResult:
        form = {"To": sms.to, "Body": sms.body, "StatusCallback": self.status_callback(sms.sms_id)}
        if sms.from_number:  # the number of the pool this SMS's replies must come back to
            form["From"] = sms.from_number
        elif self.config.messaging_service_sid:
            form["MessagingServiceSid"] = self.config.messaging_service_sid
        else:
            form["From"] = self.config.from_numbers[0]
        try:
            status, headers, body = await self._request("POST", self._messages_url, form)
        except (defer.TimeoutError, net_error.TimeoutError):
            return SendResult("retry", error=f"Twilio did not answer within {self.timeout_s:g}s", ambiguous=True)
        except (net_error.ConnectError, net_error.DNSLookupError) as e:  # no connection: nothing was sent
            return SendResult("retry", error=f"cannot connect to Twilio at {self.config.base_url}: {e}")
        except Exception as e:  # the connection broke after the request may have gone out
            return SendResult("retry", error=f"the connection to Twilio broke before its answer ({_describe(e)})",
                              ambiguous=True)
        data = _json_object(body)
        if status in (200, 201):
            sid = data.get("sid") if data else None
            if not isinstance(sid, str) or not sid:
                return SendResult("retry", error=f"Twilio answered {status} without a message sid", ambiguous=True)
            return SendResult("accepted", provider_id=sid)
        error = twilio_error_text(data.get("code", status), data.get("message"), data.get("more_info")) \
            if data else f"Twilio answered HTTP {status}"
        if status == 429 or status >= 500:
            # 429 and 503 are refusals to do anything now; other 5xx may come after the work was done.
            return SendResult("retry", error=error, ambiguous=status not in (429, 503),
                              retry_after_s=_retry_after(headers))
        if status in (401, 403):
            logger.error("Twilio refused our credentials (%s): check sms.twilio in the bridge config", error)
        return SendResult("failed", error=error)

    async def find(self, sms: OutboundSms, since_ms: int) -> list[str]:
        """Page through the messages to ``sms.to``, newest first, back to ``since_ms``."""
        url: str | None = f"{self._messages_url}?{urlencode({'To': sms.to, 'PageSize': 50})}"
        since_s = since_ms // 1000 - 2  # Twilio's dates have whole seconds; allow clock skew
        found: list[str] = []
        for _ in range(10):
            if url is None:
                break
            try:
                status, _headers, body = await self._request("GET", url, None)
            except Exception as e:
                raise LookupFailed(f"cannot list messages at Twilio: {_describe(e)}") from e
            data = _json_object(body)
            if status != 200 or data is None:
                raise LookupFailed(f"listing messages at Twilio answered HTTP {status}")
            older = False
            for message in data.get("messages") or []:
                created = _rfc2822_s(message.get("date_created"))
                if created is not None and created < since_s:
                    older = True
                    continue
                if (message.get("to") == sms.to and message.get("body") == sms.body
                        and str(message.get("direction", "outbound")).startswith("outbound")):
                    found.append(str(message.get("sid")))
            next_uri = data.get("next_page_uri")
            url = f"{self.config.base_url}{next_uri}" if next_uri and not older else None
        return found

    async def _request(self, method: str, url: str, form: dict[str, str] | None) -> tuple[int, Any, bytes]:
        async def call() -> tuple[int, Any, bytes]:
            response = await treq.request(method, url, data=form, headers=self._headers, pool=self._pool)
            return response.code, response.headers, await response.content()

        d = defer.ensureDeferred(call())
        timed_out = []

        def give_up() -> None:
            timed_out.append(True)
            d.cancel()

        timer = reactor.callLater(self.timeout_s, give_up)  # type: ignore[attr-defined]
        try:
            return await d
        except Exception:
            if timed_out:  # the cancellation surfaces as whatever treq was doing; say what happened
                raise defer.TimeoutError() from None
            raise
        finally:
            if timer.active():
                timer.cancel()

    async def close(self) -> None:
        await self._pool.closeCachedConnections()


def _describe(e: Exception) -> str:
    """``ConnectionDone: Connection was closed cleanly.`` rather than a nest of Failure reprs."""
    reasons = getattr(e, "reasons", None)  # treq/twisted.web's ResponseNeverReceived, ResponseFailed
    if reasons:
        return "; ".join(f"{r.type.__name__}: {r.getErrorMessage()}" for r in reasons)
    if isinstance(e, defer.TimeoutError):
        return "no answer in time"
    return f"{type(e).__name__}: {e}"


def _json_object(body: bytes) -> dict[str, Any] | None:
    try:
        data = json.loads(body)
    except ValueError:
        return None
    return data if isinstance(data, dict) else None


def _retry_after(headers: Any) -> float | None:
    values = headers.getRawHeaders(b"retry-after") if headers is not None else None
    try:
        return float(values[0]) if values else None
    except ValueError:
        return None


def _rfc2822_s(value: Any) -> int | None:
    if not isinstance(value, str):
        return None
    try:
        return int(email.utils.parsedate_to_datetime(value).timestamp())
    except (TypeError, ValueError):
        return None
