"""A local Twilio speaking the Programmable Messaging REST API and calling webhooks back, signed.

Tests point the bridge's ``sms.twilio.base_url`` here. It checks HTTP basic auth and the form
fields as Twilio does, answers in Twilio's JSON shapes (201 with a Message resource, errors as
``{code, message, more_info, status}``), lists messages with Twilio's filters and paging, and
records every message (``messages_to``). Faults can be injected into the next create requests.
It calls the bridge's webhooks as Twilio would: status callbacks to the message's
``StatusCallback`` and inbound messages, both signed with its own implementation of Twilio's
documented algorithm, so the bridge's check (the twilio library) is tested independently.
"""

from __future__ import annotations

import base64
import email.utils
import hashlib
import hmac
import json
import re
import secrets
import threading
import time
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

import requests

API = "/2010-04-01"
_E164 = re.compile(r"^\+[1-9][0-9]{6,14}$")
FAULTS = ("500", "503", "429", "hang", "reset", "21211", "21610")


def twilio_signature(auth_token: str, url: str, params: Mapping[str, str | Sequence[str]]) -> str:
    """Twilio's webhook signature: base64(HMAC-SHA1(auth token, URL + each name+value, names sorted))."""
    data = url
    for name in sorted(params):
        values = params[name]
        for value in sorted([values] if isinstance(values, str) else values):
            data += name + value
    return base64.b64encode(hmac.new(auth_token.encode(), data.encode(), hashlib.sha1).digest()).decode()


def _rfc2822(ts: float) -> str:
    return email.utils.format_datetime(datetime.fromtimestamp(int(ts), UTC), usegmt=False).replace("-0000", "+0000")


def _error(code: int, message: str, status: int) -> tuple[int, dict[str, Any]]:
    return status, {"code": code, "message": message, "more_info": f"https://www.twilio.com/docs/errors/{code}",
                    "status": status}


