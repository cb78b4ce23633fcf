"""The msisdn delegate (bridges/sms/identity.py) against its real SQL on SQLite, a stand-in SMS
service and a clock the tests move. The end-to-end tests (tests/e2e/test_phone_signup.py) run
the same code behind real Synapse."""

from __future__ import annotations

import io
import json
import re
import sqlite3
from types import SimpleNamespace
from typing import Any

import attrs
import pytest

from bridges.database import Txn, _migrate_txn
from bridges.http import MatrixError, Router
from bridges.sms.api import QueuedSms, SmsRefused
from bridges.sms.identity import KEEP_EXPIRED_MS, VALIDATED_TTL_MS, PhoneVerifier, _refuse_outsiders
from bridges.sms.numbers import PhoneNumber
from bridges.sms.signup_store import HOUR_MS, SignupStore
from bridges.sms.templating import render

CN = "13812345678"
CN_DIGITS = "8613812345678"
GB = "07470674927"


class MemoryDb:
    """``Database.run`` on one in-memory SQLite connection, without a reactor."""

    def __init__(self) -> None:
        self.conn = sqlite3.connect(":memory:")
        _migrate_txn(Txn(self.conn.cursor(), "sqlite"))

    async def run(self, desc: str, func: Any, *args: Any) -> Any:
        result = func(Txn(self.conn.cursor(), "sqlite"), *args)
        self.conn.commit()
        return result


@attrs.define
class Sent:
    to: str
    body: str
    kind: str
    dedup_key: str | None

    @property
    def code(self) -> str:
        match = re.search(r"\b(\d{6})\b", self.body)
        assert match, self.body
        return match.group(1)


class FakeSms:
    """What bridges/sms/api.py promises: idempotent on dedup_key, refusals as SmsRefused."""

    def __init__(self) -> None:
        self.sent: list[Sent] = []
        self.by_key: dict[str, int] = {}
        self.opted_out: set[str] = set()
        self.refuse: SmsRefused | None = None
        self.crash_after_queueing = False

    async def send(self, *, to: PhoneNumber, body: str, kind: str, sender: str | None = None,
                   room_id: str | None = None, event_id: str | None = None,
                   dedup_key: str | None = None) -> QueuedSms:
        if dedup_key in self.by_key:
            return QueuedSms(self.by_key[dedup_key], 1, False)
        if self.refuse:
            raise self.refuse
        self.sent.append(Sent(to.e164, body, kind, dedup_key))
        sms_id = len(self.sent)
        if dedup_key:
            self.by_key[dedup_key] = sms_id
        if self.crash_after_queueing:
            self.crash_after_queueing = False
            raise RuntimeError("the bridge stopped here")
        return QueuedSms(sms_id, 1, True)

    async def is_opted_out(self, phone: PhoneNumber) -> bool:
        return phone.e164 in self.opted_out


class Clock:
    def __init__(self) -> None:
        self.ms = 1_700_000_000_000

    def __call__(self) -> int:
        return self.ms

    def advance(self, ms: int) -> None:
        self.ms += ms


SETTINGS = SimpleNamespace(code_ttl_s=600, max_attempts=5, codes_per_number_per_hour=5)


@pytest.fixture
def env() -> SimpleNamespace:
    db = MemoryDb()
    sms = FakeSms()
    clock = Clock()
    verifier = PhoneVerifier(SignupStore(db), sms, SETTINGS, "CN", clock=clock)  # type: ignore[arg-type]
    return SimpleNamespace(db=db, sms=sms, clock=clock, v=verifier)


def ask(env: SimpleNamespace, phone: str = CN, country: str = "CN", secret: str = "s3cret",
        attempt: Any = 1) -> Any:
    return env.v.request_token(
        {"country": country, "phone_number": phone, "client_secret": secret, "send_attempt": attempt}
    )


async def refused(coro: Any) -> MatrixError:
    with pytest.raises(MatrixError) as e:
        await coro
    return e.value


