"""WhatsApp "Export chat" text files (Android and iOS), read as one group.

Message lines start with a timestamp; any other line continues the previous
message. Recognised timestamp layouts:

* Android: ``DD/MM/YY, HH:MM - ``, ``MM/DD/YYYY, h:mm a. m. - ``,
  ``YYYY/MM/DD, HH:MM - ``, ``DD.MM.YYYY, HH:MM - `` (any of ``/ . -`` between
  date parts, optional seconds, optional AM/PM in several spellings,
  U+202F narrow no-break space before it);
* iOS: ``[M/D/YY, H:MM:SS AM] `` — always with seconds, in brackets, often
  preceded by U+200E.

On Android a system event has no sender (``12/1/23, 9:00 - Ann added Bob``);
on iOS it carries the chat's name as sender and a U+200E before the text
(``[...] Family: ‎Ann added Bob``), which also gives away the group name.

Members are the senders plus people named by system events. System phrases
live in ``SystemPhrases`` tables, one per language; English is provided and
another language is added by appending a table to ``LANGUAGES``. "You" (the
exporting person, whose own name the file does not reveal) is never a member.
People who left or were removed are kept, as for Telegram: the file records
who was in the group and the preview lets the user untick them.

Group name: the last rename event, else the "created group" event, else the
chat name from iOS system lines, else the file name (``WhatsApp Chat with
NAME.txt``), else "WhatsApp group".
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable
from pathlib import PurePath

import attrs

from bridges.importers.encoding import decode_text
from bridges.importers.errors import ImportFormatError
from bridges.importers.limits import (
    DEFAULT_LIMITS,
    ImportLimits,
    check_group_size,
    check_line_lengths,
    check_row_count,
    check_size,
    split_lines,
)
from bridges.importers.model import Group, ImportedExport, Member
from bridges.importers.phones import check_region, normalise_phone
from bridges.importers.records import UniqueIds, WarningLog, clean_text, stable_id

logger = logging.getLogger(__name__)

DEFAULT_GROUP_NAME = "WhatsApp group"

_SP = "[ \u00a0\u202f]"
_DATE = r"\d{1,4}[./-]\d{1,2}[./-]\d{1,4}"
_AMPM = rf"(?:{_SP}?(?:[AaPp]\.?{_SP}?[Mm]\.?))"
_DAYPART = "(?:上午|下午|凌晨|中午|晚上)?"
_MARKS = "\u200e\u200f\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069\ufeff"

IOS_LINE_RE = re.compile(
    rf"^\[(?P<date>{_DATE}),?{_SP}{_DAYPART}(?P<time>\d{{1,2}}[:.]\d{{2}}[:.]\d{{2}}){_AMPM}?\]{_SP}(?P<body>.*)$"
)
ANDROID_LINE_RE = re.compile(
    rf"^(?P<date>{_DATE}),?{_SP}{_DAYPART}(?P<time>\d{{1,2}}[:.]\d{{2}}(?:[:.]\d{{2}})?){_AMPM}?{_SP}[-–]{_SP}(?P<body>.*)$"
)
_SENDER_RE = re.compile(r"^(?P<sender>[^:\n]{1,200}?):(?P<text>.*)$", re.DOTALL)
_PHONE_LIKE_RE = re.compile(r"^\+?[\d\s\u00a0\u202f().\-]{6,}$")
_LIST_SPLIT_RE = re.compile(r",\s*|\s+and\s+")

FILENAME_PATTERNS: tuple[re.Pattern[str], ...] = (
    re.compile(r"^WhatsApp Chat (?:with|-) (?P<name>.+?)(?:\.txt|\.zip)?$", re.IGNORECASE),
    re.compile(r"^WhatsApp-Chat mit (?P<name>.+?)(?:\.txt|\.zip)?$", re.IGNORECASE),
    re.compile(r"^Chat de WhatsApp con (?P<name>.+?)(?:\.txt|\.zip)?$", re.IGNORECASE),
)


@attrs.frozen
class SystemPhrases:
    """One language's system-event phrases, each a regex over the whole event text.

    Named groups: ``actor`` (who did it), ``targets`` (a list of people, split on
    ``list_separator``), ``name`` (a group title). ``you`` lists the words used
    for the exporting person.
    """

    language: str
    you: frozenset[str]
    list_separator: re.Pattern[str]
    created: tuple[re.Pattern[str], ...]
    renamed: tuple[re.Pattern[str], ...]
    added: tuple[re.Pattern[str], ...]
    joined: tuple[re.Pattern[str], ...]
    left: tuple[re.Pattern[str], ...]
    removed: tuple[re.Pattern[str], ...]
    other: tuple[re.Pattern[str], ...]


def _patterns(*sources: str) -> tuple[re.Pattern[str], ...]:
    return tuple(re.compile(source) for source in sources)


# Actors never contain ":" so that a message "Ann: I added Bob" is not an
# event. Their length is bounded and quoted names exclude quotes so that a
# hostile line cannot make these patterns backtrack for long.
_ACTOR = r"(?P<actor>[^:]{1,100}?)"
_QUOTED_NAME = r"[\"“”](?P<name>[^\"“”]*)[\"“”]"
# System lines are short; longer text is never matched against events.
_MAX_EVENT_LENGTH = 4096

ENGLISH = SystemPhrases(
    language="en",
    you=frozenset({"You", "you"}),
    list_separator=_LIST_SPLIT_RE,
    created=_patterns(rf"^{_ACTOR} created (?:the )?group {_QUOTED_NAME}$"),
    renamed=_patterns(
        rf"^{_ACTOR} changed (?:the subject|the group name|this group's name|the group's name)"
        rf"(?: from [\"“][^\"“”]*[\"”])? to {_QUOTED_NAME}$"
    ),
    added=_patterns(rf"^{_ACTOR} added (?P<targets>.+)$"),
    joined=_patterns(
        rf"^{_ACTOR} joined using (?:this|a) group['’]s invite link$",
        rf"^{_ACTOR} joined from the community$",
        rf"^{_ACTOR} joined$",
        rf"^{_ACTOR} (?:was|were) added$",
    ),
    left=_patterns(rf"^{_ACTOR} left$"),
    removed=_patterns(rf"^{_ACTOR} removed (?P<targets>.+)$"),
    other=_patterns(
        r"^Messages and calls are end-to-end encrypted\b.*$",
        r"^Messages to this group are now secured with end-to-end encryption\b.*$",
        rf"^{_ACTOR} changed (?:this group's icon|the group description|the group's settings).*$",
        rf"^{_ACTOR} changed their phone number.*$",
        rf"^{_ACTOR}['’]s security code changed.*$",
        rf"^{_ACTOR} deleted this group's icon$",
    ),
)

LANGUAGES: list[SystemPhrases] = [ENGLISH]


@attrs.frozen
class _Event:
    kind: str
    actor: str
    targets: tuple[str, ...] = ()
    name: str = ""


def _match_event(text: str) -> _Event | None:
    if len(text) > _MAX_EVENT_LENGTH:
        return None
    for phrases in LANGUAGES:
        for kind in ("created", "renamed", "joined", "left", "added", "removed", "other"):
            for pattern in getattr(phrases, kind):
                match = pattern.match(text)
                if not match:
                    continue
                groups = match.groupdict()
                targets: Iterable[str] = ()
                if groups.get("targets"):
                    targets = phrases.list_separator.split(groups["targets"])
                actor = clean_text(groups.get("actor") or "")
                return _Event(
                    kind=kind,
                    actor="" if actor in phrases.you else actor,
                    targets=tuple(
                        t for t in (clean_text(t) for t in targets) if t and t not in phrases.you
                    ),
                    name=clean_text(groups.get("name") or ""),
                )
    return None


def is_message_line(line: str) -> bool:
    """Tell whether a line starts a WhatsApp message or event.

    Args:
        line: One line of text.

    Returns:
        True if it starts with a WhatsApp timestamp.
    """
    stripped = line.lstrip(_MARKS)
    return bool(IOS_LINE_RE.match(stripped) or ANDROID_LINE_RE.match(stripped))


def group_name_from_filename(filename: str | None) -> str | None:
    """Take the chat name from an export's file name.

    Args:
        filename: e.g. "WhatsApp Chat with Family.txt" (directories are ignored).

    Returns:
        "Family", or None when the name does not follow the pattern.
    """
    if not filename:
        return None
    base = PurePath(filename.replace("\\", "/")).name
    for pattern in FILENAME_PATTERNS:
        match = pattern.match(base)
        if match and clean_text(match.group("name")):
            return clean_text(match.group("name"))
    return None


@attrs.define
class _Members:
    region: str
    limits: ImportLimits
    warnings: WarningLog
    by_key: dict[str, Member] = attrs.field(factory=dict)
    ids: UniqueIds = attrs.field(factory=UniqueIds)
    warned: set[str] = attrs.field(factory=set)

    def add(self, display: str, *, line: int) -> str | None:
        display = clean_text(display).lstrip("~").strip()
        if not display:
            return None
        if _PHONE_LIKE_RE.match(display):
            phone = normalise_phone(display, self.region, from_account=True)
            if phone is None and display not in self.warned:
                self.warned.add(display)
                self.warnings.add(
                    f"sender '{display[:60]}' looks like a phone number but is not valid; kept as a name",
                    line=line,
                )
        else:
            phone = None
        key = phone or display
        if key not in self.by_key:
            source_id = self.ids.claim(phone or stable_id("whatsapp", display))
            self.by_key[key] = Member(source_id=source_id, name=display, phones=(phone,) if phone else ())
            check_group_size("WhatsApp chat", len(self.by_key), self.limits)
        return self.by_key[key].source_id


def parse_whatsapp(
    data: bytes,
    filename: str | None = None,
    *,
    default_region: str = "CN",
    limits: ImportLimits = DEFAULT_LIMITS,
) -> ImportedExport:
    """Parse a WhatsApp chat export (.txt) into one group.

    Args:
        data: The file's bytes.
        filename: Original file name, used for the group name when the text has none.
        default_region: Region for sender numbers written without a country code.
        limits: Size, line-length, row and group-size limits.

    Returns:
        One group with the members found; no contacts.
    """
    region = check_region(default_region)
    check_size(data, limits)
    decoded = decode_text(data, allow_legacy=False)
    text = decoded.text
    check_line_lengths(text, limits)
    warnings = WarningLog()
    members = _Members(region=region, limits=limits, warnings=warnings)
    created_name = renamed_name = ios_chat_name = ""
    owner: str | None = None
    removed = 0
    ios = android = 0

    for number, raw_line in enumerate(split_lines(text), start=1):
        line = raw_line.lstrip(_MARKS)
        match = IOS_LINE_RE.match(line)
        if match:
            ios += 1
        else:
            match = ANDROID_LINE_RE.match(line)
            if not match:
                continue
            android += 1
        check_row_count(ios + android, limits, line=number)
        body = match.group("body").lstrip(_MARKS)
        event = _match_event(body)
        if event is None:
            said = _SENDER_RE.match(body)
            if not said:
                continue
            sender, spoken = said.group("sender"), said.group("text")
            stripped = spoken.strip().lstrip(_MARKS)
            event = _match_event(stripped) if spoken.lstrip(" ").startswith("\u200e") else None
            if event is None:
                members.add(sender, line=number)
                continue
            # An iOS system line: the "sender" is the chat itself.
            ios_chat_name = clean_text(sender) or ios_chat_name
        actor_id = members.add(event.actor, line=number) if event.actor else None
        if event.kind in ("added", "removed"):
            for target in event.targets:
                members.add(target, line=number)
            removed += len(event.targets) if event.kind == "removed" else 0
        elif event.kind == "created":
            created_name = event.name or created_name
            owner = owner or actor_id
        elif event.kind == "renamed":
            renamed_name = event.name or renamed_name
        elif event.kind == "left":
            removed += 1

    if ios + android == 0:
        raise ImportFormatError(
            "No WhatsApp message lines were found (they start with a date and time, "
            "like \"12/31/23, 9:41 PM - Ann: Hi\"). Export the chat again from WhatsApp \"Export chat\"."
        )
    name = (renamed_name or created_name or ios_chat_name
            or group_name_from_filename(filename) or DEFAULT_GROUP_NAME)
    if removed:
        warnings.add(f"group '{name}': {removed} member(s) left or were removed at some point; "
                     "they are still listed as members")
    group = Group(
        source_id=stable_id("whatsapp-group", name),
        name=name,
        members=tuple(members.by_key.values()),
        owner_source_id=owner,
    )
    label = "WhatsApp chat (iOS)" if ios >= android else "WhatsApp chat (Android)"
    logger.info("parsed %s: %d members", label, len(group.members))
    return ImportedExport(
        format="whatsapp_txt",
        format_label=label,
        contacts=(),
        groups=(group,),
        warnings=warnings.freeze(),
        encoding=decoded.encoding,
    )
