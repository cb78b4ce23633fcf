"""Phone number normalisation to E.164 with the phonenumbers library.

Which numbers count as usable: ``is_valid_number`` (the number falls in a
range the numbering plan has allocated) rather than ``is_possible_number``
(only the length fits). Address-book numbers are typed by people and read
with a default region, so a length check alone lets misreads through: a
Norwegian "91551000" read with region CN is a *possible* Chinese number
+8691551000 that belongs to nobody, and Wangxin would offer to invite or match
it. A number that fails is not lost: it stays in ``raw_phones`` for the
preview.

The one exception, ``from_account=True``, is for numbers a messenger itself
shows as an account identifier with an explicit country code (WhatsApp's
sender "+44 7700 900123", Telegram's ``phone_number``). Those are registered
numbers by construction, so a plausible length is enough and a range that our
copy of the metadata does not know yet is not held against them. Numbers that
are only dialable locally (no area code) are still refused.
"""

from __future__ import annotations

import re

import phonenumbers

from bridges.importers.records import WarningLog, clean_text, dedupe

_EXPLICIT_COUNTRY = {
    phonenumbers.CountryCodeSource.FROM_NUMBER_WITH_PLUS_SIGN,
    phonenumbers.CountryCodeSource.FROM_NUMBER_WITH_IDD,
}
_EXTENSION_RE = re.compile(r"[;,].*$")
_MAX_INPUT = 64


def check_region(default_region: str) -> str:
    """Validate a default region code.

    Args:
        default_region: ISO 3166 alpha-2 code, e.g. "CN".

    Returns:
        The upper-cased code.
    """
    region = default_region.upper() if isinstance(default_region, str) else ""
    if region not in phonenumbers.SUPPORTED_REGIONS:
        raise ValueError(f"unknown default_region {default_region!r}")
    return region


def normalise_phone(raw: str, default_region: str = "CN", *, from_account: bool = False) -> str | None:
    """Turn a phone number as written into E.164.

    Args:
        raw: The number as found, e.g. "138 0013 8000", "tel:+1-418-656-9254;ext=102".
        default_region: Region assumed for numbers without a country code.
        from_account: The number is a messenger account id with an explicit
            country code; accept it when its length is possible (see module docstring).

    Returns:
        "+8613800138000"-style E.164, or None when the number is not usable.
    """
    text = clean_text(raw)
    if text.lower().startswith("tel:"):
        text = text[4:]
    text = _EXTENSION_RE.sub("", text).strip()
    if not text or len(text) > _MAX_INPUT or not any(ch.isdigit() for ch in text):
        return None
    try:
        number = phonenumbers.parse(text, default_region, keep_raw_input=True)
    except phonenumbers.NumberParseException:
        return None
    if phonenumbers.is_valid_number(number):
        return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)
    if (
        from_account
        and number.country_code_source in _EXPLICIT_COUNTRY
        and phonenumbers.is_possible_number_with_reason(number)
        == phonenumbers.ValidationResult.IS_POSSIBLE
    ):
        return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)
    return None


class PhoneList:
    """Collects one record's numbers: usable ones as E.164, the rest as raw text with a warning."""

    def __init__(self, default_region: str, warnings: WarningLog, *, from_account: bool = False) -> None:
        self._region = default_region
        self._warnings = warnings
        self._from_account = from_account
        self._phones: list[str] = []
        self._raw: list[str] = []

    def add(self, raw: object, *, line: int | None = None, record: int | None = None) -> None:
        """Add one number as found in the source.

        Args:
            raw: The number text; non-strings and blanks are ignored.
            line: Line for the warning, if any.
            record: Record for the warning, if any.

        Returns:
            None.
        """
        text = clean_text(raw)
        if not text:
            return
        phone = normalise_phone(text, self._region, from_account=self._from_account)
        if phone is not None:
            self._phones.append(phone)
        elif text not in self._raw:
            self._raw.append(text)
            self._warnings.add(
                f"phone number '{text[:80]}' is not valid; kept as text", line=line, record=record
            )

    @property
    def phones(self) -> tuple[str, ...]:
        """Normalised numbers, deduplicated, in order."""
        return dedupe(self._phones)

    @property
    def raw_phones(self) -> tuple[str, ...]:
        """Numbers that could not be normalised, in order."""
        return tuple(self._raw)
