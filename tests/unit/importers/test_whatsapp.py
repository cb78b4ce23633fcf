"""WhatsApp chat exports: own samples, names and the language tables."""

from __future__ import annotations

import re

import attrs
import pytest

from bridges.importers import ImportFormatError, parse_whatsapp, whatsapp
from tests.unit.importers.support import sample_bytes


def test_android_group_events_and_phone_senders() -> None:
    result = parse_whatsapp(sample_bytes("whatsapp_group_android.txt"))
    [group] = result.groups
    # The rename is newer than the "created group" line.
    assert group.name == "Shenzhen Suppliers 2024"
    assert [(m.name, m.phones) for m in group.members] == [
        ("Li Wei", ()),
        # WhatsApp shows unknown members as their registered number.
        ("+44 7700 900123", ("+447700900123",)),
        ("+86 138 0013 8000", ("+8613800138000",)),
        ("Chen Jie", ()),
        ("Zhou Min", ()),
        ("+1 212 555 0100", ("+12125550100",)),
    ]
    # Phone members are identified by their number, so the sender and the
    # "added" target are one member.
    assert group.members[1].source_id == "+447700900123"
    assert group.owner_source_id == group.members[0].source_id
    assert result.contacts == ()
    assert result.warnings == (
        "group 'Shenzhen Suppliers 2024': 2 member(s) left or were removed at some point; "
        "they are still listed as members",
    )


def test_ios_group_name_from_system_lines() -> None:
    result = parse_whatsapp(sample_bytes("whatsapp_group_ios.txt"), "WhatsApp Chat - Other Name.txt")
    assert result.format_label == "WhatsApp chat (iOS)"
    [group] = result.groups
    assert group.name == "Family Chat"
    assert [(m.name, m.phones) for m in group.members] == [
        ("Mum", ()),
        ("Uncle Bo", ()),
        ("+86 139 1234 5678", ("+8613912345678",)),
        ("Auntie Yu", ()),
    ]
    assert group.owner_source_id == group.members[0].source_id


@pytest.mark.parametrize(
    ("filename", "expected"),
    [
        ("WhatsApp Chat with Book Club.txt", "Book Club"),
        ("C:\\Users\\me\\Downloads\\WhatsApp Chat with 家人.txt", "家人"),
        ("/tmp/WhatsApp Chat - Team.txt", "Team"),
        ("WhatsApp-Chat mit Familie.txt", "Familie"),
        ("_chat.txt", "WhatsApp group"),
        (None, "WhatsApp group"),
    ],
)
def test_group_name_from_filename(filename: str | None, expected: str) -> None:
    data = b"12/03/2024, 09:02 - Ann: hi\n"
    assert parse_whatsapp(data, filename).groups[0].name == expected


def test_you_is_never_a_member() -> None:
    data = (
        b'12/03/2024, 09:00 - You created group "Trip"\n'
        b"12/03/2024, 09:00 - You added Ann and Bob\n"
        b"12/03/2024, 09:01 - Ann added you\n"
    )
    result = parse_whatsapp(data)
    assert [m.name for m in result.groups[0].members] == ["Ann", "Bob"]
    assert result.groups[0].owner_source_id is None


def test_a_message_mentioning_added_is_not_an_event() -> None:
    data = b"12/03/2024, 09:00 - Ann: I added Bob to the list\n"
    assert [m.name for m in parse_whatsapp(data).groups[0].members] == ["Ann"]


def test_another_language_can_be_added(monkeypatch: pytest.MonkeyPatch) -> None:
    german = attrs.evolve(
        whatsapp.ENGLISH,
        language="de",
        you=frozenset({"Du", "dich"}),
        list_separator=re.compile(r",\s*|\s+und\s+"),
        created=(re.compile(r"^(?P<actor>[^:]+?) hat die Gruppe „(?P<name>.*)“ erstellt$"),),
        added=(re.compile(r"^(?P<actor>[^:]+?) hat (?P<targets>.+) hinzugefügt$"),),
    )
    monkeypatch.setattr(whatsapp, "LANGUAGES", [whatsapp.ENGLISH, german])
    data = (
        "16.03.2022, 15:10 - Anna hat die Gruppe „Stammtisch“ erstellt\n"
        "16.03.2022, 15:11 - Anna hat Ben und Carla hinzugefügt\n"
    ).encode()
    result = parse_whatsapp(data)
    assert result.groups[0].name == "Stammtisch"
    assert [m.name for m in result.groups[0].members] == ["Anna", "Ben", "Carla"]


def test_file_without_message_lines_is_an_error() -> None:
    with pytest.raises(ImportFormatError) as caught:
        parse_whatsapp(b"hello\nworld\n", "WhatsApp Chat with X.txt")
    assert "No WhatsApp message lines" in caught.value.reason


def test_non_utf8_chat_is_an_error() -> None:
    with pytest.raises(ImportFormatError) as caught:
        parse_whatsapp("12/03/2024, 09:02 - Zoë: hi\n".encode("latin-1"))
    assert "not valid UTF-8" in caught.value.reason
    assert caught.value.line == 1


def test_utf16_chat() -> None:
    data = "12/03/2024, 09:02 - 张伟: 你好\n".encode("utf-16")
    result = parse_whatsapp(data)
    assert [m.name for m in result.groups[0].members] == ["张伟"]
    assert result.encoding == "utf-16-le"


def test_chinese_locale_timestamps() -> None:
    data = "2024/3/12 下午9:41 - 张伟: 你好\n2024/3/12 上午10:02 - +86 139 1234 5678: 收到\n".encode()
    result = parse_whatsapp(data)
    assert [(m.name, m.phones) for m in result.groups[0].members] == [
        ("张伟", ()),
        ("+86 139 1234 5678", ("+8613912345678",)),
    ]
