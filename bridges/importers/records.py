"""Helpers the parsers share for turning source records into model objects."""

from __future__ import annotations

import hashlib
import logging
import re
import unicodedata
from collections.abc import Iterable

from bridges.importers.errors import describe_location

logger = logging.getLogger(__name__)

# Invisible marks exporters sprinkle into names (WhatsApp's U+200E, BOMs, bidi
# embeddings); they make equal names compare unequal.
_INVISIBLE_RE = re.compile("[\u200b-\u200f\u202a-\u202e\u2066-\u2069\ufeff]")
_SPACES_RE = re.compile(r"\s+")


class WarningLog:
    """Collects human-readable warnings, capped so a bad file cannot flood memory."""

    def __init__(self, cap: int = 500) -> None:
        self._messages: list[str] = []
        self._dropped = 0
        self._cap = cap

    def add(self, message: str, *, line: int | None = None, record: int | None = None) -> None:
        """Record one warning.

        Args:
            message: What is wrong, as a sentence fragment.
            line: 1-based line number, if the format has lines.
            record: 1-based record number, if known.

        Returns:
            None.
        """
        where = describe_location(line, record)
        text = f"{where}: {message}" if where else message
        logger.debug("import warning: %s", text)
        if len(self._messages) < self._cap:
            self._messages.append(text)
        else:
            self._dropped += 1

    def freeze(self) -> tuple[str, ...]:
        """Return the warnings, with a final note if some were dropped.

        Returns:
            The collected warnings in order.
        """
        if self._dropped:
            return (*self._messages, f"... and {self._dropped} more warnings")
        return tuple(self._messages)


def clean_text(value: object) -> str:
    """Normalise a display string: str only, NFC, no invisible marks, single spaces.

    Args:
        value: Anything read from the source; non-strings become "".

    Returns:
        The cleaned string, possibly empty.
    """
    if not isinstance(value, str):
        return ""
    text = unicodedata.normalize("NFC", _INVISIBLE_RE.sub("", value))
    return _SPACES_RE.sub(" ", text).strip()


def clean_note(value: object) -> str | None:
    """Normalise a multi-line note: like ``clean_text`` but keeping line breaks.

    Args:
        value: Anything read from the source; non-strings give None.

    Returns:
        The note, or None when empty.
    """
    if not isinstance(value, str):
        return None
    text = unicodedata.normalize("NFC", _INVISIBLE_RE.sub("", value))
    lines = [_SPACES_RE.sub(" ", line).strip() for line in re.split(r"\r\n|\r|\n", text)]
    return "\n".join(lines).strip() or None


def _is_cjk(text: str) -> bool:
    return bool(text) and all(
        "\u2e80" <= ch <= "\u9fff" or "\uac00" <= ch <= "\ud7af" or "\uf900" <= ch <= "\ufaff"
        or "\U00020000" <= ch <= "\U0003134f"
        for ch in text.replace(" ", "")
    )


def join_name(given: str, family: str, *, middle: str = "") -> str:
    """Build a display name from parts, family-first without spaces for CJK names.

    Args:
        given: Given (first) name.
        family: Family (last) name.
        middle: Middle/additional names.

    Returns:
        "Given Middle Family", or "FamilyGiven" when both parts are CJK (张 + 三 → 张三).
    """
    given, family, middle = clean_text(given), clean_text(family), clean_text(middle)
    if given and family and not middle and _is_cjk(given) and _is_cjk(family):
        return family + given
    return " ".join(part for part in (given, middle, family) if part)


def stable_id(*parts: str) -> str:
    """Derive a deterministic id for a record the source gives no id for.

    Args:
        parts: The identifying strings (name, numbers, ...), in a fixed order.

    Returns:
        ``"h:"`` followed by 16 hex digits of a SHA-256 over the parts.
    """
    joined = "\x1f".join(parts).encode("utf-8", "surrogatepass")
    return "h:" + hashlib.sha256(joined).hexdigest()[:16]


class UniqueIds:
    """Hands out ids, suffixing ``#2``, ``#3``... when a source repeats one."""

    def __init__(self) -> None:
        self._taken: set[str] = set()
        # The last suffix handed out per wanted id: a file repeating one id a million times
        # must not rescan #2..#n for every repeat (quadratic; hours of CPU).
        self._last_suffix: dict[str, int] = {}

    def claim(self, wanted: str) -> str:
        """Reserve ``wanted`` or the first free suffixed variant.

        Args:
            wanted: The id the record would like.

        Returns:
            An id not handed out before.
        """
        candidate, n = wanted, self._last_suffix.get(wanted, 1)
        if n > 1:
            candidate = f"{wanted}#{n}"
        while candidate in self._taken:
            n += 1
            candidate = f"{wanted}#{n}"
        self._last_suffix[wanted] = n
        self._taken.add(candidate)
        return candidate


def dedupe(values: Iterable[str]) -> tuple[str, ...]:
    """Remove repeats while keeping first-seen order.

    Args:
        values: Strings in source order.

    Returns:
        The distinct strings in order.
    """
    return tuple(dict.fromkeys(values))


def normalise_email(raw: object) -> str | None:
    """Lower-case and trim an e-mail address; reject strings that are not one.

    Args:
        raw: The address as found, possibly with a ``mailto:`` prefix.

    Returns:
        The address, or None if it has no ``@`` or contains spaces.
    """
    text = clean_text(raw)
    if text.lower().startswith("mailto:"):
        text = text[7:]
    text = text.strip().lower()
    if "@" not in text or " " in text or len(text) > 320:
        return None
    return text
