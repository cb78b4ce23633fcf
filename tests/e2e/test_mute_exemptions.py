"""Group mute with per-member exemptions, checked as Synapse itself evaluates push rules:
``GET /notifications`` and a real HTTP pusher delivering to a local push gateway."""

from __future__ import annotations

from collections.abc import Iterator

import attrs
import pytest

from synapse_modules.mute_rules import MUTE_RULE_PREFIX, VIP_RULE_PREFIX, room_rule_prefix
from tests.harness.http import HttpUser, eventually, q
from tests.harness.push_gateway import PushGateway
from tests.harness.stack import RunningStack

MUTE = "/_synapse/client/wangxin/v1/rooms/{}/mute"


@pytest.fixture(scope="module")
def gateway() -> Iterator[PushGateway]:
    gw = PushGateway()
    yield gw
    gw.close()


@attrs.define
class Group:
    room_id: str
    alice: HttpUser  # mutes the group
    boss: HttpUser
    bob: HttpUser
    mod: HttpUser


def make_group(stack: RunningStack, encrypted: bool = False) -> Group:
    alice, boss, bob, mod = (HttpUser(stack) for _ in range(4))
    room_id = boss.create_room(encrypted=encrypted, invite=[alice.user_id, bob.user_id, mod.user_id])
    for member in (alice, bob, mod):
        member.join(room_id)
    boss.set_power_level(room_id, mod.user_id, 50)
    return Group(room_id, alice, boss, bob, mod)


def mute(user: HttpUser, room_id: str, expect: int = 200, **settings: object) -> dict:
    return user.call("PUT", MUTE.format(q(room_id)), settings, expect=expect)


def message(sender: HttpUser, room_id: str, encrypted: bool, text: str = "hello") -> str:
    return sender.send_encrypted(room_id) if encrypted else sender.say(room_id, text)


def assert_notified_only(user: HttpUser, wanted: list[str], unwanted: list[str]) -> None:
    """Unwanted events were sent *before* the wanted ones: once the wanted notify, Synapse has
    evaluated the unwanted ones too (events are evaluated in order), so no sleep is needed."""
    eventually(lambda: set(wanted) <= user.notified_event_ids())
    assert not set(unwanted) & user.notified_event_ids()


def wangxin_rules_above_mute(user: HttpUser, room_id: str) -> bool:
    ids = [r["rule_id"] for r in user.override_rules() if r["enabled"]]
    ours = [i for i, rid in enumerate(ids) if rid.startswith((MUTE_RULE_PREFIX, VIP_RULE_PREFIX))]
    return room_id in ids and bool(ours) and max(ours) < ids.index(room_id)


@pytest.mark.parametrize("encrypted", [False, True], ids=["plain", "encrypted"])
def test_exempted_member_notifies_with_sound_others_do_not(
    stack: RunningStack, gateway: PushGateway, encrypted: bool
) -> None:
    g = make_group(stack, encrypted)
    answer = mute(g.alice, g.room_id, exempt_users=[g.boss.user_id])
    assert answer["encrypted"] is encrypted and answer["active"] is True
    assert ("note" in answer) is encrypted
    g.alice.set_pusher(gateway.url)
    quiet = message(g.bob, g.room_id, encrypted)
    loud = message(g.boss, g.room_id, encrypted)
    assert_notified_only(g.alice, [loud], [quiet])
    pushed = eventually(lambda: gateway.for_event(loud))
    assert pushed[0]["devices"][0]["tweaks"].get("sound") == "default"
    assert not gateway.for_event(quiet)
    # Stock behaviour for everyone else: bob, who muted nothing, is notified of the boss too.
    assert loud in eventually(lambda: g.bob.notified_event_ids())


@pytest.mark.parametrize("encrypted", [False, True], ids=["plain", "encrypted"])
def test_moderators_break_through(stack: RunningStack, encrypted: bool) -> None:
    g = make_group(stack, encrypted)
    mute(g.alice, g.room_id, exempt_moderators=True)
    quiet = message(g.bob, g.room_id, encrypted)
    loud = message(g.mod, g.room_id, encrypted)
    assert_notified_only(g.alice, [loud], [quiet])


