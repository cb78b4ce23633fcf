"""Bad, hostile and oversized input: always ImportFormatError, naming the problem."""

from __future__ import annotations

import os
import pickle

import pytest

from bridges.importers import (
    ImportFormatError,
    ImportLimits,
    parse_export,
    parse_google_csv,
    parse_telegram,
    parse_vcard,
    parse_wechat_contacts_csv,
    parse_whatsapp,
)
from bridges.importers.records import UniqueIds
from tests.unit.importers.support import sample_bytes


def error_of(call: object, *args: object, **kwargs: object) -> ImportFormatError:
    with pytest.raises(ImportFormatError) as caught:
        call(*args, **kwargs)  # type: ignore[operator]
    return caught.value


def test_empty_file() -> None:
    for data in (b"", b"   \r\n\t", b"\xef\xbb\xbf"):
        assert "empty" in error_of(parse_export, data).reason


def test_truncated_json() -> None:
    data = sample_bytes("telegram_full_export.json")[:700]
    error = error_of(parse_export, data, "result.json")
    assert "cut off" in error.reason
    assert error.line is not None and error.line > 1
    assert str(error).startswith(f"line {error.line}: ")


def test_truncated_json_mid_file_syntax_error() -> None:
    error = error_of(parse_telegram, b'{"chats": {"list": [}}')
    assert "not valid JSON" in error.reason
    assert error.line == 1


def test_truncated_vcard_begin_without_end() -> None:
    data = sample_bytes("chinese_contacts.vcf")
    cut = data[: data.rindex(b"END:VCARD")]
    error = error_of(parse_export, cut, "contacts.vcf")
    assert "no END:VCARD" in error.reason and "cut off" in error.reason
    assert error.line == 24  # the BEGIN of the unfinished card


def test_binary_garbage() -> None:
    garbage = os.urandom(4096) + b"\x00"
    assert "binary" in error_of(parse_export, garbage, "contacts.vcf").reason
    assert "binary" in error_of(parse_vcard, garbage).reason
    assert "binary" in error_of(parse_google_csv, garbage).reason


def test_zip_archive_gets_a_useful_hint() -> None:
    error = error_of(parse_export, b"PK\x03\x04" + bytes(100), "WhatsApp Chat with X.zip")
    assert "ZIP archive" in error.reason and "unzip" in error.reason


def test_wrong_encoding_json() -> None:
    data = '{"personal_information": {"first_name": "Zoë"}}'.encode("latin-1")
    error = error_of(parse_export, data, "result.json")
    assert "not valid UTF-8" in error.reason
    assert error.line == 1


def test_one_megabyte_single_line() -> None:
    long_line = b"BEGIN:VCARD\r\nVERSION:3.0\r\nNOTE:" + b"x" * (1024 * 1024) + b"\r\nEND:VCARD\r\n"
    error = error_of(parse_export, long_line)
    assert "max_line_length=65536" in error.reason
    assert error.line == 3
    csv_line = b"First Name,Last Name,Notes\nAnn,Lee," + b"y" * (1024 * 1024) + b"\n"
    error = error_of(parse_google_csv, csv_line)
    assert "max_line_length" in error.reason and error.line == 2
    chat = b"12/03/2024, 09:02 - Ann: " + b"z" * (1024 * 1024) + b"\n"
    assert error_of(parse_whatsapp, chat).line == 1


# No wall-clock assertions (machines are noisy). A blow-up (exponential backtracking,
# deep recursion) never finishes, and this generous timeout turns that into a failure.
HOSTILE = pytest.mark.timeout(120)


@HOSTILE
def test_deeply_nested_json_does_not_recurse() -> None:
    data = b"[" * 100_000 + b"]" * 100_000
    error = error_of(parse_export, data, "result.json")
    assert "max_json_depth=64" in error.reason
    error = error_of(parse_telegram, b'{"chats": ' * 100_000)
    assert "max_json_depth" in error.reason and error.line == 1


def test_depth_scan_ignores_brackets_inside_strings() -> None:
    text = '{"name": "' + "[" * 1000 + '", "type": "personal_chat", "id": 5, "messages": []}'
    result = parse_telegram(text.encode())
    assert result.contacts[0].name == "[" * 1000


@HOSTILE
def test_a_million_csv_rows_with_a_low_row_limit() -> None:
    header = b"UserName,NickName\n"
    data = header + b"wxid_a,A\n" * 1_000_000
    error = error_of(parse_export, data, limits=ImportLimits(max_rows=1000))
    assert "max_rows=1000" in error.reason
    assert (error.line, error.record) == (1002, 1001)
    error = error_of(parse_wechat_contacts_csv, data, limits=ImportLimits(max_rows=10))
    assert error.record == 11


