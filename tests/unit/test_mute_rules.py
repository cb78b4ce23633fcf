"""The push rules a mute with exemptions turns into (pure data, no Synapse)."""

from __future__ import annotations

from synapse_modules.mute_rules import (
    MuteSettings,
    element_mute_rule,
    exemption_rules,
    is_wangxin_rule,
    looks_like_mute,
    room_rule_prefix,
    vip_rules,
)

ROOM = "!E6tKbPpNEj5UynBJxfW0X9giIBigMOvdivZLaKbCk3g"
ME = "@me:example.org"


def test_element_mute_rule_is_what_element_writes() -> None:
    rule = element_mute_rule(ROOM)
    assert rule.rule_id == ROOM
    assert rule.conditions == [{"kind": "event_match", "key": "room_id", "pattern": ROOM}]
    assert rule.actions == ["dont_notify"]
    assert looks_like_mute(rule.rule_id, rule.conditions, rule.actions, ROOM)
    assert looks_like_mute(ROOM, rule.conditions, [], ROOM)  # older clients write []


def test_no_exemption_looks_like_a_mute_so_element_never_deletes_one() -> None:
    settings = MuteSettings(ROOM, ("@boss:example.org",), True, True, False)
    rules = exemption_rules(settings, ME) + vip_rules(("@vip:example.org",))
    assert rules
    for rule in rules:
        assert is_wangxin_rule(rule.rule_id)
        assert not looks_like_mute(rule.rule_id, rule.conditions, rule.actions, ROOM)
        assert "notify" in rule.actions
        assert "/" not in rule.rule_id and "\\" not in rule.rule_id and len(rule.rule_id.encode()) <= 300


def test_each_person_gets_a_rule_per_message_type_and_ids_are_stable() -> None:
    settings = MuteSettings(ROOM, ("@a:x", "@b:x"))
    rules = exemption_rules(settings, ME)
    assert len(rules) == 4
    types = sorted(c["pattern"] for r in rules for c in r.conditions if c.get("key") == "type")
    assert types == ["m.room.encrypted"] * 2 + ["m.room.message"] * 2
    assert [r.rule_id for r in rules] == [r.rule_id for r in exemption_rules(settings, ME)]
    assert all(r.rule_id.startswith(room_rule_prefix(ROOM)) for r in rules)


def test_mentions_cover_replies_and_replies_alone_need_a_reply() -> None:
    mentions = exemption_rules(MuteSettings(ROOM, exempt_mentions=True, exempt_replies=True), ME)
    assert {r.rule_id.rsplit(".", 1)[1] for r in mentions} == {"mention", "mention_name", "mention_room"}
    (reply,) = exemption_rules(MuteSettings(ROOM, exempt_replies=True), ME)
    keys = [c.get("key") for c in reply.conditions]
    assert "content.m\\.relates_to.m\\.in_reply_to.event_id" in keys and "content.m\\.mentions.user_ids" in keys


def test_moderators_use_sender_power_with_a_default_of_50() -> None:
    rules = exemption_rules(MuteSettings(ROOM, exempt_moderators=True), ME)
    assert len(rules) == 2
    assert all(any(c["kind"] == "sender_notification_permission" for c in r.conditions) for r in rules)