def test_mentions_and_replies_break_through_in_a_plain_room(stack: RunningStack) -> None:
    g = make_group(stack)
    mute(g.alice, g.room_id, exempt_mentions=True)
    quiet = g.bob.say(g.room_id, "nothing for alice")
    mention = g.bob.say(g.room_id, "alice, look", **{"m.mentions": {"user_ids": [g.alice.user_id]}})
    assert_notified_only(g.alice, [mention], [quiet])

    h = make_group(stack)
    mute(h.alice, h.room_id, exempt_replies=True)
    original = h.alice.say(h.room_id, "my question")
    plain_mention = h.bob.say(h.room_id, "not a reply", **{"m.mentions": {"user_ids": [h.alice.user_id]}})
    reply = h.bob.say(
        h.room_id, "> my question\n\nanswer",
        **{"m.mentions": {"user_ids": [h.alice.user_id]}, "m.relates_to": {"m.in_reply_to": {"event_id": original}}},
    )
    assert_notified_only(h.alice, [reply], [plain_mention])


def test_element_remute_is_repaired_and_unmute_makes_exemptions_dormant(stack: RunningStack) -> None:
    g = make_group(stack)
    mute(g.alice, g.room_id, exempt_users=[g.boss.user_id])
    assert wangxin_rules_above_mute(g.alice, g.room_id)

    # Element's "Mute room" again: the mute rule jumps above the exemptions...
    # ... and the server puts them back on its own (bench/mute.py measures how fast: p50/p95).
    g.alice.element_mute(g.room_id)
    eventually(lambda: wangxin_rules_above_mute(g.alice, g.room_id), timeout=10, interval=0.05)
    quiet = g.bob.say(g.room_id, "chatter")
    loud = g.boss.say(g.room_id, "from the boss")
    assert_notified_only(g.alice, [loud], [quiet])

    # Element's "Match default setting": exemptions sleep, nothing re-mutes the room.
    g.alice.element_unmute(g.room_id)
    eventually(lambda: g.alice.call("GET", MUTE.format(q(g.room_id)))["active"] is False)
    ours = [r for r in g.alice.override_rules() if r["rule_id"].startswith(MUTE_RULE_PREFIX)]
    assert ours and not any(r["enabled"] for r in ours)
    assert g.room_id not in [r["rule_id"] for r in g.alice.override_rules()]
    normal = g.bob.say(g.room_id, "unmuted now")
    eventually(lambda: normal in g.alice.notified_event_ids())

    # Muting again in Element wakes the exemptions up, above the new mute rule.
    g.alice.element_mute(g.room_id)
    eventually(lambda: g.alice.call("GET", MUTE.format(q(g.room_id)))["active"] is True)
    eventually(lambda: wangxin_rules_above_mute(g.alice, g.room_id))
    quiet = g.bob.say(g.room_id, "chatter again")
    loud = g.boss.say(g.room_id, "boss again")
    assert_notified_only(g.alice, [loud], [quiet])


def test_exemptions_added_after_a_client_mute(stack: RunningStack) -> None:
    g = make_group(stack)
    g.alice.element_mute(g.room_id)
    mute(g.alice, g.room_id, exempt_users=[g.boss.user_id])
    quiet = g.bob.say(g.room_id, "chatter")
    loud = g.boss.say(g.room_id, "boss")
    assert_notified_only(g.alice, [loud], [quiet])


def test_vips_break_through_every_muted_room(stack: RunningStack) -> None:
    g = make_group(stack)
    second = g.boss.create_room(invite=[g.alice.user_id, g.bob.user_id])
    g.alice.join(second)
    g.bob.join(second)
    g.alice.call("PUT", "/_synapse/client/wangxin/v1/vips", {"users": [g.boss.user_id]})
    assert g.alice.call("GET", "/_synapse/client/wangxin/v1/vips") == {"users": [g.boss.user_id]}
    g.alice.element_mute(g.room_id)  # muted in the client only
    mute(g.alice, second)             # muted through Wangxin, no exemptions
    eventually(lambda: wangxin_rules_above_mute(g.alice, g.room_id))
    quiet = [g.bob.say(g.room_id, "x"), g.bob.say(second, "y")]
    loud = [g.boss.say(g.room_id, "vip 1"), g.boss.say(second, "vip 2")]
    assert_notified_only(g.alice, loud, quiet)
    g.alice.call("PUT", "/_synapse/client/wangxin/v1/vips", {"users": []})
    assert not [r for r in g.alice.override_rules() if r["rule_id"].startswith(VIP_RULE_PREFIX)]


