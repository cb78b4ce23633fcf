"""Turning export bytes into text.

Order of checks: byte-order marks (UTF-8, UTF-16, UTF-32); BOM-less UTF-16
recognised by its NUL pattern; binary content (NUL bytes, known container
signatures); strict UTF-8; then, only where the caller allows legacy
encodings (vCard and CSV, which desktop tools still write in the Windows
code page), GB18030 for Chinese Windows exports or cp1252/Latin-1 for
Western ones.
"""

from __future__ import annotations

import codecs
import logging
import re

import attrs

from bridges.importers.errors import ImportFormatError

logger = logging.getLogger(__name__)

_BOMS: tuple[tuple[bytes, str], ...] = (
    # UTF-32 before UTF-16: the UTF-32-LE mark starts with the UTF-16-LE one.
    (codecs.BOM_UTF32_LE, "utf-32-le"),
    (codecs.BOM_UTF32_BE, "utf-32-be"),
    (codecs.BOM_UTF8, "utf-8-sig"),
    (codecs.BOM_UTF16_LE, "utf-16-le"),
    (codecs.BOM_UTF16_BE, "utf-16-be"),
)

_SIGNATURES: tuple[tuple[bytes, str], ...] = (
    (b"PK\x03\x04", "a ZIP archive; unzip it and import the .txt, .json, .vcf or .csv file inside"),
    (b"SQLite format 3\x00", "an SQLite database, not an export; use the messenger's export function"),
    (b"%PDF-", "a PDF document"),
    (b"\x1f\x8b", "a gzip archive; unpack it first"),
    (b"\x89PNG", "an image"),
    (b"\xff\xd8\xff", "an image"),
    (b"Rar!", "a RAR archive; unpack it first"),
    (b"7z\xbc\xaf", "a 7-Zip archive; unpack it first"),
)

_SAMPLE = 4096
_CONTROL_RE = re.compile("[\x00-\x08\x0e-\x1a\x1c-\x1f\x7f-\x9f]")
_HIGH_RUN_RE = re.compile(rb"[\x80-\xff]+")


@attrs.frozen
class DecodedText:
    """Decoded file content and the codec that produced it."""

    text: str
    encoding: str


def bom_encoding(data: bytes) -> tuple[str, int] | None:
    """Find a byte-order mark.

    Args:
        data: Raw file bytes.

    Returns:
        (codec name, BOM length) or None when there is no BOM.
    """
    for bom, name in _BOMS:
        if data.startswith(bom):
            return name, len(bom)
    return None


def utf16_without_bom(data: bytes) -> str | None:
    """Recognise BOM-less UTF-16 from where the NUL bytes fall.

    Text that is mostly ASCII has a NUL in every second byte in UTF-16; which
    half of each pair holds it gives the byte order.

    Args:
        data: Raw file bytes.

    Returns:
        "utf-16-le", "utf-16-be" or None.
    """
    sample = data[: _SAMPLE - _SAMPLE % 2]
    pairs = len(sample) // 2
    if pairs < 2:
        return None
    even = sample[0::2].count(0)
    odd = sample[1::2].count(0)
    if odd >= pairs * 0.4 and even <= pairs * 0.05:
        return "utf-16-le"
    if even >= pairs * 0.4 and odd <= pairs * 0.05:
        return "utf-16-be"
    return None


def binary_description(data: bytes) -> str | None:
    """Say what a non-text file is, if it is one.

    Args:
        data: Raw file bytes.

    Returns:
        A phrase such as "a ZIP archive; ..." or "binary data", or None for text.
    """
    for signature, description in _SIGNATURES:
        if data.startswith(signature):
            return description
    if bom_encoding(data) or utf16_without_bom(data):
        return None
    if b"\x00" in data:
        return "binary data (it contains NUL bytes)"
    return None


def _raise_binary(description: str) -> None:
    raise ImportFormatError(
        f"This file is {description}, not a text export Wangxin can read. "
        "Choose the exported .vcf, .csv, .json or .txt file."
    )


def _first_bad_line(data: bytes, exc: UnicodeDecodeError) -> int:
    return data.count(b"\n", 0, exc.start) + 1


