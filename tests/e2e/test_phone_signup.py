"""Phone-number sign-up (issue 5, point 6) on a real stack: Synapse delegates msisdn validation to
the bridge (bridges/sms/identity.py), which texts a 6-digit code through the SMS service; the
tests read the code from the SMS gateway, like a person reading their phone. Plain HTTP, as any
client would talk to Synapse."""

from __future__ import annotations

import random
import re
import secrets
from typing import Any

import requests

from tests.harness.fake_twilio import FakeTwilio
from tests.harness.http import HttpUser, eventually
from tests.harness.stack import RunningStack

CLIENT = "/_matrix/client/v3"


# -- helpers ---------------------------------------------------------------------------------


def new_number() -> tuple[str, str]:
    """A fresh mainland mobile number as a person types it (national) and as Synapse stores it."""
    national = "138" + "".join(random.choice("0123456789") for _ in range(8))
    return national, "86" + national


def texts_to(twilio: FakeTwilio, digits: str) -> list[str]:
    """Bodies of the SMS the (fake) Twilio accepted for +digits, oldest first."""
    return [m["body"] for m in twilio.messages_to("+" + digits)]


def code_in(body: str) -> str:
    match = re.search(r"\b(\d{6})\b", body)
    assert match, body
    return match.group(1)


def wait_for_texts(twilio: FakeTwilio, digits: str, count: int) -> list[str]:
    return list(eventually(lambda: len(texts_to(twilio, digits)) >= count and texts_to(twilio, digits), timeout=60))


def post(stack: RunningStack, path: str, body: Any, token: str | None = None) -> requests.Response:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    url = path if path.startswith("http") else stack.url + path
    return requests.post(url, json=body, headers=headers, timeout=60)


def request_token(stack: RunningStack, kind: str, national: str, secret: str, attempt: int = 1,
                  country: str = "CN") -> requests.Response:
    """``kind`` is ``register`` or ``account/3pid``."""
    return post(stack, f"{CLIENT}/{kind}/msisdn/requestToken",
                {"client_secret": secret, "country": country, "phone_number": national, "send_attempt": attempt})


def verify(stack: RunningStack, twilio: FakeTwilio, kind: str, national: str, digits: str) -> tuple[str, str]:
    """requestToken, read the code from the gateway, submit it: the (sid, client_secret) to use."""
    secret = secrets.token_urlsafe(12)
    before = len(texts_to(twilio, digits))
    r = request_token(stack, kind, national, secret)
    assert r.status_code == 200, r.text
    answer = r.json()
    assert answer["msisdn"] == digits and answer["success"] is True
    code = code_in(wait_for_texts(twilio, digits, before + 1)[-1])
    r = post(stack, answer["submit_url"], {"sid": answer["sid"], "client_secret": secret, "token": code})
    assert r.status_code == 200 and r.json() == {"success": True}, r.text
    return answer["sid"], secret


def register_with_phone(stack: RunningStack, twilio: FakeTwilio, national: str, digits: str) -> dict[str, Any]:
    """Registration as a client does it: UIA with m.login.msisdn. Returns the /register answer and password."""
    username, password = f"p{secrets.token_hex(5)}", secrets.token_urlsafe(12)
    r = post(stack, f"{CLIENT}/register", {"username": username, "password": password})
    assert r.status_code == 401, r.text
    uia = r.json()
    assert {"stages": ["m.login.msisdn"]} in uia["flows"], uia["flows"]
    sid, secret = verify(stack, twilio, "register", national, digits)
    r = post(stack, f"{CLIENT}/register", {
        "username": username, "password": password,
        "auth": {"type": "m.login.msisdn", "session": uia["session"],
                 "threepid_creds": {"sid": sid, "client_secret": secret}},
    })
    assert r.status_code == 200, r.text
    return {**r.json(), "password": password}


def threepids(stack: RunningStack, token: str) -> list[dict[str, Any]]:
    r = requests.get(f"{stack.url}{CLIENT}/account/3pid", headers={"Authorization": f"Bearer {token}"}, timeout=60)
    assert r.status_code == 200, r.text
    return list(r.json()["threepids"])


def login(stack: RunningStack, body: dict[str, Any]) -> requests.Response:
    return post(stack, f"{CLIENT}/login", {"type": "m.login.password", **body})


