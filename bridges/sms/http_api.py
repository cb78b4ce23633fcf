"""The SMS service's HTTP surface on the bridge's Router.

- ``POST /_wangxin/v1/sms/twilio/inbound`` and ``.../status``: Twilio's webhooks, refused with
  403 unless ``X-Twilio-Signature`` is Twilio's signature of ``{webhook_base_url}{path}?{query}``
  and the form parameters with our auth token (checked by the twilio library's validator).
- ``POST /_wangxin/v1/sms/messages`` and ``GET .../messages/{id}``: send an SMS as the operator or
  the platform (bearer ``as_token``), and see how it went.
"""

from __future__ import annotations

import hmac
import logging
from typing import Any
from urllib.parse import parse_qs, urlsplit

from twilio.request_validator import RequestValidator

from bridges.http import MatrixError, Router, read_json_object
from bridges.sms.api import OutboundSms, SmsRefused, SmsState
from bridges.sms.numbers import InvalidNumber, parse_mobile
from bridges.sms.providers import INBOUND_PATH, STATUS_PATH, twilio_error_text
from bridges.sms.service import SmsServiceImpl
from bridges.sms.store import InboundRow

logger = logging.getLogger(__name__)

EMPTY_TWIML = b'<?xml version="1.0" encoding="UTF-8"?><Response/>'
# Twilio's MessageStatus -> ours. accepted/scheduled: a Messaging Service has it; read: delivered.
TWILIO_STATES: dict[str, SmsState] = {
    "accepted": "sent", "scheduled": "sent", "queued": "sent", "sending": "sent", "sent": "sent",
    "delivered": "delivered", "read": "delivered", "undelivered": "undelivered", "failed": "failed",
    "canceled": "failed",
}
REFUSAL_STATUS = {
    "opted_out": (403, "M_FORBIDDEN"),
    "user_daily_cap": (429, "M_LIMIT_EXCEEDED"),
    "destination_daily_cap": (429, "M_LIMIT_EXCEEDED"),
}
SENDABLE_KINDS = ("chat", "invite", "code")


class _Params(dict[str, list[str]]):
    """Form parameters with every value of a repeated name, as the validator wants them."""

    def getall(self, name: str) -> list[str]:
        return self[name]

    def first(self, name: str, default: str = "") -> str:
        values = self.get(name)
        return values[0] if values else default


