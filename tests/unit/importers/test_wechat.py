"""WeChat contact exports: MemoTrace CSV and PyWxDump-style JSON (own samples)."""

from __future__ import annotations

import json

import pytest

from bridges.importers import ImportFormatError, parse_wechat_contacts_csv, parse_wechat_json
from tests.unit.importers.support import sample_bytes

CSV = sample_bytes("wechat_memotrace_contacts.csv")


def test_memotrace_contacts_csv() -> None:
    result = parse_wechat_contacts_csv(CSV)
    assert result.format == "wechat_contacts_csv"
    assert [(c.source_id, c.name) for c in result.contacts] == [
        ("wxid_a1b2c3d4e5f612", "张三"),        # Remark wins over NickName
        ("wxid_q9w8e7r6t5y422", "李四"),        # no Remark: NickName
        ("laowang_1980", "王五（老王, 楼下）"),  # custom id, quoted cell with a comma
        ("wxid_nonick00000155", "zhaoliu_66"),  # neither: Alias (the WeChat ID)
    ]
    assert [(g.source_id, g.name, g.members) for g in result.groups] == [
        ("12345678901@chatroom", "家庭群", ()),
        ("23456789012@chatroom", "周末羽毛球", ()),
        ("34567890123@chatroom", "Unnamed WeChat group", ()),
    ]
    assert result.warnings == (
        "skipped 1 entry: official account",
        "skipped 1 entry: WeChat service account",
        "skipped 1 entry: not a friend (only seen in a group)",
        "skipped 1 entry: blocked contact",
    )


@pytest.mark.parametrize("encoding", ["utf-8-sig", "gb18030", "utf-16"])
def test_memotrace_csv_encodings(encoding: str) -> None:
    result = parse_wechat_contacts_csv(CSV.decode("utf-8").encode(encoding))
    assert [c.name for c in result.contacts] == ["张三", "李四", "王五（老王, 楼下）", "zhaoliu_66"]


def test_lower_case_header_names_are_accepted() -> None:
    data = "username,nickname,remark\nwxid_x,小明,\n".encode()
    assert [c.name for c in parse_wechat_contacts_csv(data).contacts] == ["小明"]


def test_csv_without_wechat_columns_is_an_error() -> None:
    with pytest.raises(ImportFormatError) as caught:
        parse_wechat_contacts_csv(b"First Name,Last Name\nAnn,Lee\n")
    assert "UserName and NickName" in caught.value.reason


def test_pywxdump_lists_with_field_variants() -> None:
    result = parse_wechat_json(sample_bytes("wechat_pywxdump_lists.json"))
    assert result.format == "wechat_json"
    assert result.self_source_id == "wxid_me0000000001"
    assert [(c.source_id, c.name, c.phones, c.raw_phones) for c in result.contacts] == [
        ("wxid_a1b2c3d4e5f612", "张三", ("+8613800138000",), ()),
        ("wxid_q9w8e7r6t5y422", "李四", ("+8613912345678",), ()),
        ("laowang_1980", "王五", (), ("12345",)),
    ]
    family, badminton = result.groups
    assert (family.source_id, family.name, family.owner_source_id) == (
        "12345678901@chatroom", "家庭群", "wxid_a1b2c3d4e5f612",
    )
    # Contacts are named as the user saved them; others by their group name.
    assert [(m.source_id, m.name, m.phones) for m in family.members] == [
        ("wxid_me0000000001", "我", ()),
        ("wxid_a1b2c3d4e5f612", "张三", ("+8613800138000",)),
        ("wxid_q9w8e7r6t5y422", "李四", ("+8613912345678",)),
        ("wxid_cousin0000077", "表妹", ()),
    ]
    assert [(m.source_id, m.name) for m in badminton.members] == [
        ("wxid_q9w8e7r6t5y422", "李四"),
        ("laowang_1980", "王五"),
        ("wxid_player000088", "wxid_player000088"),
    ]
    assert badminton.owner_source_id is None
    assert "record 7: entry has no wxid; skipped" in result.warnings
    assert "record 8: a member of group '家庭群' has no wxid; skipped" in result.warnings


def test_pywxdump_keyed_by_wxid_with_extrabuf_phone() -> None:
    result = parse_wechat_json(sample_bytes("wechat_pywxdump_keyed.json"))
    assert [(c.source_id, c.name, c.phones) for c in result.contacts] == [
        ("wxid_a1b2c3d4e5f612", "张三", ("+8613800138000",)),
        ("wxid_k7j6h5g4f3d211", "赵六", ("+861065529988",)),
    ]
    [group] = result.groups
    assert (group.name, group.owner_source_id) == ("同学会", "wxid_k7j6h5g4f3d211")
    assert [(m.source_id, m.name) for m in group.members] == [
        ("wxid_a1b2c3d4e5f612", "张三"),
        ("wxid_k7j6h5g4f3d211", "赵六"),
        ("wxid_classmate00099", "小明"),
    ]


def test_wrapped_plain_list() -> None:
    doc = {"code": 0, "data": [{"wxid": "wxid_abc", "nickname": "Ann"},
                               {"wxid": "999@chatroom", "nickname": "G", "members": [{"wxid": "wxid_abc"}]}]}
    result = parse_wechat_json(json.dumps(doc).encode())
    assert [c.name for c in result.contacts] == ["Ann"]
    assert [(g.name, [m.name for m in g.members]) for g in result.groups] == [("G", ["Ann"])]


def test_json_that_is_not_wechat_is_an_error() -> None:
    with pytest.raises(ImportFormatError) as caught:
        parse_wechat_json(b'{"participants": [{"name": "A"}]}')
    assert "no WeChat contact records" in caught.value.reason