# -- tests -----------------------------------------------------------------------------------


def test_registration_offers_phone_numbers_next_to_passwords(stack: RunningStack) -> None:
    r = post(stack, f"{CLIENT}/register", {})
    assert r.status_code == 401
    flows = r.json()["flows"]
    assert {"stages": ["m.login.dummy"]} in flows and {"stages": ["m.login.msisdn"]} in flows, flows


def test_sign_up_with_a_phone_number_then_log_in_with_it(stack: RunningStack, twilio: FakeTwilio) -> None:
    national, digits = new_number()
    account = register_with_phone(stack, twilio, national, digits)
    (sms,) = texts_to(twilio, digits)
    assert "验证码" in sms and "10" in sms  # a Chinese number gets the Chinese text
    bound = threepids(stack, account["access_token"])
    assert [(t["medium"], t["address"]) for t in bound] == [("msisdn", digits)]

    # What a client must send to log in with the number on Synapse 1.163: the legacy `number`
    # key next to the spec's `phone` (Element Web sends both), or medium/address with the digits.
    r = login(stack, {"identifier": {"type": "m.id.phone", "country": "CN", "phone": national, "number": national},
                      "password": account["password"]})
    assert r.status_code == 200 and r.json()["user_id"] == account["user_id"], r.text
    r = login(stack, {"medium": "msisdn", "address": digits, "password": account["password"]})
    assert r.status_code == 200 and r.json()["user_id"] == account["user_id"], r.text
    # The spec's identifier alone trips Synapse 1.163's bug (docs/synapse.md, "Phone numbers"). When this
    # starts to pass, Synapse fixed it: drop the `number` advice from docs/sms.md.
    r = login(stack, {"identifier": {"type": "m.id.phone", "country": "CN", "phone": national},
                      "password": account["password"]})
    assert r.status_code == 400 and r.json()["error"] == "Missing JSON keys.", r.text


def add_number(stack: RunningStack, twilio: FakeTwilio, user: HttpUser, national: str, digits: str) -> None:
    """Settings -> Phone numbers as a client does it: verify, then /account/3pid/add with the password."""
    sid, secret = verify(stack, twilio, "account/3pid", national, digits)
    body: dict[str, Any] = {"sid": sid, "client_secret": secret}
    r = user.raw("POST", f"{CLIENT}/account/3pid/add", body)
    assert r.status_code == 401, r.text  # user-interactive auth: the password again
    body["auth"] = {"type": "m.login.password", "session": r.json()["session"], "password": user.info["password"],
                    "identifier": {"type": "m.id.user", "user": user.user_id}}
    user.call("POST", f"{CLIENT}/account/3pid/add", body)


def test_add_a_number_to_an_existing_account(stack: RunningStack, twilio: FakeTwilio) -> None:
    user = HttpUser(stack)
    national, digits = new_number()
    add_number(stack, twilio, user, national, digits)
    assert [(t["medium"], t["address"]) for t in threepids(stack, user.token)] == [("msisdn", digits)]
    assert "验证码" in texts_to(twilio, digits)[0]


def test_an_added_number_replaces_the_placeholders_of_earlier_imports(stack: RunningStack, twilio: FakeTwilio) -> None:
    """Binding a number fires the contact-import arrival hook (on_add_user_third_party_identifier)."""
    from tests.e2e.test_contact_import import (
        bot,
        confirm,
        members,
        rooms_named,
        set_discoverable,
        upload_and_preview,
        wechat_export,
        wxid,
    )
    from tests.harness.http import open_dm

    alice, erin = HttpUser(stack), HttpUser(stack)
    national, digits = new_number()
    me, w_erin, w_frank = wxid(), wxid(), wxid()
    group = "手机号注册测试"
    export = wechat_export(me, [(w_erin, "Erin", "+" + digits), (w_frank, "Frank", None)],
                           [(f"{secrets.token_hex(4)}@chatroom", group, [me, w_erin, w_frank])])
    dm = open_dm(alice, bot(stack))
    upload_and_preview(alice, dm, export, "contacts.json", stack)
    assert confirm(alice, dm, stack)["placeholders"] == 2
    (room,) = rooms_named(alice)[group]
    assert erin.user_id not in members(stack, room)

    set_discoverable(erin, True)
    add_number(stack, twilio, erin, national, digits)
    eventually(lambda: members(stack, room).get(erin.user_id, {}).get("membership") == "invite",
               timeout=60, interval=0.5)


