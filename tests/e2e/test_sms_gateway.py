"""The SMS gateway end to end: the real bridge in a real stack, talking to a local fake Twilio.

Operator sends, Twilio's status callbacks and inbound webhooks (signed, forged, replayed), the
opt-out keywords, gateway errors and timeouts, daily caps, and a bridge restart.
"""

from __future__ import annotations

import os
import random
import secrets
import signal
from typing import Any

import phonenumbers
import pytest
import requests

from bridges.sms.providers import INBOUND_PATH, STATUS_PATH
from tests.harness.fake_twilio import FakeTwilio
from tests.harness.http import eventually
from tests.harness.stack import RunningStack


def cn_mobile() -> str:
    return "+86138" + "".join(random.choice("0123456789") for _ in range(8))


def us_number() -> str:
    while True:
        number = "+1650" + str(random.randint(2000000, 9999999))
        if phonenumbers.is_valid_number(phonenumbers.parse(number)):
            return number


def send(stack: RunningStack, to: str, body: str, expect: int | None = 202, **extra: Any) -> dict[str, Any]:
    r = requests.post(f"{stack.info['bridge']['url']}/_wangxin/v1/sms/messages", json={"to": to, "body": body, **extra},
                      headers={"Authorization": f"Bearer {stack.info['bridge']['as_token']}"}, timeout=30)
    if expect is not None:
        assert r.status_code == expect, r.text
    return dict(r.json())


def state(stack: RunningStack, sms_id: int) -> dict[str, Any]:
    r = requests.get(f"{stack.info['bridge']['url']}/_wangxin/v1/sms/messages/{sms_id}",
                     headers={"Authorization": f"Bearer {stack.info['bridge']['as_token']}"}, timeout=30)
    assert r.status_code == 200, r.text
    return dict(r.json())


def wait_state(stack: RunningStack, sms_id: int, *states: str, timeout: float = 60) -> dict[str, Any]:
    def check() -> dict[str, Any] | None:
        current = state(stack, sms_id)
        return current if current["state"] in states else None

    return dict(eventually(check, timeout=timeout, interval=0.1))


def inbound_url(stack: RunningStack) -> str:
    return stack.info["bridge"]["url"] + INBOUND_PATH


def texts_to(twilio: FakeTwilio, number: str) -> list[str]:
    return [m["body"] for m in twilio.messages_to(number)]


def test_an_operator_sms_reaches_twilio_and_status_callbacks_move_it_forward_only(
        stack: RunningStack, twilio: FakeTwilio) -> None:
    to = cn_mobile()
    queued = send(stack, to, "你好，这是旺信的测试短信")
    assert queued["segments"] == 1 and queued["created"] is True
    (message,) = twilio.wait_for(to)
    assert message["from"] == twilio.from_number
    assert message["body"] == "你好，这是旺信的测试短信"
    assert message["status_callback"] == f"{stack.info['bridge']['url']}{STATUS_PATH}?sms_id={queued['sms_id']}"
    sent = wait_state(stack, queued["sms_id"], "sent")
    assert sent["provider_id"] == message["sid"] and sent["attempts"] == 1

    assert twilio.deliver_status(message["sid"], "sent").status_code == 200
    assert twilio.deliver_status(message["sid"], "delivered").status_code == 200
    assert wait_state(stack, queued["sms_id"], "delivered")["error"] is None
    # A late or out-of-order report never moves a final state.
    assert twilio.deliver_status(message["sid"], "sent").status_code == 200
    assert twilio.deliver_status(message["sid"], "undelivered", 30003).status_code == 200
    assert state(stack, queued["sms_id"])["state"] == "delivered"

    # The same dedup key is one SMS, however often it is posted.
    key = "k-" + secrets.token_hex(4)
    first, second = send(stack, to, "only once", dedup_key=key), send(stack, to, "only once", dedup_key=key)
    assert first["sms_id"] == second["sms_id"] and second["created"] is False
    eventually(lambda: texts_to(twilio, to).count("only once") == 1, timeout=30)


def test_a_failure_report_names_the_error(stack: RunningStack, twilio: FakeTwilio) -> None:
    to = cn_mobile()
    queued = send(stack, to, "hello")
    (message,) = twilio.wait_for(to)
    wait_state(stack, queued["sms_id"], "sent")
    assert twilio.deliver_status(message["sid"], "undelivered", 30003).status_code == 200
    failed = wait_state(stack, queued["sms_id"], "undelivered")
    assert "30003" in failed["error"] and "unreachable" in failed["error"]


