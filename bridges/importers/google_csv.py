"""Google Contacts and Outlook CSV exports.

Three header layouts are recognised:

* current Google CSV: ``First Name, Middle Name, Last Name, ..., Labels,
  E-mail 1 - Label, E-mail 1 - Value, Phone 1 - Label, Phone 1 - Value, ...``;
* legacy Google CSV: ``Name, Given Name, Additional Name, Family Name, ...,
  Group Membership, E-mail 1 - Type, E-mail 1 - Value, Phone 1 - Type, ...``;
* Outlook CSV (also offered by Google Contacts): ``First Name, ..., E-mail
  Address, ..., Mobile Phone, Home Phone, Business Phone, ..., Categories``.

Google packs several values into one cell separated by " ::: ". Group labels
(``Labels``, ``Group Membership``, ``Categories`` — "myContacts", "starred",
"* myContacts", "Restored from Samsung") are deliberately ignored: they are
the owner's private filing tags for their address book, not conversations
with members, so turning them into chat groups would create rooms nobody asked for.
"""

from __future__ import annotations

import logging
import re

from bridges.importers.csvtable import CsvRow, iter_rows, read_header
from bridges.importers.encoding import decode_text
from bridges.importers.errors import ImportFormatError
from bridges.importers.limits import DEFAULT_LIMITS, ImportLimits, check_line_lengths, check_size
from bridges.importers.model import Contact, ImportedExport
from bridges.importers.phones import PhoneList, check_region
from bridges.importers.records import (
    UniqueIds,
    WarningLog,
    clean_note,
    clean_text,
    dedupe,
    join_name,
    normalise_email,
    stable_id,
)

logger = logging.getLogger(__name__)

CURRENT = "current"
LEGACY = "legacy"
OUTLOOK = "outlook"

_LABELS = {
    CURRENT: "Google Contacts CSV",
    LEGACY: "Google Contacts CSV (legacy)",
    OUTLOOK: "Outlook CSV",
}
_MULTI_SEPARATOR = " ::: "
_NUMBERED_RE = re.compile(r"^(E-mail|Phone) (\d+) - (Value|Label|Type)$")
_NOT_PHONE_LABELS = ("fax", "pager")
_OUTLOOK_EMAILS = ("E-mail Address", "E-mail 2 Address", "E-mail 3 Address")


def recognise_header(names: list[str]) -> str | None:
    """Tell which CSV layout a header row belongs to.

    Args:
        names: Header cells.

    Returns:
        "current", "legacy", "outlook" or None.
    """
    header = set(names)
    numbered = any(_NUMBERED_RE.match(name) for name in names)
    if {"Given Name", "Family Name"} <= header and numbered:
        return LEGACY
    if {"First Name", "Last Name"} <= header and numbered:
        return CURRENT
    if {"First Name", "Last Name"} <= header and (
        "E-mail Address" in header or "Mobile Phone" in header
    ):
        return OUTLOOK
    return None


def _split(cell: str) -> list[str]:
    return [part.strip() for part in cell.split(_MULTI_SEPARATOR) if part.strip()]


def _numbered_columns(names: list[str], kind: str) -> list[tuple[str, str | None]]:
    """(value column, label column) pairs for "Phone N"/"E-mail N", by N."""
    found: dict[int, dict[str, str]] = {}
    for name in names:
        match = _NUMBERED_RE.match(name)
        if match and match.group(1) == kind:
            found.setdefault(int(match.group(2)), {})[match.group(3)] = name
    pairs = []
    for n in sorted(found):
        columns = found[n]
        if "Value" in columns:
            pairs.append((columns["Value"], columns.get("Label") or columns.get("Type")))
    return pairs


def _outlook_phone_columns(names: list[str]) -> list[str]:
    return [
        name for name in names
        if ("Phone" in name or name in ("Callback", "ISDN")) and "Fax" not in name
    ]


def _name(row: CsvRow, flavour: str) -> str:
    if flavour == LEGACY:
        full = clean_text(row.get("Name"))
        if full:
            return full
        return join_name(row.get("Given Name"), row.get("Family Name"), middle=row.get("Additional Name"))
    return join_name(row.get("First Name"), row.get("Last Name"), middle=row.get("Middle Name"))


def _organisation(row: CsvRow, flavour: str) -> str:
    column = {CURRENT: "Organization Name", LEGACY: "Organization 1 - Name", OUTLOOK: "Company"}[flavour]
    return clean_text(row.get(column))


def parse_google_csv(
    data: bytes, *, default_region: str = "CN", limits: ImportLimits = DEFAULT_LIMITS
) -> ImportedExport:
    """Parse a Google Contacts (current or legacy) or Outlook CSV export.

    Args:
        data: The file's bytes.
        default_region: Region for numbers written without a country code.
        limits: Size and row limits.

    Returns:
        The contacts; such files carry no groups.
    """
    region = check_region(default_region)
    check_size(data, limits)
    decoded = decode_text(data, allow_legacy=True)
    check_line_lengths(decoded.text, limits)
    flavour = recognise_header(read_header(decoded.text))
    if flavour is None:
        raise ImportFormatError(
            "The CSV header is not one of Google Contacts' or Outlook's. "
            "Export again from Google Contacts with \"Google CSV\" or \"Outlook CSV\".",
            line=1,
        )
    names, rows = iter_rows(decoded.text, limits)
    warnings = WarningLog()
    ids = UniqueIds()
    phone_columns: list[tuple[str, str | None]]
    email_columns: list[str]
    if flavour == OUTLOOK:
        phone_columns = [(name, None) for name in _outlook_phone_columns(names)]
        email_columns = [name for name in _OUTLOOK_EMAILS if name in names]
    else:
        phone_columns = _numbered_columns(names, "Phone")
        email_columns = [value for value, _ in _numbered_columns(names, "E-mail")]

    contacts: list[Contact] = []
    for row in rows:
        phones = PhoneList(region, warnings)
        for value_column, label_column in phone_columns:
            label = row.get(label_column).lower() if label_column else ""
            if any(word in label for word in _NOT_PHONE_LABELS):
                continue
            for raw in _split(row.get(value_column)):
                phones.add(raw, line=row.line, record=row.record)
        emails = dedupe(
            email
            for column in email_columns
            for email in map(normalise_email, _split(row.get(column)))
            if email is not None
        )
        name = (
            _name(row, flavour)
            or clean_text(row.get("Nickname"))
            or _organisation(row, flavour)
            or next(iter(emails), "")
            or next(iter(phones.phones), "")
            or next(iter(phones.raw_phones), "")
        )
        if not name:
            warnings.add("row has no name, phone number or e-mail address; skipped",
                         line=row.line, record=row.record)
            continue
        note = clean_note(row.get("Notes"))
        contacts.append(
            Contact(
                source_id=ids.claim(stable_id(name, *phones.phones, *emails)),
                name=name,
                phones=phones.phones,
                emails=emails,
                raw_phones=phones.raw_phones,
                note=note,
            )
        )
    logger.info("parsed %s: %d contacts", _LABELS[flavour], len(contacts))
    return ImportedExport(
        format="google_csv",
        format_label=_LABELS[flavour],
        contacts=tuple(contacts),
        groups=(),
        warnings=warnings.freeze(),
        encoding=decoded.encoding,
    )
