"""Auto-reply (自动回复): what an account answers by itself in its support rooms. Pure: no I/O.

The owner sets keywords with their answers, a numbered menu and a welcome
(``PUT /accounts/{id}/autoreply``, checked by :func:`validate_autoreply`). A follower's text
message gets (:func:`decide`):

1. a whole number from 1 to the menu's length (full-width digits too, ``２``): the answer of that
   menu entry; every menu entry is one of the keywords, so the menu is a numbered way to ask them;
2. else the answer of the keyword the message is, ignoring case, full/half width and spacing;
3. else the answer of the longest keyword the message contains (``营业时间`` is in ``请问营业时间？``).
   A keyword that begins or ends with a Latin letter or digit matches only as a whole word there
   (``hi`` is not in ``this``);
4. else the numbered menu, if there is one, at most once every ``QUIET_MS`` in a room.

Nothing is sent while a person of the account answered in the room within ``QUIET_MS``: the
conversation is theirs. Only text is matched (``m.text``, ``m.notice``, ``m.emote``), and only its
first ``MATCH_CHARS`` characters; images, files and the like get no automatic answer.
"""

from __future__ import annotations

import json
import re
import unicodedata
from collections.abc import Mapping
from typing import Any

import attrs
from synapse.module_api import errors

from synapse_modules._http import text_field

MAX_KEYWORDS = 200
MAX_KEYWORD_CHARS = 64
MAX_ANSWER_CHARS = 2000
MAX_MENU_ENTRIES = 20
MATCH_CHARS = 1000  # of a message, matched against the keywords
QUIET_MS = 10 * 60 * 1000  # the menu at most this often per room; and nothing while a person answers
SETTINGS = ("keywords", "menu", "welcome")
TEXT_MSGTYPES = ("m.text", "m.notice", "m.emote")
MENU_HEADER = "Reply with a number · 回复数字:"
# A reply's fallback quote (older clients put the quoted message before the reply's own text).
_REPLY_FALLBACK_RE = re.compile(r"\A(?:>[^\n]*\n)+\n")


def normalized(text: str) -> str:
    """What a keyword and a message are compared as: full-width forms as their plain ones
    (NFKC: ``ＡＢＣ１`` is ``ABC1``), case folded, runs of spaces as one, no spaces around."""
    return " ".join(unicodedata.normalize("NFKC", text).casefold().split())


def _is_number(text: str) -> bool:
    return text.isascii() and text.isdigit()


@attrs.frozen
class AutoReply:
    """An account's auto-reply settings, as the owner gave them (keywords in their order)."""

    keywords: tuple[tuple[str, str], ...] = ()
    menu: tuple[str, ...] = ()
    welcome: str | None = None

    def to_json(self) -> str:
        return json.dumps({"keywords": dict(self.keywords), "menu": list(self.menu), "welcome": self.welcome},
                          ensure_ascii=False)

    @staticmethod
    def from_json(text: str) -> AutoReply:
        data = json.loads(text)
        return AutoReply(tuple((str(k), str(v)) for k, v in data.get("keywords", {}).items()),
                         tuple(str(e) for e in data.get("menu", [])), data.get("welcome"))

    def view(self) -> dict[str, Any]:
        return {"keywords": dict(self.keywords), "menu": list(self.menu), "welcome": self.welcome}


def _invalid(message: str) -> Exception:
    return errors.SynapseError(400, message, errors.Codes.INVALID_PARAM)


def _bad_json(message: str) -> Exception:
    return errors.SynapseError(400, message, errors.Codes.BAD_JSON)


