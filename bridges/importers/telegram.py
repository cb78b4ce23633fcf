"""Telegram Desktop JSON exports (``result.json``).

Two shapes: the full-account export (``personal_information``, ``contacts.list``,
``chats.list``) and a single-chat export (top-level ``name``, ``type``, ``id``,
``messages``).

* ``contacts.list`` entries become contacts (``user_id`` when present, else a
  hash of name and number).
* A ``personal_chat`` becomes a contact for the other side (the chat id is that
  user's id), merged with the contact-list entry of the same id, or of the
  same unique name when the list has no ids.
* ``private_group``, ``private_supergroup`` and ``public_supergroup`` chats become
  groups. Channels, bots and "Saved Messages" are neither.
* Group members are every user who sent a message (``from``/``from_id``) or
  performed a service action (``actor``/``actor_id``), plus the people named
  in the ``members`` list of ``create_group``, ``invite_members`` and
  ``remove_members``. Those lists hold display names only, resolved to ids
  through the senders and actors seen in the same chat; an unresolved name
  gets a hash id. Removed people are kept: the export is a record of who was
  in the group, it does not say whether they came back, and the import
  preview lets the user untick them; a warning names the group.
* Senders that are channels or anonymous admins (``channel...`` ids) are not people and are skipped.
* The creator (actor of ``create_group``/``create_channel``) is the owner.
* ``left_chats`` are groups the user has left and are not imported.
"""

from __future__ import annotations

import logging
from typing import Any

import attrs

from bridges.importers.encoding import decode_text
from bridges.importers.errors import ImportFormatError
from bridges.importers.limits import (
    DEFAULT_LIMITS,
    ImportLimits,
    check_group_size,
    check_row_count,
    check_size,
    load_json,
)
from bridges.importers.model import Contact, Group, ImportedExport, Member
from bridges.importers.phones import PhoneList, check_region
from bridges.importers.records import UniqueIds, WarningLog, clean_text, stable_id

logger = logging.getLogger(__name__)

GROUP_TYPES = frozenset({"private_group", "private_supergroup", "public_supergroup"})
PERSONAL_TYPES = frozenset({"personal_chat"})
IGNORED_TYPES = frozenset({"saved_messages", "bot_chat", "private_channel", "public_channel"})
CHAT_TYPES = GROUP_TYPES | PERSONAL_TYPES | IGNORED_TYPES
NAMED_MEMBER_ACTIONS = frozenset({"create_group", "invite_members", "remove_members"})
CREATOR_ACTIONS = frozenset({"create_group", "create_channel"})
DELETED_ACCOUNT = "Deleted Account"


def looks_like_telegram(doc: Any) -> bool:
    """Tell whether a decoded JSON document is a Telegram Desktop export.

    Args:
        doc: The decoded JSON.

    Returns:
        True for a full-account or single-chat export.
    """
    if not isinstance(doc, dict):
        return False
    if "personal_information" in doc:
        return True
    for key in ("chats", "contacts", "left_chats"):
        section = doc.get(key)
        if isinstance(section, dict) and isinstance(section.get("list"), list):
            return True
    return isinstance(doc.get("messages"), list) and _kind(doc, "type") in CHAT_TYPES


def user_id(value: Any) -> str | None:
    """Normalise a Telegram user reference to its numeric id string.

    Args:
        value: ``1234`` (old exports), ``"user1234"`` or ``"1234"``.

    Returns:
        "1234", or None for channels, chats and anything else.
    """
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return str(value) if value > 0 else None
    if isinstance(value, str):
        text = value.strip()
        if text.startswith("user"):
            text = text[4:]
        if text.isascii() and text.isdigit():
            return str(int(text))
    return None


def _kind(record: dict[str, Any], key: str) -> str | None:
    """A string-valued tag such as ``type`` or ``action``; None for anything else."""
    value = record.get(key)
    return value if isinstance(value, str) else None


def _chat_id(value: Any) -> str | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return str(value)
    if isinstance(value, str) and value.strip():
        return value.strip()
    return None