def test_too_many_vcards() -> None:
    card = b"BEGIN:VCARD\r\nVERSION:3.0\r\nFN:A\r\nEND:VCARD\r\n"
    error = error_of(parse_vcard, card * 6, limits=ImportLimits(max_rows=5))
    assert "max_rows=5" in error.reason and error.record == 6 and error.line == 21


def test_too_many_chat_messages() -> None:
    data = b"".join(b"12/03/2024, 09:02 - Ann: hi\n" for _ in range(20))
    error = error_of(parse_whatsapp, data, limits=ImportLimits(max_rows=10))
    assert error.record == 11 and error.line == 11


def test_file_too_big_is_refused_before_decoding() -> None:
    error = error_of(parse_export, b"\xff" * 2048, limits=ImportLimits(max_bytes=1024))
    assert "max_bytes=1024" in error.reason


def test_group_too_big() -> None:
    data = "".join(f"12/03/2024, 09:02 - Person {n}: hi\n" for n in range(10)).encode()
    error = error_of(parse_whatsapp, data, limits=ImportLimits(max_group_members=5))
    assert "max_group_members=5" in error.reason
    telegram = sample_bytes("telegram_full_export.json")
    assert "max_group_members=2" in error_of(parse_telegram, telegram,
                                            limits=ImportLimits(max_group_members=2)).reason


def test_limits_must_be_positive() -> None:
    with pytest.raises(ValueError):
        ImportLimits(max_rows=0)


def test_error_string_forms() -> None:
    assert str(ImportFormatError("Bad.", line=12)) == "line 12: Bad."
    assert str(ImportFormatError("Bad.", record=3)) == "record 3: Bad."
    assert str(ImportFormatError("Bad.", line=12, record=3)) == "line 12 (record 3): Bad."
    assert str(ImportFormatError("Bad.")) == "Bad."


@HOSTILE
def test_hostile_vcard_parameter_list_ends() -> None:
    # vobject's own line regex backtracks exponentially on this line.
    data = b"BEGIN:VCARD\r\nVERSION:3.0\r\nFN:A\r\nX" + b";a=b" * 5000 + b"\r\nEND:VCARD\r\n"
    result = parse_vcard(data)
    assert result.warnings == ("line 4: unreadable vCard line skipped",)


@HOSTILE
def test_big_folded_photo_ends() -> None:
    photo = b"QUJD" * 1_000_000
    folded = b"\r\n ".join(photo[i:i + 74] for i in range(0, len(photo), 74))
    data = b"BEGIN:VCARD\r\nVERSION:3.0\r\nFN:A\r\nPHOTO;ENCODING=b:" + folded + b"\r\nEND:VCARD\r\n"
    assert parse_vcard(data).contacts[0].name == "A"


@HOSTILE
def test_hostile_whatsapp_system_lines_are_fast() -> None:
    body = 'a changed the subject from "b" to "c' * 1500
    data = ("12/03/2024, 09:00 - " + body[:60000] + "\n").encode() * 100
    parse_whatsapp(data)


def test_error_survives_pickling() -> None:
    error = pickle.loads(pickle.dumps(ImportFormatError("Bad.", line=3, record=2)))
    assert (error.reason, error.line, error.record) == ("Bad.", 3, 2)


class _CountingSet(set[str]):
    lookups = 0

    def __contains__(self, item: object) -> bool:
        _CountingSet.lookups += 1
        return super().__contains__(item)


def test_an_id_repeated_on_every_row_costs_linear_work() -> None:
    # A WeChat CSV with one UserName on all 200,000 rows the default limit allows took hours
    # when each repeat rescanned "#2".."#n"; counted in set lookups, not seconds.
    ids = UniqueIds()
    ids._taken = _CountingSet()
    _CountingSet.lookups = 0
    claimed = [ids.claim("wxid_a") for _ in range(2000)]
    assert claimed[:3] == ["wxid_a", "wxid_a#2", "wxid_a#3"] and len(set(claimed)) == 2000
    assert _CountingSet.lookups < 3 * 2000
    # An id that is someone's suffixed form is still never handed out twice.
    assert ids.claim("wxid_a#2001") == "wxid_a#2001"
    assert ids.claim("wxid_a") == "wxid_a#2002"