def test_a_bound_number_is_refused(stack: RunningStack, twilio: FakeTwilio) -> None:
    national, digits = new_number()
    register_with_phone(stack, twilio, national, digits)
    for kind in ("register", "account/3pid"):
        r = request_token(stack, kind, national, secrets.token_urlsafe(8))
        # request_token_inhibit_3pid_errors: a session id no code matches, so strangers cannot
        # tell a bound number from a new one (tests/e2e/test_privacy.py); no SMS goes out.
        assert r.status_code == 200 and "errcode" not in r.json(), r.text
    assert len(texts_to(twilio, digits)) == 1  # only the sign-up code


def test_wrong_codes_then_the_session_is_dead(stack: RunningStack, twilio: FakeTwilio) -> None:
    national, digits = new_number()
    secret = secrets.token_urlsafe(12)
    answer = request_token(stack, "register", national, secret).json()
    code = code_in(wait_for_texts(twilio, digits, 1)[0])
    wrong = "000000" if code != "000000" else "111111"
    submit = {"sid": answer["sid"], "client_secret": secret}
    for left in (4, 3, 2, 1):
        r = post(stack, answer["submit_url"], {**submit, "token": wrong})
        # 200 with success false: Element then says the code is wrong and lets the user retry.
        assert r.status_code == 200 and r.json()["success"] is False, r.text
        assert f"{left} tr" in r.json()["error"]
    r = post(stack, answer["submit_url"], {**submit, "token": wrong})
    assert r.status_code == 400, r.text  # the last try: Synapse reports the delegate's error as a 400
    r = post(stack, answer["submit_url"], {**submit, "token": code})
    assert r.status_code == 400, r.text  # even the right code: the session is dead
    # Registration with this session does not pass the m.login.msisdn stage.
    r = post(stack, f"{CLIENT}/register", {"username": f"p{secrets.token_hex(5)}", "password": "pw-" + secret})
    r = post(stack, f"{CLIENT}/register", {"auth": {"type": "m.login.msisdn", "session": r.json()["session"],
                                                    "threepid_creds": submit}})
    assert r.status_code == 401 and "m.login.msisdn" not in r.json().get("completed", []), r.text
    # Asking again (the next send_attempt) sends a new code that works.
    again = request_token(stack, "register", national, secret, attempt=2).json()
    assert again["sid"] == answer["sid"]
    fresh = code_in(wait_for_texts(twilio, digits, 2)[1])
    r = post(stack, answer["submit_url"], {**submit, "token": fresh})
    assert r.status_code == 200 and r.json() == {"success": True}, r.text


def test_a_replayed_request_sends_one_sms(stack: RunningStack, twilio: FakeTwilio) -> None:
    national, digits = new_number()
    secret = secrets.token_urlsafe(12)
    first = request_token(stack, "register", national, secret).json()
    replay = request_token(stack, "register", national, secret).json()
    assert replay["sid"] == first["sid"]
    wait_for_texts(twilio, digits, 1)
    # A higher send_attempt is a deliberate re-send: one more SMS, same session.
    assert request_token(stack, "register", national, secret, attempt=2).json()["sid"] == first["sid"]
    wait_for_texts(twilio, digits, 2)
    assert twilio.requests_to("+" + digits) == 2  # every request that reached the gateway


def test_numbers_that_cannot_get_a_code_get_a_clear_error(stack: RunningStack) -> None:
    cases = [
        ("01065529988", "CN", 400, "M_INVALID_ADDRESS", "landline"),  # Beijing fixed line
        ("12", "GB", 400, "M_INVALID_ADDRESS", "not a valid phone number"),
        ("not a number", "CN", 400, "M_INVALID_PARAM", "Unable to parse"),  # Synapse's own check
    ]
    for national, country, status, errcode, words in cases:
        r = request_token(stack, "register", national, secrets.token_urlsafe(8), country=country)
        assert r.status_code == status and r.json()["errcode"] == errcode, r.text
        assert words in r.json()["error"], r.text