def test_delete_and_list_changes_leave_no_orphan_rules(stack: RunningStack) -> None:
    g = make_group(stack)
    mute(g.alice, g.room_id, exempt_users=[g.boss.user_id, g.bob.user_id], exempt_moderators=True)
    assert len([r for r in g.alice.override_rules() if r["rule_id"].startswith(MUTE_RULE_PREFIX)]) == 6
    mute(g.alice, g.room_id, exempt_users=[g.boss.user_id])  # bob removed from the list
    ours = [r for r in g.alice.override_rules() if r["rule_id"].startswith(MUTE_RULE_PREFIX)]
    assert len(ours) == 2 and all(g.boss.user_id in str(r["conditions"]) for r in ours)
    g.alice.call("DELETE", MUTE.format(q(g.room_id)))
    ids = [r["rule_id"] for r in g.alice.override_rules()]
    assert g.room_id not in ids and not [i for i in ids if i.startswith(MUTE_RULE_PREFIX)]
    g.alice.call("GET", MUTE.format(q(g.room_id)), expect=404)
    normal = g.bob.say(g.room_id, "unmuted")
    eventually(lambda: normal in g.alice.notified_event_ids())


def test_leaving_the_room_removes_its_rules(stack: RunningStack) -> None:
    g = make_group(stack)
    mute(g.alice, g.room_id, exempt_users=[g.boss.user_id])
    g.alice.leave(g.room_id)
    eventually(lambda: not [r for r in g.alice.override_rules() if r["rule_id"].startswith(MUTE_RULE_PREFIX)])
    assert g.alice.call("GET", "/_synapse/client/wangxin/v1/mutes") == {"mutes": []}


def test_bad_input_is_refused_with_a_reason(stack: RunningStack) -> None:
    g = make_group(stack)
    outsider = HttpUser(stack)
    r = outsider.raw("PUT", MUTE.format(q(g.room_id)), {})
    assert r.status_code == 403 and r.json()["errcode"] == "M_FORBIDDEN"
    r = g.alice.raw("PUT", MUTE.format(q("!nosuchroom")), {})
    assert r.status_code == 404 and r.json()["errcode"] == "M_NOT_FOUND"
    r = g.alice.raw("PUT", MUTE.format(q(g.room_id)), {"exempt_users": ["@ok:x", "boss"]})
    assert r.status_code == 400 and "exempt_users[1]" in r.json()["error"]
    r = g.alice.raw("PUT", MUTE.format(q(g.room_id)), {"exempt_users": [f"@u{i}:x" for i in range(51)]})
    assert r.status_code == 400 and "at most 50" in r.json()["error"]
    r = g.alice.raw("PUT", MUTE.format(q(g.room_id)), {"exempt_moderators": "yes"})
    assert r.status_code == 400 and "exempt_moderators" in r.json()["error"]
    r = g.alice.raw("PUT", "/_synapse/client/wangxin/v1/vips", {"users": "@a:x"})
    assert r.status_code == 400
    # A user not (yet) in the room may be exempted: they may join later.
    mute(g.alice, g.room_id, exempt_users=["@later:elsewhere.test"])
    # Nothing half-done: refusals left no rules behind.
    ours = [r for r in g.alice.override_rules() if r["rule_id"].startswith(MUTE_RULE_PREFIX)]
    assert len(ours) == 2