def validate_autoreply(body: Mapping[str, Any]) -> AutoReply:
    """The body of ``PUT /accounts/{id}/autoreply``; every refusal names the field."""
    for key in body:
        if key not in SETTINGS:
            raise _invalid(f"'{key}' is not an auto-reply setting (only {', '.join(SETTINGS)})")
    raw = body.get("keywords", {})
    if not isinstance(raw, Mapping):
        raise _bad_json("'keywords' must be an object of keyword → answer")
    if len(raw) > MAX_KEYWORDS:
        raise _invalid(f"'keywords': at most {MAX_KEYWORDS} keywords, found {len(raw)}")
    keywords: list[tuple[str, str]] = []
    seen: dict[str, str] = {}
    for keyword in raw:
        if not keyword.strip():
            raise _bad_json("'keywords': a keyword must not be empty")
        if len(keyword) > MAX_KEYWORD_CHARS:
            raise errors.SynapseError(413, f"'keywords': the keyword {keyword[:20]!r}… is longer than "
                                      f"{MAX_KEYWORD_CHARS} characters", errors.Codes.TOO_LARGE)
        key = normalized(keyword)
        if _is_number(key):
            raise _invalid(f"'keywords': {keyword!r} is a number; numbers pick menu entries")
        if key in seen:
            raise _invalid(f"'keywords': {seen[key]!r} and {keyword!r} are the same keyword")
        seen[key] = keyword
        answer = text_field(raw, keyword, MAX_ANSWER_CHARS, path=f"keywords.{keyword}")
        keywords.append((keyword, answer))
    menu_raw = body.get("menu", [])
    if not isinstance(menu_raw, list):
        raise _bad_json("'menu' must be a list of keywords")
    if len(menu_raw) > MAX_MENU_ENTRIES:
        raise _invalid(f"'menu': at most {MAX_MENU_ENTRIES} entries, found {len(menu_raw)}")
    menu: list[str] = []
    for i, entry in enumerate(menu_raw):
        if not isinstance(entry, str) or normalized(entry) not in seen:
            raise _invalid(f"'menu[{i}]' must be one of the keywords (a menu entry answers as its keyword does)")
        if seen[normalized(entry)] in menu:
            raise _invalid(f"'menu[{i}]': {entry!r} is in the menu twice")
        menu.append(seen[normalized(entry)])
    welcome = None
    if body.get("welcome") is not None:
        welcome = text_field(body, "welcome", MAX_ANSWER_CHARS)
    return AutoReply(tuple(keywords), tuple(menu), welcome)


# -- answering --------------------------------------------------------------------------------

@attrs.frozen
class Answer:
    kind: str  # "keyword", "menu_entry" or "menu"
    text: str


def menu_text(config: AutoReply) -> str:
    return "\n".join([MENU_HEADER] + [f"{i}. {entry}" for i, entry in enumerate(config.menu, 1)])


def message_text(content: Mapping[str, Any]) -> str | None:
    """The text of a follower's message to match, or ``None`` for anything that is not text."""
    body = content.get("body")
    if content.get("msgtype") not in TEXT_MSGTYPES or not isinstance(body, str):
        return None
    return _REPLY_FALLBACK_RE.sub("", body, count=1)[:MATCH_CHARS]


def _is_word(char: str) -> bool:
    return char.isascii() and char.isalnum()


def _contains(text: str, keyword: str) -> bool:
    """Whether ``keyword`` occurs in ``text``; where it begins (ends) with a Latin letter or
    digit, not right after (before) another one."""
    start = text.find(keyword)
    while start != -1:
        end = start + len(keyword)
        if not (_is_word(keyword[0]) and start > 0 and _is_word(text[start - 1])) and \
                not (_is_word(keyword[-1]) and end < len(text) and _is_word(text[end])):
            return True
        start = text.find(keyword, start + 1)
    return False


def match(config: AutoReply, text: str) -> Answer | None:
    """The keyword answer (or menu entry) for ``text``; ``None`` when nothing matches."""
    wanted = normalized(text)
    answers = {normalized(keyword): answer for keyword, answer in config.keywords}
    if _is_number(wanted) and len(wanted) <= 2 and 1 <= int(wanted) <= len(config.menu):
        return Answer("menu_entry", answers[normalized(config.menu[int(wanted) - 1])])
    if wanted in answers:
        return Answer("keyword", answers[wanted])
    order = sorted(range(len(config.keywords)), key=lambda i: -len(normalized(config.keywords[i][0])))
    for i in order:
        if _contains(wanted, normalized(config.keywords[i][0])):
            return Answer("keyword", config.keywords[i][1])
    return None


def decide(config: AutoReply, text: str | None, now: int, menu_sent_ts: int, person_ts: int) -> Answer | None:
    """What the server answers a follower's message with, if anything (see the module's doc)."""
    if now - person_ts < QUIET_MS or text is None:
        return None
    found = match(config, text)
    if found is not None:
        return found
    if config.menu and now - menu_sent_ts >= QUIET_MS:
        return Answer("menu", menu_text(config))
    return None