@attrs.define
class _Builder:
    region: str
    limits: ImportLimits
    warnings: WarningLog = attrs.field(factory=WarningLog)
    ids: UniqueIds = attrs.field(factory=UniqueIds)
    # Contacts by a slot key that never changes (so merging keeps file order),
    # plus the Telegram user id -> slot index.
    contacts: dict[str, Contact] = attrs.field(factory=dict)
    slot_of_user: dict[str, str] = attrs.field(factory=dict)
    unkeyed_by_name: dict[str, list[str]] = attrs.field(factory=dict)
    groups: list[Group] = attrs.field(factory=list)
    records: int = 0
    self_id: str | None = None

    def count(self) -> int:
        self.records += 1
        check_row_count(self.records, self.limits)
        return self.records

    def add_listed_contact(self, position: int, entry: Any) -> None:
        self.count()
        record = position
        if not isinstance(entry, dict):
            return
        name = " ".join(
            part for part in (clean_text(entry.get("first_name")), clean_text(entry.get("last_name"))) if part
        )
        phones = PhoneList(self.region, self.warnings, from_account=True)
        phones.add(entry.get("phone_number"), record=record)
        name = name or next(iter(phones.phones), "") or next(iter(phones.raw_phones), "")
        if not name:
            return
        uid = user_id(entry.get("user_id"))
        if uid is not None and uid in self.slot_of_user:
            return
        source_id = self.ids.claim(uid or stable_id(name, *phones.phones))
        if uid is None:
            self.unkeyed_by_name.setdefault(name, []).append(source_id)
        else:
            self.slot_of_user[uid] = source_id
        self.contacts[source_id] = Contact(
            source_id=source_id, name=name, phones=phones.phones, raw_phones=phones.raw_phones
        )

    def phones_of(self, uid: str) -> tuple[str, ...]:
        slot = self.slot_of_user.get(uid)
        return self.contacts[slot].phones if slot is not None else ()

    def add_chat(self, chat: Any, *, single: bool) -> None:
        if not isinstance(chat, dict):
            self.count()
            return
        chat_type = _kind(chat, "type")
        name = clean_text(chat.get("name"))
        if chat_type in GROUP_TYPES:
            self.add_group(chat, name)
        elif chat_type in PERSONAL_TYPES:
            self.add_personal_chat(chat, name, single=single)
        elif chat_type in IGNORED_TYPES:
            self.count_messages(chat)
            logger.debug("skipping Telegram chat of type %s", chat_type)
        else:
            self.count_messages(chat)
            label = f"'{name}'" if name else "without a name"
            kind = f"unknown type '{clean_text(str(chat_type))[:40]}'" if chat_type else "no type"
            self.warnings.add(f"chat {label} has {kind}; skipped")

    def count_messages(self, chat: dict[str, Any]) -> list[dict[str, Any]]:
        messages = chat.get("messages")
        found = []
        for message in messages if isinstance(messages, list) else []:
            self.count()
            if isinstance(message, dict):
                found.append(message)
        return found

    def add_personal_chat(self, chat: dict[str, Any], name: str, *, single: bool) -> None:
        messages = self.count_messages(chat)
        uid = user_id(chat.get("id"))
        if uid is None:
            return
        if single and self.self_id is None:
            senders = {user_id(m.get("from_id")) for m in messages} - {None}
            others = senders - {uid}
            if uid in senders and len(others) == 1:
                self.self_id = others.pop()
        if uid in self.slot_of_user or uid == self.self_id:
            return
        name = name or DELETED_ACCOUNT
        same_name = self.unkeyed_by_name.get(name, [])
        if len(same_name) == 1:
            # The contact list had no ids: this chat is that person, now with an id.
            slot = same_name[0]
            self.unkeyed_by_name.pop(name)
            self.contacts[slot] = attrs.evolve(self.contacts[slot], source_id=self.ids.claim(uid))
            self.slot_of_user[uid] = slot
            return
        source_id = self.ids.claim(uid)
        self.contacts[source_id] = Contact(source_id=source_id, name=name)
        self.slot_of_user[uid] = source_id

    def add_group(self, chat: dict[str, Any], name: str) -> None:
        messages = self.count_messages(chat)
        group_id = _chat_id(chat.get("id"))
        by_name: dict[str, set[str]] = {}
        for message in messages:
            for who, ref in (("from", "from_id"), ("actor", "actor_id")):
                uid = user_id(message.get(ref))
                who_name = clean_text(message.get(who))
                if uid and who_name:
                    by_name.setdefault(who_name, set()).add(uid)

        members: dict[str, Member] = {}
        owner: str | None = None
        removed = 0

        def add(uid: str | None, who_name: str) -> str | None:
            if uid is None:
                known = by_name.get(who_name, set())
                uid = next(iter(known)) if len(known) == 1 else (
                    stable_id("telegram", who_name) if who_name else None
                )
            if uid is None:
                return None
            if uid not in members:
                members[uid] = Member(
                    source_id=uid, name=who_name or DELETED_ACCOUNT, phones=self.phones_of(uid)
                )
                check_group_size(name, len(members), self.limits)
            return uid

        for message in messages:
            sender = user_id(message.get("from_id"))
            if sender:
                add(sender, clean_text(message.get("from")))
            actor = user_id(message.get("actor_id"))
            if actor:
                add(actor, clean_text(message.get("actor")))
            action = _kind(message, "action")
            if action in CREATOR_ACTIONS and actor and owner is None:
                owner = actor
            if action in NAMED_MEMBER_ACTIONS and isinstance(message.get("members"), list):
                for listed in message["members"]:
                    listed_name = clean_text(listed) if isinstance(listed, str) else ""
                    if listed_name:
                        add(None, listed_name)
                        removed += action == "remove_members"

        title = name or next(
            (clean_text(m.get("title")) for m in messages if _kind(m, "action") in CREATOR_ACTIONS
             and clean_text(m.get("title"))),
            "",
        ) or "Telegram group"
        if removed:
            self.warnings.add(
                f"group '{title}': {removed} member(s) were removed at some point; "
                "they are still listed as members"
            )
        self.groups.append(
            Group(
                source_id=self.ids.claim(group_id or stable_id("telegram-group", title)),
                name=title,
                members=tuple(members.values()),
                owner_source_id=owner,
            )
        )