async def test_a_code_goes_by_sms_in_the_numbers_language(env) -> None:
    answer = await ask(env)
    assert answer["success"] is True
    assert answer["msisdn"] == CN_DIGITS and answer["intl_fmt"] == "+86 138 1234 5678"
    assert re.fullmatch(r"[0-9a-zA-Z.=_-]{1,255}", answer["sid"])
    (sms,) = env.sms.sent
    assert sms.kind == "code" and sms.to == "+" + CN_DIGITS
    assert sms.dedup_key == f"code:{answer['sid']}:1"
    assert sms.body == render("code", "zh-CN", code=sms.code, minutes=10) and "验证码" in sms.body
    await ask(env, phone=GB, country="GB")
    assert env.sms.sent[1].body == f"[Wangxin] Your code is {env.sms.sent[1].code}. It expires in 10 minutes. " \
                                   "Don't share it."


async def test_the_code_is_stored_only_as_a_salted_hash(env) -> None:
    await ask(env)
    code = env.sms.sent[0].code
    rows = env.db.conn.execute("SELECT * FROM signup_sessions").fetchall()
    assert rows and all(code not in str(value) for value in rows[0])


async def test_the_right_code_validates_and_synapse_gets_the_digits(env) -> None:
    answer = await ask(env)
    sid = answer["sid"]
    not_yet = await refused(env.v.validated_threepid(sid, "s3cret"))
    assert (not_yet.status, not_yet.errcode) == (400, "M_SESSION_NOT_VALIDATED")
    env.clock.advance(5000)
    assert await env.v.submit_token({"sid": sid, "client_secret": "s3cret", "token": env.sms.sent[0].code}) == \
        {"success": True}
    assert await env.v.validated_threepid(sid, "s3cret") == \
        {"medium": "msisdn", "address": CN_DIGITS, "validated_at": env.clock.ms}
    # Submitting again (a client retry) is still a success, and changes nothing.
    env.clock.advance(1000)
    assert (await env.v.submit_token({"sid": sid, "client_secret": "s3cret", "token": env.sms.sent[0].code}))[
        "success"] is True
    assert (await env.v.validated_threepid(sid, "s3cret"))["validated_at"] == env.clock.ms - 1000


async def test_codes_typed_with_spaces_or_full_width_digits_work(env) -> None:
    sid = (await ask(env))["sid"]
    code = env.sms.sent[0].code
    typed = " ".join(chr(ord("０") + int(d)) for d in code)  # what a Chinese input method may produce
    assert (await env.v.submit_token({"sid": sid, "client_secret": "s3cret", "token": typed}))["success"] is True


async def test_a_replayed_request_sends_nothing_and_a_higher_attempt_sends_a_new_code(env) -> None:
    first = await ask(env, attempt=1)
    assert await ask(env, attempt=1) == first
    assert len(env.sms.sent) == 1
    second = await ask(env, attempt=2)
    assert second["sid"] == first["sid"] and len(env.sms.sent) == 2
    assert env.sms.sent[1].dedup_key == f"code:{first['sid']}:2"
    assert await ask(env, attempt=1) == first and await ask(env, attempt=2) == first  # older and same: nothing
    assert len(env.sms.sent) == 2
    old, new = env.sms.sent[0].code, env.sms.sent[1].code
    if old != new:  # one chance in a million that they are equal
        result = await env.v.submit_token({"sid": first["sid"], "client_secret": "s3cret", "token": old})
        assert result["success"] is False
    assert (await env.v.submit_token({"sid": first["sid"], "client_secret": "s3cret", "token": new}))["success"]


async def test_another_client_secret_or_number_is_another_session(env) -> None:
    a = await ask(env, secret="one")
    b = await ask(env, secret="two")
    c = await ask(env, secret="one", phone=GB, country="GB")
    assert len({a["sid"], b["sid"], c["sid"]}) == 3 and len(env.sms.sent) == 3


async def test_wrong_codes_count_and_the_last_try_ends_the_code(env) -> None:
    sid = (await ask(env))["sid"]
    code = env.sms.sent[0].code
    wrong = "000000" if code != "000000" else "111111"
    for left in (4, 3, 2, 1):
        result = await env.v.submit_token({"sid": sid, "client_secret": "s3cret", "token": wrong})
        assert result["success"] is False and f"{left} tr" in result["error"]
    last = await refused(env.v.submit_token({"sid": sid, "client_secret": "s3cret", "token": wrong}))
    assert (last.status, last.errcode) == (400, "M_SESSION_EXPIRED") and "last try" in last.error
    dead = await refused(env.v.submit_token({"sid": sid, "client_secret": "s3cret", "token": code}))
    assert dead.errcode == "M_SESSION_EXPIRED" and "too many" in dead.error
    assert (await refused(env.v.validated_threepid(sid, "s3cret"))).errcode == "M_SESSION_EXPIRED"
    # Asking again (a higher send_attempt) gives a new code with fresh tries in the same session.
    assert (await ask(env, attempt=2))["sid"] == sid
    fresh = env.sms.sent[1].code
    assert (await env.v.submit_token({"sid": sid, "client_secret": "s3cret", "token": fresh}))["success"]