def test_forged_and_unsigned_webhooks_are_refused(stack: RunningStack, twilio: FakeTwilio) -> None:
    url, sender = inbound_url(stack), cn_mobile()
    unsigned = twilio.send_inbound(url, sender, "HELP", sign=False)
    assert unsigned.status_code == 403 and "X-Twilio-Signature" in unsigned.text
    forger = FakeTwilio.__new__(FakeTwilio)
    forger.auth_token = secrets.token_hex(16)  # someone who does not have our auth token
    forged = twilio.send_inbound(url, sender, "HELP", signature=forger.sign(url, {"Body": "HELP"}))
    assert forged.status_code == 403 and "does not match" in forged.text
    # A genuine signature over other parameters: the body was changed on the way.
    params = {"MessageSid": "SM" + secrets.token_hex(16), "From": sender, "To": twilio.from_number, "Body": "hi"}
    tampered = twilio.post_signed(url, {**params, "Body": "HELP"}, signature=twilio.sign(url, params))
    assert tampered.status_code == 403

    to = cn_mobile()
    queued = send(stack, to, "status forgery target")
    (message,) = twilio.wait_for(to)
    wait_state(stack, queued["sms_id"], "sent")
    status_url = message["status_callback"]
    report = {"MessageSid": message["sid"], "MessageStatus": "failed", "ErrorCode": "30008"}
    assert twilio.post_signed(status_url, report, signature=forger.sign(status_url, report)).status_code == 403
    assert twilio.post_signed(status_url, report, sign=False).status_code == 403
    # The same report sent to the URL without its query is a different URL: refused too.
    assert twilio.post_signed(status_url.split("?")[0], report,
                              signature=twilio.sign(status_url, report)).status_code == 403
    assert state(stack, queued["sms_id"])["state"] == "sent"
    # Nothing reached the phone that texted HELP with forged requests.
    assert twilio.messages_to(sender) == []


def test_a_replayed_inbound_message_is_processed_once(stack: RunningStack, twilio: FakeTwilio) -> None:
    url, sender = inbound_url(stack), cn_mobile()
    sid = "SM" + secrets.token_hex(16)
    first = twilio.send_inbound(url, sender, "help", message_sid=sid)
    assert first.status_code == 200 and first.headers["Content-Type"].startswith("text/xml")
    assert "<Response/>" in first.text
    assert twilio.send_inbound(url, sender, "help", message_sid=sid).status_code == 200
    # A later text from the same phone is handled after the replay would have been.
    assert twilio.send_inbound(url, sender, "INFO").status_code == 200
    helps = twilio.wait_for(sender, 2)
    assert all("旺信" in m["body"] for m in helps)
    assert len(twilio.messages_to(sender)) == 2


def test_stop_start_and_help(stack: RunningStack, twilio: FakeTwilio) -> None:
    url, phone = inbound_url(stack), us_number()
    send(stack, phone, "Your friend invited you")
    twilio.wait_for(phone, 1)

    assert twilio.send_inbound(url, phone, "  Stop ").status_code == 200
    confirmation = twilio.wait_for(phone, 2)[-1]["body"]
    assert "unsubscribed" in confirmation and "START" in confirmation
    # A second STOP while opted out sends nothing; HELP is answered even now.
    assert twilio.send_inbound(url, phone, "STOP").status_code == 200
    assert twilio.send_inbound(url, phone, "help").status_code == 200
    bodies = [m["body"] for m in twilio.wait_for(phone, 3)]
    assert "Reply STOP" in bodies[2] and "Join:" in bodies[2]
    assert len(twilio.messages_to(phone)) == 3

    refused = send(stack, phone, "are you there?", expect=403)
    assert refused["errcode"] == "M_FORBIDDEN" and refused["reason"] == "opted_out"
    assert "STOP" in refused["error"] and "START" in refused["error"]

    assert twilio.send_inbound(url, phone, "start").status_code == 200
    assert "subscribed again" in twilio.wait_for(phone, 4)[-1]["body"]
    send(stack, phone, "welcome back")
    assert twilio.wait_for(phone, 5)[-1]["body"] == "welcome back"

    # Chinese users: 退订 opts out, the answer is in Chinese.
    chinese = cn_mobile()
    assert twilio.send_inbound(url, chinese, "退订").status_code == 200
    assert "退订" in twilio.wait_for(chinese, 1)[0]["body"]
    assert send(stack, chinese, "你好", expect=403)["reason"] == "opted_out"


def test_a_gateway_error_is_retried_and_the_sms_sent_once(stack: RunningStack, twilio: FakeTwilio) -> None:
    to = cn_mobile()
    twilio.fail_next(1, "500", to=to)
    twilio.fail_next(1, "429", to=to)
    queued = send(stack, to, "after two errors")
    sent = wait_state(stack, queued["sms_id"], "sent")
    assert sent["attempts"] == 3
    assert len(twilio.messages_to(to)) == 1 and twilio.requests_to(to) == 3


