"""vCard parsing: own samples, encodings and vobject's gaps."""

from __future__ import annotations

import pytest

from bridges.importers import ImportFormatError, parse_vcard
from tests.unit.importers.support import sample_bytes

CHINESE = sample_bytes("chinese_contacts.vcf")
CHINESE_EXPECTED = [
    ("张三", ("+8613800138000", "+861065529988"), ("zhangsan@example.cn",), ()),
    ("李四", ("+8613912345678",), (), ()),
    ("王五", ("+864008108888",), (), ("123",)),
    ("北京烤鸭店", ("+861065123456",), (), ()),
]


def card(*lines: str, version: str = "3.0") -> bytes:
    return "\r\n".join(["BEGIN:VCARD", f"VERSION:{version}", *lines, "END:VCARD", ""]).encode()


def summary(data: bytes, default_region: str = "CN") -> list[tuple[object, ...]]:
    result = parse_vcard(data, default_region=default_region)
    return [(c.name, c.phones, c.emails, c.raw_phones) for c in result.contacts]


def test_chinese_contact_list_with_cn_numbers() -> None:
    result = parse_vcard(CHINESE)
    assert [(c.name, c.phones, c.emails, c.raw_phones) for c in result.contacts] == CHINESE_EXPECTED
    # N only, CJK: family name first, no space.
    assert result.contacts[0].name == "张三"
    assert result.contacts[1].note == "客户, 北京分公司"
    assert result.contacts[2].source_id == "wangwu-uid-0001"
    assert result.warnings == ("line 21 (record 3): phone number '123' is not valid; kept as text",)


@pytest.mark.parametrize(
    ("encoded", "encoding"),
    [
        (CHINESE.decode().encode("utf-8-sig"), "utf-8-sig"),
        (CHINESE.decode().encode("utf-16"), "utf-16-le"),
        (CHINESE.decode().encode("utf-16-be"), "utf-16-be"),
        (CHINESE.decode().encode("utf-16-le"), "utf-16-le"),
        (CHINESE.decode().encode("gb18030"), "gb18030"),
    ],
    ids=["utf8-bom", "utf16-bom", "utf16be-no-bom", "utf16le-no-bom", "gb18030"],
)
def test_same_contacts_in_every_encoding(encoded: bytes, encoding: str) -> None:
    result = parse_vcard(encoded)
    assert result.encoding == encoding
    assert [(c.name, c.phones, c.emails, c.raw_phones) for c in result.contacts] == CHINESE_EXPECTED


def test_declared_charsets_raw_and_quoted_printable() -> None:
    data = (
        b"BEGIN:VCARD\r\nVERSION:2.1\r\n"
        b"FN;CHARSET=ISO-8859-2:Pawe\xb3 Mylka\r\n"
        b"NOTE;CHARSET=ISO-8859-2;ENCODING=QUOTED-PRINTABLE:Krak=F3w, ma=B3opolskie=0D=0A=\r\n"
        b"drugi wiersz\r\n"
        b"END:VCARD\r\n"
    )
    result = parse_vcard(data)
    [contact] = result.contacts
    assert contact.name == "Paweł Mylka"
    assert contact.note == "Kraków, małopolskie\ndrugi wiersz"
    assert result.encoding == "iso8859-2"


def test_lower_case_qp_parameters_and_utf8_charset() -> None:
    data = card("FN;charset=utf-8;encoding=quoted-printable:=E7=8E=8B=E4=BA=94", version="2.1")
    assert summary(data) == [("王五", (), (), ())]


def test_unknown_charset_is_guessed_with_a_warning() -> None:
    data = b"BEGIN:VCARD\r\nVERSION:2.1\r\nFN;CHARSET=X-MADE-UP:Gr\xfcn\r\nEND:VCARD\r\n"
    result = parse_vcard(data)
    assert result.contacts[0].name == "Grün"
    assert result.warnings == ("line 3: unknown CHARSET 'X-MADE-UP'; the text encoding was guessed",)


def test_undeclared_gbk_values_next_to_declared_ones() -> None:
    data = (
        "BEGIN:VCARD\r\nVERSION:2.1\r\nFN:张三\r\nTEL;CELL:13800138000\r\nEND:VCARD\r\n"
    ).encode("gbk")
    result = parse_vcard(data)
    assert result.contacts[0].name == "张三"
    assert result.encoding == "gb18030"


