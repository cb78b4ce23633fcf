"""Recognising which export a file is and handing it to the right parser.

Content decides first: ``BEGIN:VCARD``, JSON keys, CSV header names,
WhatsApp timestamp lines. The file name is only consulted when the content
is inconclusive, so that a damaged ``.vcf`` gets the vCard parser's precise
error instead of a generic one.
"""

from __future__ import annotations

import logging
import re
from pathlib import PurePath
from typing import Any

from bridges.importers.csvtable import read_header
from bridges.importers.encoding import binary_description, decode_text, sniff_text
from bridges.importers.errors import ImportFormatError
from bridges.importers.google_csv import parse_google_csv, recognise_header
from bridges.importers.limits import DEFAULT_LIMITS, ImportLimits, check_size, load_json
from bridges.importers.model import ImportedExport
from bridges.importers.phones import check_region
from bridges.importers.telegram import looks_like_telegram, telegram_from_document
from bridges.importers.vcard import parse_vcard
from bridges.importers.wechat import (
    is_contacts_csv_header,
    looks_like_wechat_json,
    parse_wechat_contacts_csv,
    wechat_from_document,
)
from bridges.importers.whatsapp import group_name_from_filename, is_message_line, parse_whatsapp

logger = logging.getLogger(__name__)

SUPPORTED = (
    "vCard (.vcf), Google Contacts or Outlook CSV, Telegram Desktop JSON (result.json), "
    "WeChat contacts from WeChatMsg/MemoTrace (contacts.csv) or PyWxDump (JSON), "
    "and WhatsApp chat exports (.txt)"
)
_VCARD_RE = re.compile(r"(?:^|[\r\n])[ \t]*BEGIN:VCARD[ \t]*(?:[\r\n]|$)", re.IGNORECASE)
# An object, or an array of objects: exports never have a top-level array of
# scalars, and "[8/15/23, 9:12:33 AM]" is an iOS WhatsApp line.
_JSON_START_RE = re.compile(r"^[\ufeff\s]*(?:\{|\[\s*[\[{\]])")
_HTML_RE = re.compile(r"^\s*<(?:!DOCTYPE html|html)", re.IGNORECASE)
_TELEGRAM_HTML_HINT = (
    " This looks like a Telegram HTML export; in Telegram Desktop export again and choose "
    "\"Machine-readable JSON\" as the format."
)


def _unsupported(hint: str = "") -> ImportFormatError:
    return ImportFormatError(f"This file is not a format Wangxin can import. Supported: {SUPPORTED}.{hint}")


def _first_line(text: str) -> str:
    for line in text.splitlines():
        if line.strip(" \t\ufeff"):
            return line
    return ""


def _sniff(head: str) -> str | None:
    """Format name from content alone; "json" when the document must be loaded to tell."""
    if _JSON_START_RE.match(head):
        return "json"
    if _VCARD_RE.search(head):
        return "vcard"
    header = read_header(head)
    if recognise_header(header):
        return "google_csv"
    if is_contacts_csv_header(header):
        return "wechat_contacts_csv"
    if is_message_line(_first_line(head)):
        return "whatsapp_txt"
    return None


def _from_filename(filename: str | None) -> str | None:
    if not filename:
        return None
    suffix = PurePath(filename.replace("\\", "/")).suffix.lower()
    if suffix in (".vcf", ".vcard"):
        return "vcard"
    if suffix == ".json":
        return "json"
    if suffix == ".txt" and group_name_from_filename(filename):
        return "whatsapp_txt"
    return None


def _json_export(data: bytes, region: str, limits: ImportLimits) -> ImportedExport:
    decoded = decode_text(data, allow_legacy=False)
    doc: Any = load_json(decoded.text, limits)
    if looks_like_telegram(doc):
        return telegram_from_document(doc, encoding=decoded.encoding, default_region=region, limits=limits)
    if looks_like_wechat_json(doc):
        return wechat_from_document(doc, encoding=decoded.encoding, default_region=region, limits=limits)
    raise _unsupported(" The JSON is neither a Telegram Desktop export nor a WeChat contact dump.")


def detect_format(data: bytes, filename: str | None = None) -> str | None:
    """Guess an export's format without parsing all of it.

    Args:
        data: The file's bytes.
        filename: Original file name, consulted only when the content is inconclusive.

    Returns:
        A format name from ``FORMATS``, "json" when only loading the document
        can tell Telegram from WeChat, or None when nothing matched.
    """
    return _sniff(sniff_text(data)) or _from_filename(filename)


def parse_export(
    data: bytes,
    filename: str | None = None,
    *,
    default_region: str = "CN",
    limits: ImportLimits = DEFAULT_LIMITS,
) -> ImportedExport:
    """Detect an export's format and parse it.

    Args:
        data: The file's bytes.
        filename: Original file name (e.g. "WhatsApp Chat with Family.txt"); used
            second to content for detection and for a WhatsApp group's name.
        default_region: Region for numbers written without a country code.
        limits: Size and shape limits.

    Returns:
        The parsed export.
    """
    region = check_region(default_region)
    check_size(data, limits)
    description = binary_description(data)
    if description is not None:
        raise ImportFormatError(
            f"This file is {description}, not an export Wangxin can read. Supported: {SUPPORTED}."
        )
    head = sniff_text(data)
    if not head.strip(" \t\r\n\ufeff\x00"):
        raise ImportFormatError("The file is empty. Export your contacts or chat again and choose the new file.")
    kind = _sniff(head) or _from_filename(filename)
    logger.debug("detected %s for %r", kind, filename)
    if kind == "json":
        return _json_export(data, region, limits)
    if kind == "vcard":
        return parse_vcard(data, default_region=region, limits=limits)
    if kind == "google_csv":
        return parse_google_csv(data, default_region=region, limits=limits)
    if kind == "wechat_contacts_csv":
        return parse_wechat_contacts_csv(data, default_region=region, limits=limits)
    if kind == "whatsapp_txt":
        return parse_whatsapp(data, filename, default_region=region, limits=limits)
    if _HTML_RE.match(head) and "Exported Data" in head:
        raise _unsupported(_TELEGRAM_HTML_HINT)
    raise _unsupported()