def _guess_legacy(data: bytes) -> str:
    """Pick GB18030 or a Western code page for bytes that are not UTF-8.

    GB2312/GBK text comes in runs of non-ASCII bytes of even length (lead and
    trail byte both high for common characters) and decodes to CJK; Western
    text has mostly single accented bytes between ASCII letters, which GB18030
    would happily pair with the next ASCII letter into nonsense.
    """
    runs = _HIGH_RUN_RE.findall(data)
    if runs:
        even_share = sum(1 for run in runs if len(run) % 2 == 0) / len(runs)
        if even_share >= 0.9:
            try:
                decoded = data.decode("gb18030")
            except UnicodeDecodeError:
                decoded = ""
            wide = [ch for ch in decoded if ord(ch) > 0x7F]
            cjk = sum(1 for ch in wide if "\u3000" <= ch <= "\u9fff" or "\uff00" <= ch <= "\uffef")
            if wide and cjk / len(wide) >= 0.8:
                return "gb18030"
    try:
        data.decode("cp1252")
    except UnicodeDecodeError:
        return "latin-1"
    return "cp1252"


def guess_legacy_encoding(data: bytes) -> str:
    """Public wrapper of the legacy-encoding guess, for per-value decoding (vCard).

    Args:
        data: Bytes that are known not to be UTF-8.

    Returns:
        "gb18030", "cp1252" or "latin-1".
    """
    return _guess_legacy(data)


def _check_controls(text: str) -> None:
    # Text exports carry tabs and newlines, not other control characters; many
    # of them means binary data that happened to decode.
    controls = len(_CONTROL_RE.findall(text[:65536]))
    if controls > max(8, len(text[:65536]) // 100):
        _raise_binary("binary data (it is full of control characters)")


def decode_text(data: bytes, *, allow_legacy: bool) -> DecodedText:
    """Decode an export file strictly.

    Args:
        data: Raw file bytes (size already checked).
        allow_legacy: Also try GB18030 and cp1252/Latin-1 when the bytes are
            not UTF-8 (for vCard and CSV); JSON and WhatsApp text must be Unicode.

    Returns:
        The text without BOM and the codec name used.
    """
    found = bom_encoding(data)
    if found is not None:
        codec, skip = found
        body, label = data[skip:], ("utf-8-sig" if codec == "utf-8-sig" else codec)
        codec = "utf-8" if codec == "utf-8-sig" else codec
    else:
        codec = utf16_without_bom(data) or ""
        body, label = data, codec
    if codec and codec != "utf-8":
        try:
            text = body.decode(codec)
        except UnicodeDecodeError:
            raise ImportFormatError(
                f"The file starts like {codec.upper()} text but is not valid {codec.upper()}; "
                "it is damaged or truncated. Export it again."
            ) from None
        _check_controls(text)
        return DecodedText(text.lstrip("\ufeff"), label)

    description = binary_description(body)
    if description is not None:
        _raise_binary(description)
    try:
        text = body.decode("utf-8")
        encoding = label or "utf-8"
    except UnicodeDecodeError as exc:
        if not allow_legacy:
            raise ImportFormatError(
                f"The file is not valid UTF-8 text (byte 0x{body[exc.start]:02x} cannot be read). "
                "Export it again, or save it as UTF-8.",
                line=_first_bad_line(body, exc),
            ) from None
        encoding = _guess_legacy(body)
        text = body.decode(encoding)
        logger.debug("decoded with legacy encoding %s", encoding)
    _check_controls(text)
    return DecodedText(text, encoding)


def sniff_text(data: bytes, limit: int = 65536) -> str:
    """Decode the start of a file leniently, for format detection only.

    Args:
        data: Raw file bytes.
        limit: How many bytes to look at.

    Returns:
        Best-effort text of the first ``limit`` bytes (undecodable bytes replaced).
    """
    head = data[:limit]
    found = bom_encoding(head)
    if found is not None:
        codec, skip = found
        return head[skip:].decode("utf-8" if codec == "utf-8-sig" else codec, errors="replace")
    utf16 = utf16_without_bom(head)
    if utf16:
        return head.decode(utf16, errors="replace")
    try:
        return head.decode("utf-8")
    except UnicodeDecodeError as exc:
        if exc.start >= len(head) - 3:
            # The cut fell inside a multi-byte character.
            return head[: exc.start].decode("utf-8", errors="replace")
        return head.decode(_guess_legacy(head), errors="replace")
