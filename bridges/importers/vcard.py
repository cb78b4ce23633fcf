"""vCard 2.1, 3.0 and 4.0 address books, read with vobject.

What vobject 0.9.9 does with encodings, and what this module adds around it:

* It QP-decodes a ``QUOTED-PRINTABLE`` value and then decodes the bytes with
  the ``CHARSET`` parameter, or UTF-8 when there is none. Outlook writes QP
  in the Windows code page without ``CHARSET`` (``Krak=F3w``), which makes
  vobject raise ``UnicodeDecodeError`` out of ``readComponents`` and lose the
  whole file; an unknown charset name raises ``LookupError`` the same way.
* It ignores ``CHARSET`` on values that are not QP: raw Shift_JIS or
  ISO-8859-1 bytes come out as whatever the caller decoded the file as.
* QP soft line breaks are only joined with ``allowQP=True``; by default the
  continuation line is taken for a new, broken property.
* It reads every card as 3.0 and, as soon as a property is added to a card
  (``transform=False`` does not prevent it), splits single-valued text (FN,
  NOTE, TEL, EMAIL) on unescaped commas and keeps only the first piece —
  wrong for 2.1, where commas are literal ("##,##" notes come out cut short),
  and for sloppy 3.0 writers ("Doe, John").
* A value ending in a lone backslash comes out with "\\eof" appended.
* Line numbers on parsed lines are off (doubled with ``allowQP=False``, 0 for
  the first line and the blank line before a card with ``allowQP=True``).
* Content before the first ``BEGIN`` becomes an unnamed component that
  swallows the cards after it.

Two more gaps are about cost. ``getLogicalLines`` copies the whole logical
line for every physical line it appends, so unfolding is quadratic: a
folded 1 MB photo takes 0.2 s, a 5 MB one 7 s, a file at the size limit
minutes. And the
line regex behind ``parseLine`` backtracks exponentially on a malformed
parameter list (``X;a=b;a=b;...`` without a colon: 200 characters hang it).

So this module unfolds lines itself, with vobject's rules (folding
whitespace, QP soft breaks taking precedence, blank lines ending a
property) in linear time and with exact line numbers, and checks each
property's name-and-parameters part with a linear regex before handing the
line to vobject's ``parseLine``. Then, line by line, QP is decoded,
``CHARSET`` applied, and values without one are read as UTF-8 or, failing
that, in the file's legacy encoding (GB18030 or cp1252, guessed once for the
file). Each property the importer uses is written back as one clean Unicode
line without ``ENCODING=QUOTED-PRINTABLE``/``CHARSET``, with literal commas
in single-valued text escaped, and vobject's ``readComponents`` builds the
cards from that and unescapes the values; structured ones (N, ORG) are split
with vobject's ``splitFields``. Properties the importer does not use (PHOTO,
KEY, ADR, ...) are not passed on, so a corrupt photo cannot sink the file.

Name: FN, else N, else ORG, else the first e-mail or phone. Fax and pager
numbers are left out: nobody can be messaged on them.
"""

from __future__ import annotations

import binascii
import codecs
import logging
import re
from collections.abc import Iterator

import attrs
import vobject
import vobject.base
import vobject.vcard

from bridges.importers.encoding import (
    binary_description,
    bom_encoding,
    decode_text,
    guess_legacy_encoding,
    utf16_without_bom,
)
from bridges.importers.errors import ImportFormatError
from bridges.importers.limits import (
    DEFAULT_LIMITS,
    ImportLimits,
    check_line_lengths,
    check_row_count,
    check_size,
)
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

_QP = "QUOTED-PRINTABLE"
_NEWLINES_RE = re.compile(r"\r*\n|\r")
_NOT_MESSAGEABLE = frozenset({"FAX", "PAGER"})
_MESSAGEABLE = frozenset({"CELL", "VOICE", "MOBILE", "TEXT", "MSG", "IPHONE"})
# Properties read by the importer; single-valued text ones get commas escaped.
_TEXT_PROPERTIES = frozenset({"FN", "NOTE", "TEL", "EMAIL", "UID"})
_STRUCTURED_PROPERTIES = frozenset({"N", "ORG"})
_KEPT = _TEXT_PROPERTIES | _STRUCTURED_PROPERTIES | {"BEGIN", "END", "VERSION"}


@attrs.define
class _Property:
    line: int
    name: str
    group: str | None
    params: list[list[str]]
    value: str
    qp: bool
    charset: str | None
    card: int
    depth: int
    text: str | None = None


@attrs.frozen
class _Source:
    text: str
    bytes_mode: bool
    encoding: str