async def test_the_fifth_try_may_be_the_right_one(env) -> None:
    sid = (await ask(env))["sid"]
    code = env.sms.sent[0].code
    wrong = "000000" if code != "000000" else "111111"
    for _ in range(4):
        await env.v.submit_token({"sid": sid, "client_secret": "s3cret", "token": wrong})
    assert (await env.v.submit_token({"sid": sid, "client_secret": "s3cret", "token": code}))["success"] is True


async def test_codes_expire(env) -> None:
    sid = (await ask(env))["sid"]
    code = env.sms.sent[0].code
    env.clock.advance(600 * 1000 - 1)
    env.clock.advance(1)
    expired = await refused(env.v.submit_token({"sid": sid, "client_secret": "s3cret", "token": code}))
    assert (expired.status, expired.errcode) == (400, "M_SESSION_EXPIRED")
    assert (await refused(env.v.validated_threepid(sid, "s3cret"))).errcode == "M_SESSION_EXPIRED"
    # The same attempt again is a replay (spec): same sid, no SMS. A new attempt sends a new code.
    assert (await ask(env, attempt=1))["sid"] == sid and len(env.sms.sent) == 1
    await ask(env, attempt=2)
    assert (await env.v.submit_token({"sid": sid, "client_secret": "s3cret", "token": env.sms.sent[1].code}))[
        "success"]


async def test_a_code_just_before_expiry_works(env) -> None:
    sid = (await ask(env))["sid"]
    env.clock.advance(600 * 1000 - 1)
    assert (await env.v.submit_token({"sid": sid, "client_secret": "s3cret", "token": env.sms.sent[0].code}))[
        "success"]


async def test_a_validated_session_can_be_used_for_a_day(env) -> None:
    sid = (await ask(env))["sid"]
    await env.v.submit_token({"sid": sid, "client_secret": "s3cret", "token": env.sms.sent[0].code})
    env.clock.advance(VALIDATED_TTL_MS - 1)
    assert (await env.v.validated_threepid(sid, "s3cret"))["address"] == CN_DIGITS
    env.clock.advance(1)
    assert (await refused(env.v.validated_threepid(sid, "s3cret"))).errcode == "M_SESSION_EXPIRED"


async def test_unknown_sessions_and_wrong_secrets_look_the_same(env) -> None:
    sid = (await ask(env))["sid"]
    for call in (env.v.submit_token({"sid": sid, "client_secret": "other", "token": "123456"}),
                 env.v.submit_token({"sid": "nope", "client_secret": "s3cret", "token": "123456"}),
                 env.v.validated_threepid(sid, "other"),
                 env.v.validated_threepid("nope", "s3cret")):
        error = await refused(call)
        assert (error.status, error.errcode) == (404, "M_NO_VALID_SESSION")


@pytest.mark.parametrize(
    "body, errcode",
    [
        ({"client_secret": "a b"}, "M_INVALID_PARAM"),
        ({"client_secret": "x" * 256}, "M_INVALID_PARAM"),
        ({"client_secret": None}, "M_MISSING_PARAM"),
        ({"send_attempt": True}, "M_INVALID_PARAM"),
        ({"send_attempt": -1}, "M_INVALID_PARAM"),
        ({"send_attempt": "two"}, "M_INVALID_PARAM"),
        ({"send_attempt": None}, "M_MISSING_PARAM"),
        ({"phone_number": None}, "M_MISSING_PARAM"),
        ({"phone_number": 8613812345678}, "M_INVALID_PARAM"),
        ({"country": 86}, "M_INVALID_PARAM"),
    ],
)
async def test_bad_parameters_are_named(env, body, errcode) -> None:
    request = {"country": "CN", "phone_number": CN, "client_secret": "s3cret", "send_attempt": 1, **body}
    error = await refused(env.v.request_token({k: v for k, v in request.items() if v is not None}))
    assert (error.status, error.errcode) == (400, errcode)
    assert not env.sms.sent


