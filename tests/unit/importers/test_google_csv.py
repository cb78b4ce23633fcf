"""Google Contacts (current and legacy) and Outlook CSV."""

from __future__ import annotations

import pytest

from bridges.importers import ImportFormatError, parse_google_csv
from tests.unit.importers.support import sample_bytes

CURRENT = sample_bytes("google_current.csv")
LEGACY = sample_bytes("google_legacy.csv")

OUTLOOK_CHINESE = (
    "First Name,Middle Name,Last Name,Company,E-mail Address,Mobile Phone,Home Phone,Business Fax,Notes,Categories\r\n"
    "三,,张,深圳电子厂,zhang@example.cn,138 0013 8000,0755 8888 6666,0755 8888 6667,老客户,供应商\r\n"
    "娜,,李,,,+86 139 1234 5678,,,,\r\n"
)


def rows(data: bytes, default_region: str = "CN") -> list[tuple[object, ...]]:
    result = parse_google_csv(data, default_region=default_region)
    return [(c.name, c.phones, c.emails, c.raw_phones, c.note) for c in result.contacts]


def test_current_google_csv_multi_values_and_labels() -> None:
    result = parse_google_csv(CURRENT)
    assert result.format == "google_csv"
    assert result.format_label == "Google Contacts CSV"
    # Labels ("* myContacts ::: Suppliers", "starred") are not chat groups.
    assert result.groups == ()
    assert rows(CURRENT) == [
        ("张三", ("+8613800138000", "+8613912345678", "+861065529988"), ("zhang.san@example.com",), (),
         "Met at the trade fair.\nPrefers WeChat."),
        # " ::: " e-mails, a duplicate across columns, and the "Work Fax" number left out.
        ("Ann Marie Lee", ("+442079460958",), ("ann@work.example", "ann@home.example"), (), None),
        ("Acme Trading Co", ("+864008108888",), (), (), None),
        ("12345", (), (), ("12345",), None),
    ]
    assert result.warnings == ("line 7 (record 4): phone number '12345' is not valid; kept as text",)


def test_legacy_google_csv() -> None:
    result = parse_google_csv(LEGACY)
    assert result.format_label == "Google Contacts CSV (legacy)"
    assert rows(LEGACY) == [
        # " ::: " numbers that normalise to the same E.164 are deduplicated.
        ("李娜", ("+8613800138000", "+862162123456"), ("li.na@example.cn",), (), None),
        # Pager left out; multi-line note kept.
        ("Bob Smith", ("+16502530000",), (), (), "Line one\nLine two"),
        ("Wangxin Ltd", (), (), (), None),
    ]


@pytest.mark.parametrize(
    ("encoded", "encoding"),
    [
        (OUTLOOK_CHINESE.encode("gb18030"), "gb18030"),
        (OUTLOOK_CHINESE.encode("utf-8-sig"), "utf-8-sig"),
        (OUTLOOK_CHINESE.replace(",", "\t").encode("utf-16"), "utf-16-le"),
    ],
    ids=["gb18030", "utf8-bom", "utf16-tab-separated"],
)
def test_outlook_csv_from_chinese_windows(encoded: bytes, encoding: str) -> None:
    result = parse_google_csv(encoded)
    assert result.format_label == "Outlook CSV"
    assert result.encoding == encoding
    assert [(c.name, c.phones, c.emails, c.note) for c in result.contacts] == [
        ("张三", ("+8613800138000", "+8675588886666"), ("zhang@example.cn",), "老客户"),
        ("李娜", ("+8613912345678",), (), None),
    ]


def test_unrecognised_header_is_an_error() -> None:
    with pytest.raises(ImportFormatError) as caught:
        parse_google_csv(b"name,phone\nAnn,123\n")
    assert caught.value.line == 1
    assert "not one of Google Contacts' or Outlook's" in caught.value.reason


def test_rows_without_any_identity_are_skipped() -> None:
    data = b"First Name,Last Name,E-mail Address,Mobile Phone,Notes\nAnn,Lee,,,\n,,,,just a note\n"
    result = parse_google_csv(data)
    assert [c.name for c in result.contacts] == ["Ann Lee"]
    assert result.warnings == ("line 3 (record 2): row has no name, phone number or e-mail address; skipped",)


def test_identical_rows_get_distinct_ids() -> None:
    data = b"First Name,Last Name,E-mail Address,Mobile Phone\nAnn,Lee,,\nAnn,Lee,,\n"
    ids = [c.source_id for c in parse_google_csv(data).contacts]
    assert ids[1] == ids[0] + "#2"
