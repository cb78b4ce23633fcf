"""What a phone shows as the sender of an SMS, made from a user's display name (pure).

A display name is chosen by the user, and an SMS goes out under the operator's sender id, so an
unfiltered name could make Wangxin deliver a phishing text: ``【中国工商银行】您的账户异常，请立即
登录 http://evil.example``. :func:`sender_label` keeps a name a name:

1. NFKC normalisation (fullwidth letters, digits, brackets and dots become their plain forms);
2. control, format (zero-width, bidi), private-use and unassigned characters removed, line
   breaks become spaces, piled-up combining marks trimmed;
3. bracketed parts removed with their content, of every kind (【】 〔〕 [] () 《》 「」 …, any
   Unicode opening/closing punctuation), and stray brackets;
4. links and anything shaped like a domain removed (``http://…``, ``www.…``, ``evil.com``,
   ``evil。com``), then ``. 。 : ： @ / \\`` themselves, so no domain can be rebuilt;
5. whitespace collapsed, punctuation trimmed from the ends, cut to :data:`MAX_NAME_CHARS`;
6. if no letter or digit is left: the user id's localpart treated the same way, else
   "a Wangxin user".

Every SMS template starts with :data:`SIGNATURES` (``【旺信】`` / ``[Wangxin]``), which no name
can contain or imitate, since names lose their brackets.
"""

from __future__ import annotations

import re
import unicodedata

MAX_NAME_CHARS = 20
SIGNATURES = {"en": "[Wangxin]", "zh-CN": "【旺信】"}
FALLBACK_NAMES = {"en": "a Wangxin user", "zh-CN": "一位旺信用户"}
MAX_MARKS = 2  # combining marks kept on one character (Zalgo text piles up hundreds)

# Characters that reorder text on screen. Removed from message text too: the rest of a text's
# format characters (zero-width joiners in emoji sequences) are harmless there.
_BIDI = re.compile("[\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069]")
_DROPPED_CATEGORIES = frozenset({"Cc", "Cf", "Co", "Cs", "Cn", "Zl", "Zp"})


def _brackets() -> tuple[str, str]:
    """Every opening and closing bracket of the BMP (categories Ps, Pe), and ``<``/``>``."""
    opening, closing = ["<"], [">"]
    for code in range(0x10000):
        category = unicodedata.category(chr(code))
        if category == "Ps":
            opening.append(chr(code))
        elif category == "Pe":
            closing.append(chr(code))
    return "".join(opening), "".join(closing)


_OPEN, _CLOSE = _brackets()
_O, _C = re.escape(_OPEN), re.escape(_CLOSE)
_INNERMOST = re.compile(f"[{_O}][^{_O}{_C}]*[{_C}]")
_STRAY_BRACKET = re.compile(f"[{_O}{_C}]")
_DOT = ".\u3002\uff0e\uff61"  # . 。 ． ｡
_URL = re.compile(r"(?i)\b[a-z][a-z0-9+.\-]*://\S*|\bwww\d{0,3}[" + _DOT + r"]\S*")
_DOMAIN = re.compile(r"[\w\-]+(?:\s*[" + _DOT + r"]\s*[\w\-]+)*[" + _DOT + r"][\w\-]*[^\W\d_][\w\-]*")
_SEPARATORS = re.compile(r"[" + _DOT + r":：@/\\|]")
_SPACES = re.compile(r"\s+")


def sender_label(display_name: str | None, user_id: str, language: str) -> str:
    """The name an SMS gives for ``user_id`` (display name ``display_name``), safe to send."""
    label = _clean_name(display_name or "")
    if not label:
        label = _clean_name(user_id[1:].split(":", 1)[0])
    return label or FALLBACK_NAMES.get(language, FALLBACK_NAMES["en"])


def clean_text(text: str) -> str:
    """A message's text for an SMS: without the characters that reorder what the phone shows."""
    return _BIDI.sub("", text)


def _clean_name(name: str) -> str:
    text = unicodedata.normalize("NFKC", name)
    text = _drop_invisible(text)
    previous = None
    while previous != text:  # nested brackets: innermost first
        previous, text = text, _INNERMOST.sub(" ", text)
    text = _STRAY_BRACKET.sub(" ", text)
    text = _URL.sub(" ", text)
    text = _DOMAIN.sub(" ", text)
    text = _SEPARATORS.sub(" ", text)
    text = _SPACES.sub(" ", text)
    text = _trim_ends(text)
    if not any(unicodedata.category(c)[0] in "LN" for c in text):
        return ""
    if len(text) > MAX_NAME_CHARS:
        text = _trim_ends(text[:MAX_NAME_CHARS - 1]) + "…"
    return text


def _drop_invisible(text: str) -> str:
    kept: list[str] = []
    marks = 0
    for c in text:
        category = unicodedata.category(c)
        if c in "\t\n\r\v\f\x1c\x1d\x1e\x1f\x85\u2028\u2029":
            kept.append(" ")
        elif category in _DROPPED_CATEGORIES:
            continue
        elif category in ("Mn", "Me"):
            marks += 1
            if marks <= MAX_MARKS:
                kept.append(c)
            continue
        else:
            kept.append(c)
        marks = 0
    return "".join(kept)


def _trim_ends(text: str) -> str:
    start, end = 0, len(text)
    while start < end and _is_trimmed(text[start]):
        start += 1
    while end > start and _is_trimmed(text[end - 1]):
        end -= 1
    return text[start:end]


def _is_trimmed(c: str) -> bool:
    """Spaces and punctuation, what removals leave at the ends (``，验证`` of ``…登录，验证``)."""
    return unicodedata.category(c)[0] in "ZP"

