"""SMS chat and invitation SQL on SQLite (the e2e tests run it on PostgreSQL too), and invite links."""

from __future__ import annotations

import sqlite3

import pytest

from bridges.database import Txn, _migrate_txn
from bridges.import_store import _add_arrivals_txn, _pending_arrivals_txn
from bridges.sms import chat_store as cs
from bridges.sms_commands import _SMS_RE


def _txn() -> Txn:
    txn = Txn(sqlite3.connect(":memory:").cursor(), "sqlite")
    _migrate_txn(txn)
    return txn


def test_replies_go_to_the_user_who_texted_the_number_last() -> None:
    txn = _txn()
    cs._set_room_txn(txn, "@a:hs", "+8613800000001", "!ra")
    cs._set_room_txn(txn, "@b:hs", "+8613800000001", "!rb")
    txn.execute("UPDATE sms_rooms SET last_outbound_ts = 1 WHERE room_id = '!ra'")
    txn.execute("UPDATE sms_rooms SET last_outbound_ts = 2 WHERE room_id = '!rb'")
    assert cs._latest_room_txn(txn, "+8613800000001") == cs.SmsRoom("@b:hs", "+8613800000001", "!rb")
    txn.execute("UPDATE sms_rooms SET last_outbound_ts = 3 WHERE room_id = '!ra'")
    assert cs._latest_room_txn(txn, "+8613800000001").room_id == "!ra"  # type: ignore[union-attr]
    assert cs._latest_room_txn(txn, "+8613800000002") is None


def test_a_new_room_for_the_same_number_replaces_the_old_one() -> None:
    txn = _txn()
    cs._set_room_txn(txn, "@a:hs", "+8613800000001", "!old")
    cs._set_room_txn(txn, "@a:hs", "+8613800000001", "!new")
    assert cs._room_for_txn(txn, "@a:hs", "+8613800000001").room_id == "!new"  # type: ignore[union-attr]
    assert cs._room_by_id_txn(txn, "!old") is None
    cs._remove_room_txn(txn, "!new")
    assert cs._room_for_txn(txn, "@a:hs", "+8613800000001") is None


def test_an_invitation_is_created_once_per_inviter_and_number() -> None:
    txn = _txn()
    first, created = cs._create_invite_txn(txn, "@a:hs", "+8613800000001", "张三")
    again, created_again = cs._create_invite_txn(txn, "@a:hs", "+8613800000001", "Zhang")
    assert created and not created_again and again.invite_id == first.invite_id and again.name == "张三"
    other, _ = cs._create_invite_txn(txn, "@b:hs", "+8613800000001", "San")
    assert [i.inviter for i in cs._open_invites_phone_txn(txn, "+8613800000001")] == ["@a:hs", "@b:hs"]
    cs._update_invite_txn(txn, first.invite_id, "queued", 42, None, None)
    assert cs._invite_by_sms_txn(txn, 42).invite_id == first.invite_id  # type: ignore[union-attr]
    cs._update_invite_txn(txn, other.invite_id, "revoked", None, None, None)
    cs._update_invite_txn(txn, first.invite_id, "joined", None, None, "@new:hs")
    assert cs._open_invites_phone_txn(txn, "+8613800000001") == []
    joined = cs._invite_txn(txn, first.invite_id)
    assert joined is not None and joined.joined_user_id == "@new:hs" and joined.sms_id == 42


def test_arrivals_keep_who_they_are_limited_to() -> None:
    txn = _txn()
    _add_arrivals_txn(txn, [("@a:hs", "+86138", None), ("@b:hs", "+86139", None, ["@z:hs", "@y:hs"])])
    assert [row[1:] for row in _pending_arrivals_txn(txn, 10)] == [
        ("@a:hs", "+86138", None, None), ("@b:hs", "+86139", None, ["@y:hs", "@z:hs"])]


class _Config:
    class appservice:  # noqa: N801
        as_token = "as-token"
        bind_address = "127.0.0.1"
        port = 8009

    class sms:  # noqa: N801
        default_region = "CN"
        invite_base_url = "https://wangxin.example/i/"


def _invites() -> object:
    from bridges.sms.invites import SmsInvites

    class _Sms:
        def add_status_listener(self, kind: str, listener: object) -> None:
            pass

    return SmsInvites(_Config, None, None, _Sms(), None, None)  # type: ignore[arg-type]


def test_invite_links_carry_a_mac_that_is_checked() -> None:
    invites = _invites()
    token = invites.token(17)  # type: ignore[attr-defined]
    assert invites.link(17) == f"https://wangxin.example/i/{token}"  # type: ignore[attr-defined]
    assert invites.invite_id_of(token) == 17  # type: ignore[attr-defined]
    number, _, mac = token.partition("-")
    assert invites.invite_id_of(f"18-{mac}") is None  # type: ignore[attr-defined]
    assert invites.invite_id_of(f"017-{mac}") is None  # type: ignore[attr-defined]
    assert invites.invite_id_of("17") is None  # type: ignore[attr-defined]
    assert invites.invite_id_of("x" * 40) is None  # type: ignore[attr-defined]


@pytest.mark.parametrize(
    ("body", "number", "text"),
    [
        ("sms +8613812345678 See you at 6!", "+8613812345678", "See you at 6!"),
        ("!sms '+86 138 1234 5678' 你好\n第二行", "'+86 138 1234 5678'", "你好\n第二行"),
        ("SMS 13812345678", "13812345678", ""),
    ],
)
def test_the_sms_command_keeps_the_text_as_written(body: str, number: str, text: str) -> None:
    match = _SMS_RE.match(body)
    assert match is not None and match.group(1) == number and match.group(2).strip() == text