class SmsHttpApi:
    def __init__(self, service: SmsServiceImpl) -> None:
        self.service = service
        self.config = service.config
        twilio = service.config.sms.twilio
        self._validator = RequestValidator(twilio.auth_token) if twilio else None

    def install(self, router: Router) -> None:
        router.add("POST", INBOUND_PATH, self._twilio_inbound)
        router.add("POST", STATUS_PATH, self._twilio_status)
        router.add("POST", "/_wangxin/v1/sms/messages", self._post_message)
        router.add("GET", r"/_wangxin/v1/sms/messages/(?P<sms_id>[0-9]+)", self._get_message)

    # -- Twilio webhooks -----------------------------------------------------------------

    def _signed_params(self, request: Any) -> _Params | tuple[int, bytes]:
        """The form parameters of a request Twilio signed, or the 403 answer to give."""
        twilio = self.config.sms.twilio
        if twilio is None or self._validator is None:
            request.setHeader(b"Content-Type", b"text/plain; charset=utf-8")
            return 404, b"Twilio is not configured on this bridge (sms.twilio).\n"
        raw = request.content.read()
        request.content.seek(0)
        params = _Params(parse_qs(raw.decode("utf-8", "replace"), keep_blank_values=True))
        signature = (request.getHeader(b"x-twilio-signature") or b"").decode("ascii", "replace")
        url = twilio.webhook_base_url + request.uri.decode("utf-8", "replace")
        if not signature:
            reason = "the request has no X-Twilio-Signature header; only Twilio may call this URL."
        elif not self._validator.validate(url, params, signature):
            reason = ("the X-Twilio-Signature does not match this request: it was not signed with our auth token "
                      f"for {url}. Check sms.twilio.auth_token and sms.twilio.webhook_base_url.")
        else:
            return params
        logger.warning("Refused a Twilio webhook at %s: %s", request.uri.decode("utf-8", "replace"), reason)
        request.setHeader(b"Content-Type", b"text/plain; charset=utf-8")
        return 403, f"Forbidden: {reason}\n".encode()

    async def _twilio_inbound(self, request: Any) -> tuple[int, Any]:
        params = self._signed_params(request)
        if isinstance(params, tuple):
            return params
        sid = params.first("MessageSid") or params.first("SmsSid")
        request.setHeader(b"Content-Type", b"text/xml; charset=utf-8")
        if not sid:
            return 400, b'<?xml version="1.0" encoding="UTF-8"?><Response/><!-- MessageSid is missing -->'
        try:
            count = int(params.first("NumMedia", "0") or 0)
        except ValueError:
            count = 0
        media = tuple(url for i in range(min(count, 10)) if (url := params.first(f"MediaUrl{i}")))
        row = InboundRow(sid, params.first("From"), params.first("To"), params.first("Body"), media)
        if not await self.service.receive(row):
            logger.info("Inbound SMS %s was delivered again; already handled", sid)
        return 200, EMPTY_TWIML

    async def _twilio_status(self, request: Any) -> tuple[int, Any]:
        params = self._signed_params(request)
        if isinstance(params, tuple):
            return params
        request.setHeader(b"Content-Type", b"text/plain; charset=utf-8")
        sid = params.first("MessageSid") or params.first("SmsSid")
        status = (params.first("MessageStatus") or params.first("SmsStatus")).lower()
        state = TWILIO_STATES.get(status)
        if not sid or state is None:
            return 200, b""  # nothing we track (e.g. an inbound message's "received")
        query = parse_qs(urlsplit(request.uri.decode("utf-8", "replace")).query)
        sms_id = int(query["sms_id"][0]) if query.get("sms_id", [""])[0].isdigit() else None
        code = params.first("ErrorCode")
        error = twilio_error_text(code) if code and state in ("undelivered", "failed") else None
        await self.service.apply_status(sid, sms_id, state, error)
        return 200, b""

    # -- operator ------------------------------------------------------------------------

    def _check_operator(self, request: Any) -> None:
        raw = request.getHeader(b"authorization")
        token = raw.decode("utf-8", "replace").removeprefix("Bearer ") if raw else ""
        if not hmac.compare_digest(token.encode(), self.config.appservice.as_token.encode()):
            raise MatrixError(403, "M_FORBIDDEN", "Send the bridge's as_token as a bearer token")

    async def _post_message(self, request: Any) -> tuple[int, Any]:
        self._check_operator(request)
        body = read_json_object(request, 64 * 1024)
        to, text = body.get("to"), body.get("body")
        sender, kind, dedup_key = body.get("sender"), body.get("kind", "chat"), body.get("dedup_key")
        if not isinstance(to, str) or not isinstance(text, str):
            raise MatrixError(400, "M_BAD_JSON", "'to' (a phone number) and 'body' (the text) must be strings")
        if sender is not None and (not isinstance(sender, str) or not sender.startswith("@")
                                   or not sender.endswith(":" + self.config.homeserver.server_name)):
            raise MatrixError(400, "M_INVALID_PARAM", "'sender' must be the user id of a user of this server")
        if kind not in SENDABLE_KINDS:
            raise MatrixError(400, "M_INVALID_PARAM", f"'kind' must be one of {', '.join(SENDABLE_KINDS)}")
        if dedup_key is not None and not isinstance(dedup_key, str):
            raise MatrixError(400, "M_INVALID_PARAM", "'dedup_key' must be a string")
        try:
            number = parse_mobile(to, self.config.sms.default_region)
            queued = await self.service.send(to=number, body=text, kind=kind, sender=sender,
                                             dedup_key=f"operator:{dedup_key}" if dedup_key else None)
        except InvalidNumber as e:
            raise MatrixError(400, "M_INVALID_PARAM", str(e), reason=e.reason) from None
        except SmsRefused as e:
            status, errcode = REFUSAL_STATUS.get(e.reason, (400, "M_INVALID_PARAM"))
            extra: dict[str, Any] = {"reason": e.reason}
            if e.retry_after_ms is not None:
                extra["retry_after_ms"] = e.retry_after_ms
            raise MatrixError(status, errcode, str(e), **extra) from None
        return 202, {"sms_id": queued.sms_id, "segments": queued.segments, "created": queued.created}

    async def _get_message(self, request: Any, sms_id: str) -> tuple[int, Any]:
        self._check_operator(request)
        sms = await self.service.get(int(sms_id))
        if sms is None:
            raise MatrixError(404, "M_NOT_FOUND", f"There is no SMS {sms_id}")
        return 200, describe(sms)


def describe(sms: OutboundSms) -> dict[str, Any]:
    return {"sms_id": sms.sms_id, "kind": sms.kind, "to": sms.to, "state": sms.state, "sender": sms.sender,
            "room_id": sms.room_id, "event_id": sms.event_id, "provider_id": sms.provider_id,
            "attempts": sms.attempts, "error": sms.error}