def test_chat_commands_for_people_on_element(stack: RunningStack) -> None:
    from tests.harness.http import ask, open_dm

    bot = stack.info["bridge"]["bot_user_id"]
    g = make_group(stack)
    secret = make_group(stack, encrypted=True)
    secret.alice = g.alice
    secret.boss.call("POST", f"/_matrix/client/v3/rooms/{q(secret.room_id)}/invite", {"user_id": g.alice.user_id})
    g.alice.join(secret.room_id)
    dm = open_dm(g.alice, bot)

    assert "Which room?" in ask(g.alice, dm, bot, "mute")
    answer = ask(g.alice, dm, bot, f"mute {g.room_id} except {g.boss.user_id} moderators")
    assert answer.startswith("Muted.") and g.boss.user_id in answer and "moderators" in answer
    setting = g.alice.call("GET", MUTE.format(q(g.room_id)))
    assert setting["exempt_users"] == [g.boss.user_id] and setting["exempt_moderators"] is True

    # An Element user pill: the body shows a display name, the link carries the user id.
    pill = f'<a href="https://matrix.to/#/{secret.boss.user_id}">Boss</a>'
    answer = ask(g.alice, dm, bot, f"mute https://matrix.to/#/{secret.room_id} except Boss mentions",
                 format="org.matrix.custom.html", formatted_body=f"mute {secret.room_id} except {pill} mentions")
    assert "end-to-end encrypted" in answer and "Mentions and replies" in answer
    assert g.alice.call("GET", MUTE.format(q(secret.room_id)))["exempt_users"] == [secret.boss.user_id]

    assert "can't find" in ask(g.alice, dm, bot, "mute #nowhere:" + stack.server_name)
    assert "not a member" in ask(g.alice, dm, bot, f"mute {HttpUser(stack).create_room()}")
    listing = ask(g.alice, dm, bot, "mutes")
    assert g.room_id in listing and secret.room_id in listing
    assert g.bob.user_id in ask(g.alice, dm, bot, f"vips add {g.bob.user_id}")
    assert g.alice.call("GET", "/_synapse/client/wangxin/v1/vips") == {"users": [g.bob.user_id]}
    assert "none" in ask(g.alice, dm, bot, f"vips remove {g.bob.user_id}")
    assert "Unmuted" in ask(g.alice, dm, bot, f"unmute {g.room_id}")
    g.alice.call("GET", MUTE.format(q(g.room_id)), expect=404)


def mute_rules_of(user: HttpUser, room_id: str) -> list[dict]:
    """The override rules a mute of ``room_id`` is made of: the room rule and the exemptions."""
    prefix = room_rule_prefix(room_id)
    return [r for r in user.override_rules() if r["rule_id"] == room_id or r["rule_id"].startswith(prefix)]


def test_an_overlong_user_id_is_refused_and_the_mute_before_it_stays(stack: RunningStack) -> None:
    g = make_group(stack)
    mute(g.alice, g.room_id, exempt_users=[g.boss.user_id], exempt_moderators=True)
    setting = g.alice.call("GET", MUTE.format(q(g.room_id)))
    rules = mute_rules_of(g.alice, g.room_id)
    assert len(rules) == 5

    huge = "@" + "a" * 100_000 + ":" + stack.server_name
    r = g.alice.raw("PUT", MUTE.format(q(g.room_id)), {"exempt_users": [g.bob.user_id, huge]})
    assert r.status_code == 400 and r.json()["errcode"] == "M_BAD_JSON", r.text[:500]
    assert "'exempt_users[1]'" in r.json()["error"] and "255 bytes" in r.json()["error"]
    assert len(r.content) < 1000  # the answer names the field; it does not echo 100,000 characters
    # One byte over the limit is refused just the same; a VIP list is held to it too.
    over = "@" + "a" * (255 - len(stack.server_name) - 1) + ":" + stack.server_name
    assert len(over.encode()) == 256
    r = g.alice.raw("PUT", MUTE.format(q(g.room_id)), {"exempt_users": [over]})
    assert r.status_code == 400 and "'exempt_users[0]'" in r.json()["error"]
    r = g.alice.raw("PUT", "/_synapse/client/wangxin/v1/vips", {"users": [huge]})
    assert r.status_code == 400 and "'users[0]'" in r.json()["error"]

    # Nothing changed: the setting, the rules (same order), and what they do.
    assert g.alice.call("GET", MUTE.format(q(g.room_id))) == setting
    assert mute_rules_of(g.alice, g.room_id) == rules
    assert g.alice.call("GET", "/_synapse/client/wangxin/v1/vips") == {"users": []}
    quiet = g.bob.say(g.room_id, "chatter")
    loud = g.boss.say(g.room_id, "from the boss")
    assert_notified_only(g.alice, [loud], [quiet])

    # The longest id Matrix allows is accepted.
    longest = over[:-len(stack.server_name) - 2] + ":" + stack.server_name
    assert len(longest.encode()) == 255
    assert mute(g.alice, g.room_id, exempt_users=[longest])["exempt_users"] == [longest]