def _source(data: bytes) -> _Source:
    """Text to split into lines: Latin-1 (one char per byte) unless the file is UTF-16/32."""
    found = bom_encoding(data)
    if (found and found[0] != "utf-8-sig") or utf16_without_bom(data):
        decoded = decode_text(data, allow_legacy=False)
        return _Source(_NEWLINES_RE.sub("\n", decoded.text), False, decoded.encoding)
    body = data[len(codecs.BOM_UTF8):] if found else data
    description = binary_description(body)
    if description is not None:
        raise ImportFormatError(
            f"This file is {description}, not a vCard. Choose the exported .vcf file."
        )
    return _Source(_NEWLINES_RE.sub("\n", body.decode("latin-1")), True,
                   "utf-8-sig" if found else "utf-8")


_NAME = r"[A-Za-z0-9_-]+"
_PARAM_VALUE = r'(?:"[^"]*"|[^";:,]*)'
# The name-and-parameters part of a property as vobject's line regex accepts
# it, written so that every repetition starts with a distinct delimiter and
# matching stays linear.
_SAFE_PREFIX_RE = re.compile(
    rf"(?:{_NAME}\.)?{_NAME};?(?:;{_NAME}(?:={_PARAM_VALUE}(?:,{_PARAM_VALUE})*)?)*:"
)


def _logical_lines(text: str) -> Iterator[tuple[str, int]]:
    """Unfold physical lines into (logical line, first physical line number).

    Same rules as vobject's ``getLogicalLines(allowQP=True)``: a line starting
    with a space or tab continues the previous one; a line following a
    QUOTED-PRINTABLE line that ends in "=" continues it after a newline
    (a soft break); a blank line ends the current line.
    """
    parts: list[str] = []
    start = 0
    is_qp = soft_break = False
    for number, line in enumerate(text.split("\n"), start=1):
        if not line.strip():
            if parts:
                yield "".join(parts), start
            parts, is_qp, soft_break = [], False, False
            continue
        if soft_break:
            parts.append("\n" + line)
        elif line[0] in " \t" and parts:
            parts.append(line[1:])
        else:
            if parts:
                yield "".join(parts), start
            line = line.lstrip(" \t")
            parts, start = [line], number
            is_qp = "quoted-printable" in line.split(":", 1)[0].lower()
        soft_break = is_qp and line.endswith("=")
    if parts:
        yield "".join(parts), start


def _param_value(params: list[list[str]], name: str) -> str | None:
    for param in params:
        if param[0].upper() == name and len(param) > 1:
            return param[1]
    return None


def _is_qp(params: list[list[str]]) -> bool:
    for param in params:
        upper = param[0].upper()
        if upper == _QP and len(param) == 1:
            return True
        if upper == "ENCODING" and any(value.upper() == _QP for value in param[1:]):
            return True
    return False


def _params_text(params: list[list[str]]) -> str:
    out = []
    for param in params:
        name, values = param[0], param[1:]
        upper = name.upper()
        if upper == "CHARSET" or (upper == _QP and not values):
            continue
        if upper == "ENCODING":
            values = [value for value in values if value.upper() != _QP]
            if not values:
                continue
        if not values:
            out.append(name)
            continue
        quoted = []
        for value in values:
            value = value.replace('"', "")
            quoted.append(f'"{value}"' if any(ch in value for ch in ",;:") else value)
        out.append(f"{name}={','.join(quoted)}")
    return "".join(";" + item for item in out)


def _escape_commas(value: str) -> str:
    """Backslash-escape commas that are not escaped yet, and drop a dangling final backslash."""
    out: list[str] = []
    escaped = False
    for ch in value:
        if escaped:
            out.append(ch)
            escaped = False
        elif ch == "\\":
            out.append(ch)
            escaped = True
        elif ch == ",":
            out.append("\\,")
        else:
            out.append(ch)
    if escaped:
        out.pop()
    return "".join(out)


