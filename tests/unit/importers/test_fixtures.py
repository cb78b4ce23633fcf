"""Every real-world export sample in shared/fixtures/exports, parsed with exact expectations.

An extra layer over the parsers: it runs where that folder sits beside the checkout (as on CI).
In a plain clone the whole module is skipped once, with the reason; the quirks these files taught
are reproduced in the package's own samples (test_export_quirks.py), which always run.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from bridges.importers import ImportFormatError, parse_export
from bridges.importers.model import Contact, ImportedExport
from tests.unit.importers.support import EXPORT_FIXTURES, fixture_bytes, real_samples_missing

_MISSING = real_samples_missing(EXPORT_FIXTURES)
if _MISSING:
    pytest.skip(_MISSING, allow_module_level=True)


def parse(relative: str, **kwargs: object) -> ImportedExport:
    return parse_export(fixture_bytes(relative), relative.rsplit("/", 1)[-1], **kwargs)  # type: ignore[arg-type]


def by_name(result: ImportedExport) -> dict[str, Contact]:
    return {contact.name: contact for contact in result.contacts}


def member_names(result: ImportedExport, index: int = 0) -> list[str]:
    return [member.name for member in result.groups[index].members]


# -- vCard -------------------------------------------------------------------------------


def test_aosp_v21_shift_jis_charset_and_qp() -> None:
    result = parse("vcard/aosp_v21_japanese_shiftjis_qp.vcf")
    assert result.format == "vcard"
    assert result.format_label == "vCard 2.1"
    assert result.encoding == "shift_jis"
    [contact] = result.contacts
    # Raw Shift_JIS bytes under CHARSET=SHIFT_JIS (vobject alone leaves mojibake).
    assert contact.name == "安藤 ロイド 1"
    # QUOTED-PRINTABLE Shift_JIS.
    assert contact.note == "メモ"
    assert contact.phones == ()


def test_aosp_ios_cr_cr_lf_item_groups() -> None:
    result = parse("vcard/aosp_v30_ios_multiline.vcf", default_region="US")
    [contact] = result.contacts
    assert contact.name == "Bob Smith"
    assert contact.emails == ("bob@smithauto.com",)
    assert contact.phones == ("+16505551212",)


def test_aosp_ios_number_without_region_match_is_kept_raw() -> None:
    result = parse("vcard/aosp_v30_ios_multiline.vcf")
    [contact] = result.contacts
    assert contact.phones == ()
    assert contact.raw_phones == ("(650) 555-1212",)
    assert result.warnings == ("line 7 (record 1): phone number '(650) 555-1212' is not valid; kept as text",)


def test_calcard_multiple_german_cards() -> None:
    result = parse("vcard/calcard_005_multi_german_umlauts.vcf")
    assert [c.name for c in result.contacts] == [
        "Thies-Tillman Jacobsen", "Lenn Biernoth", "Ludwig-Götz Graßl", "Marita Kreutzer", "Kathi Hoelzl",
    ]
    contacts = by_name(result)
    assert contacts["Ludwig-Götz Graßl"].emails == ("ludwig-goetz@ludwig-goetz-grassl.org",)
    # Escaped \n and an unescaped comma both survive.
    assert contacts["Lenn Biernoth"].note == (
        "Interessen: Internet trollen, Kekse backen, Videos schneiden\n"
        "Lieblingsessen: Chillibrot mit Kartoffelpuffer"
    )
    assert contacts["Marita Kreutzer"].note == (
        "Interessen: Handarbeiten\nLieblingsfarbe: Weiß\nLieblingsessen: Orangen"
    )


def test_calcard_v21_charset_and_qp_split_mid_character() -> None:
    result = parse("vcard/calcard_009_v21_charset_qp_cyrillic.vcf", default_region="DE")
    names = [c.name for c in result.contacts]
    assert names == [
        "Mäx Mustermann", "Test X-Mobil", "John Doe얁", "гор ЗаорсЁкі xyz і", "XXXXXXXXXX",
        "Max Mustermann", "N Only", "Only FN", "The Dollar$", "Hola Test",
    ]
    contacts = by_name(result)
    # The 2.1 note keeps its literal comma and QP CRLF becomes a line break.
    assert contacts["XXXXXXXXXX"].note == "XXXXXXXXXX € ##,##\nXXXXXXXXXX € ##,##"
    assert contacts["Mäx Mustermann"].emails == ("max@mustermann.de",)
    # +49 1... is not an allocated German range.
    assert contacts["Mäx Mustermann"].raw_phones == ("+49123456789",)
    assert contacts["N Only"].emails == ("test-x@email.com",)


def test_ezvcard_gmail_item_groups_several_numbers() -> None:
    result = parse("vcard/ezvcard_gmail-single.vcf", default_region="US")
    [contact] = result.contacts
    assert contact.name == "Greg Dartmouth"
    assert contact.emails == ("gdartmouth@hotmail.com",)
    # Both the plain TEL and the item1.TEL are read, in order; 555 numbers
    # are fictional in the US plan, so they stay text.
    assert contact.raw_phones == ("555 555 1111", "555 555 2222")
    assert contact.phones == ()
    assert contact.note == (
        "This is GMail's note field.\nIt should be added as a NOTE type.\nACustomField: CustomField"
    )


def test_ezvcard_outlook_2003_qp_note_and_placeholder_numbers() -> None:
    result = parse("vcard/ezvcard_outlook-2003.vcf")
    [contact] = result.contacts
    assert contact.name == "John Doe III"
    assert contact.note == "This is the note field!!\nSecond line\n\nThird line is empty"
    # The fax number is left out; the others are placeholders, kept as text.
    assert contact.raw_phones == ("BusinessPhone", "HomePhone", "MobilePhone")
    assert contact.emails == ("jdoe@hotmail.com",)
    assert "line 10 (record 1): phone number 'BusinessPhone' is not valid; kept as text" in result.warnings


def test_ezvcard_rfc2426_mixed_case_begin_two_cards() -> None:
    result = parse("vcard/ezvcard_rfc2426-example.vcf")
    assert [(c.name, c.phones, c.emails) for c in result.contacts] == [
        ("Frank Dawson", ("+19196769515",), ("frank_dawson@lotus.com", "fdawson@earthlink.net")),
        ("Tim Howes", ("+14159373419",), ("howes@netscape.com",)),
    ]


def test_ezvcard_rfc6350_v4_tel_uris() -> None:
    result = parse("vcard/ezvcard_rfc6350-example.vcf")
    assert result.format_label == "vCard 4.0"
    [contact] = result.contacts
    assert contact.name == "Simon Perreault"
    assert contact.phones == ("+14186569254", "+14182626501")
    assert contact.emails == ("simon.perreault@viagenie.ca",)


def test_ical4j_apple_address_book_latin1() -> None:
    result = parse("vcard/ical4j_apple_addressbook_multi.vcf")
    assert result.encoding == "cp1252"
    assert len(result.contacts) == 30
    contacts = by_name(result)
    assert contacts["Günther Blümchen"].phones == ("+16505067000",)
    assert contacts["Günther Blümchen"].emails == ("guenther.bluemchen@oracle.com",)
    assert "Ingrid Spaßlund" in contacts
    # FN wins over N (Töcken) when both exist.
    assert contacts["Karlsruhe Travel"].emails == ("frida.tocken@karlsruhetravel.com",)
    assert contacts["Claudia Stern"].phones == ("+49721123456", "+491751234567")
    # The stray 0xA7 byte in a TEL.
    assert contacts["Peter Smalholtz"].raw_phones == ("§",)
    assert "line 15 (record 2): phone number '§' is not valid; kept as text" in result.warnings


def test_ical4j_outlook_qp_without_charset_does_not_sink_the_file() -> None:
    # vobject alone raises UnicodeDecodeError on this file's =F3/=B3 LABEL.
    result = parse("vcard/ical4j_outlook2003_qp_latin2.vcf", default_region="PL")
    [contact] = result.contacts
    assert contact.name == "Antoni Jozef Mylka jun."
    assert contact.note == "These are some notes about antoni."
    assert contact.emails == ("antoni_mylka@somedomain.com",)
    assert contact.phones == ("+48691342341", "+48913175234")
    assert contact.raw_phones == ("49 631 234 341",)


def test_xing_iso_8859_1_charset_uid() -> None:
    result = parse("vcard/nodevcf_xing_v21_iso8859-1.vcf")
    [contact] = result.contacts
    assert contact.source_id == "XING-UID-XXXXXXXX"
    assert contact.name == "Hans-Peter Mustermann"
    assert contact.note == "17.02.2016, 19:18 - XING - http://www.xing.com/profile/Hans-Peter-Mustermann"


# -- Google / Outlook CSV ----------------------------------------------------------------


def test_google_outlook_flavour_csv() -> None:
    result = parse("google-csv/people_google_contacts_outlookcsv_export.csv", default_region="NO")
    assert result.format == "google_csv"
    assert result.format_label == "Outlook CSV"
    assert result.groups == ()  # "myContacts;starred" are labels, not chats
    assert [(c.name, c.phones, c.emails, c.raw_phones) for c in result.contacts] == [
        ("John Doe", ("+4791551000",), (), ()),
        ("Jane Doe", ("+4741644000",), (), ()),
        ("mail@mail.com", (), ("mail@mail.com",), ()),
        ("Norway Doe", (), ("mail@hotmail.com",), ("+47 111111",)),
        ("John Cruickshank", (), (), ("+474800000",)),
    ]
    # Line numbers count the multi-line quoted address.
    assert result.warnings[-1] == "line 8 (record 5): phone number '+474800000' is not valid; kept as text"


def test_google_outlook_flavour_csv_with_chinese_default_region() -> None:
    result = parse("google-csv/people_google_contacts_outlookcsv_export.csv")
    assert by_name(result)["John Doe"].raw_phones == ("91551000",)


def test_outlook_com_csv_with_bom() -> None:
    result = parse("google-csv/people_outlook_com_export_bom.csv", default_region="NO")
    assert result.encoding == "utf-8-sig"
    assert [(c.name, c.phones) for c in result.contacts] == [
        ("Larsen", ("+4746688000",)),
        ("Svein Heimdal", ("+4790106000",)),
    ]


# -- Telegram ------------------------------------------------------------------------------


def test_telegram_batch_export_without_chat_types() -> None:
    result = parse("telegram/chatminer_tg_batch_result.json")
    assert result.format == "telegram_json"
    assert result.format_label == "Telegram full export (JSON)"
    assert result.contacts == () and result.groups == ()
    assert result.warnings == ("chat 'Chatname' has no type; skipped",)


def test_telegram_html_export_is_unsupported_with_a_hint() -> None:
    with pytest.raises(ImportFormatError) as caught:
        parse("telegram/langchain_tg_messages.html")
    assert "not a format Wangxin can import" in caught.value.reason
    assert "Machine-readable JSON" in caught.value.reason


def test_telegram_personal_chat_old_format() -> None:
    result = parse("telegram/langchain_tg_personal_chat_old_nonascii.json")
    # The sample's name is already mojibake in the file; it is kept as written.
    assert [(c.source_id, c.name) for c in result.contacts] == [("2730825451", "Grace ðŸ§¤")]
    assert result.groups == ()


def test_telegram_personal_chat_new_format() -> None:
    result = parse("telegram/langchain_tg_personal_chat_text_entities.json")
    assert [(c.source_id, c.name) for c in result.contacts] == [("5965280513", "Jimmeny")]
    assert result.format_label == "Telegram chat export (JSON)"


def test_telegram_private_channel_is_not_a_group() -> None:
    result = parse("telegram/tg2md_private_channel_result.json")
    assert result.contacts == () and result.groups == () and result.warnings == ()


def test_telegram_personal_chat_reveals_self() -> None:
    result = parse("telegram/tkonverter_personal_chat_all_media.json")
    assert [(c.source_id, c.name) for c in result.contacts] == [("10001", "Alice Example")]
    assert result.self_source_id == "777000"


def test_telegram_private_group_members_and_owner() -> None:
    result = parse("telegram/tkonverter_private_group_result.json")
    [group] = result.groups
    assert (group.source_id, group.name, group.owner_source_id) == ("20001", "Team Chat", "777000")
    assert [(m.source_id, m.name) for m in group.members][:3] == [
        ("777000", "Me"), ("10001", "Alice Example"), ("10002", "Bob Sample"),
    ]
    # Invited by name only, later removed: kept, with a hash id and a warning.
    assert group.members[3].name == "Charlie Test"
    assert group.members[3].source_id.startswith("h:")
    assert len(group.members) == 4
    assert any("removed" in warning for warning in result.warnings)


# -- WhatsApp ------------------------------------------------------------------------------

CHATMINER_MEMBERS = ["John Doe", "Jahn Doe", "John-John Doe", "+12 345 578", "John Doe 🤓", "🤓"]


@pytest.mark.parametrize(
    "relative",
    [
        "whatsapp/chatminer_android_ddmmyy_24h.txt",
        "whatsapp/chatminer_android_mmddyyyy_12h_es.txt",
        "whatsapp/chatminer_android_yyyymmdd_24h.txt",
    ],
)
def test_whatsapp_chatminer_android_layouts(relative: str) -> None:
    result = parse(relative)
    assert result.format == "whatsapp_txt"
    assert result.format_label == "WhatsApp chat (Android)"
    [group] = result.groups
    assert group.name == "Groupname"
    assert member_names(result) == CHATMINER_MEMBERS
    creator = group.members[3]
    assert group.owner_source_id == creator.source_id
    # "+12 345 578" looks like a number but is not a possible one.
    assert creator.phones == ()
    assert result.warnings == (
        "line 6: sender '+12 345 578' looks like a phone number but is not valid; kept as a name",
    )


def test_whatsapp_ios_lrm_marks_and_chat_name() -> None:
    result = parse("whatsapp/langchain_ios_12h_seconds_lrm.txt")
    assert result.format_label == "WhatsApp chat (iOS)"
    [group] = result.groups
    # iOS system lines carry the chat's name as their sender.
    assert group.name == "Dr. Feather"
    assert member_names(result) == ["Dr. Feather", "Jungle Jane"]


def test_whatsapp_mixed_layouts_narrow_spaces_and_tilde() -> None:
    result = parse("whatsapp/langchain_mixed_formats_nnbsp.txt")
    assert result.groups[0].name == "WhatsApp group"
    assert member_names(result) == [
        "James", "User name", "User 2", "User name 2", "User 1", "User 3", "User 4",
    ]


def test_whatsapp_android_dot_dates_crlf() -> None:
    result = parse("whatsapp/soda_android_dotdate_24h_crlf.txt")
    assert member_names(result) == ["person1", "person2", "person3", "person4"]
    assert result.format_label == "WhatsApp chat (Android)"


def test_whatsapp_ios_dd_mm_yyyy_with_filename() -> None:
    data = fixture_bytes("whatsapp/soda_ios_ddmmyyyy_24h_seconds__chat.txt")
    result = parse_export(data, "WhatsApp Chat - Utrecht Friends.txt")
    assert result.format_label == "WhatsApp chat (iOS)"
    assert result.groups[0].name == "Utrecht Friends"
    assert member_names(result) == ["person1", "person2", "person3", "person4"]


# -- unsupported ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "relative", ["other/chatminer_signal_export.txt", "other/langchain_facebook_messenger.json"]
)
def test_other_messengers_are_unsupported(relative: str) -> None:
    with pytest.raises(ImportFormatError) as caught:
        parse(relative)
    assert caught.value.reason.startswith("This file is not a format Wangxin can import. Supported:")


def test_every_shared_fixture_is_covered() -> None:
    """Each file in the shared folder is named by a test in this module."""
    source = Path(__file__).read_text(encoding="utf-8")
    files = {
        str(path.relative_to(EXPORT_FIXTURES))
        for path in EXPORT_FIXTURES.rglob("*")
        if path.is_file() and path.suffix != ".md"
    }
    assert {name for name in files if f'"{name}"' not in source} == set()