def test_codes_per_number_per_hour_are_limited(stack: RunningStack, twilio: FakeTwilio) -> None:
    national, digits = new_number()
    for _ in range(5):
        assert request_token(stack, "register", national, secrets.token_urlsafe(8)).status_code == 200
    r = request_token(stack, "register", national, secrets.token_urlsafe(8))
    assert r.status_code == 429 and r.json()["errcode"] == "M_LIMIT_EXCEEDED", r.text
    assert 0 < r.json()["retry_after_ms"] <= 3600 * 1000
    wait_for_texts(twilio, digits, 5)


def delegate_url(stack: RunningStack) -> str:
    """The msisdn delegate as Synapse is configured to call it (the secret is in the path)."""
    import os

    import yaml

    with open(os.path.join(stack.dir, "homeserver.yaml"), encoding="utf-8") as f:
        return str(yaml.safe_load(f)["account_threepid_delegates"]["msisdn"])


def test_the_delegate_answers_synapse_only(stack: RunningStack, twilio: FakeTwilio) -> None:
    """Issue 19 §6: any loopback caller could make the delegate text a code. Now only a caller
    with the secret in Synapse's delegate URL gets an answer; the rest get 403 and send nothing."""
    bridge = stack.info["bridge"]["url"]
    assert bridge.startswith("http://127.0.0.1:")
    delegate = delegate_url(stack)
    assert delegate.startswith(bridge + "/_wangxin/v1/msisdn-delegate/")
    national, digits = new_number()
    body = {"client_secret": "x", "country": "CN", "phone_number": national, "send_attempt": 1}
    wrong = bridge + "/_wangxin/v1/msisdn-delegate/" + "A" * len(delegate.rsplit("/", 1)[1])
    for base in (bridge, wrong, delegate[:-1]):
        for version in ("api/v1", "v2"):
            r = requests.post(f"{base}/_matrix/identity/{version}/validate/msisdn/requestToken", json=body, timeout=30)
            assert r.status_code == 403 and r.json()["errcode"] == "M_FORBIDDEN", r.text
        r = requests.get(f"{base}/_matrix/identity/api/v1/3pid/getValidated3pid",
                         params={"sid": "nope", "client_secret": "nope"}, timeout=30)
        assert r.status_code == 403, r.text
    # With the secret, but through a reverse proxy: refused as well.
    r = requests.post(f"{delegate}/_matrix/identity/api/v1/validate/msisdn/requestToken", json=body,
                      headers={"X-Forwarded-For": "203.0.113.9"}, timeout=30)
    assert r.status_code == 403 and r.json()["errcode"] == "M_FORBIDDEN", r.text
    # Synapse, holding the secret, still gets its code sent, and it is the only SMS to that number.
    assert request_token(stack, "register", national, secrets.token_urlsafe(8)).status_code == 200
    wait_for_texts(twilio, digits, 1)
    assert twilio.requests_to("+" + digits) == 1
    for version in ("api/v1", "v2"):
        r = requests.get(f"{delegate}/_matrix/identity/{version}/3pid/getValidated3pid",
                         params={"sid": "nope", "client_secret": "nope"}, timeout=30)
        assert r.status_code == 404 and r.json()["errcode"] == "M_NO_VALID_SESSION", r.text


def test_a_number_that_texted_stop_is_told_to_text_start(stack: RunningStack, twilio: FakeTwilio) -> None:
    from bridges.sms.providers import INBOUND_PATH

    national, digits = new_number()
    inbound = stack.info["bridge"]["url"] + INBOUND_PATH
    assert twilio.send_inbound(inbound, "+" + digits, "STOP").status_code == 200
    wait_for_texts(twilio, digits, 1)  # the one confirmation: the opt-out is recorded
    r = request_token(stack, "register", national, secrets.token_urlsafe(8))
    assert r.status_code == 400 and r.json()["errcode"] == "M_DESTINATION_REJECTED", r.text
    assert "START" in r.json()["error"]
    assert twilio.send_inbound(inbound, "+" + digits, "START").status_code == 200
    wait_for_texts(twilio, digits, 2)
    register_with_phone(stack, twilio, national, digits)