class FakeTwilio:
    def __init__(self, hang_s: float = 6.0) -> None:
        self.account_sid = "AC" + secrets.token_hex(16)
        self.auth_token = secrets.token_hex(16)
        # Our numbers (the bridge's sender pool): each remote number sees each user from one of them.
        self.numbers = ("+15005550006", "+15005550007")
        self.from_number = self.numbers[0]
        self.hang_s = hang_s
        self.messages: list[dict[str, Any]] = []  # in creation order
        self.create_requests: list[str] = []  # the To of every POST to Messages.json, answered or not
        self.list_requests = 0
        self.auto_status: tuple[str, ...] = ()  # statuses to call back after each create, in order
        self._faults: list[tuple[str, str | None]] = []  # (fault, only for this To)
        self._lock = threading.Lock()
        fake = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self) -> None:  # noqa: N802 (http.server's name)
                length = int(self.headers.get("Content-Length", 0))
                form = parse_qs(self.rfile.read(length).decode("utf-8"), keep_blank_values=True)
                fake._handle(self, "POST", {k: v[0] for k, v in form.items()})

            def do_GET(self) -> None:  # noqa: N802
                fake._handle(self, "GET", {})

            def log_message(self, *args: Any) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()

    # -- for tests -------------------------------------------------------------------------

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def fail_next(self, count: int, fault: str, to: str | None = None) -> None:
        """The next ``count`` create requests (to ``to`` only, if given) get ``fault``: 500, 503,
        429, hang (the message is created, the answer comes after ``hang_s``), reset (connection
        closed, nothing created), 21211 (invalid To) or 21610 (unsubscribed recipient)."""
        assert fault in FAULTS, fault
        with self._lock:
            self._faults += [(fault, to)] * count

    def clear_faults(self, to: str | None = None) -> None:
        with self._lock:
            self._faults = [f for f in self._faults if to is not None and f[1] != to]

    def requests_to(self, number: str) -> int:
        """How many create requests for ``number`` arrived, whatever their answer."""
        with self._lock:
            return self.create_requests.count(number)

    def messages_to(self, number: str) -> list[dict[str, Any]]:
        with self._lock:
            return [dict(m) for m in self.messages if m["to"] == number]

    def message(self, sid: str) -> dict[str, Any]:
        with self._lock:
            return dict(next(m for m in self.messages if m["sid"] == sid))

    def sign(self, url: str, params: Mapping[str, str]) -> str:
        return twilio_signature(self.auth_token, url, params)

    def post_signed(self, url: str, params: Mapping[str, str], signature: str | None = None,
                    sign: bool = True) -> requests.Response:
        """POST a form as Twilio does; ``signature`` overrides ours, ``sign=False`` sends none."""
        headers = {"Content-Type": "application/x-www-form-urlencoded", "User-Agent": "TwilioProxy/1.1"}
        if sign:
            headers["X-Twilio-Signature"] = signature if signature is not None else self.sign(url, params)
        return requests.post(url, data=urlencode(params), headers=headers, timeout=30)

    def deliver_status(self, sid: str, status: str, error_code: int | None = None) -> requests.Response:
        """Move a message to ``status`` and call its StatusCallback, as Twilio does."""
        with self._lock:
            m = next(m for m in self.messages if m["sid"] == sid)
            m["status"] = status
            if status in ("sent", "delivered", "undelivered") and m["date_sent"] is None:
                m["date_sent"] = _rfc2822(time.time())
            if error_code is not None:
                m["error_code"] = error_code
            m = dict(m)
        params = {"AccountSid": self.account_sid, "ApiVersion": "2010-04-01", "MessageSid": sid, "SmsSid": sid,
                  "MessageStatus": status, "SmsStatus": status, "To": m["to"], "From": m["from"] or ""}
        if m["messaging_service_sid"]:
            params["MessagingServiceSid"] = m["messaging_service_sid"]
        if error_code is not None:
            params["ErrorCode"] = str(error_code)
        assert m["status_callback"], f"message {sid} has no StatusCallback"
        return self.post_signed(m["status_callback"], params)

    def send_inbound(self, webhook_url: str, from_: str, body: str, message_sid: str | None = None,
                     to: str | None = None, signature: str | None = None, sign: bool = True) -> requests.Response:
        """A text from ``from_`` to our number ``to`` (the first of ours if not given), delivered to
        ``webhook_url`` as Twilio does."""
        sid = message_sid or "SM" + secrets.token_hex(16)
        params = {"ToCountry": "US", "SmsMessageSid": sid, "NumMedia": "0", "SmsSid": sid, "SmsStatus": "received",
                  "Body": body, "To": to or self.from_number, "NumSegments": "1", "MessageSid": sid,
                  "AccountSid": self.account_sid, "From": from_, "ApiVersion": "2010-04-01"}
        return self.post_signed(webhook_url, params, signature, sign)

    def wait_for(self, number: str, count: int = 1, timeout: float = 30) -> list[dict[str, Any]]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            found = self.messages_to(number)
            if len(found) >= count:
                return found
            time.sleep(0.05)
        raise AssertionError(f"{count} message(s) to {number} expected within {timeout}s, got "
                             f"{self.messages_to(number)}")

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    # -- the API ---------------------------------------------------------------------------

    def _handle(self, h: BaseHTTPRequestHandler, method: str, form: dict[str, str]) -> None:
        split = urlsplit(h.path)
        base = f"{API}/Accounts/{self.account_sid}/Messages"
        if not self._authorized(h.headers.get("Authorization")):
            self._answer(h, *_error(20003, "Authenticate", 401))
        elif method == "POST" and split.path == base + ".json":
            self._create(h, form)
        elif method == "GET" and split.path == base + ".json":
            self._answer(h, 200, self._list(parse_qs(split.query)))
        elif method == "GET" and (m := re.fullmatch(re.escape(base) + r"/(SM[0-9a-f]{32})\.json", split.path)):
            with self._lock:
                found = [dict(x) for x in self.messages if x["sid"] == m.group(1)]
            self._answer(h, *((200, _public(found[0])) if found else _error(20404, "Not Found", 404)))
        else:
            self._answer(h, *_error(20404, f"The requested resource {split.path} was not found", 404))

    def _authorized(self, header: str | None) -> bool:
        if not header or not header.startswith("Basic "):
            return False
        try:
            user, _, password = base64.b64decode(header[6:]).decode().partition(":")
        except ValueError:
            return False
        return hmac.compare_digest(user, self.account_sid) and hmac.compare_digest(password, self.auth_token)

    def _create(self, h: BaseHTTPRequestHandler, form: dict[str, str]) -> None:
        to, body = form.get("To", ""), form.get("Body")
        with self._lock:
            self.create_requests.append(to)
            fault = None
            for i, (_fault, only) in enumerate(self._faults):
                if only is None or only == to:
                    fault = self._faults.pop(i)[0]
                    break
        if fault == "reset":
            h.close_connection = True
            h.connection.shutdown(2)
            return
        if fault in ("500", "503", "429"):
            code = {"500": 20500, "503": 20503, "429": 20429}[fault]
            text = {"500": "Internal Server Error", "503": "Service Unavailable", "429": "Too Many Requests"}[fault]
            self._answer(h, *_error(code, text, int(fault)), retry_after="1" if fault == "429" else None)
            return
        if not to:
            self._answer(h, *_error(21604, "A 'To' phone number is required.", 400))
        elif not form.get("From") and not form.get("MessagingServiceSid"):
            self._answer(h, *_error(21603, "A 'From' phone number is required.", 400))
        elif body is None or body == "":
            self._answer(h, *_error(21602, "Message body is required.", 400))
        elif fault == "21211" or not _E164.match(to):
            self._answer(h, *_error(21211, f"The 'To' number {to} is not a valid phone number.", 400))
        elif fault == "21610":
            self._answer(h, *_error(21610, "Attempt to send to unsubscribed recipient", 400))
        elif len(body) > 1600:
            self._answer(h, *_error(21617, "The concatenated message body exceeds the 1600 character limit.", 400))
        else:
            message = self._record(form)
            if fault == "hang":
                time.sleep(self.hang_s)
            try:
                self._answer(h, 201, _public(message))
            except OSError:
                pass  # the client gave up waiting
            if self.auto_status:
                threading.Thread(target=self._auto, args=(message["sid"],), daemon=True).start()

    def _record(self, form: dict[str, str]) -> dict[str, Any]:
        now = time.time()
        sid = "SM" + secrets.token_hex(16)
        message = {
            "sid": sid, "account_sid": self.account_sid, "to": form["To"], "from": form.get("From"),
            "messaging_service_sid": form.get("MessagingServiceSid"), "body": form["Body"], "status": "queued",
            "num_segments": "1", "num_media": "0", "direction": "outbound-api", "api_version": "2010-04-01",
            "price": None, "price_unit": "USD", "error_code": None, "error_message": None,
            "date_created": _rfc2822(now), "date_updated": _rfc2822(now), "date_sent": None,
            "uri": f"{API}/Accounts/{self.account_sid}/Messages/{sid}.json",
            "status_callback": form.get("StatusCallback"), "created_at": now,
        }
        with self._lock:
            self.messages.append(message)
        return dict(message)

    def _auto(self, sid: str) -> None:
        for status in self.auto_status:
            try:
                self.deliver_status(sid, status)
            except requests.RequestException:
                return

    def _list(self, query: dict[str, list[str]]) -> dict[str, Any]:
        with self._lock:
            self.list_requests += 1
            found = [dict(m) for m in self.messages]
        one = {k: v[0] for k, v in query.items()}
        if "To" in one:
            found = [m for m in found if m["to"] == one["To"]]
        if "From" in one:
            found = [m for m in found if m["from"] == one["From"]]
        for key, keep in (("DateSent", lambda d, x: d == x), ("DateSent<", lambda d, x: d <= x),
                          ("DateSent>", lambda d, x: d >= x)):
            if key in one:
                found = [m for m in found if m["date_sent"] and
                         keep(email.utils.parsedate_to_datetime(m["date_sent"]).strftime("%Y-%m-%d"), one[key])]
        found.sort(key=lambda m: m["created_at"], reverse=True)
        size = max(1, min(1000, int(one.get("PageSize", 50))))
        page = int(one.get("Page", 0))
        chunk = found[page * size:(page + 1) * size]
        base = f"{API}/Accounts/{self.account_sid}/Messages.json"

        def uri(p: int) -> str:
            return base + "?" + urlencode({**{k: v for k, v in one.items() if k not in ("Page",)}, "Page": p})

        return {
            "messages": [_public(m) for m in chunk], "page": page, "page_size": size, "start": page * size,
            "end": page * size + max(0, len(chunk) - 1), "uri": uri(page), "first_page_uri": uri(0),
            "next_page_uri": uri(page + 1) if (page + 1) * size < len(found) else None,
            "previous_page_uri": uri(page - 1) if page > 0 else None,
        }

    @staticmethod
    def _answer(h: BaseHTTPRequestHandler, status: int, body: dict[str, Any], retry_after: str | None = None) -> None:
        payload = json.dumps(body).encode()
        h.send_response(status)
        h.send_header("Content-Type", "application/json; charset=utf-8")
        h.send_header("Content-Length", str(len(payload)))
        if retry_after:
            h.send_header("Retry-After", retry_after)
        h.end_headers()
        h.wfile.write(payload)


def _public(message: dict[str, Any]) -> dict[str, Any]:
    """The Message resource as Twilio shows it (no StatusCallback in it, as in Twilio)."""
    return {k: v for k, v in message.items() if k not in ("status_callback", "created_at")}
