"""The push rules a mute with exemptions turns into, and the plans that change them (pure data,
no Synapse)."""

from __future__ import annotations

from typing import Any

import attrs

from synapse_modules.mute_rules import (
    MuteSettings,
    Rule,
    element_mute_rule,
    exemption_rules,
    is_wangxin_rule,
    looks_like_mute,
    plan_room_mute,
    plan_room_removal,
    plan_vips,
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


# -- user ids -----------------------------------------------------------------------------------


def test_user_ids_are_matrix_ids_of_at_most_255_bytes() -> None:
    from synapse_modules.mute_rules import user_id_problem

    for good in ("@ok:x", "@boss:example.org", "@a.b_c=d/e-f+g:example.org:8448", "@x:[::1]:8448", "@x:127.0.0.1",
                 "@" + "a" * 242 + ":example.org"):
        assert user_id_problem(good) is None, good
    assert "255 bytes" in str(user_id_problem("@" + "a" * 243 + ":example.org"))
    assert "255 bytes" in str(user_id_problem("@" + "a" * 100_000 + ":example.org"))
    for bad in ("boss", "@boss", "@:x", "@bo ss:x", "@boss:exa mple.org", "@boss:x\n", "@böss:x", "@boss:ex_ample",
                "@boss:[zz]", "#room:x", "", 5, None, ["@a:x"]):
        assert user_id_problem(bad) is not None, bad
    assert user_id_problem("@a\ud800:x") == "is not valid Unicode"


# -- plans ----------------------------------------------------------------------------------------


@attrs.frozen
class Stored:
    rule_id: str
    conditions: list[dict[str, Any]]
    actions: list[Any]
    enabled: bool = True


def stored(rule: Rule, enabled: bool = True) -> Stored:
    return Stored(rule.rule_id, rule.conditions, rule.actions, enabled)


BOSS, BOB = "@boss:example.org", "@bob:example.org"


def test_a_mute_puts_the_mute_rule_then_the_exemptions_above_it_then_the_vips() -> None:
    settings = MuteSettings(ROOM, (BOSS,), exempt_moderators=True)
    plan = plan_room_mute(settings, ME, [], ("@vip:x",), owned_before=False)
    wanted = exemption_rules(settings, ME)
    # Each put lands on top: the last written is evaluated first.
    assert [r.rule_id for r in plan.put] == (
        [ROOM] + [r.rule_id for r in reversed(wanted)] + [r.rule_id for r in reversed(vip_rules(("@vip:x",)))]
    )
    assert plan.delete == () and plan.enable == ()
    assert plan.owns_mute_rule  # nothing muted the room before: Wangxin writes the mute rule


def test_changing_a_mute_deletes_only_this_rooms_stale_exemptions_and_wakes_sleeping_ones() -> None:
    old = exemption_rules(MuteSettings(ROOM, (BOSS, BOB)), ME)
    other_room = exemption_rules(MuteSettings("!other", (BOSS,)), ME)
    client_rule = Stored("my.keyword", [{"kind": "event_match", "key": "content.body", "pattern": "x"}], ["notify"])
    current = [*(stored(r, enabled=False) for r in old), *(stored(r) for r in other_room), client_rule,
               stored(element_mute_rule(ROOM))]
    plan = plan_room_mute(MuteSettings(ROOM, (BOSS,)), ME, current, (), owned_before=True)
    bob_rules = {r.rule_id for r in old if BOB in str(r.conditions)}
    assert set(plan.delete) == bob_rules
    assert set(plan.enable) == {r.rule_id for r in old} - bob_rules  # asleep since a client unmute
    assert plan.owns_mute_rule


def test_a_clients_mute_rule_stays_the_clients() -> None:
    client_mute = stored(element_mute_rule(ROOM))
    plan = plan_room_mute(MuteSettings(ROOM, (BOSS,)), ME, [client_mute], (), owned_before=False)
    assert not plan.owns_mute_rule and plan.delete == ()
    ours = [stored(r) for r in exemption_rules(MuteSettings(ROOM, (BOSS,)), ME)]
    # Leaving the room removes the exemptions only; unmuting removes the client's mute rule too.
    left = plan_room_removal(ROOM, [client_mute, *ours], unmute=False, owns_mute_rule=False)
    assert set(left.delete) == {r.rule_id for r in ours}
    unmuted = plan_room_removal(ROOM, [client_mute, *ours], unmute=True, owns_mute_rule=False)
    assert set(unmuted.delete) == {ROOM} | {r.rule_id for r in ours}
    # Wangxin's own mute rule goes when the user leaves.
    left = plan_room_removal(ROOM, [client_mute, *ours], unmute=False, owns_mute_rule=True)
    assert set(left.delete) == {ROOM} | {r.rule_id for r in ours}
    # A rule of the client's under the room's id that is not a mute is never removed.
    loud = Stored(ROOM, [{"kind": "event_match", "key": "room_id", "pattern": ROOM}], ["notify"])
    assert plan_room_removal(ROOM, [loud], unmute=True, owns_mute_rule=True).delete == ()


def test_vips_replace_the_old_list() -> None:
    current = [stored(r) for r in vip_rules(("@old:x", BOSS))]
    plan = plan_vips((BOSS, BOB), current)
    assert set(plan.delete) == {r.rule_id for r in vip_rules(("@old:x",))}
    assert [r.rule_id for r in plan.put] == [r.rule_id for r in reversed(vip_rules((BOSS, BOB)))]
