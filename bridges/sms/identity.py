"""Phone-number sign-up: the msisdn delegate that Synapse's ``account_threepid_delegates.msisdn`` calls.

Synapse sends no SMS itself. For ``/register/msisdn/requestToken`` and
``/account/3pid/msisdn/requestToken`` it forwards the client's request to
``{delegate}/_matrix/identity/api/v1/validate/msisdn/requestToken``; the client then posts the
code to Synapse's ``submit_url``, which forwards it to ``.../validate/msisdn/submitToken``; and
Synapse itself asks ``{delegate}/_matrix/identity/api/v1/3pid/getValidated3pid`` before it binds
the number (UIA stage ``m.login.msisdn``, ``/account/3pid/add``). The same routes answer under
``/_matrix/identity/v2`` for tools that speak only v2, without v2's access token.

Synapse sends the delegate no credentials: it appends those paths to the configured base URL
(``account_threepid_delegates.msisdn``). So the base URL carries the credential:
``http://<bridge>/_wangxin/v1/msisdn-delegate/<sms.verification.delegate_secret>``. A call
without the right secret (compared in constant time) gets 403 and sends nothing, whoever makes
it; without a configured secret phone sign-up is off. As a second line, calls from public
addresses or through a reverse proxy are refused too (docs/sms.md).

Codes: six digits from ``secrets``, kept only as an HMAC under a random salt, valid
``code_ttl_s``, ``max_attempts`` tries each (the try that uses the last one up ends the code).
A request with the same client_secret, number and a ``send_attempt`` not above the last one is a
replay: same ``sid``, no SMS (spec). A higher ``send_attempt`` sends a *new* code in the same
session (the old one stops working; the stored hash cannot be turned back into a code to
re-send), with fresh tries and expiry. At most ``codes_per_number_per_hour`` code SMS go to one
number per rolling hour, so an attacker gets at most that many times ``max_attempts`` guesses
per hour at a one-in-a-million code.

A wrong code with tries left answers 200 ``{"success": false, ...}`` (the spec's way to say "not
validated"; Synapse passes it through, and Element then says the code is wrong and lets the user
try again). Dead sessions answer with Matrix errors, which Synapse turns into a 400.
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import logging
import math
import re
import secrets
import unicodedata
from collections.abc import Callable
from typing import Any, Protocol

import phonenumbers
from phonenumbers import NumberParseException

from bridges.http import MatrixError, Router, read_json_object
from bridges.sms import numbers
from bridges.sms.api import QueuedSms, SmsRefused, SmsService
from bridges.sms.numbers import InvalidNumber, PhoneNumber
from bridges.sms.signup_store import HOUR_MS, NewCode, Session, SignupStore
from bridges.store import now_ms

logger = logging.getLogger(__name__)

CLIENT_SECRET_RE = re.compile(r"^[0-9a-zA-Z.=_-]{1,255}$")  # the spec's client_secret
MAX_SEND_ATTEMPT = 2**63 - 1
VALIDATED_TTL_MS = 24 * HOUR_MS  # a validated session may be used (register, add) this long
KEEP_EXPIRED_MS = 24 * HOUR_MS  # dead sessions are kept this long, to say "expired" rather than "unknown"
_PREFIX = r"/_matrix/identity/(?:api/v1|v2)"
DELEGATE_BASE = "/_wangxin/v1/msisdn-delegate/"
_ROUTES = (("POST", "/validate/msisdn/requestToken"), ("POST", "/validate/msisdn/submitToken"),
           ("GET", "/3pid/getValidated3pid"))
_PROXY_HEADERS = (b"x-forwarded-for", b"forwarded", b"x-real-ip")
# Where a homeserver may call from besides loopback: RFC 1918, carrier-grade NAT (some container
# and VPN networks), IPv6 unique-local.
_PRIVATE_NETWORKS = tuple(
    ipaddress.ip_network(n) for n in ("10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "100.64.0.0/10", "fc00::/7")
)


class VerificationSettings(Protocol):
    """``bridges.config.VerificationConfig``."""

    @property
    def code_ttl_s(self) -> int: ...

    @property
    def max_attempts(self) -> int: ...

    @property
    def codes_per_number_per_hour(self) -> int: ...


Renderer = Callable[..., str]


def _default_render(name: str, language: str, **variables: Any) -> str:
    from bridges.sms.templating import render

    return render(name, language, **variables)


class PhoneVerifier:
    def __init__(self, store: SignupStore, sms: SmsService, settings: VerificationSettings, default_region: str,
                 *, clock: Callable[[], int] = now_ms, render: Renderer = _default_render,
                 delegate_secret: str | None = None):
        self.store = store
        self.sms = sms
        self.settings = settings
        self.default_region = default_region
        self.clock = clock
        self.render = render
        self.delegate_secret = delegate_secret

    def install(self, router: Router) -> None:
        handlers = (self._request_token_http, self._submit_token_http, self._validated_http)
        for (method, path), handler in zip(_ROUTES, handlers, strict=True):
            router.add(method, f"{re.escape(DELEGATE_BASE)}(?P<secret>[^/]*){_PREFIX}{path}", handler)
            # The bare paths (a delegate URL without the secret) are answered with what to fix.
            router.add(method, f"{_PREFIX}{path}", self._no_secret_http)
        if self.delegate_secret is None:
            logger.warning("Phone-number sign-up is off: sms.verification.delegate_secret is not set (docs/sms.md)")

    # -- HTTP ------------------------------------------------------------------------------

    async def _request_token_http(self, request: Any, secret: str) -> tuple[int, Any]:
        self._authenticate(request, secret)
        return 200, await self.request_token(read_json_object(request, 64 * 1024))

    async def _submit_token_http(self, request: Any, secret: str) -> tuple[int, Any]:
        self._authenticate(request, secret)
        return 200, await self.submit_token(read_json_object(request, 64 * 1024))

    async def _validated_http(self, request: Any, secret: str) -> tuple[int, Any]:
        self._authenticate(request, secret)
        args = {k.decode("utf-8", "replace"): v[0].decode("utf-8", "replace") for k, v in request.args.items() if v}
        return 200, await self.validated_threepid(args.get("sid"), args.get("client_secret"))

    async def _no_secret_http(self, request: Any) -> tuple[int, Any]:
        self._authenticate(request, "")
        raise AssertionError("unreachable: an empty secret is never right")

    def _authenticate(self, request: Any, secret: str) -> None:
        """Only Synapse, which has the secret in its delegate URL, may make the bridge text codes."""
        if self.delegate_secret is None:
            raise MatrixError(403, "M_FORBIDDEN",
                              "Phone-number sign-up is off on this bridge: set sms.verification.delegate_secret in "
                              "bridge.yaml, and account_threepid_delegates.msisdn in homeserver.yaml to "
                              f"http://<bridge>{DELEGATE_BASE}<that secret>")
        if not secret or not hmac.compare_digest(secret.encode(), self.delegate_secret.encode()):
            logger.warning("Refused a phone-verification call without the delegate secret (%s)",
                           _peer_description(request))
            raise MatrixError(403, "M_FORBIDDEN",
                              "The phone-verification delegate serves the homeserver only: its URL "
                              "(account_threepid_delegates.msisdn in homeserver.yaml) must end in "
                              f"{DELEGATE_BASE}<sms.verification.delegate_secret>")
        _refuse_outsiders(request)

    # -- the three calls ---------------------------------------------------------------------

    async def request_token(self, body: dict[str, Any]) -> dict[str, Any]:
        client_secret = _client_secret(body.get("client_secret"))
        send_attempt = _send_attempt(body.get("send_attempt"))
        number = self._parse_number(body.get("phone_number"), body.get("country"))
        session = await self.store.session_for(client_secret, number.digits)
        if session is not None and _nothing_to_send(session, send_attempt):
            return _answer(session.sid, number)
        now = self.clock()
        if await self.sms.is_opted_out(number):
            raise MatrixError(
                400, "M_DESTINATION_REJECTED",
                f"{number.pretty} has turned off texts from Wangxin (it answered STOP). Text START to the "
                "number Wangxin's texts come from, then ask for a code again.",
            )
        await self._check_hourly_limit(number, now)
        code = f"{secrets.randbelow(10**6):06d}"
        new = _new_code(code, send_attempt, now + self.settings.code_ttl_s * 1000)
        replacement: NewCode | None = None
        if session is None:
            session = await self.store.create_session(_new_sid(), client_secret, number.digits, new, now)
            if session.code_hash != new.code_hash:  # an identical request running at the same time won
                return _answer(session.sid, number)
        elif send_attempt > session.send_attempt:
            if not await self.store.start_attempt(session.sid, new):
                return _answer(session.sid, number)
        else:
            # This attempt's SMS was never queued (refused, or a crash): send a new code, which
            # replaces the stored one only if this SMS is really the one queued.
            replacement = new
        queued = await self._send_code(number, session.sid, send_attempt, code)
        await self.store.code_queued(session.sid, send_attempt, queued.sms_id, number.digits, created=queued.created,
                                     replacement=replacement if queued.created else None, now=now)
        logger.info("Sign-up code SMS %d for %s (session %s, attempt %d)%s", queued.sms_id, _masked(number),
                    session.sid, send_attempt, "" if queued.created else ", queued before")
        return _answer(session.sid, number)

    async def submit_token(self, body: dict[str, Any]) -> dict[str, Any]:
        client_secret = _client_secret(body.get("client_secret"))
        session = await self._session(body.get("sid"), client_secret)
        token = body.get("token")
        if not isinstance(token, str):
            raise MatrixError(400, "M_MISSING_PARAM" if token is None else "M_INVALID_PARAM",
                              "token must be the code from the SMS, as a string")
        if session.validated_ts is not None:
            return {"success": True} if _matches(session, token) else _wrong_code(None)
        now = self.clock()
        self._refuse_if_dead(session, now)
        used = await self.store.count_attempt(session.sid, self.settings.max_attempts)
        if used is None:
            raise _too_many_tries()
        if _matches(session, token):
            await self.store.mark_validated(session.sid, now)
            logger.info("Phone number %s verified (session %s)", _masked_digits(session.phone), session.sid)
            return {"success": True}
        left = self.settings.max_attempts - used
        if left <= 0:
            raise MatrixError(400, "M_SESSION_EXPIRED",
                              "That code is wrong, and that was the last try: ask for a new code.")
        return _wrong_code(left)

    async def validated_threepid(self, sid: Any, client_secret: Any) -> dict[str, Any]:
        session = await self._session(sid, _client_secret(client_secret))
        now = self.clock()
        if session.validated_ts is None:
            self._refuse_if_dead(session, now)
            raise MatrixError(400, "M_SESSION_NOT_VALIDATED", "This phone number has not been verified yet")
        if now >= session.validated_ts + VALIDATED_TTL_MS:
            raise MatrixError(400, "M_SESSION_EXPIRED", "This verification is too old: verify the number again")
        return {"medium": "msisdn", "address": session.phone, "validated_at": session.validated_ts}

    async def prune(self) -> int:
        """Forget sessions that can no longer be used; called by the bridge's hourly pruner."""
        return await self.store.prune(self.clock(), KEEP_EXPIRED_MS, VALIDATED_TTL_MS)

    # -- helpers -----------------------------------------------------------------------------

    def _parse_number(self, phone_number: Any, country: Any) -> PhoneNumber:
        if not isinstance(phone_number, str):
            raise MatrixError(400, "M_MISSING_PARAM" if phone_number is None else "M_INVALID_PARAM",
                              "phone_number must be the phone number, as a string")
        if country is not None and not isinstance(country, str):
            raise MatrixError(400, "M_INVALID_PARAM", "country must be a two-letter country code like CN")
        region = (country or self.default_region).strip()
        try:
            number = numbers.parse_mobile(phone_number, region.upper())
        except InvalidNumber as e:
            raise MatrixError(400, "M_INVALID_ADDRESS", str(e)) from None
        if _synapse_msisdn(phone_number, region) != number.digits:
            # Synapse checked "already in use" for the number as *it* reads it; both must agree.
            raise MatrixError(400, "M_INVALID_ADDRESS",
                              f"“{phone_number.strip()}” is not a valid number in {region.upper()}. "
                              f"If you meant {number.pretty}, write it with the +.")
        return number

    async def _check_hourly_limit(self, number: PhoneNumber, now: int) -> None:
        limit = self.settings.codes_per_number_per_hour
        sent = await self.store.codes_sent_since(number.digits, now - HOUR_MS)
        if len(sent) < limit:
            return
        retry_after_ms = max(1, sent[len(sent) - limit] + HOUR_MS - now)
        minutes = math.ceil(retry_after_ms / 60000)
        raise MatrixError(
            429, "M_LIMIT_EXCEEDED",
            f"{limit} codes were already sent to {number.pretty} in the last hour; "
            f"ask again in {minutes} minute{'s' if minutes != 1 else ''}.",
            retry_after_ms=retry_after_ms,
        )

    async def _send_code(self, number: PhoneNumber, sid: str, send_attempt: int, code: str) -> QueuedSms:
        minutes = math.ceil(self.settings.code_ttl_s / 60)
        body = self.render("code", number.language, code=code, minutes=minutes)
        try:
            return await self.sms.send(to=number, body=body, kind="code", dedup_key=f"code:{sid}:{send_attempt}")
        except SmsRefused as e:
            raise _refusal(e) from None

    async def _session(self, sid: Any, client_secret: str) -> Session:
        if not isinstance(sid, str) or not sid:
            raise MatrixError(400, "M_MISSING_PARAM" if sid is None else "M_INVALID_PARAM",
                              "sid must be the session id requestToken returned")
        session = await self.store.session(sid)
        # Compare the secret in constant time; a wrong one looks exactly like an unknown sid.
        expected = session.client_secret if session is not None else "x" * len(client_secret)
        if not hmac.compare_digest(expected.encode(), client_secret.encode()) or session is None:
            raise MatrixError(404, "M_NO_VALID_SESSION", "No verification session matches this sid and client_secret")
        return session

    def _refuse_if_dead(self, session: Session, now: int) -> None:
        if session.attempts >= self.settings.max_attempts:
            raise _too_many_tries()
        if now >= session.expires_ts:
            raise MatrixError(400, "M_SESSION_EXPIRED", "This code has expired: ask for a new code.")


