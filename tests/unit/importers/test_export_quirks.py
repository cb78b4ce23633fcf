"""What real exports taught, reproduced in samples written here, with exact expectations.

Each sample in samples/ copies the structure and encoding quirks of a kind of real export
(charsets, line folding, quoted-printable, line ends, exporters' habits) with invented people
and numbers, so the parsers are covered in any checkout. The real files themselves are an extra
layer (test_fixtures.py) that runs where they sit beside the checkout.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from bridges.importers import SUPPORTED, ImportFormatError, detect_format, parse_export
from bridges.importers.model import Contact, ImportedExport
from tests.unit.importers.support import real_samples_missing, sample_bytes, sample_names


def parse(name: str, filename: str | None = None, **kwargs: object) -> ImportedExport:
    return parse_export(sample_bytes(name), filename or name, **kwargs)  # type: ignore[arg-type]


def by_name(result: ImportedExport) -> dict[str, Contact]:
    return {contact.name: contact for contact in result.contacts}


def refusal(name: str, filename: str | None = None) -> str:
    with pytest.raises(ImportFormatError) as caught:
        parse(name, filename)
    return caught.value.reason


UNSUPPORTED = f"This file is not a format Wangxin can import. Supported: {SUPPORTED}."


# -- vCard 2.1 ---------------------------------------------------------------------------------


def test_vcard21_shift_jis_raw_and_quoted_printable() -> None:
    result = parse("vcard21_shift_jis.vcf", default_region="JP")
    assert (result.format, result.format_label, result.encoding) == ("vcard", "vCard 2.1", "shift_jis")
    # Raw Shift_JIS under CHARSET (表, ソ and 能 end in byte 0x5C, the ASCII backslash, and
    # the second NOTE ends with one); the first NOTE is QP Shift_JIS with a soft line break
    # between the two bytes of "："; the half-width SOUND and the QP ADR are not read.
    assert [(c.name, c.phones, c.raw_phones, c.note) for c in result.contacts] == [
        ("表 ソラ 2", ("+819012345678",), (), "メモ：週末は不在"),
        ("能見 ハナ", ("+818012345678",), (), "週末：予定表"),
    ]
    assert result.warnings == ()


def test_vcard21_android_utf8_charset_and_qp_cyrillic() -> None:
    result = parse("vcard21_android_utf8_qp.vcf", default_region="DE")
    assert (result.format_label, result.encoding) == ("vCard 2.1", "utf-8")
    assert [(c.name, c.phones, c.emails, c.raw_phones) for c in result.contacts] == [
        ("Jörg Wäscher", ("+4915123456789",), ("joerg@example.de",), ()),
        # A made-up TYPE=x-handy is still a number.
        ("Probe X-Handy", ("+493012345678",), ("probe@example.de",), ()),
        ("Jun Kim민", ("+493012345678",), (), ()),
        # QP soft breaks, one between the two bytes of "р", then a continuation line starting
        # with a space: a soft break wins over folding, so the space stays.
        ("Ольга Сидоренко (Оля)", ("+79123456789",), (), ()),
        # N only, QP with a soft break inside "н": given name first.
        ("Иванна Петренко", (), ("ivanna@example.org",), ()),
        ("Lieferant Nord", (), (), ("+31 00 0000000",)),
        ("Erika Beispiel", (), (), ()),
        ("N Nur", (), ("nur-n@example.com",), ()),
        ("Nur FN", (), ("nur-fn@example.com",), ()),
        ("Die Dollar$", (), (), ()),
        ("Hola Prueba", (), (), ()),
    ]
    # ENCODING before a lower-case CHARSET; "€" split by a soft break; 2.1 commas are literal;
    # QP CRLF is a line break and the trailing one is dropped.
    assert by_name(result)["Lieferant Nord"].note == "Rabatt € 12,50\nSkonto € 3,00"
    assert result.warnings == ("line 46 (record 6): phone number '+31 00 0000000' is not valid; kept as text",)


def test_vcard21_outlook_2003_qp_note_placeholders_and_indented_key() -> None:
    result = parse("vcard21_outlook2003.vcf")
    [contact] = result.contacts
    assert contact.name == "Oskar Lindqvist Jr."
    # The soft break falls between "=0D" and "=0A"; the blank line inside the note survives.
    assert contact.note == "Met at the fair!!\nSecond line\n\nThird line follows a blank one"
    # Bare WORK;VOICE parameters; the fax is left out; Outlook's placeholders stay text. The
    # indented base64 KEY, the blank lines after it and the garbled QP FBURL change nothing.
    assert contact.raw_phones == ("BusinessPhone", "HomePhone", "MobilePhone")
    assert contact.phones == ()
    assert contact.emails == ("oskar@example.com",)
    assert result.warnings == (
        "line 10 (record 1): phone number 'BusinessPhone' is not valid; kept as text",
        "line 11 (record 1): phone number 'HomePhone' is not valid; kept as text",
        "line 12 (record 1): phone number 'MobilePhone' is not valid; kept as text",
    )


def test_vcard21_outlook_eight_bit_qp_without_charset() -> None:
    # vobject alone raises UnicodeDecodeError on 8-bit QP without CHARSET and loses the file.
    result = parse("vcard21_outlook_qp_without_charset.vcf", default_region="PL")
    [contact] = result.contacts
    assert contact.name == "Zofia Maria Nowak jun."
    assert contact.note == "Biuro przy ul. Krótkiej."
    assert contact.emails == ("zofia.nowak@example.org",)
    # International numbers written without "+": Polish ones are recognised by the PL region.
    assert contact.phones == ("+48512345678", "+48221234567")
    assert contact.raw_phones == ("49 30 1234567",)
    assert result.warnings == ("line 9 (record 1): phone number '49 30 1234567' is not valid; kept as text",)


def test_vcard21_declared_iso_8859_1_and_uid() -> None:
    result = parse("vcard21_charset_iso8859_1.vcf")
    assert (result.format_label, result.encoding) == ("vCard 2.1", "iso8859-1")
    [contact] = result.contacts
    assert contact.source_id == "NETWORK-UID-0000AB12"
    assert contact.name == "Anna-Lena Müller-Lüdenscheidt"
    # 2.1 commas and colons are literal.
    assert contact.note == "03.04.2019, 10:15 - Netzwerk - http://www.example.com/profile/Anna-Lena_Müller"
    assert result.warnings == ()


# -- vCard 3.0 and 4.0 -------------------------------------------------------------------------


def test_vcard30_ios_cr_cr_lf_and_folded_photo() -> None:
    result = parse("vcard30_ios_cr_cr_lf.vcf", default_region="US")
    [contact] = result.contacts
    assert (contact.name, contact.phones, contact.emails) == (
        "Chidi Okafor", ("+16505550142",), ("chidi@okafor-tiles.example",)
    )
    assert result.warnings == ()


def test_vcard30_ios_number_without_region_is_kept_as_text() -> None:
    result = parse("vcard30_ios_cr_cr_lf.vcf")
    [contact] = result.contacts
    assert (contact.phones, contact.raw_phones) == ((), ("(650) 555-0142",))
    # CR CR LF is one line end: the TEL is on line 7.
    assert result.warnings == ("line 7 (record 1): phone number '(650) 555-0142' is not valid; kept as text",)


def test_vcard30_gmail_item_groups_escapes_and_folded_note() -> None:
    result = parse("vcard30_gmail_item_groups.vcf", default_region="US")
    [contact] = result.contacts
    assert contact.name == "Wren Talbot"
    assert contact.emails == ("wren.talbot@example.net",)
    # The plain TEL and the item1.TEL are both read, in order; area code 555 does not exist.
    assert (contact.phones, contact.raw_phones) == (("+12025550123",), ("555 555 0199",))
    assert contact.note == "Gmail keeps notes here.\nA second line, with a comma.\nCustom: Field value"
    assert result.warnings == ("line 11 (record 1): phone number '555 555 0199' is not valid; kept as text",)


def test_vcard30_several_utf8_cards_between_blank_lines() -> None:
    result = parse("vcard30_several_utf8.vcf")
    assert result.encoding == "utf-8"
    assert [(c.name, c.emails, c.note) for c in result.contacts] == [
        ("Hannes Krüger", (), "Lieblingsfarbe: Grün"),
        # An escaped \n is a line break; the unescaped commas of a sloppy 3.0 writer are kept.
        ("Maren Öztürk", ("maren@example.de",),
         "Interessen: Rosen schneiden, Kuchen backen, Radfahren\nLieblingsessen: Spätzle mit Soße"),
        ("Jürgen-Uwe Weiß", ("juergen-uwe@example.org",), "Interessen: Schach\nLieblingsessen: Bratkartoffeln"),
        # A name alone is enough for a contact.
        ("Ilka Hoffmann", (), None),
    ]
    assert result.warnings == ()


def test_vcard30_mixed_case_begin_folded_adr_and_type_lists() -> None:
    result = parse("vcard30_rfc2426_style.vcf")
    assert [(c.name, c.phones, c.emails) for c in result.contacts] == [
        # TYPE=FAX,WORK is left out; addresses are lower-cased.
        ("Nadia Brennan", ("+19195550111",), ("nadia_brennan@example.com", "nbrennan@example.net")),
        ("Theo Marsh", ("+14155550161",), ("theo@example.org",)),
    ]
    assert result.warnings == ()


def test_vcard40_tel_uris_quoted_type_lists_and_folded_uri() -> None:
    result = parse("vcard40_rfc6350_style.vcf")
    assert result.format_label == "vCard 4.0"
    [contact] = result.contacts
    assert contact.name == "Élise Tremblay"
    # tel: URIs with ;ext=, PREF=1; the quoted "work,fax" one is left out.
    assert contact.phones == ("+14185550134", "+14185550187")
    assert contact.emails == ("elise.tremblay@example.ca",)
    assert result.warnings == ()


def test_vcard30_macos_address_book_in_latin1() -> None:
    result = parse("vcard30_macos_latin1.vcf")
    # ISO-8859-1 bytes without CHARSET, after a blank first line.
    assert result.encoding == "cp1252"
    assert [(c.name, c.phones, c.emails, c.raw_phones) for c in result.contacts] == [
        ("Gwen Brown", (), ("gwen.brown@example.com",), ()),
        # A stray 0xA7 byte as the number.
        ("Piotr Kowalczyk", (), ("piotr.kowalczyk@example.com",), ("§",)),
        # FN (the company, X-ABShowAs:COMPANY) wins over N (Töpfer).
        ("Rheinblick Reisen", (), ("greta.toepfer@rheinblick.example",), ()),
        ("Jörg Blümel", ("+497211234567",), (), ()),
        ("Ina Spaßmacher", ("+497217654321", "+491751234567"), ("ina.spassmacher@example.com",), ()),
    ]
    assert result.warnings == ("line 16 (record 2): phone number '§' is not valid; kept as text",)


# -- Google Contacts and Outlook CSV -----------------------------------------------------------


def test_google_outlook_csv_flavour_labels_multiline_addresses() -> None:
    result = parse("outlook_csv_from_google.csv", default_region="NO")
    assert (result.format, result.format_label, result.encoding) == ("google_csv", "Outlook CSV", "utf-8")
    # "myContacts;starred" and "Restored from Samsung - ..." are address-book labels, not chats.
    assert result.groups == ()
    assert [(c.name, c.phones, c.emails, c.raw_phones) for c in result.contacts] == [
        ("Ingrid Solberg", ("+4741234567",), (), ()),
        # The pager is left out.
        ("Per Solberg", ("+4792345678",), (), ()),
        # No name: the address stands in.
        ("post@example.no", (), ("post@example.no",), ()),
        # The home fax is left out.
        ("Kari Lunde", (), ("kari.lunde@example.no",), ("+47 123456",)),
        ("Ola Bakken", (), (), ("+474800000",)),
    ]
    # Line numbers count the quoted three-line home addresses.
    assert result.warnings == (
        "line 5 (record 4): phone number '+47 123456' is not valid; kept as text",
        "line 8 (record 5): phone number '+474800000' is not valid; kept as text",
    )


def test_google_outlook_csv_with_the_default_chinese_region() -> None:
    result = parse("outlook_csv_from_google.csv")
    # A Norwegian mobile without country code is not a Chinese number.
    assert by_name(result)["Ingrid Solberg"].raw_phones == ("41234567",)
    assert by_name(result)["Per Solberg"].phones == ("+4792345678",)


def test_outlook_com_csv_with_bom_and_yomi_columns() -> None:
    result = parse("outlook_com_bom.csv", default_region="NO")
    assert (result.format_label, result.encoding) == ("Outlook CSV", "utf-8-sig")
    # A first name alone is a name; the business fax is left out.
    assert [(c.name, c.phones) for c in result.contacts] == [
        ("Hagen", ("+4741234567",)),
        ("Åse Lie", ("+4792345678",)),
    ]
    assert result.warnings == ()


@pytest.mark.parametrize("name", ["google_current.csv", "google_legacy.csv"])
def test_google_csv_reads_the_same_with_a_bom(name: str) -> None:
    plain = parse(name)
    with_bom = parse_export(b"\xef\xbb\xbf" + sample_bytes(name), name)
    assert with_bom.encoding == "utf-8-sig"
    assert (with_bom.format_label, with_bom.contacts, with_bom.warnings) == (
        plain.format_label, plain.contacts, plain.warnings,
    )


# -- Telegram Desktop --------------------------------------------------------------------------


def test_telegram_batch_export_chat_without_type() -> None:
    result = parse("telegram_batch_untyped_chat.json")
    assert (result.format, result.format_label) == ("telegram_json", "Telegram full export (JSON)")
    assert result.contacts == () and result.groups == ()
    assert result.warnings == ("chat 'Book swap' has no type; skipped",)


def test_telegram_old_single_chat_integer_ids_and_mojibake_name() -> None:
    result = parse("telegram_chat_old_format.json")
    assert result.format_label == "Telegram chat export (JSON)"
    # The name is mojibake in the file itself and is kept as written; the chat's id is none of
    # the senders', so the exporting account stays unknown.
    assert [(c.source_id, c.name) for c in result.contacts] == [("3000000001", "Mei ðŸŒ·")]
    assert result.self_source_id is None
    assert result.groups == () and result.warnings == ()


def test_telegram_single_chat_text_entities_reveals_self() -> None:
    data = sample_bytes("telegram_chat_text_entities.json")
    assert not data.endswith(b"\n")
    result = parse_export(data, "result.json")
    # "&" is plain JSON text, not an HTML entity.
    assert [(c.source_id, c.name) for c in result.contacts] == [("4000000002", "Rosa & Co")]
    assert result.self_source_id == "4000000001"


def test_telegram_private_channel_is_neither_contact_nor_group() -> None:
    result = parse("telegram_private_channel.json")
    assert result.format == "telegram_json"
    assert result.contacts == () and result.groups == () and result.warnings == ()


def test_telegram_personal_chat_with_service_actions() -> None:
    result = parse("telegram_chat_service_actions.json")
    # Names in a personal chat's service actions (custom_action, invite_to_group_call) are not
    # people to import; actions without an actor and "unsupported" entries are tolerated.
    assert [(c.source_id, c.name) for c in result.contacts] == [("900002", "Nora Quill")]
    assert result.self_source_id == "900001"
    assert result.groups == () and result.warnings == ()


def test_telegram_private_group_members_owner_and_removed_invitee() -> None:
    result = parse("telegram_private_group.json")
    [group] = result.groups
    # The chat's name is its current one (edit_group_title is history); the creator owns it.
    assert (group.source_id, group.name, group.owner_source_id) == ("20002", "Garden Club", "900001")
    assert [(m.source_id, m.name) for m in group.members][:3] == [
        ("900001", "Me"), ("900002", "Nora Quill"), ("900003", "Olek Brandt"),
    ]
    # Invited by name only and later removed: kept, with a hash id, and the group is named.
    invitee = group.members[3]
    assert invitee.name == "Pia Never-Spoke" and invitee.source_id.startswith("h:")
    assert len(group.members) == 4
    assert result.warnings == (
        "group 'Garden Club': 1 member(s) were removed at some point; they are still listed as members",
    )


def test_telegram_html_export_is_refused_with_a_hint() -> None:
    reason = refusal("telegram_messages.html", "messages.html")
    assert reason.startswith(UNSUPPORTED)
    assert "Machine-readable JSON" in reason


# -- WhatsApp ----------------------------------------------------------------------------------

CHAT_LAYOUTS = [
    "whatsapp_android_ddmmyy_24h.txt",
    "whatsapp_android_mmddyyyy_12h_es.txt",  # "a. m." / "p. m."
    "whatsapp_android_yyyymmdd_24h.txt",
]


@pytest.mark.parametrize("name", CHAT_LAYOUTS)
def test_whatsapp_android_date_layouts(name: str) -> None:
    result = parse(name)
    assert (result.format, result.format_label) == ("whatsapp_txt", "WhatsApp chat (Android)")
    [group] = result.groups
    assert group.name == "Tapas Night"
    # "Name:." without a space, colons inside messages, continuation lines, emoji names,
    # "You" never a member, no newline at the end of the file.
    assert [m.name for m in group.members] == [
        "Ines Ortega", "Ivan Ortega", "Ines-Maria Ortega", "+12 345 678", "Ines Ortega 🌶", "🌶",
    ]
    creator = group.members[3]
    assert group.owner_source_id == creator.source_id
    assert creator.phones == ()
    assert result.warnings == (
        "line 6: sender '+12 345 678' looks like a phone number but is not valid; kept as a name",
    )


def test_whatsapp_date_layouts_give_the_same_members() -> None:
    ids = {name: [m.source_id for m in parse(name).groups[0].members] for name in CHAT_LAYOUTS}
    assert len({tuple(found) for found in ids.values()}) == 1


def test_whatsapp_ios_12h_lrm_marks_and_chat_name() -> None:
    result = parse("whatsapp_ios_12h_lrm.txt")
    assert result.format_label == "WhatsApp chat (iOS)"
    [group] = result.groups
    # The system line carries the chat's name as its sender, after U+200E marks.
    assert group.name == "Capt. Marlow"
    assert [m.name for m in group.members] == ["Capt. Marlow", "Sea Otter Sal"]
    assert result.warnings == ()


def test_whatsapp_mixed_layouts_narrow_spaces_and_tilde() -> None:
    result = parse("whatsapp_mixed_layouts.txt")
    assert result.format_label == "WhatsApp chat (Android)"
    [group] = result.groups
    assert group.name == "WhatsApp group"
    # "~ Member 2" is "Member 2"; the "3:22_AM" line is no message line, so "Member 1" first
    # appears with U+202F before "PM".
    assert [m.name for m in group.members] == [
        "Jonas", "Member name", "Member 2", "Member name 2", "Member 1", "Member 3", "Member 4",
    ]


def test_whatsapp_android_dot_dates_crlf_and_marks() -> None:
    data = sample_bytes("whatsapp_android_dotdate_crlf.txt")
    assert b"\r\n" in data and b" \n\n" in data  # CRLF, with bare LF inside one message
    result = parse_export(data, "whatsapp_android_dotdate_crlf.txt")
    assert result.format_label == "WhatsApp chat (Android)"
    # U+200E before a date and before "Location:" in a message changes nothing.
    assert [m.name for m in result.groups[0].members] == ["Sanne", "Daan", "Femke", "Joris"]
    assert result.warnings == ()


def test_whatsapp_ios_24h_seconds_named_by_the_file() -> None:
    result = parse("whatsapp_ios_24h_seconds.txt", "WhatsApp Chat - Canal Friends.txt")
    assert result.format_label == "WhatsApp chat (iOS)"
    [group] = result.groups
    assert group.name == "Canal Friends"
    # Same people as the Android export of this chat, with the same ids.
    android = parse("whatsapp_android_dotdate_crlf.txt").groups[0]
    assert [(m.source_id, m.name) for m in group.members] == [(m.source_id, m.name) for m in android.members]
    assert parse("whatsapp_ios_24h_seconds.txt", "_chat.txt").groups[0].name == "WhatsApp group"


# -- files that are not an export Wangxin reads ------------------------------------------------


def test_facebook_messenger_json_is_refused() -> None:
    reason = refusal("facebook_messenger_message_1.json", "message_1.json")
    assert reason == UNSUPPORTED + " The JSON is neither a Telegram Desktop export nor a WeChat contact dump."


@pytest.mark.parametrize(
    "name",
    [
        "signal_chat.txt",  # [YYYY-MM-DD, HH:MM] without seconds is not a WhatsApp line
        # WeChat has no export of its own; chat dumps from third-party tools are not contact lists.
        "wechat_wechatmsg_messages.csv",  # WeChatMsg messages: Remark and NickName, but no UserName
        "wechat_merged_forward.txt",
        "wechat_desktop_copy.txt",
    ],
)
def test_other_chat_exports_are_refused(name: str) -> None:
    assert detect_format(sample_bytes(name), name) is None
    assert refusal(name) == UNSUPPORTED


# -- every own sample --------------------------------------------------------------------------

FORMAT_OF = {
    "chinese_contacts.vcf": "vcard",
    "google_current.csv": "google_csv",
    "google_legacy.csv": "google_csv",
    "outlook_com_bom.csv": "google_csv",
    "outlook_csv_from_google.csv": "google_csv",
    "telegram_batch_untyped_chat.json": "telegram_json",
    "telegram_chat_old_format.json": "telegram_json",
    "telegram_chat_service_actions.json": "telegram_json",
    "telegram_chat_text_entities.json": "telegram_json",
    "telegram_full_export.json": "telegram_json",
    "telegram_private_channel.json": "telegram_json",
    "telegram_private_group.json": "telegram_json",
    "vcard21_android_utf8_qp.vcf": "vcard",
    "vcard21_charset_iso8859_1.vcf": "vcard",
    "vcard21_outlook2003.vcf": "vcard",
    "vcard21_outlook_qp_without_charset.vcf": "vcard",
    "vcard21_shift_jis.vcf": "vcard",
    "vcard30_gmail_item_groups.vcf": "vcard",
    "vcard30_ios_cr_cr_lf.vcf": "vcard",
    "vcard30_macos_latin1.vcf": "vcard",
    "vcard30_rfc2426_style.vcf": "vcard",
    "vcard30_several_utf8.vcf": "vcard",
    "vcard40_rfc6350_style.vcf": "vcard",
    "wechat_memotrace_contacts.csv": "wechat_contacts_csv",
    "wechat_pywxdump_keyed.json": "wechat_json",
    "wechat_pywxdump_lists.json": "wechat_json",
    "whatsapp_android_ddmmyy_24h.txt": "whatsapp_txt",
    "whatsapp_android_dotdate_crlf.txt": "whatsapp_txt",
    "whatsapp_android_mmddyyyy_12h_es.txt": "whatsapp_txt",
    "whatsapp_android_yyyymmdd_24h.txt": "whatsapp_txt",
    "whatsapp_group_android.txt": "whatsapp_txt",
    "whatsapp_group_ios.txt": "whatsapp_txt",
    "whatsapp_ios_12h_lrm.txt": "whatsapp_txt",
    "whatsapp_ios_24h_seconds.txt": "whatsapp_txt",
    "whatsapp_mixed_layouts.txt": "whatsapp_txt",
}
REFUSED = {
    "facebook_messenger_message_1.json", "signal_chat.txt", "telegram_messages.html",
    "wechat_desktop_copy.txt", "wechat_merged_forward.txt", "wechat_wechatmsg_messages.csv",
}


@pytest.mark.parametrize("name", sorted(FORMAT_OF))
def test_content_decides_the_format_whatever_the_file_name(name: str) -> None:
    assert parse_export(sample_bytes(name), "misleading-name.vcf").format == FORMAT_OF[name]


def test_every_sample_is_accounted_for_and_named_by_a_test() -> None:
    names = sample_names()
    assert set(names) == set(FORMAT_OF) | REFUSED
    here = Path(__file__).parent
    sources = "".join(path.read_text(encoding="utf-8") for path in here.glob("test_*.py")
                      if path.name != Path(__file__).name)
    own = Path(__file__).read_text(encoding="utf-8").split("FORMAT_OF = {", 1)[0]
    unnamed = [name for name in names if f'"{name}"' not in sources + own]
    assert unnamed == []


def test_samples_keep_their_bytes_in_any_checkout() -> None:
    # Line ends (CR CR LF, CRLF, bare LF) and legacy encodings are what these samples test:
    # git must never convert them.
    attributes = (Path(__file__).parent / "samples" / ".gitattributes").read_text(encoding="utf-8")
    assert re.search(r"^\* -text$", attributes, re.MULTILINE)


# -- the gate of the real-sample layer ---------------------------------------------------------


def test_real_sample_layer_runs_where_the_folder_exists(tmp_path: Path) -> None:
    assert real_samples_missing(tmp_path) is None


def test_real_sample_layer_gives_a_reason_to_skip_in_a_plain_clone(tmp_path: Path) -> None:
    missing = tmp_path / "shared" / "fixtures" / "exports"
    reason = real_samples_missing(missing)
    assert reason is not None
    assert str(missing) in reason and "tests/unit/importers/samples" in reason