def test_an_invalid_number_at_twilio_fails_at_once(stack: RunningStack, twilio: FakeTwilio) -> None:
    to = cn_mobile()
    twilio.fail_next(1, "21211", to=to)
    queued = send(stack, to, "to nowhere")
    failed = wait_state(stack, queued["sms_id"], "failed")
    assert "21211" in failed["error"] and failed["attempts"] == 1
    assert twilio.requests_to(to) == 1 and twilio.messages_to(to) == []


@pytest.mark.parametrize("fault", ["hang", "reset"])
def test_an_unanswered_request_is_not_sent_twice(stack: RunningStack, twilio: FakeTwilio, fault: str) -> None:
    """hang: Twilio created the message but its answer came after our timeout; reset: the
    connection broke and nothing was created. Either way the bridge cannot know, asks, and the
    phone gets exactly one SMS."""
    to = cn_mobile()
    twilio.fail_next(1, fault, to=to)
    queued = send(stack, to, f"exactly once ({fault})")
    sent = wait_state(stack, queued["sms_id"], "sent", timeout=90)
    (message,) = twilio.messages_to(to)
    assert sent["provider_id"] == message["sid"]
    assert twilio.requests_to(to) == (1 if fault == "hang" else 2)


def test_bad_requests_are_refused_with_a_sentence(stack: RunningStack) -> None:
    to = cn_mobile()
    too_long = send(stack, to, "a" * 1000, expect=400)
    assert too_long["errcode"] == "M_INVALID_PARAM" and too_long["reason"] == "too_long"
    assert "918 characters" in too_long["error"]
    assert "402 characters" in send(stack, to, "长" * 500, expect=400)["error"]
    assert send(stack, to, "   ", expect=400)["reason"] == "empty"
    assert send(stack, "+86 555", "hi", expect=400)["reason"] == "invalid_number"
    landline = send(stack, "+86 10 6552 9988", "hi", expect=400)
    assert landline["reason"] == "not_mobile" and "landline" in landline["error"]
    assert "short code" in send(stack, "10086", "hi", expect=400)["error"]
    r = requests.post(f"{stack.info['bridge']['url']}/_wangxin/v1/sms/messages", json={"to": to, "body": "x"},
                      headers={"Authorization": "Bearer wrong"}, timeout=30)
    assert r.status_code == 403 and r.json()["errcode"] == "M_FORBIDDEN"


def test_the_per_destination_daily_cap_trips(stack: RunningStack, twilio: FakeTwilio) -> None:
    to = cn_mobile()
    for i in range(10):
        send(stack, to, f"message {i}")
    refused = send(stack, to, "one too many", expect=429)
    assert refused["errcode"] == "M_LIMIT_EXCEEDED" and refused["reason"] == "destination_daily_cap"
    assert 0 < refused["retry_after_ms"] <= 24 * 3600 * 1000
    assert "10 SMS" in refused["error"] and "midnight UTC" in refused["error"]
    twilio.wait_for(to, 10)
    # Another number is not affected.
    send(stack, cn_mobile(), "unrelated")


def test_opt_outs_and_queued_or_interrupted_sms_survive_a_bridge_restart(
        stack: RunningStack, twilio: FakeTwilio) -> None:
    from tests.e2e.test_appservice import _wait_bridge_restarted

    url = inbound_url(stack)
    opted_out, queued_to, interrupted_to = cn_mobile(), cn_mobile(), cn_mobile()
    assert twilio.send_inbound(url, opted_out, "STOP").status_code == 200
    twilio.wait_for(opted_out, 1)
    # Twilio answers 503 for a while: the SMS waits in the queue.
    twilio.fail_next(1000, "503", to=queued_to)
    waiting = send(stack, queued_to, "queued across a restart")
    eventually(lambda: twilio.requests_to(queued_to) >= 1, timeout=30)
    assert state(stack, waiting["sms_id"])["state"] in ("queued", "sending")
    # Twilio takes this one and does not answer: the bridge dies while it is "sending".
    twilio.fail_next(1, "hang", to=interrupted_to)
    interrupted = send(stack, interrupted_to, "interrupted while sending")
    eventually(lambda: twilio.requests_to(interrupted_to) == 1, timeout=30)
    assert state(stack, interrupted["sms_id"])["state"] == "sending"

    old_pid = stack.info["processes"]["bridge"]
    os.kill(old_pid, signal.SIGKILL)
    twilio.clear_faults(queued_to)
    _wait_bridge_restarted(stack, old_pid)

    assert wait_state(stack, waiting["sms_id"], "sent")["error"] is None
    assert texts_to(twilio, queued_to) == ["queued across a restart"]
    after = wait_state(stack, interrupted["sms_id"], "sent")
    (message,) = twilio.messages_to(interrupted_to)
    assert after["provider_id"] == message["sid"] and twilio.requests_to(interrupted_to) == 1
    assert send(stack, opted_out, "still opted out?", expect=403)["reason"] == "opted_out"