def _peer_description(request: Any) -> str:
    try:
        return f"from {request.getClientAddress().host}"
    except AttributeError:
        return "from a local socket"


def _refuse_outsiders(request: Any) -> None:
    """Synapse calls these endpoints directly and without credentials: refuse everyone else."""
    if any(request.getHeader(h) is not None for h in _PROXY_HEADERS):
        raise MatrixError(403, "M_FORBIDDEN", "The phone-verification endpoints serve the homeserver only; "
                                              "do not publish them through a reverse proxy")
    try:
        peer = ipaddress.ip_address(request.getClientAddress().host)
    except (ValueError, AttributeError):
        return  # not an IP peer (a UNIX socket): local by construction
    if isinstance(peer, ipaddress.IPv6Address) and peer.ipv4_mapped:
        peer = peer.ipv4_mapped
    if not (peer.is_loopback or any(peer in net for net in _PRIVATE_NETWORKS)):
        raise MatrixError(403, "M_FORBIDDEN", "The phone-verification endpoints serve the homeserver only")


def _client_secret(value: Any) -> str:
    if value is None:
        raise MatrixError(400, "M_MISSING_PARAM", "Missing client_secret")
    if not isinstance(value, str) or not CLIENT_SECRET_RE.match(value):
        raise MatrixError(400, "M_INVALID_PARAM",
                          "client_secret must be 1 to 255 characters of letters, digits and . = _ -")
    return value


