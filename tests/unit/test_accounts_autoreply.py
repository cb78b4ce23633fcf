"""Auto-reply rules: what the settings accept (each refusal naming the field) and what a
follower's message gets: a menu entry by number, a keyword (as the whole message, or inside it,
whole Latin words only), the menu (at most once per quiet period), nothing while a person answers."""

from __future__ import annotations

from typing import Any

import pytest
from synapse.api.errors import SynapseError

from synapse_modules.accounts.autoreply import (
    MAX_KEYWORDS,
    QUIET_MS,
    Answer,
    AutoReply,
    decide,
    match,
    menu_text,
    message_text,
    normalized,
    validate_autoreply,
)

NOW = 1_700_000_000_000

SETTINGS = validate_autoreply({
    "keywords": {"营业时间": "9:00–18:00", "Address": "1 Library Road", "hi": "Hello!", "opening hours": "Daily"},
    "menu": ["营业时间", "address"],
    "welcome": "Welcome · 欢迎",
})


def refused(body: dict[str, Any], status: int, field: str) -> None:
    with pytest.raises(SynapseError) as e:
        validate_autoreply(body)
    assert e.value.code == status, e.value.msg
    assert f"'{field}" in e.value.msg, e.value.msg


def test_settings_keep_what_was_given_and_round_trip() -> None:
    assert SETTINGS.menu == ("营业时间", "Address")  # entries as the keyword was written
    assert SETTINGS.welcome == "Welcome · 欢迎"
    assert AutoReply.from_json(SETTINGS.to_json()) == SETTINGS
    assert validate_autoreply({}) == AutoReply()
    assert SETTINGS.view()["keywords"]["Address"] == "1 Library Road"


def test_bad_settings_name_the_field() -> None:
    many = {f"word{i}": "answer" for i in range(MAX_KEYWORDS + 1)}
    refused({"keywords": many}, 400, "keywords")
    validate_autoreply({"keywords": dict(list(many.items())[:MAX_KEYWORDS])})  # exactly 200 is fine
    refused({"keywords": ["a"]}, 400, "keywords")
    refused({"keywords": {"x" * 65: "a"}}, 413, "keywords")
    refused({"keywords": {" ": "a"}}, 400, "keywords")
    refused({"keywords": {"hours": "a" * 2001}}, 413, "keywords.hours")
    refused({"keywords": {"hours": ""}}, 400, "keywords.hours")
    refused({"keywords": {"hours": 3}}, 400, "keywords.hours")
    refused({"keywords": {"3": "three"}}, 400, "keywords")  # numbers pick menu entries
    refused({"keywords": {"１２": "twelve"}}, 400, "keywords")  # full-width digits are numbers too
    refused({"keywords": {"Hours": "a", "hours ": "b"}}, 400, "keywords")  # the same keyword twice
    refused({"keywords": {"hours": "a"}, "menu": "hours"}, 400, "menu")
    refused({"keywords": {"hours": "a"}, "menu": ["hours", "price"]}, 400, "menu[1]")
    refused({"keywords": {"hours": "a"}, "menu": ["hours", "HOURS"]}, 400, "menu[1]")
    refused({"keywords": {f"k{i}": "a" for i in range(21)}, "menu": [f"k{i}" for i in range(21)]}, 400, "menu")
    refused({"welcome": ""}, 400, "welcome")
    refused({"welcome": "w" * 2001}, 413, "welcome")
    refused({"keyword": {}}, 400, "keyword")  # a typo is not silently ignored


def test_normalising_ignores_case_width_and_spacing() -> None:
    assert normalized("  ＡＤＤＲＥＳＳ\t please ") == "address please"
    assert normalized("２") == "2"


@pytest.mark.parametrize("text, answer", [
    ("营业时间", "9:00–18:00"),
    ("请问营业时间是几点？", "9:00–18:00"),  # contained, in a script without spaces
    ("ADDRESS", "1 Library Road"),
    ("what is your address?", "1 Library Road"),
    ("Hi", "Hello!"),
    ("hi there", "Hello!"),
    ("what are your opening hours", "Daily"),
])
def test_keywords_match_as_the_message_or_inside_it(text: str, answer: str) -> None:
    found = match(SETTINGS, text)
    assert found is not None and found.text == answer


@pytest.mark.parametrize("text", ["this", "ship it", "addresses", "", "hours"])
def test_latin_keywords_match_only_whole_words(text: str) -> None:
    assert match(SETTINGS, text) is None


def test_a_menu_number_answers_as_its_entry() -> None:
    assert match(SETTINGS, "1") == Answer("menu_entry", "9:00–18:00")
    assert match(SETTINGS, " ２ ") == Answer("menu_entry", "1 Library Road")
    assert match(SETTINGS, "3") is None  # beyond the menu
    assert match(SETTINGS, "0") is None


def test_the_longest_contained_keyword_wins() -> None:
    settings = validate_autoreply({"keywords": {"hours": "short", "opening hours": "long"}})
    assert match(settings, "your opening hours please") == Answer("keyword", "long")


def test_the_menu_answers_the_rest_at_most_once_per_quiet_period_and_nothing_while_a_person_answers() -> None:
    menu = decide(SETTINGS, "hello?", NOW, 0, 0)
    assert menu == Answer("menu", menu_text(SETTINGS))
    assert menu.text.splitlines()[1:] == ["1. 营业时间", "2. Address"]
    assert decide(SETTINGS, "hello?", NOW, NOW - QUIET_MS + 1, 0) is None
    assert decide(SETTINGS, "hello?", NOW, NOW - QUIET_MS, 0) == menu
    assert decide(SETTINGS, "营业时间", NOW, NOW, 0) == Answer("keyword", "9:00–18:00")  # keywords always answer
    assert decide(SETTINGS, "营业时间", NOW, 0, NOW - 1000) is None  # a person is answering
    assert decide(SETTINGS, "营业时间", NOW, 0, NOW - QUIET_MS) is not None
    assert decide(AutoReply(), "hello?", NOW, 0, 0) is None  # no menu, no keywords: the owner answers
    assert decide(SETTINGS, None, NOW, 0, 0) is None  # not text


def test_only_text_is_matched_without_a_reply_quote() -> None:
    assert message_text({"msgtype": "m.text", "body": "> <@a:hs> earlier\n\naddress"}) == "address"
    assert message_text({"msgtype": "m.image", "body": "photo.jpg"}) is None
    assert message_text({"msgtype": "m.text", "body": 5}) is None
    assert len(message_text({"msgtype": "m.text", "body": "x" * 5000}) or "") == 1000
