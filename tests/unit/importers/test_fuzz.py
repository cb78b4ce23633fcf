"""Property tests: any input gives a result or ImportFormatError, never another exception."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bridges.importers import (
    ImportedExport,
    ImportFormatError,
    ImportLimits,
    parse_export,
    parse_google_csv,
    parse_telegram,
    parse_vcard,
    parse_wechat_contacts_csv,
    parse_wechat_json,
    parse_whatsapp,
)
from tests.unit.importers.support import EXPORT_FIXTURES, SAMPLES, sample_names

# No example database: it would write a .hypothesis folder into the checkout.
FUZZ = settings(max_examples=200, deadline=None, database=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
# Small limits so that fuzzed inputs also reach the limit checks.
LIMITS = ImportLimits(max_rows=50, max_line_length=4096, max_json_depth=16, max_group_members=20)

PARSERS: dict[str, Callable[..., ImportedExport]] = {
    "export": parse_export,
    "vcard": parse_vcard,
    "google_csv": parse_google_csv,
    "telegram": parse_telegram,
    "wechat_csv": parse_wechat_contacts_csv,
    "wechat_json": parse_wechat_json,
    "whatsapp": parse_whatsapp,
}


def _seeds() -> list[bytes]:
    paths = [SAMPLES / name for name in sample_names()]
    # The real export samples, where they sit beside the checkout, add seeds; the own ones suffice.
    if EXPORT_FIXTURES.is_dir():
        paths += sorted(p for p in EXPORT_FIXTURES.rglob("*") if p.is_file() and p.suffix != ".md")
    # Keep seeds small so mutations stay fast.
    return [path.read_bytes()[:6000] for path in paths]


SEEDS = _seeds()


def check(parser: Callable[..., ImportedExport], data: bytes) -> None:
    try:
        result = parser(data, limits=LIMITS)
    except ImportFormatError as error:
        assert error.reason
        assert isinstance(str(error), str)
        return
    assert isinstance(result, ImportedExport)
    for contact in result.contacts:
        assert contact.name and contact.source_id
        assert all(phone.startswith("+") for phone in contact.phones)
    assert len({c.source_id for c in result.contacts}) == len(result.contacts)


@st.composite
def mutated(draw: st.DrawFn) -> bytes:
    data = bytearray(draw(st.sampled_from(SEEDS)))
    for _ in range(draw(st.integers(1, 6))):
        action = draw(st.sampled_from(["flip", "delete", "insert", "truncate", "duplicate"]))
        position = draw(st.integers(0, max(len(data) - 1, 0)))
        if action == "flip" and data:
            data[position] = draw(st.integers(0, 255))
        elif action == "delete":
            del data[position: position + draw(st.integers(1, 64))]
        elif action == "insert":
            data[position:position] = draw(
                st.sampled_from([b"\x00", b"\r", b"\n", b"=", b":", b";", b",", b'"', b"[", b"{", b"\\",
                                 b"\xff\xfe", b"\xe2\x80\x8e", b"BEGIN:VCARD\r\n", b"END:VCARD\r\n",
                                 b"ENCODING=QUOTED-PRINTABLE:=", b"CHARSET=base64:", b"@chatroom"])
                | st.binary(max_size=16)
            )
        elif action == "truncate":
            del data[position:]
        elif action == "duplicate" and data:
            end = min(len(data), position + draw(st.integers(1, 200)))
            data[position:position] = data[position:end]
    return bytes(data)


@pytest.mark.parametrize("name", sorted(PARSERS))
@FUZZ
@given(data=st.binary(max_size=2048))
def test_arbitrary_bytes(name: str, data: bytes) -> None:
    check(PARSERS[name], data)


@pytest.mark.parametrize("name", sorted(PARSERS))
@FUZZ
@given(data=mutated())
def test_mutated_samples(name: str, data: bytes) -> None:
    check(PARSERS[name], data)


_VALUES = st.one_of(st.none(), st.booleans(), st.integers(-(2**40), 2**40), st.text(max_size=12),
                    st.lists(st.text(max_size=6), max_size=3))
_KEYS = st.sampled_from(["name", "type", "id", "messages", "from", "from_id", "actor", "actor_id", "action",
                         "members", "list", "chats", "contacts", "personal_information", "user_id",
                         "first_name", "last_name", "phone_number", "wxid", "nickname", "remark",
                         "member_list", "owner", "chatroom_id", "ExtraBuf", "data", "self_wxid"])
_JSON = st.recursive(
    _VALUES,
    lambda children: st.lists(children, max_size=4) | st.dictionaries(_KEYS, children, max_size=5),
    max_leaves=30,
)


@FUZZ
@given(doc=_JSON)
def test_near_valid_json_documents(doc: Any) -> None:
    data = json.dumps(doc, ensure_ascii=False).encode()
    for parser in (parse_export, parse_telegram, parse_wechat_json):
        check(parser, data)


_VCARD_LINE = st.builds(
    lambda group, name, params, value: f"{group}{name}{params}:{value}",
    st.sampled_from(["", "item1.", "x."]),
    st.sampled_from(["FN", "N", "ORG", "TEL", "EMAIL", "NOTE", "UID", "BEGIN", "END", "VERSION", "X-A"]),
    st.lists(st.sampled_from([";CHARSET=UTF-8", ";CHARSET=SHIFT_JIS", ";CHARSET=nope", ";ENCODING=QUOTED-PRINTABLE",
                              ";QUOTED-PRINTABLE", ";TYPE=CELL", ";TYPE=FAX", ";VALUE=uri", ';TYPE="a,b"']),
             max_size=3).map("".join),
    st.text(alphabet=st.characters(codec="utf-8", exclude_characters="\r\n"), max_size=30),
)


@FUZZ
@given(lines=st.lists(_VCARD_LINE, max_size=12), version=st.sampled_from(["2.1", "3.0", "4.0"]))
def test_near_valid_vcards(lines: list[str], version: str) -> None:
    text = "\r\n".join(["BEGIN:VCARD", f"VERSION:{version}", *lines, "END:VCARD", ""])
    check(parse_vcard, text.encode())
    check(parse_export, text.encode("utf-16"))


_CHAT_LINE = st.builds(
    lambda stamp, body: stamp + body,
    st.sampled_from(["12/03/2024, 09:00 - ", "[3/12/24, 9:00:00\u202fAM] ", "2024/03/12, 09:00 - ", ""]),
    st.sampled_from(["Ann: hi", "Ann added Bob", "Ann created group \"G\"", "+44 7700 900123: x",
                     "Chat: \u200eAnn added you", "Ann left", "You were added", ": ", "~ : x"])
    | st.text(max_size=20),
)


@FUZZ
@given(lines=st.lists(_CHAT_LINE, max_size=15))
def test_near_valid_whatsapp_chats(lines: list[str]) -> None:
    check(parse_whatsapp, "\n".join(lines).encode())


# -- CSV formats: a real header, then rows of hostile cells -------------------------------------

_GOOGLE_HEADERS = [
    # current (First/Last Name + numbered columns), legacy (Given/Family Name), Outlook
    ["First Name", "Last Name", "Nickname", "Labels", "E-mail 1 - Label", "E-mail 1 - Value", "Phone 1 - Label",
     "Phone 1 - Value", "Phone 2 - Label", "Phone 2 - Value"],
    ["Name", "Given Name", "Family Name", "Group Membership", "E-mail 1 - Type", "E-mail 1 - Value",
     "Phone 1 - Type", "Phone 1 - Value"],
    ["First Name", "Last Name", "E-mail Address", "Mobile Phone", "Home Phone", "Business Phone", "Categories"],
]
_WECHAT_HEADER = ["UserName", "Alias", "Type", "Remark", "NickName", "PYInitial", "ExTraBuf", "LabelName"]
_CELL = st.one_of(
    st.sampled_from(["", "张三", "+86 138 0013 8000 ::: 139 1234 5678", " ::: ", "::: :::", "a@b.c", "mailto:",
                     "wxid_abc", "gh_news", "abc@chatroom", "filehelper", "4", "8", "32", "-1", "99999999999999999999",
                     '"', '""', "\r\n", "\n", ",", "* myContacts ::: Friends", "=cmd|' /C calc'!A0", "\u200e+1 (555)"]),
    st.text(max_size=24),
)
_ROW = st.lists(_CELL, min_size=0, max_size=12)


def _csv_text(header: list[str], rows: list[list[str]]) -> str:
    import csv
    import io

    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(header)
    writer.writerows(rows)
    return out.getvalue()


@FUZZ
@given(header=st.sampled_from(_GOOGLE_HEADERS), rows=st.lists(_ROW, max_size=8),
       encoding=st.sampled_from(["utf-8", "utf-8-sig", "utf-16", "gb18030"]))
def test_near_valid_google_csv(header: list[str], rows: list[list[str]], encoding: str) -> None:
    data = _csv_text(header, rows).encode(encoding, "replace")
    check(parse_google_csv, data)
    check(parse_export, data)


@FUZZ
@given(rows=st.lists(_ROW, max_size=8), encoding=st.sampled_from(["utf-8", "utf-8-sig", "utf-16", "gb18030"]),
       cut=st.integers(0, 4000))
def test_near_valid_wechat_csv(rows: list[list[str]], encoding: str, cut: int) -> None:
    data = _csv_text(_WECHAT_HEADER, rows).encode(encoding, "replace")
    check(parse_wechat_contacts_csv, data)
    check(parse_export, data[:cut])  # truncated anywhere, even inside a UTF-16 or GB18030 character


@pytest.mark.parametrize("name", sorted(PARSERS))
@FUZZ
@given(data=mutated(), encoding=st.sampled_from(["utf-16", "utf-16-be", "utf-8-sig", "gb18030"]))
def test_mutated_samples_in_other_encodings(name: str, data: bytes, encoding: str) -> None:
    # The seeds are UTF-8; real exports also come as UTF-16 (Outlook, Windows tools) or GB18030.
    text = data.decode("utf-8", "replace")
    check(PARSERS[name], text.encode(encoding, "replace"))