def test_a_body_that_is_not_strict_json_is_refused_and_changes_nothing(stack: RunningStack) -> None:
    g = make_group(stack)
    mute(g.alice, g.room_id, exempt_users=[g.boss.user_id])
    setting = g.alice.call("GET", MUTE.format(q(g.room_id)))
    url = stack.url + MUTE.format(q(g.room_id))
    for body, errcode in [(b'{"exempt_users": [', "M_NOT_JSON"), (b'{"exempt_moderators": NaN}', "M_NOT_JSON"),
                          (b"\xff\xfe{}", "M_NOT_JSON"), (b'["@a:x"]', "M_BAD_JSON"),
                          (b'{"exempt_users": ["@a\\ud800:x"]}', "M_BAD_JSON")]:
        r = g.alice.http.put(url, data=body, headers={"Content-Type": "application/json"}, timeout=60)
        assert (r.status_code, r.json()["errcode"]) == (400, errcode), (body, r.text)
    assert g.alice.call("GET", MUTE.format(q(g.room_id))) == setting


def test_leaving_removes_the_mute_rule_wangxin_wrote_but_not_the_clients(stack: RunningStack) -> None:
    ours = make_group(stack)  # muted through Wangxin only: Wangxin wrote the room's mute rule
    mute(ours.alice, ours.room_id, exempt_users=[ours.boss.user_id])
    theirs = make_group(stack)  # muted in the client first: the room's mute rule is the client's
    theirs.alice.element_mute(theirs.room_id)
    mute(theirs.alice, theirs.room_id, exempt_users=[theirs.boss.user_id])
    # Muted through Wangxin, then unmuted and muted again in the client: the rule is the client's now.
    again = make_group(stack)
    mute(again.alice, again.room_id, exempt_moderators=True)
    again.alice.element_unmute(again.room_id)
    eventually(lambda: again.alice.call("GET", MUTE.format(q(again.room_id)))["active"] is False)
    again.alice.element_mute(again.room_id)
    eventually(lambda: again.alice.call("GET", MUTE.format(q(again.room_id)))["active"] is True)

    for g in (ours, theirs, again):
        g.alice.leave(g.room_id)
    eventually(lambda: mute_rules_of(ours.alice, ours.room_id) == [], timeout=15)
    eventually(lambda: [r["rule_id"] for r in mute_rules_of(theirs.alice, theirs.room_id)] == [theirs.room_id],
               timeout=15)
    eventually(lambda: [r["rule_id"] for r in mute_rules_of(again.alice, again.room_id)] == [again.room_id],
               timeout=15)
    for g in (ours, theirs, again):
        assert g.alice.call("GET", "/_synapse/client/wangxin/v1/mutes") == {"mutes": []}


def test_api_writes_racing_the_repair_keep_their_log_contexts(stack: RunningStack) -> None:
    """An Element re-mute starts the repair while the same user's API writes run: each must
    wait for the other without carrying its log context into the other (the harness fails the
    test on a log-context error in Synapse's log)."""
    import threading

    g = make_group(stack)
    mute(g.alice, g.room_id, exempt_users=[g.boss.user_id])
    stop = threading.Event()
    answers: list[int] = []

    def writes() -> None:
        while not stop.is_set():
            for users in ([g.boss.user_id], [g.boss.user_id, g.bob.user_id]):
                answers.append(g.alice.raw("PUT", MUTE.format(q(g.room_id)), {"exempt_users": users}).status_code)

    writer = threading.Thread(target=writes)
    writer.start()
    try:
        for _ in range(10):
            g.alice.element_mute(g.room_id)
            eventually(lambda: wangxin_rules_above_mute(g.alice, g.room_id), timeout=10, interval=0.05)
    finally:
        stop.set()
        writer.join()
    assert answers and set(answers) == {200}
    mute(g.alice, g.room_id, exempt_users=[g.boss.user_id])
    eventually(lambda: wangxin_rules_above_mute(g.alice, g.room_id))
    quiet = g.bob.say(g.room_id, "chatter")
    loud = g.boss.say(g.room_id, "from the boss")
    assert_notified_only(g.alice, [loud], [quiet])
