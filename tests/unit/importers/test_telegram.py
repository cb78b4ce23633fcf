"""Telegram Desktop JSON: own full-account sample and rules."""

from __future__ import annotations

import json

import pytest

from bridges.importers import ImportFormatError, parse_telegram
from bridges.importers.telegram import user_id
from tests.unit.importers.support import sample_bytes

FULL = sample_bytes("telegram_full_export.json")


def test_full_export_contacts() -> None:
    result = parse_telegram(FULL)
    assert result.format_label == "Telegram full export (JSON)"
    assert result.self_source_id == "5000000001"
    assert [(c.source_id, c.name, c.phones, c.raw_phones) for c in result.contacts] == [
        ("5000000002", "Na Li", ("+8613912345678",), ()),
        # Listed without user_id, merged with the personal chat of the same name.
        ("5000000003", "王 芳", ("+8615012345678",), ()),
        # Telegram's own account numbers: a possible length is enough.
        ("5000000004", "Anna", ("+447700900456",), ()),
        ("5000000005", "Bad Number", (), ("12345",)),
        ("5000000006", "Lao Chen", (), ()),
        ("5000000007", "Deleted Account", (), ()),
    ]


def test_full_export_groups() -> None:
    result = parse_telegram(FULL)
    # Channels, bots, saved messages, left chats and unknown types are not groups.
    hikers, family = result.groups
    assert (hikers.source_id, hikers.name, hikers.owner_source_id) == (
        "1700000001", "Weekend Hikers", "5000000001",
    )
    assert [(m.source_id, m.name, m.phones) for m in hikers.members] == [
        ("5000000001", "Wei Zhang", ()),
        ("5000000002", "Na Li", ("+8613912345678",)),
        ("5000000004", "Anna", ("+447700900456",)),     # named in create_group, resolved via her message
        ("5000000009", "Zhao Lei", ()),                 # invited by name, resolved via his message
        ("5000000010", "Chen Jie", ()),                 # joined by link, later removed: still listed
        ("5000000011", "Deleted Account", ()),
    ]
    assert (family.source_id, family.name, family.owner_source_id) == ("1700000002", "家人", "5000000003")
    assert [m.name for m in family.members] == ["王 芳", "Wei Zhang", "妈妈"]
    assert family.members[2].source_id.startswith("h:")
    assert result.warnings == (
        "record 4: phone number '12345' is not valid; kept as text",
        "group 'Weekend Hikers': 1 member(s) were removed at some point; they are still listed as members",
        "chat 'Mystery' has unknown type 'secret_chat_v2'; skipped",
    )


def test_single_group_export() -> None:
    doc = {
        "name": "Book Club", "type": "public_supergroup", "id": 42,
        "messages": [
            {"id": 1, "type": "message", "from": "Ann", "from_id": "user1", "text": "hi"},
            {"id": 2, "type": "message", "from": "Bob", "from_id": 2, "text": "hey"},
            {"id": 3, "type": "service", "actor": "Ann", "actor_id": "user1", "action": "invite_members",
             "members": ["Bob", "Cy"]},
        ],
    }
    result = parse_telegram(json.dumps(doc).encode())
    [group] = result.groups
    assert [(m.source_id, m.name) for m in group.members][:2] == [("1", "Ann"), ("2", "Bob")]
    assert group.members[2].name == "Cy"
    assert group.owner_source_id is None


@pytest.mark.parametrize(
    ("value", "expected"),
    [(123, "123"), ("user123", "123"), ("0042", "42"), ("channel123", None), (True, None), (-5, None),
     ("user", None), (None, None), (1.5, None)],
)
def test_user_id_normalisation(value: object, expected: str | None) -> None:
    assert user_id(value) == expected


def test_json_that_is_not_telegram_is_an_error() -> None:
    with pytest.raises(ImportFormatError) as caught:
        parse_telegram(b'{"participants": []}')
    assert "not a Telegram Desktop export" in caught.value.reason


def test_wrong_types_inside_a_telegram_export_are_tolerated() -> None:
    doc = {
        "personal_information": "oops",
        "contacts": {"list": [None, 5, {"first_name": 7, "phone_number": ["x"]}]},
        "chats": {"list": [None, {"type": "private_group", "id": None, "messages": [None, {"from_id": []}]}]},
    }
    result = parse_telegram(json.dumps(doc).encode())
    assert result.contacts == ()
    assert [(g.name, g.members) for g in result.groups] == [("Telegram group", ())]