class _Transcoder:
    """Reads logical lines and decodes every value to Unicode (see module docstring)."""

    def __init__(self, source: _Source, warnings: WarningLog, limits: ImportLimits) -> None:
        self.source = source
        self.warnings = warnings
        self.limits = limits
        self.cards = 0
        self.used: dict[str, int] = {}

    def properties(self) -> list[_Property]:
        kept: list[_Property] = []
        stack: list[tuple[str, int]] = []
        outside = 0
        for logical, line in _logical_lines(self.source.text):
            try:
                if not _SAFE_PREFIX_RE.match(logical):
                    raise vobject.base.ParseError("malformed property name or parameters", line)
                name, params, value, group = vobject.base.parseLine(logical, line)
            except vobject.base.ParseError:
                if stack:
                    self.warnings.add("unreadable vCard line skipped", line=line)
                else:
                    outside += 1
                continue
            name = name.upper()
            if name == "BEGIN":
                stack.append((value.strip().upper(), line))
                if len(stack) == 1:
                    self.cards += 1
                    check_row_count(self.cards, self.limits, line=line)
            elif name == "END":
                if not stack:
                    outside += 1
                    continue
                if stack[-1][0] != value.strip().upper():
                    raise ImportFormatError(
                        f"END:{clean_text(value)[:40]} does not close the BEGIN:{stack[-1][0][:40]} "
                        f"of line {stack[-1][1]}; the file is damaged. Export it again.",
                        line=line,
                    )
                stack.pop()
            elif not stack:
                outside += 1
                continue
            if name not in _KEPT:
                continue
            charset = _param_value(params, "CHARSET")
            depth = len(stack) + (1 if name == "END" else 0)
            kept.append(_Property(line, name, group, params, value, _is_qp(params),
                                  charset.strip() if charset else None, self.cards, depth))
        if stack:
            raise ImportFormatError(
                f"The vCard that starts here has no END:{stack[0][0][:40]}; the file looks cut off. "
                "Export it again.",
                line=stack[0][1],
            )
        if self.cards == 0:
            raise ImportFormatError(
                "No vCard was found in the file (no BEGIN:VCARD line). Export the contacts again as .vcf."
            )
        if outside:
            self.warnings.add(f"{outside} line(s) outside BEGIN:VCARD ... END:VCARD were ignored")
        return kept

    def _payload(self, prop: _Property) -> bytes | None:
        if prop.qp:
            encoded = prop.value.encode("latin-1" if self.source.bytes_mode else "utf-8", "replace")
            return binascii.a2b_qp(encoded)
        if self.source.bytes_mode:
            return prop.value.encode("latin-1")
        return None

    def _decode_declared(self, payload: bytes, prop: _Property) -> str | None:
        if not prop.charset:
            return None
        try:
            text = payload.decode(prop.charset)
        except LookupError:
            self.warnings.add(f"unknown CHARSET '{prop.charset[:40]}'; the text encoding was guessed",
                              line=prop.line)
            return None
        except UnicodeDecodeError:
            self.warnings.add(f"{prop.name} is not valid {prop.charset[:40]}; the text encoding was guessed",
                              line=prop.line)
            return None
        self._note_use(prop.charset)
        return text

    def _note_use(self, codec: str) -> None:
        try:
            name = codecs.lookup(codec).name
        except LookupError:
            name = codec.lower()
        self.used[name] = self.used.get(name, 0) + 1

    def decode(self, props: list[_Property]) -> None:
        pending: list[tuple[_Property, bytes]] = []
        for prop in props:
            payload = self._payload(prop)
            if payload is None:
                prop.text = prop.value
            elif payload.isascii():
                prop.text = payload.decode("ascii")
            else:
                prop.text = self._decode_declared(payload, prop)
                if prop.text is None:
                    pending.append((prop, payload))
        failing = []
        for prop, payload in pending:
            try:
                prop.text = payload.decode("utf-8")
                self._note_use("utf-8")
            except UnicodeDecodeError:
                failing.append((prop, payload))
        if failing:
            legacy = guess_legacy_encoding(b"\n".join(payload for _, payload in failing))
            for prop, payload in failing:
                prop.text = payload.decode(legacy, errors="replace")
                self._note_use(legacy)

    def encoding_label(self) -> str:
        if not self.source.bytes_mode or not self.used or set(self.used) == {"utf-8"}:
            return self.source.encoding
        if len(self.used) == 1:
            return next(iter(self.used))
        return "mixed: " + ", ".join(sorted(self.used))


def _clean_line(prop: _Property) -> str:
    value = (prop.text or "").replace("\r\n", "\n").replace("\r", "\n").replace("\n", "\\n")
    if prop.name in _TEXT_PROPERTIES:
        value = _escape_commas(value)
    elif prop.name in ("BEGIN", "END"):
        # vobject compares these exactly; "BEGIN:VCARD " would never be closed.
        value = value.strip()
    prefix = f"{prop.group}.{prop.name}" if prop.group else prop.name
    return f"{prefix}{_params_text(prop.params)}:{value}"


def _field(fields: list[object], index: int) -> str:
    value = fields[index] if index < len(fields) else ""
    if isinstance(value, list):
        return " ".join(str(item) for item in value)
    return str(value)


def _structured_name(raw: object) -> str:
    if not isinstance(raw, str):
        return ""
    fields = vobject.vcard.splitFields(raw)
    family, given, additional, prefix, suffix = (clean_text(_field(fields, i)) for i in range(5))
    core = join_name(given, family, middle=additional)
    return " ".join(part for part in (prefix, core, suffix) if part) if core else ""