def _send_attempt(value: Any) -> int:
    if value is None:
        raise MatrixError(400, "M_MISSING_PARAM", "Missing send_attempt")
    if isinstance(value, str) and value.isascii() and value.isdigit():
        value = int(value)
    if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value <= MAX_SEND_ATTEMPT:
        raise MatrixError(400, "M_INVALID_PARAM", "send_attempt must be a non-negative integer")
    return value


def _nothing_to_send(session: Session, send_attempt: int) -> bool:
    """A validated session, an older attempt, or this attempt's SMS already queued: answer, send nothing."""
    if session.validated_ts is not None or send_attempt < session.send_attempt:
        return True
    return send_attempt == session.send_attempt and session.sms_id is not None


def _synapse_msisdn(phone_number: str, country: str) -> str | None:
    """The address Synapse computes for this request (``synapse.util.msisdn.phone_number_to_msisdn``)."""
    try:
        parsed = phonenumbers.parse(phone_number, country)
    except NumberParseException:
        return None
    return phonenumbers.format_number(parsed, phonenumbers.PhoneNumberFormat.E164)[1:]


def _new_sid() -> str:
    return secrets.token_urlsafe(18)  # the spec's sid alphabet: [0-9a-zA-Z.=_-]


def _new_code(code: str, send_attempt: int, expires_ts: int) -> NewCode:
    salt = secrets.token_hex(16)
    return NewCode(send_attempt, salt, _hash(salt, code), expires_ts)