async def test_send_attempt_as_a_string_of_digits_is_accepted(env) -> None:
    assert (await ask(env, attempt="3"))["success"] is True


@pytest.mark.parametrize(
    "phone, country, words",
    [
        ("02079460000", "GB", "landline"),
        ("12", "GB", "not a valid phone number"),
        ("110", "CN", "emergency"),
        ("447470674927", "CN", "write it with the +"),  # Synapse reads it as +86 447470674927
    ],
)
async def test_numbers_that_cannot_get_a_code_are_refused_with_a_sentence(env, phone, country, words) -> None:
    error = await refused(ask(env, phone=phone, country=country))
    assert (error.status, error.errcode) == (400, "M_INVALID_ADDRESS")
    assert words in error.error
    assert not env.sms.sent


async def test_a_number_with_plus_ignores_the_country_and_no_country_uses_the_default(env) -> None:
    assert (await ask(env, phone="+44 7470 674927", country="CN"))["msisdn"] == "447470674927"
    assert (await ask(env, phone=CN, country="", secret="b"))["msisdn"] == CN_DIGITS


async def test_opted_out_numbers_are_told_to_text_start(env) -> None:
    env.sms.opted_out.add("+" + CN_DIGITS)
    error = await refused(ask(env))
    assert (error.status, error.errcode) == (400, "M_DESTINATION_REJECTED") and "START" in error.error
    assert not env.sms.sent


async def test_codes_per_number_per_hour_are_limited(env) -> None:
    for i in range(5):
        await ask(env, secret=f"s{i}")
        env.clock.advance(60_000)
    error = await refused(ask(env, secret="s5"))
    assert (error.status, error.errcode) == (429, "M_LIMIT_EXCEEDED")
    assert error.extra["retry_after_ms"] == HOUR_MS - 5 * 60_000
    assert "in 55 minutes" in error.error
    # Replays are answered even then: they send nothing.
    assert (await ask(env, secret="s0"))["success"] is True
    await ask(env, phone=GB, country="GB")  # another number is not limited
    env.clock.advance(HOUR_MS - 5 * 60_000 + 1)
    assert (await ask(env, secret="s5"))["success"] is True
    assert len(env.sms.sent) == 7


async def test_a_refused_sms_leaves_the_attempt_retryable(env) -> None:
    env.sms.refuse = SmsRefused("destination_daily_cap", "That number got too many texts today.", 3_600_000)
    error = await refused(ask(env))
    assert (error.status, error.errcode, error.extra) == (429, "M_LIMIT_EXCEEDED", {"retry_after_ms": 3_600_000})
    env.sms.refuse = None
    sid = (await ask(env))["sid"]  # the same send_attempt again: this time the SMS goes
    assert len(env.sms.sent) == 1
    assert (await env.v.submit_token({"sid": sid, "client_secret": "s3cret", "token": env.sms.sent[0].code}))[
        "success"]


async def test_a_crash_after_queueing_keeps_the_code_that_was_sent(env) -> None:
    env.sms.crash_after_queueing = True
    with pytest.raises(RuntimeError):
        await ask(env)
    sid = (await ask(env))["sid"]  # Synapse's retry: the SMS service says it was queued before
    assert len(env.sms.sent) == 1
    assert (await env.v.submit_token({"sid": sid, "client_secret": "s3cret", "token": env.sms.sent[0].code}))[
        "success"]


async def test_pruning_forgets_dead_sessions_after_a_day_and_sends_after_an_hour(env) -> None:
    start = env.clock.ms
    dead = (await ask(env, secret="dead"))["sid"]
    env.clock.advance(HOUR_MS)
    assert await env.v.prune() == 0
    assert env.db.conn.execute("SELECT COUNT(*) FROM signup_code_sends").fetchone() == (0,)
    env.clock.advance(HOUR_MS)
    done = (await ask(env, secret="done"))["sid"]
    await env.v.submit_token({"sid": done, "client_secret": "done", "token": env.sms.sent[1].code})
    validated_at = env.clock.ms
    env.clock.ms = start + 600 * 1000 + KEEP_EXPIRED_MS  # the dead code's end, plus a day
    assert await env.v.prune() == 0
    env.clock.advance(1)
    assert await env.v.prune() == 1
    assert (await refused(env.v.validated_threepid(dead, "dead"))).errcode == "M_NO_VALID_SESSION"
    env.clock.ms = validated_at + VALIDATED_TTL_MS - 1
    assert (await env.v.validated_threepid(done, "done"))["address"] == CN_DIGITS
    env.clock.advance(2)
    assert await env.v.prune() == 1


