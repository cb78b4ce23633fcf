"""The dev stack's SMS options become a bridge config the bridge accepts; the outbox provider."""

from __future__ import annotations

import json

import pytest
from twisted.internet import defer

from bridges.config import parse_config
from bridges.sms.api import OutboundSms
from bridges.sms.providers import OutboxProvider
from wangxin_common.config_errors import Section
from wangxin_stack.options import OptionError, StackOptions, parse_sms_from, parse_sms_limits
from wangxin_stack.render import sms_config


def _bridge_config(sms: dict) -> Section:
    return Section({
        "homeserver": {"url": "http://127.0.0.1:8008", "server_name": "example.org"},
        "appservice": {"id": "wangxin", "as_token": "a" * 20, "hs_token": "h" * 20, "port": 29330},
        "sms": sms,
    }, (), "bridge.yaml")


def test_stack_sms_options_render_a_valid_bridge_section(tmp_path) -> None:
    options = StackOptions(dir=str(tmp_path), port=28008, server_name="localhost", sms_provider="twilio",
                           twilio_base_url="http://127.0.0.1:9999", twilio_account_sid="AC" + "ab" * 16,
                           twilio_auth_token="secret", sms_from=parse_sms_from("+15005550006, +15005550007"),
                           sms_limits=parse_sms_limits("per_destination_per_day=3,request_timeout_s=1.5"))
    options.validate()
    sms = parse_config(_bridge_config(sms_config(options, str(tmp_path)))).sms
    assert sms.provider == "twilio" and sms.twilio is not None
    assert sms.twilio.webhook_base_url == "http://127.0.0.1:28009"  # the bridge's own port
    assert sms.twilio.base_url == "http://127.0.0.1:9999"
    assert sms.limits.per_destination_per_day == 3 and sms.limits.request_timeout_s == 1.5
    assert sms.sender_pool == ("+15005550006", "+15005550007")
    default = parse_config(_bridge_config(sms_config(StackOptions(str(tmp_path), 28008, "localhost"),
                                                     str(tmp_path)))).sms
    assert default.provider == "outbox" and default.outbox_path == str(tmp_path / "sms-outbox.jsonl")


@pytest.mark.parametrize("text, message", [
    ("per_day=3", "unknown limit 'per_day'"),
    ("max_segments=many", "max_segments needs a number"),
    ("concurrency=0", "concurrency must be positive"),
])
def test_bad_sms_limits_options_are_named(text: str, message: str) -> None:
    with pytest.raises(OptionError, match=message):
        parse_sms_limits(text)


@pytest.mark.parametrize("text, message", [
    ("+15005550006,Wangxin", "expected E.164 numbers"),
    ("+15005550006,+15005550006", "listed twice"),
    ("+1 500", "expected E.164 numbers"),
])
def test_bad_sender_numbers_are_named(text: str, message: str) -> None:
    with pytest.raises(OptionError, match=message):
        parse_sms_from(text)


def test_the_twilio_provider_option_needs_credentials(tmp_path) -> None:
    with pytest.raises(OptionError, match="--twilio-account-sid"):
        StackOptions(str(tmp_path), 28008, "localhost", sms_provider="twilio").validate()


def test_the_outbox_writes_one_json_line_per_sms_and_finds_it_again(tmp_path) -> None:
    path = tmp_path / "sms-outbox.jsonl"
    outbox = OutboxProvider(str(path))
    sms = OutboundSms(sms_id=7, kind="chat", to="+8613800138000", body="你好", state="sending", sender=None,
                      room_id=None, event_id=None, dedup_key=None, provider_id=None, attempts=1, error=None)
    result = defer.ensureDeferred(outbox.send(sms)).result
    assert result.outcome == "accepted" and result.delivered and result.provider_id == "outbox-7"
    line = json.loads(path.read_text(encoding="utf-8"))
    assert {k: line[k] for k in ("sms_id", "to", "from", "body")} == {
        "sms_id": 7, "to": "+8613800138000", "from": "Wangxin", "body": "你好"}
    # After a crash between the write and its record: found, so not written again.
    assert defer.ensureDeferred(outbox.find(sms, 0)).result == ["outbox-7"]
    assert defer.ensureDeferred(outbox.find(dict_replace(sms, sms_id=8), 0)).result == []
    defer.ensureDeferred(outbox.close())


def dict_replace(sms: OutboundSms, **changes: object) -> OutboundSms:
    import attrs

    return attrs.evolve(sms, **changes)
