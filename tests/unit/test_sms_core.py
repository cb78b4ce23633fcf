"""The SMS service's pure parts: segment counting, keywords, config errors, signatures, back-off."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from twilio.request_validator import RequestValidator
from twisted.internet import defer, task

from bridges.config import parse_config
from bridges.sms import templating
from bridges.sms.api import OutboundSms
from bridges.sms.keywords import keyword_of
from bridges.sms.providers import SendResult, twilio_error_text
from bridges.sms.segments import count_segments, max_characters
from bridges.sms.service import SmsServiceImpl, TokenBucket, ms_until_utc_midnight, utc_day
from bridges.sms.store import QueuedRow
from tests.harness.fake_twilio import twilio_signature
from wangxin_common.config_errors import ConfigError, Section

# -- segments ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "text, encoding, segments",
    [
        ("", "gsm7", 0),
        ("a" * 160, "gsm7", 1),
        ("a" * 161, "gsm7", 2),
        ("a" * 306, "gsm7", 2),
        ("a" * 307, "gsm7", 3),
        ("€" * 80, "gsm7", 1),  # extension characters take two septets
        ("€" * 81, "gsm7", 2),
        ("a" * 152 + "{" + "a" * 10, "gsm7", 2),  # the pair moves whole into the second part
        ("Grüße, ¿qué tal? Ça va. @home £5", "gsm7", 1),
        ("你" * 70, "ucs2", 1),
        ("你" * 71, "ucs2", 2),
        ("你" * 134, "ucs2", 2),
        ("你" * 135, "ucs2", 3),
        ("a" * 159 + "é", "gsm7", 1),  # é is in the GSM alphabet
        ("a" * 69 + "ê", "ucs2", 1),  # ê is not: the whole text becomes UCS-2
        ("a" * 70 + "ê", "ucs2", 2),
        ("😀" * 35, "ucs2", 1),  # two UTF-16 units each
        ("😀" * 36, "ucs2", 2),
        ("a" * 66 + "😀" + "a" * 10, "ucs2", 2),  # a surrogate pair is never split
    ],
)
def test_segments_are_counted_as_the_network_does(text: str, encoding: str, segments: int) -> None:
    count = count_segments(text)
    assert (count.encoding, count.segments) == (encoding, segments)


def test_a_surrogate_pair_at_a_part_boundary_starts_the_next_part() -> None:
    # 66 units + a 2-unit emoji would straddle the 67-unit boundary of part one.
    assert count_segments("a" * 66 + "😀" + "a" * 67).segments == 3
    assert count_segments("a" * 65 + "😀" + "a" * 67).segments == 2


def test_max_characters() -> None:
    assert max_characters(1, "gsm7") == 160 and max_characters(1, "ucs2") == 70
    assert max_characters(6, "gsm7") == 918 and max_characters(6, "ucs2") == 402


# -- keywords ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "body, keyword",
    [("STOP", "stop"), (" stop\n", "stop"), ("Stop.", "stop"), ("stopall", "stop"), ("Unsubscribe", "stop"),
     ("cancel", "stop"), ("END", "stop"), ("quit", "stop"), ("td", "stop"), ("退订", "stop"), ("退订。", "stop"),
     ("START", "start"), ("unstop", "start"), ("Yes", "start"), ("help", "help"), ("INFO", "help"),
     ("stop it", None), ("please stop", None), ("stopp", None), ("", None), ("helpful", None), ("停止", None)],
)
def test_keywords_are_the_whole_message_in_any_case(body: str, keyword: str | None) -> None:
    assert keyword_of(body) == keyword


# -- config --------------------------------------------------------------------------------

SID = "AC" + "0123456789abcdef" * 2


def _config(sms: dict) -> Section:
    return Section({
        "homeserver": {"url": "http://127.0.0.1:8008", "server_name": "example.org"},
        "appservice": {"id": "wangxin", "as_token": "a" * 20, "hs_token": "h" * 20, "port": 29330},
        "sms": sms,
    }, (), "bridge.yaml")


def _twilio(**overrides: object) -> dict:
    return {"account_sid": SID, "auth_token": "t" * 32, "from": "+15005550006",
            "webhook_base_url": "https://bridge.example.org", **overrides}


def test_sms_config_defaults_and_twilio() -> None:
    config = parse_config(_config({}))
    assert config.sms.provider == "outbox" and config.sms.limits.per_destination_per_day == 10
    assert config.sms_join_url == "http://127.0.0.1:8008" and config.sms_invite_base_url == config.sms_join_url
    config = parse_config(_config({"provider": "twilio", "twilio": _twilio(), "join_url": "https://wx.example/app/",
                                   "limits": {"retry_base_s": 1, "concurrency": 2}}))
    assert config.sms.twilio is not None and config.sms.twilio.base_url == "https://api.twilio.com"
    assert config.sms.join_url == "https://wx.example/app"
    assert config.sms.limits.retry_base_s == 1.0 and config.sms.limits.concurrency == 2


def test_the_sender_pool_and_routing() -> None:
    config = parse_config(_config({}))
    assert config.sms.sender_pool == ("Wangxin",) and config.sms.routing.reply_codes is True
    assert config.sms.routing.refusal_interval_s == 3600 and config.sms.verification.delegate_secret is None
    pool = ["+15005550006", "+15005550007"]
    config = parse_config(_config({"provider": "twilio", "twilio": _twilio(**{"from": pool}),
                                   "routing": {"reply_codes": False, "refusal_interval_s": 60},
                                   "verification": {"delegate_secret": "s" * 32}}))
    assert config.sms.sender_pool == tuple(pool) and config.sms.routing.reply_codes is False
    assert config.sms.verification.delegate_secret == "s" * 32
    # One number, as before; a Messaging Service picks its own number: one shared sender.
    assert parse_config(_config({"provider": "twilio", "twilio": _twilio()})).sms.sender_pool == ("+15005550006",)
    service = _twilio(messaging_service_sid="MG" + "0" * 32)
    del service["from"]
    assert parse_config(_config({"provider": "twilio", "twilio": service})).sms.sender_pool == ("",)
    assert parse_config(_config({"outbox_from": pool})).sms.sender_pool == tuple(pool)


@pytest.mark.parametrize(
    "sms, message",
    [
        ({"provider": "sms.ru"}, "key 'sms.provider': expected one of outbox, twilio"),
        ({"provider": "twilio"}, "key 'sms.twilio': is missing"),
        ({"provider": "twilio", "twilio": _twilio(account_sid="AC123")}, "key 'sms.twilio.account_sid': expected AC"),
        ({"provider": "twilio", "twilio": {k: v for k, v in _twilio().items() if k != "auth_token"}},
         "key 'sms.twilio.auth_token': is missing"),
        ({"provider": "twilio", "twilio": {k: v for k, v in _twilio().items() if k != "from"}},
         "key 'sms.twilio.from': set exactly one of"),
        ({"provider": "twilio", "twilio": _twilio(messaging_service_sid="MG" + "0" * 32)},
         "key 'sms.twilio.from': set exactly one of"),
        ({"provider": "twilio", "twilio": _twilio(**{"from": "+86 138"})}, "key 'sms.twilio.from': expected an E.164"),
        ({"provider": "twilio", "twilio": _twilio(webhook_base_url="bridge.example.org")},
         "key 'sms.twilio.webhook_base_url': expected an http(s) URL"),
        ({"provider": "twilio", "twilio": _twilio(api_key_sid="SK" + "0" * 32)},
         "key 'sms.twilio.api_key_secret': api_key_sid and api_key_secret go together"),
        ({"provider": "twilio", "twilio": _twilio(acount_sid="x")}, "key 'sms.twilio.acount_sid': is not a known"),
        ({"limits": {"per_user_per_day": 0}}, "key 'sms.limits.per_user_per_day': expected a positive integer"),
        ({"limits": {"retry_base_s": "2s"}}, "key 'sms.limits.retry_base_s': expected a positive number"),
        ({"limits": {"max_segments": 1.5}}, "key 'sms.limits.max_segments': expected a positive integer"),
        ({"limits": {"per_day": 5}}, "key 'sms.limits.per_day': is not a known option"),
        ({"verification": {"code_ttl_s": -1}}, "key 'sms.verification.code_ttl_s': expected a positive integer"),
        ({"default_region": "china"}, "key 'sms.default_region': expected a two-letter region code"),
        ({"join_url": "wangxin.app"}, "key 'sms.join_url': expected an http(s) URL"),
        ({"provider": "twilio", "twilio": _twilio(**{"from": ["+15005550006", "Wangxin"]})},
         "key 'sms.twilio.from': expected an E.164 number like +8613800138000, found 'Wangxin'"),
        ({"provider": "twilio", "twilio": _twilio(**{"from": ["+15005550006", "+15005550006"]})},
         "key 'sms.twilio.from': +15005550006 is listed twice"),
        ({"provider": "twilio", "twilio": _twilio(**{"from": []})}, "key 'sms.twilio.from': expected"),
        ({"outbox_from": 12}, "key 'sms.outbox_from': expected a sender id or a list of numbers"),
        ({"routing": {"reply_codes": "yes"}}, "key 'sms.routing.reply_codes': expected true or false"),
        ({"routing": {"refusal_interval_s": 0}}, "key 'sms.routing.refusal_interval_s': expected a positive"),
        ({"routing": {"codes": True}}, "key 'sms.routing.codes': is not a known option"),
        ({"verification": {"delegate_secret": "short"}},
         "key 'sms.verification.delegate_secret': expected at least 32 letters, digits, '-' or '_'"),
        ({"verification": {"delegate_secret": "a/b" * 20}}, "key 'sms.verification.delegate_secret': expected"),
    ],
)
def test_sms_config_errors_name_the_key(sms: dict, message: str) -> None:
    with pytest.raises(ConfigError) as e:
        parse_config(_config(sms))
    assert message in str(e.value), str(e.value)


# -- Twilio signatures ---------------------------------------------------------------------


def test_the_fake_signs_as_twilio_documents_and_the_library_agrees() -> None:
    # The example of Twilio's security documentation.
    url = "https://mycompany.com/myapp.php?foo=1&bar=2"
    params = {"CallSid": "CA1234567890ABCDE", "Caller": "+12349013030", "Digits": "1234", "From": "+12349013030",
              "To": "+18005551212"}
    assert twilio_signature("12345", url, params) == "0/KCTR6DLpKmkAf8muzZqo1nDgQ="
    validator = RequestValidator("12345")
    assert validator.validate(url, params, "0/KCTR6DLpKmkAf8muzZqo1nDgQ=")
    assert not validator.validate(url, {**params, "Digits": "1235"}, "0/KCTR6DLpKmkAf8muzZqo1nDgQ=")


def test_signatures_over_a_local_url_with_a_port_and_repeated_parameters() -> None:
    from bridges.sms.http_api import _Params

    url = "http://127.0.0.1:29331/_wangxin/v1/sms/twilio/status?sms_id=42"
    params = {"MessageSid": "SM" + "0" * 32, "MediaUrl0": ["b", "a"], "Body": "你好 & goodbye"}
    signature = twilio_signature("secret", url, params)
    form = _Params({k: v if isinstance(v, list) else [v] for k, v in params.items()})
    assert RequestValidator("secret").validate(url, form, signature)
    assert not RequestValidator("secret").validate(url.replace("42", "43"), form, signature)
    assert not RequestValidator("other").validate(url, form, signature)


# -- service helpers -----------------------------------------------------------------------


def test_daily_caps_reset_at_utc_midnight() -> None:
    late = datetime(2026, 3, 1, 23, 30, tzinfo=UTC)
    assert utc_day(late) == "2026-03-01"
    assert ms_until_utc_midnight(late) == 30 * 60 * 1000


def test_the_token_bucket_spaces_takes_at_the_rate() -> None:
    clock = task.Clock()
    bucket = TokenBucket(10, clock)  # 10/s: one token at a time
    assert defer.ensureDeferred(bucket.take()).called
    second = defer.ensureDeferred(bucket.take())
    assert not second.called
    clock.advance(0.05)
    assert not second.called
    clock.advance(0.06)
    assert second.called


class _NoProvider:
    name = "none"


def _row(attempts: int, uncertain: bool = False) -> QueuedRow:
    sms = OutboundSms(sms_id=1, kind="chat", to="+8613800138000", body="x", state="sending", sender=None,
                      room_id=None, event_id=None, dedup_key=None, provider_id=None, attempts=attempts, error=None)
    return QueuedRow(sms, uncertain, 0, 0)


def test_back_off_doubles_up_to_the_cap_and_gives_up_after_the_last_attempt() -> None:
    config = parse_config(_config({"limits": {"retry_base_s": 2, "retry_max_s": 5, "max_attempts": 3}}))
    service = SmsServiceImpl(config, db=_NoDb(), provider=_NoProvider())  # type: ignore[arg-type]
    retry = SendResult("retry", error="Twilio error 20500")
    first, second = service._after_error(_row(1), retry), service._after_error(_row(2), retry)
    assert first.state == second.state == "queued"
    assert 1900 <= first.next_attempt_ts - _now() <= 2100
    assert 3900 <= second.next_attempt_ts - _now() <= 4100
    assert service._after_error(_row(3), retry).state == "failed"
    assert "gave up after 3 attempts" in str(service._after_error(_row(3), retry).error)
    # A 429's Retry-After is honoured, within the cap.
    assert 4900 <= service._after_error(_row(1), SendResult("retry", retry_after_s=60)).next_attempt_ts - _now()
    # An attempt that may have reached Twilio is retried only to ask about it, a few more times.
    ambiguous = SendResult("retry", error="timeout", ambiguous=True)
    assert service._after_error(_row(3), ambiguous).state == "queued"
    assert service._after_error(_row(3), ambiguous).uncertain
    assert service._after_error(_row(6), ambiguous).state == "failed"


def test_refusals_are_sentences(tmp_path: object) -> None:
    from bridges.sms.api import SmsRefused
    from bridges.sms.numbers import parse_phone

    service = SmsServiceImpl(parse_config(_config({})), db=_NoDb(), provider=_NoProvider())  # type: ignore[arg-type]
    with pytest.raises(SmsRefused) as e:
        service.check_body("a" * 1000)
    assert e.value.reason == "too_long" and "918 characters" in str(e.value)
    with pytest.raises(SmsRefused) as e:
        service.check_body(" \n")
    assert e.value.reason == "empty"
    assert service.check_body("你" * 71) == 2
    number = parse_phone("+8613800138000", "CN")
    cap = service._refusal("destination_daily_cap", number)
    assert cap.retry_after_ms and "+86 138 0013 8000" in str(cap) and "10 SMS" in str(cap)
    assert "START" in str(service._refusal("opted_out", number))


def test_twilio_errors_read_as_sentences() -> None:
    assert twilio_error_text(21211, "The 'To' number 5551234567 is not a valid phone number.",
                             "https://www.twilio.com/docs/errors/21211") == (
        "Twilio error 21211: the number is not a valid phone number (https://www.twilio.com/docs/errors/21211)")
    assert twilio_error_text("99999", "Something new") == "Twilio error 99999: Something new"


def test_every_template_renders_in_both_languages() -> None:
    variables = {"sender_name": "王伟", "text": "晚上见", "join_url": "https://wx.example/j", "reply_hint": ""}
    for name in ("chat", "stop_confirm", "start_confirm", "help"):
        assert set(templating.languages(name)) >= {"en", "zh-CN"}
        for language in ("en", "zh-CN"):
            text = templating.render(name, language, **variables)
            assert text and not text.endswith("\n")
            assert count_segments(text).segments <= 2
    assert templating.render("help", "fr", join_url="https://x") == templating.render("help", "en",
                                                                                       join_url="https://x")
    chat = templating.render("chat", "en", **{**variables, "reply_hint": "Reply to answer."})
    assert "王伟" in chat and "Wangxin" in chat and "https://wx.example/j" in chat and "Reply to answer." in chat
    with pytest.raises(Exception, match="reply_hint"):
        templating.render("chat", "en", sender_name="a", text="b", join_url="c")


class _NoDb:
    engine = "sqlite"


def _now() -> int:
    from bridges.store import now_ms

    return now_ms()
