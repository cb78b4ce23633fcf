"""Format detection: content first, file name second."""

from __future__ import annotations

import pytest

from bridges.importers import ImportFormatError, detect_format, parse_export
from tests.unit.importers.support import sample_bytes


@pytest.mark.parametrize(
    ("sample", "expected"),
    [
        ("chinese_contacts.vcf", "vcard"),
        ("google_current.csv", "google_csv"),
        ("google_legacy.csv", "google_csv"),
        ("telegram_full_export.json", "telegram_json"),
        ("wechat_memotrace_contacts.csv", "wechat_contacts_csv"),
        ("wechat_pywxdump_lists.json", "wechat_json"),
        ("wechat_pywxdump_keyed.json", "wechat_json"),
        ("whatsapp_group_android.txt", "whatsapp_txt"),
        ("whatsapp_group_ios.txt", "whatsapp_txt"),
    ],
)
def test_content_decides_even_with_a_misleading_name(sample: str, expected: str) -> None:
    result = parse_export(sample_bytes(sample), "misleading-name.vcf")
    assert result.format == expected


def test_detect_format_without_parsing() -> None:
    assert detect_format(sample_bytes("chinese_contacts.vcf")) == "vcard"
    assert detect_format(sample_bytes("telegram_full_export.json")) == "json"
    assert detect_format(b"??", "contacts.VCF") == "vcard"
    assert detect_format(b"??", "WhatsApp Chat with Ann.txt") == "whatsapp_txt"
    assert detect_format(b"??", "notes.txt") is None


def test_file_name_routes_a_damaged_vcard_to_its_parser() -> None:
    with pytest.raises(ImportFormatError) as caught:
        parse_export(b"FN:No begin line\r\n", "contacts.vcf")
    assert "No vCard was found" in caught.value.reason


def test_file_name_routes_a_whatsapp_chat_without_lines() -> None:
    with pytest.raises(ImportFormatError) as caught:
        parse_export(b"nothing here\n", "WhatsApp Chat with Book Club.txt")
    assert "No WhatsApp message lines" in caught.value.reason


def test_file_name_routes_broken_json() -> None:
    with pytest.raises(ImportFormatError) as caught:
        parse_export(b"not json at all", "result.json")
    assert "not valid JSON" in caught.value.reason
    assert caught.value.line == 1


def test_unknown_text_is_unsupported() -> None:
    with pytest.raises(ImportFormatError) as caught:
        parse_export(b"Dear diary,\ntoday nothing happened.\n", "diary.txt")
    assert caught.value.reason.startswith("This file is not a format Wangxin can import. Supported: vCard")


def test_unknown_csv_is_unsupported() -> None:
    with pytest.raises(ImportFormatError) as caught:
        parse_export(b"id,amount\n1,20\n", "orders.csv")
    assert "not a format Wangxin can import" in caught.value.reason


def test_json_array_of_numbers_is_not_json_export() -> None:
    with pytest.raises(ImportFormatError) as caught:
        parse_export(b"[1, 2, 3]")
    assert "not a format Wangxin can import" in caught.value.reason


def test_default_region_is_passed_through() -> None:
    data = b"BEGIN:VCARD\r\nVERSION:3.0\r\nFN:A\r\nTEL:(650) 253-0000\r\nEND:VCARD\r\n"
    assert parse_export(data, default_region="US").contacts[0].phones == ("+16502530000",)
    assert parse_export(data).contacts[0].phones == ()