def _hash(salt: str, code: str) -> str:
    return hmac.new(salt.encode(), code.encode(), hashlib.sha256).hexdigest()


def _normalise(token: str) -> str:
    """People type codes with spaces or full-width digits (Chinese input methods); the spec lets us map them."""
    return re.sub(r"[\s-]", "", unicodedata.normalize("NFKC", token))


def _matches(session: Session, token: str) -> bool:
    return hmac.compare_digest(_hash(session.code_salt, _normalise(token)), session.code_hash)


def _wrong_code(left: int | None) -> dict[str, Any]:
    error = "That code is wrong."
    if left is not None:
        error = f"That code is wrong; {left} tr{'y' if left == 1 else 'ies'} left."
    return {"success": False, "errcode": "M_INVALID_PARAM", "error": error}


def _too_many_tries() -> MatrixError:
    return MatrixError(400, "M_SESSION_EXPIRED", "This code was entered wrongly too many times: ask for a new code.")


def _refusal(e: SmsRefused) -> MatrixError:
    if e.reason in ("invalid_number", "not_mobile"):
        return MatrixError(400, "M_INVALID_ADDRESS", str(e))
    if e.reason == "opted_out":
        return MatrixError(400, "M_DESTINATION_REJECTED", str(e))
    if e.reason.endswith("_cap"):
        extra = {"retry_after_ms": e.retry_after_ms} if e.retry_after_ms is not None else {}
        return MatrixError(429, "M_LIMIT_EXCEEDED", str(e), **extra)
    return MatrixError(400, "M_SEND_ERROR", str(e))


def _answer(sid: str, number: PhoneNumber) -> dict[str, Any]:
    return {"sid": sid, "msisdn": number.digits, "intl_fmt": number.pretty, "success": True}


def _masked(number: PhoneNumber) -> str:
    return "+" + _masked_digits(number.digits)


def _masked_digits(digits: str) -> str:
    return digits[:-6] + "****" + digits[-2:]
