"""SMS chat and invitation SQL on SQLite (the e2e tests run it on PostgreSQL too), and invite links."""

from __future__ import annotations

import sqlite3

import pytest

from bridges.contact_import.store.arrivals import _add_arrivals_txn, _pending_arrivals_txn
from bridges.database import Txn, _migrate_txn
from bridges.sms import chat_store as cs
from bridges.sms_commands import _SMS_RE


def _txn() -> Txn:
    txn = Txn(sqlite3.connect(":memory:").cursor(), "sqlite")
    _migrate_txn(txn)
    return txn


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


class _TxnDb:
    """``Database.run`` on an in-memory SQLite transaction, for driving ChatStore without a pool."""

    def __init__(self) -> None:
        self.txn = _txn()

    async def run(self, desc: str, func: object, *args: object) -> object:
        return func(self.txn, *args)  # type: ignore[operator]


class _Client:
    def __init__(self) -> None:
        self.sent: list[tuple[str, str, dict[str, object], str]] = []

    async def send_event(self, room_id: str, event_type: str, content: dict[str, object], txn_id: str,
                         as_user: str) -> str:
        self.sent.append((room_id, event_type, content, as_user))
        return f"$reaction{len(self.sent)}"

    async def send_notice_as(self, ghost: str, room_id: str, text: str, txn_id: str,
                             extra: dict[str, object]) -> None:
        self.sent.append((room_id, "notice", {"body": text}, ghost))


def test_a_status_that_arrives_before_the_message_is_recorded_is_still_shown() -> None:
    """The gateway can refuse an SMS before send_text has written which message it texts (the
    sender picks the queued SMS up at once): the status must still reach the room."""
    from twisted.internet import defer

    from bridges.sms.api import OutboundSms
    from bridges.sms.chat import SmsChat

    class _ChatConfig(_Config):
        class appservice(_Config.appservice):  # noqa: N801
            ghost_prefix = "_wx_"

        class homeserver:  # noqa: N801
            server_name = "hs"

    class _Sms:
        def add_status_listener(self, kind: str, listener: object) -> None:
            pass

        def set_inbound_handler(self, handler: object) -> None:
            pass

    db, client = _TxnDb(), _Client()
    chat = SmsChat(_ChatConfig, client, None, cs.ChatStore(db), _Sms())  # type: ignore[arg-type]
    failed = OutboundSms(sms_id=7, kind="chat", to="+8613800000001", body="hi", state="failed", sender="@a:hs",
                         room_id="!r", event_id="$msg", dedup_key="chat:$msg", provider_id=None, attempts=1,
                         error="21211: invalid number")
    defer.ensureDeferred(chat.on_status(failed))
    reaction = client.sent[0]
    assert reaction[:2] == ("!r", "m.reaction") and reaction[3] == "@_wx_sms_8613800000001:hs"
    assert reaction[2] == {"m.relates_to": {"rel_type": "m.annotation", "event_id": "$msg", "key": "✗ not sent"}}
    assert "could not be sent" in client.sent[1][2]["body"]  # type: ignore[operator]
    # send_text's own write afterwards changes nothing: the status stays shown, once.
    defer.ensureDeferred(cs.ChatStore(db).add_chat_message(7, "!r", "$msg"))
    shown = cs._chat_message_txn(db.txn, 7)
    assert shown is not None and shown.shown_state == "failed" and shown.reaction_event_id == "$reaction1"
    defer.ensureDeferred(chat.on_status(failed))
    assert len(client.sent) == 2
