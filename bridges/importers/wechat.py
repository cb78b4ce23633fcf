"""WeChat contact exports made by third-party tools (WeChat itself has no export).

Two shapes are read.

**WeChatMsg / MemoTrace ``contacts.csv``** — one row per entry of the
``Contact`` table, columns ``UserName, Alias, Type, Remark, NickName,
PYInitial, RemarkPYInitial, smallHeadImgUrl, bigHeadImgUrl, ExTraBuf,
LabelName`` (header names matched case-insensitively; only ``UserName`` and
``NickName`` must exist). ``UserName`` is the stable id (``wxid_...`` or a
custom id); the display name is ``Remark`` (the name the user chose), else
``NickName``, else ``Alias`` (the WeChat ID). Rows whose ``UserName`` ends in
``@chatroom`` are groups; this file lists no members for them. ``LabelName``
holds the user's contact tags, which are not chat groups and are ignored.
``Type`` is a bit field whose meaning is community-documented, not official:
4 marks someone only seen in a group (not a friend) and bit 8 a blacklisted
contact; both are skipped. Official accounts (``gh_...``, bit 32) and WeChat's
built-in service ids (``filehelper``, ``fmessage`` ...) are skipped too.

**PyWxDump-style JSON** — accepted shapes:

* a list of records (contacts and chatrooms mixed, told apart by ``@chatroom``
  ids or a member list);
* an object with a contact list under ``contacts``/``contact_list``/
  ``contactList``/``users``/``user_list``/``friends`` and a chatroom list under
  ``chatrooms``/``chatroom_list``/``chatroomList``/``rooms``/``room_list``/``groups``;
* an object mapping each id to its record (PyWxDump's ``get_user_list``);
* any of these wrapped once in ``data``/``body``/``result``.

Record fields: id from ``wxid``/``username``/``UserName``/``chatroom_id``/
``chatroomname``/``room_id``/``roomWxid``; name from ``remark``/``Remark``,
then ``nickname``/``NickName``/``nick_name``/``name``; WeChat ID from
``account``/``alias``/``Alias``; phones from ``phone``/``mobile``/
``phone_number``/``telephone``/``phones`` or ``ExtraBuf``'s ``手机号``.
Chatrooms: members from ``member_list``/``members``/``memberList`` (each an
object with ``wxid``/``username`` and ``display_name``/``room_nickname``/
``nickname``/``remark``, or a bare id string), owner from ``owner``/
``room_owner``/``roomOwner``. The exporting account's own id from a top-level
``self_wxid`` string or a ``self``/``me``/``myself``/``user_info`` object.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from typing import Any

from bridges.importers.csvtable import iter_rows, read_header
from bridges.importers.encoding import decode_text
from bridges.importers.errors import ImportFormatError
from bridges.importers.limits import (
    DEFAULT_LIMITS,
    ImportLimits,
    check_group_size,
    check_line_lengths,
    check_row_count,
    check_size,
    load_json,
)
from bridges.importers.model import Contact, Group, ImportedExport, Member
from bridges.importers.phones import PhoneList, check_region
from bridges.importers.records import UniqueIds, WarningLog, clean_text

logger = logging.getLogger(__name__)

CHATROOM_SUFFIX = "@chatroom"

# WeChat's built-in service ids that appear in the Contact table like people.
SYSTEM_IDS = frozenset({
    "filehelper", "fmessage", "medianote", "floatbottle", "qmessage", "qqmail", "tmessage",
    "weibo", "newsapp", "weixin", "notifymessage", "qqsync", "masssendapp", "feedsapp",
    "voip", "blogapp", "voicevoipapp", "lbsapp", "shakeapp", "facebookapp", "meishiapp",
    "officialaccounts", "brandsessionholder", "linkedinplugin", "cardpackage", "qqfriend",
    "voiceinputapp", "helper_entry", "userexperience_alarm", "exmail_tool", "gh_notify",
})
TYPE_NOT_FRIEND = 4
TYPE_BLACKLISTED_BIT = 8
TYPE_OFFICIAL_BIT = 32

_CSV_LABEL = "WeChat contacts (WeChatMsg/MemoTrace CSV)"
_JSON_LABEL = "WeChat contacts (PyWxDump JSON)"

_ID_KEYS = ("wxid", "username", "UserName", "userName", "user_name",
            "chatroom_id", "chatroomId", "chatroomname", "room_id", "roomWxid", "room_wxid")
_REMARK_KEYS = ("remark", "Remark")
_NICK_KEYS = ("nickname", "NickName", "nickName", "nick_name", "name")
_ACCOUNT_KEYS = ("account", "alias", "Alias")
_PHONE_KEYS = ("phone", "mobile", "phone_number", "telephone", "phones")
_MEMBER_LIST_KEYS = ("member_list", "members", "memberList")
_MEMBER_NAME_KEYS = ("display_name", "displayName", "room_nickname", "nickname", "remark", "name")
_OWNER_KEYS = ("owner", "room_owner", "roomOwner", "Owner")
_CONTACT_LIST_KEYS = ("contacts", "contact_list", "contactList", "users", "user_list", "friends")
_ROOM_LIST_KEYS = ("chatrooms", "chatroom_list", "chatroomList", "rooms", "room_list", "groups")
_WRAPPER_KEYS = ("data", "body", "result")
_SELF_OBJECT_KEYS = ("self", "me", "myself", "user_info")


def skip_reason(user_name: str, contact_type: int | None) -> str | None:
    """Decide whether a Contact-table entry is not a person worth importing.

    Args:
        user_name: The ``UserName``/wxid.
        contact_type: The ``Type`` bit field, if known.

    Returns:
        A short reason ("official account", ...) or None to keep the entry.
    """
    if user_name.endswith(CHATROOM_SUFFIX):
        return None
    if user_name in SYSTEM_IDS:
        return "WeChat service account"
    if user_name.startswith("gh_") or (contact_type is not None and contact_type & TYPE_OFFICIAL_BIT):
        return "official account"
    if contact_type is not None and contact_type & TYPE_BLACKLISTED_BIT:
        return "blocked contact"
    if contact_type == TYPE_NOT_FRIEND:
        return "not a friend (only seen in a group)"
    return None


class _Skipped:
    """Counts skipped entries by reason, reported as one warning each."""

    def __init__(self) -> None:
        self.counts: dict[str, int] = {}

    def add(self, reason: str) -> None:
        self.counts[reason] = self.counts.get(reason, 0) + 1

    def report(self, warnings: WarningLog) -> None:
        for reason, count in self.counts.items():
            warnings.add(f"skipped {count} {'entry' if count == 1 else 'entries'}: {reason}")


def _int_or_none(text: str) -> int | None:
    try:
        return int(text.strip())
    except ValueError:
        return None


# -- contacts.csv ---------------------------------------------------------------------------


def is_contacts_csv_header(names: list[str]) -> bool:
    """Tell whether a CSV header is a WeChatMsg/MemoTrace contact export.

    Args:
        names: Header cells.

    Returns:
        True when ``UserName`` and ``NickName`` columns exist (any case).
    """
    lowered = {name.lower() for name in names}
    return {"username", "nickname"} <= lowered


def parse_wechat_contacts_csv(
    data: bytes, *, default_region: str = "CN", limits: ImportLimits = DEFAULT_LIMITS
) -> ImportedExport:
    """Parse a WeChatMsg/MemoTrace ``contacts.csv``.

    Args:
        data: The file's bytes.
        default_region: Unused by this format (it has no phone column); validated for symmetry.
        limits: Size and row limits.

    Returns:
        Contacts and member-less chatroom groups.
    """
    check_region(default_region)
    check_size(data, limits)
    decoded = decode_text(data, allow_legacy=True)
    check_line_lengths(decoded.text, limits)
    if not is_contacts_csv_header(read_header(decoded.text)):
        raise ImportFormatError(
            "The CSV header has no UserName and NickName columns, so it is not a "
            "WeChatMsg/MemoTrace contact export.",
            line=1,
        )
    names, rows = iter_rows(decoded.text, limits)
    column = {name.lower(): name for name in names}
    warnings = WarningLog()
    ids = UniqueIds()
    skipped = _Skipped()
    contacts: list[Contact] = []
    groups: list[Group] = []

    def cell(row_cells: dict[str, str], key: str) -> str:
        return clean_text(row_cells.get(column.get(key.lower(), ""), ""))

    for row in rows:
        user_name = cell(row.cells, "UserName")
        if not user_name:
            warnings.add("row has no UserName; skipped", line=row.line, record=row.record)
            continue
        reason = skip_reason(user_name, _int_or_none(cell(row.cells, "Type")))
        if reason:
            skipped.add(reason)
            continue
        name = cell(row.cells, "Remark") or cell(row.cells, "NickName")
        if user_name.endswith(CHATROOM_SUFFIX):
            groups.append(Group(source_id=ids.claim(user_name), name=name or "Unnamed WeChat group"))
            continue
        name = name or cell(row.cells, "Alias") or user_name
        contacts.append(Contact(source_id=ids.claim(user_name), name=name))
    skipped.report(warnings)
    logger.info("parsed %s: %d contacts, %d groups", _CSV_LABEL, len(contacts), len(groups))
    return ImportedExport(
        format="wechat_contacts_csv",
        format_label=_CSV_LABEL,
        contacts=tuple(contacts),
        groups=tuple(groups),
        warnings=warnings.freeze(),
        encoding=decoded.encoding,
    )


# -- PyWxDump-style JSON ----------------------------------------------------------------------


def _first(record: dict[str, Any], keys: tuple[str, ...]) -> Any:
    for key in keys:
        value = record.get(key)
        if value not in (None, "", [], {}):
            return value
    return None


def _text(record: dict[str, Any], keys: tuple[str, ...]) -> str:
    for key in keys:
        value = record.get(key)
        if isinstance(value, (str, int)) and not isinstance(value, bool):
            text = clean_text(str(value))
            if text:
                return text
    return ""


def _is_room(record: dict[str, Any], record_id: str) -> bool:
    return record_id.endswith(CHATROOM_SUFFIX) or _first(record, _MEMBER_LIST_KEYS) is not None


def _unwrap(doc: Any) -> Any:
    if isinstance(doc, dict):
        for key in _WRAPPER_KEYS:
            inner = doc.get(key)
            if isinstance(inner, (dict, list)):
                return inner
    return doc


def _keyed_records(doc: dict[str, Any]) -> list[dict[str, Any]] | None:
    """Records of an id -> record mapping, or None if ``doc`` is not one."""
    if not doc or not all(isinstance(value, dict) for value in doc.values()):
        return None
    records = []
    for key, value in doc.items():
        record = dict(value)
        if not _text(record, _ID_KEYS):
            record["wxid"] = key
        records.append(record)
    return records


def _records(doc: Any) -> Iterator[dict[str, Any]]:
    """Every contact or chatroom record in the document, in file order."""
    doc = _unwrap(doc)
    if isinstance(doc, list):
        yield from (item for item in doc if isinstance(item, dict))
        return
    if not isinstance(doc, dict):
        return
    lists = [doc[key] for key in (*_CONTACT_LIST_KEYS, *_ROOM_LIST_KEYS) if key in doc]
    if lists:
        for value in lists:
            if isinstance(value, list):
                yield from (item for item in value if isinstance(item, dict))
            elif isinstance(value, dict):
                yield from _keyed_records(value) or ()
        return
    yield from _keyed_records(doc) or ()


def looks_like_wechat_json(doc: Any) -> bool:
    """Tell whether a decoded JSON document is a WeChat contact dump.

    Args:
        doc: The decoded JSON.

    Returns:
        True when some record has a ``wxid``-style id key holding a WeChat id.
    """
    for index, record in enumerate(_records(doc)):
        if index >= 1000:
            break
        record_id = _text(record, _ID_KEYS)
        if "wxid" in record or record_id.startswith("wxid_") or record_id.endswith(CHATROOM_SUFFIX):
            return True
    return False


def _self_id(doc: Any) -> str | None:
    if not isinstance(doc, dict):
        return None
    value = doc.get("self_wxid")
    if isinstance(value, str) and value.strip():
        return value.strip()
    for key in _SELF_OBJECT_KEYS:
        inner = doc.get(key)
        if isinstance(inner, dict):
            found = _text(inner, _ID_KEYS)
            if found:
                return found
    return None


def _phone_values(record: dict[str, Any]) -> list[Any]:
    values: list[Any] = []
    for key in _PHONE_KEYS:
        value = record.get(key)
        values.extend(value if isinstance(value, list) else [value])
    extra = record.get("ExtraBuf") or record.get("extra_buf")
    if isinstance(extra, dict):
        values.append(extra.get("手机号"))
    return [value for value in values if isinstance(value, (str, int)) and not isinstance(value, bool)]


def wechat_from_document(
    doc: Any,
    *,
    encoding: str,
    default_region: str = "CN",
    limits: ImportLimits = DEFAULT_LIMITS,
) -> ImportedExport:
    """Build the model from an already decoded PyWxDump-style JSON document.

    Args:
        doc: The decoded JSON.
        encoding: Codec the file was read with.
        default_region: Region for numbers written without a country code.
        limits: Row and group-size limits.

    Returns:
        Contacts and chatroom groups with members.
    """
    region = check_region(default_region)
    if not looks_like_wechat_json(doc):
        raise ImportFormatError(
            "This JSON has no WeChat contact records (objects with a wxid). "
            "Export the contact list with PyWxDump again."
        )
    warnings = WarningLog()
    ids = UniqueIds()
    skipped = _Skipped()
    people: dict[str, Contact] = {}
    rooms: list[tuple[int, str, dict[str, Any]]] = []
    contacts: list[Contact] = []
    for record_number, record in enumerate(_records(doc), start=1):
        check_row_count(record_number, limits)
        record_id = _text(record, _ID_KEYS)
        if not record_id:
            warnings.add("entry has no wxid; skipped", record=record_number)
            continue
        if _is_room(record, record_id):
            rooms.append((record_number, record_id, record))
            continue
        contact_type = record.get("type", record.get("Type"))
        reason = skip_reason(record_id, contact_type if isinstance(contact_type, int) else None)
        if reason:
            skipped.add(reason)
            continue
        phones = PhoneList(region, warnings)
        for raw in _phone_values(record):
            phones.add(str(raw), record=record_number)
        name = (_text(record, _REMARK_KEYS) or _text(record, _NICK_KEYS)
                or _text(record, _ACCOUNT_KEYS) or record_id)
        contact = Contact(
            source_id=ids.claim(record_id),
            name=name,
            phones=phones.phones,
            raw_phones=phones.raw_phones,
        )
        people.setdefault(record_id, contact)
        contacts.append(contact)

    groups = [
        _room(record_number, room_id, record, people, ids, warnings, limits)
        for record_number, room_id, record in rooms
    ]
    skipped.report(warnings)
    logger.info("parsed %s: %d contacts, %d groups", _JSON_LABEL, len(contacts), len(groups))
    return ImportedExport(
        format="wechat_json",
        format_label=_JSON_LABEL,
        contacts=tuple(contacts),
        groups=tuple(groups),
        self_source_id=_self_id(_unwrap(doc)) or _self_id(doc),
        warnings=warnings.freeze(),
        encoding=encoding,
    )


def _room(
    record_number: int,
    room_id: str,
    record: dict[str, Any],
    people: dict[str, Contact],
    ids: UniqueIds,
    warnings: WarningLog,
    limits: ImportLimits,
) -> Group:
    name = _text(record, _REMARK_KEYS) or _text(record, _NICK_KEYS) or "Unnamed WeChat group"
    raw_members = _first(record, _MEMBER_LIST_KEYS)
    if isinstance(raw_members, dict):
        # {wxid: display name} or {wxid: {...}}
        raw_members = [
            {"wxid": key, **value} if isinstance(value, dict) else {"wxid": key, "display_name": value}
            for key, value in raw_members.items()
        ]
    members: dict[str, Member] = {}
    for item in raw_members if isinstance(raw_members, list) else []:
        if isinstance(item, str):
            item = {"wxid": item}
        if not isinstance(item, dict):
            continue
        member_id = _text(item, _ID_KEYS)
        if not member_id:
            warnings.add(f"a member of group '{name}' has no wxid; skipped", record=record_number)
            continue
        if member_id in members:
            continue
        known = people.get(member_id)
        member_name = (known.name if known else "") or _text(item, _MEMBER_NAME_KEYS) or member_id
        members[member_id] = Member(
            source_id=member_id, name=member_name, phones=known.phones if known else ()
        )
        check_group_size(name, len(members), limits)
    owner = _text(record, _OWNER_KEYS) or None
    return Group(source_id=ids.claim(room_id), name=name, members=tuple(members.values()),
                 owner_source_id=owner)


def parse_wechat_json(
    data: bytes, *, default_region: str = "CN", limits: ImportLimits = DEFAULT_LIMITS
) -> ImportedExport:
    """Parse a PyWxDump-style JSON contact and chatroom dump.

    Args:
        data: The file's bytes.
        default_region: Region for numbers written without a country code.
        limits: Size, depth, row and group-size limits.

    Returns:
        Contacts and chatroom groups with members.
    """
    check_region(default_region)
    check_size(data, limits)
    decoded = decode_text(data, allow_legacy=False)
    doc = load_json(decoded.text, limits)
    return wechat_from_document(doc, encoding=decoded.encoding, default_region=default_region,
                                limits=limits)
