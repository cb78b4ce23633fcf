"""Phone normalisation, text decoding and the model's invariants."""

from __future__ import annotations

import pytest

from bridges.importers import Contact, ImportedExport, ImportFormatError, normalise_phone
from bridges.importers.encoding import decode_text, sniff_text, utf16_without_bom
from bridges.importers.phones import check_region
from bridges.importers.records import join_name, normalise_email


@pytest.mark.parametrize(
    ("raw", "region", "expected"),
    [
        ("138 0013 8000", "CN", "+8613800138000"),
        ("+86 138-0013-8000", "CN", "+8613800138000"),
        ("008613800138000", "CN", "+8613800138000"),
        ("8613800138000", "CN", "+8613800138000"),
        ("１３８００１３８０００", "CN", "+8613800138000"),  # full-width digits
        ("\u202a+86 138 0013 8000\u202c", "CN", "+8613800138000"),  # bidi marks
        ("010-6552 9988", "CN", "+861065529988"),
        ("tel:+1-418-656-9254;ext=102", "CN", "+14186569254"),
        ("(650) 253-0000", "US", "+16502530000"),
        ("138 0013 800", "CN", None),  # one digit short
        ("91551000", "CN", None),       # a Norwegian number read as Chinese
        ("+44 7700 900123", "CN", None),  # drama range: possible, not valid
        ("BusinessPhone", "CN", None),
        ("", "CN", None),
        ("1" * 200, "CN", None),
    ],
)
def test_normalise_phone(raw: str, region: str, expected: str | None) -> None:
    assert normalise_phone(raw, region) == expected


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("+44 7700 900123", "+447700900123"),  # explicit country code, possible length
        ("+12 345 578", None),                  # only locally dialable
        ("2345 6789", None),                    # no explicit country code
    ],
)
def test_normalise_account_numbers(raw: str, expected: str | None) -> None:
    assert normalise_phone(raw, "CN", from_account=True) == expected


def test_unknown_region_is_a_programming_error() -> None:
    with pytest.raises(ValueError):
        check_region("XX")
    assert check_region("cn") == "CN"


@pytest.mark.parametrize(
    ("given", "family", "middle", "expected"),
    [("三", "张", "", "张三"), ("Ann", "Lee", "Marie", "Ann Marie Lee"), ("", "Lee", "", "Lee"),
     ("Ann", "张", "", "Ann 张")],
)
def test_join_name(given: str, family: str, middle: str, expected: str) -> None:
    assert join_name(given, family, middle=middle) == expected


def test_normalise_email() -> None:
    assert normalise_email(" MailTo:Ann@Example.COM ") == "ann@example.com"
    assert normalise_email("not an address") is None
    assert normalise_email(None) is None


@pytest.mark.parametrize(
    ("data", "legacy", "text", "encoding"),
    [
        ("héllo 张".encode(), False, "héllo 张", "utf-8"),
        ("\ufeffhéllo".encode(), False, "héllo", "utf-8-sig"),
        ("héllo 张".encode("utf-16"), False, "héllo 张", "utf-16-le"),
        ("héllo 张".encode("utf-16-be"), False, "héllo 张", "utf-16-be"),
        ("héllo 张".encode("utf-32"), False, "héllo 张", "utf-32-le"),
        ("张三,李四,王五\n".encode("gb18030"), True, "张三,李四,王五\n", "gb18030"),
        ("Günther Straße".encode("cp1252"), True, "Günther Straße", "cp1252"),
    ],
)
def test_decode_text(data: bytes, legacy: bool, text: str, encoding: str) -> None:
    decoded = decode_text(data, allow_legacy=legacy)
    assert (decoded.text, decoded.encoding) == (text, encoding)


def test_bomless_utf16_is_recognised_by_nul_pattern() -> None:
    assert utf16_without_bom("BEGIN:VCARD\r\n".encode("utf-16-le")) == "utf-16-le"
    assert utf16_without_bom("BEGIN:VCARD\r\n".encode("utf-16-be")) == "utf-16-be"
    assert utf16_without_bom(b"plain ascii") is None


@pytest.mark.parametrize(
    ("data", "phrase"),
    [
        (b"PK\x03\x04rest of a zip", "ZIP archive"),
        (b"SQLite format 3\x00....", "SQLite database"),
        (b"text\x00with NUL", "NUL bytes"),
        (bytes(range(1, 32)) * 20, "control characters"),
    ],
)
def test_binary_content_is_refused(data: bytes, phrase: str) -> None:
    with pytest.raises(ImportFormatError) as caught:
        decode_text(data, allow_legacy=True)
    assert phrase in caught.value.reason


def test_sniff_text_tolerates_a_cut_multibyte_character() -> None:
    data = ("a" * 10 + "张").encode()
    assert sniff_text(data, limit=12) == "a" * 10


def test_model_rejects_unknown_formats_and_bare_strings() -> None:
    with pytest.raises(ValueError):
        ImportedExport(format="msn", format_label="MSN")
    with pytest.raises(TypeError):
        Contact(source_id="1", name="A", phones="+8613800138000")  # type: ignore[arg-type]
    contact = Contact(source_id="1", name="A", phones=["+8613800138000"])  # type: ignore[arg-type]
    assert contact.phones == ("+8613800138000",)
