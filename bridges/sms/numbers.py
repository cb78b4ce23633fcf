"""Phone numbers for SMS: parsed, validated and classified by phonenumbers (libphonenumber's data).

Only numbers that can receive a text from a person are accepted: mobile numbers (or numbers
whose type the data cannot tell apart from mobile). Premium-rate, toll-free, shared-cost,
short codes and emergency numbers are refused with a sentence that says so.
"""

from __future__ import annotations

import re

import attrs
import phonenumbers
from phonenumbers import NumberParseException, PhoneNumberType, ShortNumberCost, shortnumberinfo

# Languages of the SMS templates; a number's country chooses one.
ZH_REGIONS = frozenset({"CN", "TW", "HK", "MO"})

_TEXTABLE = frozenset({PhoneNumberType.MOBILE, PhoneNumberType.FIXED_LINE_OR_MOBILE})
_TYPE_NAMES = {
    PhoneNumberType.FIXED_LINE: "a landline",
    PhoneNumberType.TOLL_FREE: "a toll-free number",
    PhoneNumberType.PREMIUM_RATE: "a premium-rate number",
    PhoneNumberType.SHARED_COST: "a shared-cost number",
    PhoneNumberType.VOIP: "an internet (VoIP) number",
    PhoneNumberType.PERSONAL_NUMBER: "a personal forwarding number",
    PhoneNumberType.PAGER: "a pager number",
    PhoneNumberType.UAN: "a company switchboard number",
    PhoneNumberType.VOICEMAIL: "a voicemail number",
}
_DIGITS_RE = re.compile(r"^[1-9][0-9]{6,14}$")


class InvalidNumber(ValueError):
    """``str(e)`` is one plain sentence for the user. ``reason`` is ``invalid_number`` or ``not_mobile``."""

    def __init__(self, reason: str, message: str):
        super().__init__(message)
        self.reason = reason


@attrs.frozen
class PhoneNumber:
    e164: str  # "+8613812345678"
    region: str  # "CN"; "001" style codes are not accepted

    @property
    def digits(self) -> str:
        """E.164 without ``+``: Synapse's msisdn form, and the SMS ghosts' localpart suffix."""
        return self.e164[1:]

    @property
    def pretty(self) -> str:
        """International format for people: ``+86 138 1234 5678``."""
        return phonenumbers.format_number(phonenumbers.parse(self.e164), phonenumbers.PhoneNumberFormat.INTERNATIONAL)

    @property
    def language(self) -> str:
        """The template language for this number: ``zh-CN`` for Chinese-speaking regions, else ``en``."""
        return "zh-CN" if self.region in ZH_REGIONS else "en"


def parse_phone(text: str, default_region: str) -> PhoneNumber:
    """A number as people type it (``+86 138-1234-5678``, ``013812345678`` with region CN,
    ``8613812345678`` as msisdn digits) -> :class:`PhoneNumber`; raises :class:`InvalidNumber`.

    Bare digits of international length are tried as E.164 without ``+`` when they do not make a
    valid number in ``default_region``.
    """
    raw = text.strip()
    if not raw:
        raise InvalidNumber("invalid_number", "That is not a phone number: it is empty.")
    candidates = [raw]
    if not raw.startswith("+") and _DIGITS_RE.match(raw):
        candidates.append("+" + raw)
    for candidate in candidates:
        try:
            parsed = phonenumbers.parse(candidate, default_region)
        except NumberParseException:
            continue
        if phonenumbers.is_valid_number(parsed):
            region = phonenumbers.region_code_for_number(parsed)
            if not region or region == "001":
                break
            return PhoneNumber(phonenumbers.format_number(parsed, phonenumbers.PhoneNumberFormat.E164), region)
    _refuse_short_code(raw, default_region)
    raise InvalidNumber(
        "invalid_number",
        f"“{raw}” is not a valid phone number. Write it with its country code, like +86 138 1234 5678.",
    )


def require_mobile(number: PhoneNumber) -> None:
    """Raise :class:`InvalidNumber` unless ``number`` can receive an SMS from a person."""
    kind = phonenumbers.number_type(phonenumbers.parse(number.e164))
    if kind in _TEXTABLE:
        return
    what = _TYPE_NAMES.get(kind, "not a mobile number")
    raise InvalidNumber("not_mobile", f"{number.pretty} is {what}; Wangxin sends SMS to mobile numbers only.")


def parse_mobile(text: str, default_region: str) -> PhoneNumber:
    number = parse_phone(text, default_region)
    require_mobile(number)
    return number


def _refuse_short_code(raw: str, region: str) -> None:
    try:
        parsed = phonenumbers.parse(raw, region)
    except NumberParseException:
        return
    if shortnumberinfo.is_valid_short_number(parsed):
        cost = shortnumberinfo.expected_cost(parsed)
        what = "a premium-rate short code" if cost == ShortNumberCost.PREMIUM_RATE else "a short code"
        if shortnumberinfo.is_emergency_number(raw, region):
            what = "an emergency number"
        raise InvalidNumber("not_mobile", f"“{raw}” is {what}; Wangxin sends SMS to mobile numbers only.")
