"""How many SMS segments a text takes, as the network counts them (3GPP TS 23.038 / 23.040).

A text written only in the GSM 7-bit alphabet fits 160 characters in one SMS, and 153 per part
when it is split (the rest of each part carries the concatenation header). Characters of the
alphabet's extension table (``{}[]~|\\^€`` and form feed) take two septets, and the pair is never
split across parts. Any other character switches the whole text to UCS-2: 70 characters in one
SMS, 67 per part; characters outside the Basic Multilingual Plane (most emoji) take two UTF-16
units, also never split.
"""

from __future__ import annotations

from typing import Literal

import attrs

GSM7_BASIC = frozenset(
    "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?"
    "¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà"
)
GSM7_EXTENSION = frozenset("\f^{}\\[~]|€")

Encoding = Literal["gsm7", "ucs2"]
# (units in a single SMS, units per part of a split SMS)
CAPACITY: dict[Encoding, tuple[int, int]] = {"gsm7": (160, 153), "ucs2": (70, 67)}


@attrs.frozen
class SegmentCount:
    encoding: Encoding
    units: int  # septets (gsm7) or UTF-16 code units (ucs2)
    segments: int


def is_gsm7(text: str) -> bool:
    return all(c in GSM7_BASIC or c in GSM7_EXTENSION for c in text)


def count_segments(text: str) -> SegmentCount:
    """The encoding, size and number of SMS parts of ``text`` (0 parts for an empty text)."""
    if is_gsm7(text):
        encoding: Encoding = "gsm7"
        costs = [2 if c in GSM7_EXTENSION else 1 for c in text]
    else:
        encoding = "ucs2"
        costs = [2 if ord(c) > 0xFFFF else 1 for c in text]
    single, part = CAPACITY[encoding]
    units = sum(costs)
    if units <= single:
        return SegmentCount(encoding, units, 1 if units else 0)
    segments, used = 1, 0
    for cost in costs:
        if used + cost > part:  # a two-unit character moves whole to the next part
            segments += 1
            used = 0
        used += cost
    return SegmentCount(encoding, units, segments)


def max_characters(max_segments: int, encoding: Encoding) -> int:
    """The longest text of single-unit characters that fits ``max_segments`` parts."""
    single, part = CAPACITY[encoding]
    return single if max_segments == 1 else part * max_segments