class FakeRequest:
    def __init__(self, host: str, headers: dict[bytes, bytes] | None = None, body: bytes = b"{}",
                 args: dict[bytes, list[bytes]] | None = None):
        self.host = host
        self.headers = headers or {}
        self.content = io.BytesIO(body)
        self.args = args or {}

    def getHeader(self, name: bytes) -> bytes | None:  # noqa: N802 - Twisted's name
        return self.headers.get(name)

    def getClientAddress(self) -> Any:  # noqa: N802
        return SimpleNamespace(host=self.host)


@pytest.mark.parametrize(
    "host, headers, allowed",
    [
        ("127.0.0.1", {}, True),
        ("::1", {}, True),
        ("10.1.2.3", {}, True),  # Synapse on another host of a private network
        ("::ffff:127.0.0.1", {}, True),
        ("93.184.216.34", {}, False),
        ("2606:2800:220:1::1", {}, False),
        ("127.0.0.1", {b"x-forwarded-for": b"203.0.113.9"}, False),  # through a reverse proxy
        ("127.0.0.1", {b"forwarded": b"for=203.0.113.9"}, False),
    ],
)
def test_only_the_homeserver_may_call(host, headers, allowed) -> None:
    request = FakeRequest(host, headers)
    if allowed:
        _refuse_outsiders(request)
    else:
        with pytest.raises(MatrixError) as e:
            _refuse_outsiders(request)
        assert (e.value.status, e.value.errcode) == (403, "M_FORBIDDEN")


def test_code_texts_fit_one_sms() -> None:
    english = render("code", "en", code="123456", minutes=10)
    chinese = render("code", "zh-CN", code="123456", minutes=10)
    assert len(english) <= 160 and english.isascii()
    assert len(chinese) <= 70


DELEGATE_SECRET = "d" * 43
DELEGATE = f"/_wangxin/v1/msisdn-delegate/{DELEGATE_SECRET}"


async def _call(router: Router, method: str, path: str, body: dict[str, Any] | None = None,
                query: dict[str, str] | None = None, host: str = "127.0.0.1") -> tuple[int, Any]:
    request = FakeRequest(host, body=json.dumps(body or {}).encode(),
                          args={k.encode(): [v.encode()] for k, v in (query or {}).items()})
    try:
        return await router._route(request, method, path)
    except MatrixError as e:
        return e.status, e.body()


async def test_only_synapse_holding_the_delegate_secret_gets_an_answer(env) -> None:
    """Issue 19 §6: the delegate texted a code for any loopback caller. Synapse calls
    ``{account_threepid_delegates.msisdn}/_matrix/identity/api/v1/...`` without credentials, so
    the secret is in that base URL's path."""
    router = Router()
    PhoneVerifier(SignupStore(env.db), env.sms, SETTINGS, "CN", clock=env.clock,  # type: ignore[arg-type]
                  delegate_secret=DELEGATE_SECRET).install(router)
    request = {"country": "CN", "phone_number": CN, "client_secret": "s3cret", "send_attempt": 1}
    for prefix in ("", "/_wangxin/v1/msisdn-delegate/wrong", "/_wangxin/v1/msisdn-delegate/" + "d" * 42,
                   "/_wangxin/v1/msisdn-delegate/" + "d" * 44, "/_wangxin/v1/msisdn-delegate/"):
        for version in ("api/v1", "v2"):
            status, body = await _call(router, "POST",
                                       f"{prefix}/_matrix/identity/{version}/validate/msisdn/requestToken", request)
            assert (status, body["errcode"]) == (403, "M_FORBIDDEN"), (prefix, body)
            assert "account_threepid_delegates" in body["error"]
        status, body = await _call(router, "GET", f"{prefix}/_matrix/identity/api/v1/3pid/getValidated3pid",
                                   query={"sid": "x", "client_secret": "y"})
        assert status == 403
    assert env.sms.sent == []  # nothing was texted for any of them

    status, answer = await _call(router, "POST", f"{DELEGATE}/_matrix/identity/api/v1/validate/msisdn/requestToken",
                                 request)
    assert status == 200 and answer["success"] is True and len(env.sms.sent) == 1
    status, body = await _call(router, "POST", f"{DELEGATE}/_matrix/identity/api/v1/validate/msisdn/submitToken",
                               {"sid": answer["sid"], "client_secret": "s3cret", "token": env.sms.sent[0].code})
    assert (status, body) == (200, {"success": True})
    status, body = await _call(router, "GET", f"{DELEGATE}/_matrix/identity/v2/3pid/getValidated3pid",
                               query={"sid": answer["sid"], "client_secret": "s3cret"})
    assert status == 200 and body["address"] == CN_DIGITS
    # The secret is the lock; the address checks stay as a second line.
    status, body = await _call(router, "POST", f"{DELEGATE}/_matrix/identity/api/v1/validate/msisdn/requestToken",
                               request, host="93.184.216.34")
    assert status == 403 and len(env.sms.sent) == 1