def telegram_from_document(
    doc: Any,
    *,
    encoding: str,
    default_region: str = "CN",
    limits: ImportLimits = DEFAULT_LIMITS,
) -> ImportedExport:
    """Build the model from an already decoded Telegram Desktop export.

    Args:
        doc: The decoded JSON.
        encoding: Codec the file was read with.
        default_region: Region for numbers written without a country code.
        limits: Row and group-size limits.

    Returns:
        Contacts (listed contacts and personal chats) and groups.
    """
    region = check_region(default_region)
    if not looks_like_telegram(doc):
        raise ImportFormatError(
            "This JSON is not a Telegram Desktop export (no personal_information, "
            "contacts, chats or single-chat messages). Export again with Telegram Desktop "
            "in \"Machine-readable JSON\" format."
        )
    builder = _Builder(region=region, limits=limits)
    single = "messages" in doc and _kind(doc, "type") in CHAT_TYPES
    if single:
        builder.add_chat(doc, single=True)
        label = "Telegram chat export (JSON)"
    else:
        info = doc.get("personal_information")
        if isinstance(info, dict):
            builder.self_id = user_id(info.get("user_id"))
        contacts = doc.get("contacts")
        if isinstance(contacts, dict) and isinstance(contacts.get("list"), list):
            for position, entry in enumerate(contacts["list"], start=1):
                builder.add_listed_contact(position, entry)
        chats = doc.get("chats")
        if isinstance(chats, dict) and isinstance(chats.get("list"), list):
            # Personal chats first, so group members already know the ids they merge with.
            personal = [chat for chat in chats["list"]
                        if isinstance(chat, dict) and _kind(chat, "type") in PERSONAL_TYPES]
            for chat in personal:
                builder.add_chat(chat, single=False)
            for chat in chats["list"]:
                if not (isinstance(chat, dict) and _kind(chat, "type") in PERSONAL_TYPES):
                    builder.add_chat(chat, single=False)
        label = "Telegram full export (JSON)"
    logger.info("parsed %s: %d contacts, %d groups", label, len(builder.contacts), len(builder.groups))
    return ImportedExport(
        format="telegram_json",
        format_label=label,
        contacts=tuple(builder.contacts.values()),
        groups=tuple(builder.groups),
        self_source_id=builder.self_id,
        warnings=builder.warnings.freeze(),
        encoding=encoding,
    )


def parse_telegram(
    data: bytes, *, default_region: str = "CN", limits: ImportLimits = DEFAULT_LIMITS
) -> ImportedExport:
    """Parse a Telegram Desktop ``result.json`` (full-account or single-chat export).

    Args:
        data: The file's bytes.
        default_region: Region for numbers written without a country code.
        limits: Size, depth, row and group-size limits.

    Returns:
        Contacts and groups.
    """
    check_region(default_region)
    check_size(data, limits)
    decoded = decode_text(data, allow_legacy=False)
    doc = load_json(decoded.text, limits)
    return telegram_from_document(doc, encoding=decoded.encoding, default_region=default_region,
                                  limits=limits)
