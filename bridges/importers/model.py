"""The common model every export parser produces."""

from __future__ import annotations

from collections.abc import Iterable

import attrs

FORMATS: tuple[str, ...] = (
    "vcard",
    "google_csv",
    "telegram_json",
    "wechat_contacts_csv",
    "wechat_json",
    "whatsapp_txt",
)


def _strings(value: Iterable[str]) -> tuple[str, ...]:
    # A bare string is iterable too; turning "+86..." into characters would be a silent bug.
    if isinstance(value, str):
        raise TypeError("expected a sequence of strings, not a single string")
    return tuple(value)


def _members(value: Iterable[Member]) -> tuple[Member, ...]:
    return tuple(value)


def _contacts(value: Iterable[Contact]) -> tuple[Contact, ...]:
    return tuple(value)


def _groups(value: Iterable[Group]) -> tuple[Group, ...]:
    return tuple(value)


@attrs.frozen
class Contact:
    """One person from an address book or contact list.

    Attributes:
        source_id: Stable id within the source (Telegram user id, WeChat
            ``UserName``, vCard UID, or a hash of name and numbers).
        name: Display name.
        phones: E.164 numbers with ``+``, deduplicated, in source order.
        emails: Lower-cased addresses, deduplicated, in source order.
        raw_phones: Numbers that could not be normalised, kept for the preview.
        note: Free-text note from the source, if any.
    """

    source_id: str
    name: str
    phones: tuple[str, ...] = attrs.field(default=(), converter=_strings)
    emails: tuple[str, ...] = attrs.field(default=(), converter=_strings)
    raw_phones: tuple[str, ...] = attrs.field(default=(), converter=_strings)
    note: str | None = None


@attrs.frozen
class Member:
    """One member of a group, as far as the export identifies them."""

    source_id: str
    name: str
    phones: tuple[str, ...] = attrs.field(default=(), converter=_strings)


@attrs.frozen
class Group:
    """A chat group with the members the export reveals.

    Attributes:
        source_id: Stable id within the source (chat id, ``...@chatroom``, or a hash).
        name: Group title.
        members: Distinct members in order of first appearance.
        owner_source_id: ``source_id`` of the creator/owner when the source says so.
    """

    source_id: str
    name: str
    members: tuple[Member, ...] = attrs.field(default=(), converter=_members)
    owner_source_id: str | None = None


@attrs.frozen
class ImportedExport:
    """Everything one export file yielded.

    Attributes:
        format: Machine name, one of ``FORMATS``.
        format_label: Human description, e.g. "vCard 3.0" or "WhatsApp chat (iOS)".
        contacts: Contacts in file order.
        groups: Groups in file order.
        self_source_id: The exporting person's own id, when the file says so.
        warnings: Problems that did not stop the import, e.g. unusable numbers.
        encoding: Text encoding the file was read with.
    """

    format: str = attrs.field(validator=attrs.validators.in_(FORMATS))
    format_label: str
    contacts: tuple[Contact, ...] = attrs.field(default=(), converter=_contacts)
    groups: tuple[Group, ...] = attrs.field(default=(), converter=_groups)
    self_source_id: str | None = None
    warnings: tuple[str, ...] = attrs.field(default=(), converter=_strings)
    encoding: str = "utf-8"

    @property
    def membership_count(self) -> int:
        """Total number of (group, member) pairs."""
        return sum(len(group.members) for group in self.groups)