async def test_without_a_delegate_secret_phone_sign_up_is_off(env) -> None:
    router = Router()
    PhoneVerifier(SignupStore(env.db), env.sms, SETTINGS, "CN", clock=env.clock).install(  # type: ignore[arg-type]
        router)
    request = {"country": "CN", "phone_number": CN, "client_secret": "s3cret", "send_attempt": 1}
    for path in ("/_matrix/identity/api/v1/validate/msisdn/requestToken",
                 "/_wangxin/v1/msisdn-delegate/anything/_matrix/identity/api/v1/validate/msisdn/requestToken"):
        status, body = await _call(router, "POST", path, request)
        assert (status, body["errcode"]) == (403, "M_FORBIDDEN") and "delegate_secret" in body["error"], body
    assert env.sms.sent == []


def test_the_dev_stack_and_the_example_point_synapse_at_the_bridge_with_the_secret(tmp_path) -> None:
    import os

    import yaml

    from bridges.config import parse_config
    from wangxin_common.config_errors import Section
    from wangxin_stack.options import StackOptions
    from wangxin_stack.render import render_stack
    from wangxin_stack.state import StackState

    options = StackOptions(dir=str(tmp_path), port=18008, server_name="dev.test")
    rendered = render_stack(options, StackState.load_or_create(str(tmp_path)))
    with open(rendered.homeserver_config, encoding="utf-8") as f:
        homeserver = yaml.safe_load(f)
    with open(rendered.bridge_config or "", encoding="utf-8") as f:
        bridge = yaml.safe_load(f)
    secret = parse_config(Section(bridge, (), "bridge.yaml")).sms.verification.delegate_secret
    assert secret and len(secret) >= 32
    assert homeserver["account_threepid_delegates"] == {
        "msisdn": f"http://127.0.0.1:{options.ports.bridge}/_wangxin/v1/msisdn-delegate/{secret}"}
    assert homeserver["enable_registration_without_verification"] is True  # tests still register by password
    assert "registrations_require_3pid" not in homeserver
    assert bridge["appservice"]["bind_address"] == "127.0.0.1"

    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    with open(os.path.join(root, "homeserver.yaml.example"), encoding="utf-8") as f:
        example = yaml.safe_load(f)
    assert example["account_threepid_delegates"]["msisdn"].startswith(
        "http://127.0.0.1:29330/_wangxin/v1/msisdn-delegate/")
    assert example["registrations_require_3pid"] == ["msisdn"]


def test_generate_registration_writes_a_delegate_secret(tmp_path, capsys) -> None:
    from bridges.__main__ import main
    from bridges.config import load_config

    bridge_yaml = tmp_path / "bridge.yaml"
    assert main(["generate-registration", "--server-name", "example.org", "--output", str(tmp_path / "reg.yaml"),
                 "--bridge-config", str(bridge_yaml)]) == 0
    secret = load_config(str(bridge_yaml)).sms.verification.delegate_secret
    assert secret and len(secret) >= 32
    out = capsys.readouterr().out
    assert "/_wangxin/v1/msisdn-delegate/<sms.verification.delegate_secret" in out and secret not in out
