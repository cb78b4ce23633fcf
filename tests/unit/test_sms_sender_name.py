"""What a phone shows as the sender of an SMS: made from a user's display name, never forgeable.

Issue 19 §5: a display name reached the SMS unfiltered, so a user named like a bank's SMS
signature, with a link, could make the operator's sender id deliver a phishing text.
"""

from __future__ import annotations

import pytest

from bridges.sms import templating
from bridges.sms.sender_name import MAX_NAME_CHARS, SIGNATURES, clean_text, sender_label

BANK = "【中国工商银行】您的账户异常，请立即登录 http://evil.example 验证"
USER = "@alice:example.org"


def _visible_forgeries(label: str) -> list[str]:
    """Whatever in ``label`` could pass for a signature, a link or a hidden control."""
    found = [c for c in label if c in "【】〔〕〖〗［］[](){}（）<>《》「」『』:：/\\@."]
    found += [c for c in label if 0x200B <= ord(c) <= 0x200F or 0x202A <= ord(c) <= 0x202E
              or 0x2066 <= ord(c) <= 0x2069 or ord(c) < 0x20 or c == "\u061c" or c == "\ufeff"]
    return found


@pytest.mark.parametrize("name, gone", [
    (BANK, ["中国工商银行", "http", "evil", "example", "【", "】"]),
    ("［工商银行］张三", ["工商银行"]),  # fullwidth square brackets
    ("〔ICBC〕Li Lei", ["ICBC"]),
    ("〖95588〗王芳", ["95588"]),
    ("[Bank of China] Zhou", ["Bank of China"]),
    ("Zhou (Bank of China)", ["Bank of China"]),
    ("（中国银行）客服", ["中国银行"]),
    ("Bob\u202eknab", ["\u202e"]),  # right-to-left override
    ("Al\u200bi\u200dce\ufeff", ["\u200b", "\u200d", "\ufeff"]),  # zero-width characters
    ("Visit www.evil.cn now", ["www", "evil", ".cn"]),
    ("Li evil。com", ["evil", "com"]),  # an ideographic full stop
    ("Li evil．com", ["evil", "com"]),  # a fullwidth full stop
    ("Li ｅｖｉｌ.ｃｏｍ", ["evil", "com", "ｅｖｉｌ"]),  # fullwidth letters
    ("Mallory\nYour parcel is held", ["\n"]),
    ("hxxps://bad.example/login", ["bad", "example", "login"]),
    ("mail me: x@evil.io", ["evil.io", "@"]),
])
def test_hostile_names_lose_brands_links_and_controls(name: str, gone: list[str]) -> None:
    label = sender_label(name, USER, "zh-CN")
    for part in gone:
        assert part not in label, (name, label)
    assert not _visible_forgeries(label), (name, label)
    assert 0 < len(label) <= MAX_NAME_CHARS


def test_ordinary_names_stay_as_they_are() -> None:
    for name in ("Alice Wu", "张三", "约翰·史密斯", "Zoë", "李小龍", "Anne-Marie O’Neil", "🌸 Mei"):
        assert sender_label(name, USER, "en") == name
    assert sender_label("  Alice   Wu ", USER, "en") == "Alice Wu"
    assert sender_label("Dr. Smith", USER, "en") == "Dr Smith"


def test_long_names_are_cut() -> None:
    label = sender_label("A" * 500, USER, "en")
    assert len(label) == MAX_NAME_CHARS and label.endswith("…")
    assert len(sender_label("长" * 100, USER, "zh-CN")) == MAX_NAME_CHARS
    # Piled-up combining marks are trimmed before the cut.
    assert len(sender_label("Z" + "\u0336" * 200 + "oe", USER, "en")) <= 6


def test_nothing_left_falls_back_to_the_localpart_then_to_a_wangxin_user() -> None:
    assert sender_label("【工商银行】", "@zhangsan:example.org", "zh-CN") == "zhangsan"
    assert sender_label("http://evil.example", "@bob:example.org", "en") == "bob"
    assert sender_label(None, "@carol:example.org", "en") == "carol"
    assert sender_label("www.evil.cn", "@www.evil.cn:example.org", "en") == "a Wangxin user"
    assert sender_label("\u202e\u200b", "@--:example.org", "zh-CN") == "一位旺信用户"
    assert sender_label(None, "@u0ad490394c:example.org", "en") == "u0ad490394c"


def test_message_text_loses_bidi_controls_but_keeps_the_rest() -> None:
    assert clean_text("pay \u202eetad\u202c now") == "pay etad now"
    assert clean_text("see http://wx.example/a 👨‍👩‍👧") == "see http://wx.example/a 👨‍👩‍👧"  # ZWJ emoji kept


def _variables(language: str) -> dict[str, object]:
    return {"sender_name": sender_label(BANK, USER, language), "text": "hi", "join_url": "https://wx.example/j",
            "reply_hint": "", "reply_code": None, "inviter_name": sender_label(BANK, USER, language),
            "link": "https://wx.example/i/1-x", "code": "123456", "minutes": 10}


def test_every_sms_starts_with_the_fixed_signature_which_no_name_can_produce() -> None:
    for name in ("chat", "invite", "code", "help", "stop_confirm", "start_confirm", "unroutable"):
        for language in ("en", "zh-CN"):
            text = templating.render(name, language, **_variables(language))
            signature = SIGNATURES[language]
            assert text.startswith(signature), (name, language, text)
            assert text.count(signature) == 1, (name, language, text)
            assert "中国工商银行" not in text and "evil" not in text