def test_unescaped_comma_in_version_3_name_is_kept_whole() -> None:
    assert summary(card("FN:Doe, John", "TEL:+86 138 0013 8000")) == [
        ("Doe, John", ("+8613800138000",), (), ())
    ]


def test_escaped_characters_and_dangling_backslash() -> None:
    result = parse_vcard(card("FN:A\\;B\\\\C", "NOTE:ends with a backslash\\"))
    assert result.contacts[0].name == "A;B\\C"
    assert result.contacts[0].note == "ends with a backslash"


def test_fax_and_pager_numbers_are_left_out() -> None:
    data = card(
        "FN:Fax Test",
        "TEL;TYPE=WORK,FAX:+86 10 6552 0000",
        "TEL;PAGER:+86 10 6552 0001",
        "TEL;TYPE=CELL:+86 138 0013 8000",
    )
    assert summary(data) == [("Fax Test", ("+8613800138000",), (), ())]


def test_apple_item_groups_and_v4_tel_uri() -> None:
    data = card(
        "N:Lee;Ann;;;",
        "item1.TEL;type=pref:+1 650 253 0000",
        "item1.X-ABLabel:_$!<Mobile>!$_",
        'TEL;VALUE=uri;TYPE="cell,voice":tel:+86-138-0013-8000;ext=1',
        version="4.0",
    )
    assert summary(data) == [("Ann Lee", ("+16502530000", "+8613800138000"), (), ())]


def test_name_fallbacks_and_unusable_cards() -> None:
    data = (
        card("ORG:Wangxin Ltd;Sales")
        + card("EMAIL:Only@Example.com")
        + card("TEL:+86 138 0013 8000")
        + card("NOTE:nothing to identify")
    )
    result = parse_vcard(data)
    assert [c.name for c in result.contacts] == ["Wangxin Ltd", "only@example.com", "+8613800138000"]
    assert result.warnings == (
        "line 13 (record 4): vCard has no name, phone number or e-mail address; skipped",
    )


def test_duplicate_uids_are_made_unique() -> None:
    result = parse_vcard(card("UID:same", "FN:One") + card("UID:same", "FN:Two"))
    assert [c.source_id for c in result.contacts] == ["same", "same#2"]


def test_source_ids_are_deterministic() -> None:
    first = parse_vcard(CHINESE)
    second = parse_vcard(CHINESE)
    assert [c.source_id for c in first.contacts] == [c.source_id for c in second.contacts]


def test_content_outside_cards_is_ignored() -> None:
    data = b"Exported by SomePhone\r\n" + card("FN:Inside") + b"trailing junk\r\n"
    result = parse_vcard(data)
    assert [c.name for c in result.contacts] == ["Inside"]
    assert result.warnings == ("2 line(s) outside BEGIN:VCARD ... END:VCARD were ignored",)


def test_nested_agent_card_is_not_a_contact() -> None:
    data = card("FN:Boss", "AGENT:", "BEGIN:VCARD", "VERSION:3.0", "FN:Assistant", "END:VCARD", version="2.1")
    assert [c.name for c in parse_vcard(data).contacts] == ["Boss"]


def test_mismatched_end_is_an_error() -> None:
    data = b"BEGIN:VCARD\r\nVERSION:3.0\r\nFN:A\r\nEND:VCALENDAR\r\n"
    with pytest.raises(ImportFormatError) as caught:
        parse_vcard(data)
    assert caught.value.line == 4
    assert "does not close the BEGIN:VCARD of line 1" in caught.value.reason


def test_qp_soft_break_splitting_a_multibyte_character() -> None:
    data = card(
        "FN;CHARSET=UTF-8;ENCODING=QUOTED-PRINTABLE:=D0=98=D0=B2=D0=B0=D0=BD =D0=",
        "=9F=D0=B5=D1=82=D1=80=D0=BE=D0=B2",
        version="2.1",
    )
    assert parse_vcard(data).contacts[0].name == "Иван Петров"


def test_plain_text_is_not_a_vcard() -> None:
    with pytest.raises(ImportFormatError) as caught:
        parse_vcard(b"just some text\n")
    assert "No vCard was found" in caught.value.reason


def test_trailing_spaces_after_begin_and_end() -> None:
    data = b"BEGIN:VCARD \r\nVERSION:3.0\r\nFN:A\r\nEND:VCARD  \r\n"
    assert [c.name for c in parse_vcard(data).contacts] == ["A"]