def _organisation(raw: object) -> str:
    if not isinstance(raw, str):
        return ""
    fields = vobject.vcard.splitFields(raw)
    return next((text for text in (clean_text(_field(fields, i)) for i in range(len(fields))) if text), "")


def _tel_types(line: vobject.base.ContentLine) -> set[str]:
    types = {value.upper() for value in line.singletonparams}
    for value in line.params.get("TYPE", []):
        types.update(part.strip().upper() for part in value.split(","))
    return types


class _CardReader:
    def __init__(self, region: str, warnings: WarningLog, props: list[_Property]) -> None:
        self.region = region
        self.warnings = warnings
        self.ids = UniqueIds()
        # Original line numbers of each card's own properties, by name, in file order.
        self.origin: dict[tuple[int, str], list[int]] = {}
        for prop in props:
            if prop.depth == 1:
                self.origin.setdefault((prop.card, prop.name), []).append(prop.line)

    def line_of(self, record: int, name: str, index: int) -> int | None:
        lines = self.origin.get((record, name), [])
        return lines[index] if index < len(lines) else None

    def contact(self, card: vobject.base.Component, record: int) -> Contact | None:
        def lines(name: str) -> list[vobject.base.ContentLine]:
            return [item for item in card.contents.get(name, []) if isinstance(item, vobject.base.ContentLine)]

        def texts(name: str) -> list[str]:
            return [item.value for item in lines(name) if isinstance(item.value, str)]

        phones = PhoneList(self.region, self.warnings)
        for index, tel in enumerate(lines("tel")):
            types = _tel_types(tel)
            if types & _NOT_MESSAGEABLE and not types & _MESSAGEABLE:
                continue
            if isinstance(tel.value, str):
                phones.add(tel.value, line=self.line_of(record, "TEL", index), record=record)
        emails = dedupe(email for email in map(normalise_email, texts("email")) if email)
        name = (
            next((text for text in map(clean_text, texts("fn")) if text), "")
            or next((text for text in map(_structured_name, texts("n")) if text), "")
            or next((text for text in map(_organisation, texts("org")) if text), "")
            or next(iter(emails), "")
            or next(iter(phones.phones), "")
            or next(iter(phones.raw_phones), "")
        )
        if not name:
            self.warnings.add("vCard has no name, phone number or e-mail address; skipped",
                              line=self.line_of(record, "BEGIN", 0), record=record)
            return None
        note = next((text for text in map(clean_note, texts("note")) if text), None)
        uid = next((text for text in map(clean_text, texts("uid")) if text), "")
        return Contact(
            source_id=self.ids.claim(uid or stable_id(name, *phones.phones, *emails)),
            name=name,
            phones=phones.phones,
            emails=emails,
            raw_phones=phones.raw_phones,
            note=note,
        )


def parse_vcard(
    data: bytes, *, default_region: str = "CN", limits: ImportLimits = DEFAULT_LIMITS
) -> ImportedExport:
    """Parse a .vcf file holding one or more vCards (2.1, 3.0 or 4.0).

    Args:
        data: The file's bytes.
        default_region: Region for numbers written without a country code.
        limits: Size, line-length and card-count limits.

    Returns:
        One contact per card that has a name, number or address; no groups.
    """
    region = check_region(default_region)
    check_size(data, limits)
    source = _source(data)
    check_line_lengths(source.text, limits)
    warnings = WarningLog()
    transcoder = _Transcoder(source, warnings, limits)
    props = transcoder.properties()
    transcoder.decode(props)
    clean = "\n".join(_clean_line(prop) for prop in props)
    try:
        components = list(vobject.readComponents(clean, allowQP=False, transform=False,
                                                 ignoreUnreadable=True))
    except Exception as exc:  # vobject raises assorted errors on hostile input
        raise ImportFormatError(
            f"The vCard data cannot be read ({type(exc).__name__}: {str(exc)[:120]})."
        ) from None

    reader = _CardReader(region, warnings, props)
    contacts: list[Contact] = []
    versions: dict[str, None] = {}
    for record, card in enumerate(components, start=1):
        if card.name != "VCARD":
            warnings.add(f"a {clean_text(str(card.name))[:40] or 'nameless'} block is not a vCard; skipped",
                         record=record)
            continue
        for version in card.contents.get("version", []):
            versions[clean_text(str(version.value))] = None
        contact = reader.contact(card, record)
        if contact is not None:
            contacts.append(contact)
    known = sorted(version for version in versions if version)
    label = "vCard " + " + ".join(known) if known else "vCard"
    logger.info("parsed %s: %d contacts", label, len(contacts))
    return ImportedExport(
        format="vcard",
        format_label=label,
        contacts=tuple(contacts),
        groups=(),
        warnings=warnings.freeze(),
        encoding=transcoder.encoding_label(),
    )
