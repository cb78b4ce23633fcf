"""SMS chat and SMS invitations, end to end: real Synapse, the real bridge, a local fake Twilio.

A DM with ``@wx_sms_<digits>`` (or ``sms <number> <text>`` to the bridge bot) texts the number;
replies come back into the room; delivery shows as the ghost's reaction. ``invite-sms`` texts a
personal link; binding that number to an account connects the new user with the inviter, even
though new users are not discoverable.
"""

from __future__ import annotations

import os
import signal
from typing import Any

import requests

from tests.e2e.test_contact_import import bind_phone, invited_rooms, random_mobile
from tests.harness.fake_twilio import FakeTwilio
from tests.harness.http import HttpUser, ask, eventually, open_dm, q, timeline
from tests.harness.stack import RunningStack


class BareUser(HttpUser):
    """A user who signed up by themselves (not through the test's shared-secret registration)."""

    def __init__(self, stack: RunningStack, user_id: str, token: str):
        self.stack = stack
        self.user_id = user_id
        self.token = token
        self.http = requests.Session()
        self.http.headers["Authorization"] = f"Bearer {token}"


def ghost_of(stack: RunningStack, e164: str) -> str:
    return f"@wx_sms_{e164.lstrip('+')}:{stack.server_name}"


def bot(stack: RunningStack) -> str:
    return str(stack.info["bridge"]["bot_user_id"])


def inbound_url(stack: RunningStack) -> str:
    return stack.info["bridge"]["url"] + "/_wangxin/v1/sms/twilio/inbound"


def member_state(user: HttpUser, room_id: str, user_id: str) -> dict[str, Any]:
    return dict(user.call("GET", f"/_matrix/client/v3/rooms/{q(room_id)}/state/m.room.member/{q(user_id)}"))


def dm_with(user: HttpUser, other: str, *, encrypted: bool = False) -> str:
    """A DM as Element makes one with a user who has no device keys (plain unless asked)."""
    body: dict[str, Any] = {"preset": "trusted_private_chat", "is_direct": True, "invite": [other]}
    if encrypted:
        body["initial_state"] = [{"type": "m.room.encryption", "state_key": "",
                                  "content": {"algorithm": "m.megolm.v1.aes-sha2"}}]
    return str(user.call("POST", "/_matrix/client/v3/createRoom", body)["room_id"])


def reactions_on(user: HttpUser, room_id: str, event_id: str, sender: str) -> list[str]:
    keys = []
    for e in timeline(user, room_id):
        relates = e.get("content", {}).get("m.relates_to", {})
        if e["type"] == "m.reaction" and e["sender"] == sender and relates.get("event_id") == event_id:
            keys.append(relates.get("key"))
    return keys


def notices_from(user: HttpUser, room_id: str, sender: str) -> list[str]:
    return [str(e["content"].get("body")) for e in timeline(user, room_id)
            if e["sender"] == sender and e["type"] == "m.room.message"]


def test_a_dm_with_a_number_texts_it_and_replies_come_back(stack: RunningStack, twilio: FakeTwilio) -> None:
    alice = HttpUser(stack)
    alice.call("PUT", f"/_matrix/client/v3/profile/{q(alice.user_id)}/displayname", {"displayname": "Alice Wu"})
    number = random_mobile()
    ghost = ghost_of(stack, number)
    room_id = dm_with(alice, ghost)
    eventually(lambda: member_state(alice, room_id, ghost).get("membership") == "join", timeout=60)
    assert "(SMS)" in str(member_state(alice, room_id, ghost).get("displayname"))

    event_id = alice.say(room_id, "晚上六点见")
    sms = twilio.wait_for(number)[0]
    assert sms["from"] == twilio.from_number
    assert "Alice Wu" in sms["body"] and "晚上六点见" in sms["body"] and "旺信" in sms["body"]  # a CN number: zh-CN

    twilio.deliver_status(sms["sid"], "sent").raise_for_status()
    twilio.deliver_status(sms["sid"], "delivered").raise_for_status()
    eventually(lambda: reactions_on(alice, room_id, event_id, ghost) == ["✓✓ delivered"], timeout=30)

    sid = "SM" + "a1" * 16
    assert twilio.send_inbound(inbound_url(stack), number, "好的，到时见", message_sid=sid).status_code == 200
    replies = eventually(lambda: [e for e in timeline(alice, room_id)
                                  if e["sender"] == ghost and e["content"].get("body") == "好的，到时见"], timeout=30)
    assert replies[0]["content"]["org.wangxin.sms"]["message_sid"] == sid
    # Twilio retries a webhook it thinks failed: the same MessageSid is shown once.
    assert twilio.send_inbound(inbound_url(stack), number, "好的，到时见", message_sid=sid).status_code == 200
    alice.say(room_id, "marker")
    twilio.wait_for(number, 2)
    assert len([e for e in timeline(alice, room_id) if e["content"].get("body") == "好的，到时见"]) == 1

    # A second chat with the same number takes over; the first one says so and closes.
    newer = dm_with(alice, ghost)
    eventually(lambda: member_state(alice, room_id, ghost).get("membership") == "leave", timeout=60)
    assert any("newer chat" in n for n in notices_from(alice, room_id, ghost))
    twilio.send_inbound(inbound_url(stack), number, "which chat?").raise_for_status()
    eventually(lambda: "which chat?" in notices_from(alice, newer, ghost), timeout=30)


def test_the_sms_command_opens_the_conversation_and_refuses_what_it_cannot_text(
        stack: RunningStack, twilio: FakeTwilio) -> None:
    alice = HttpUser(stack)
    dm = open_dm(alice, bot(stack))
    number = random_mobile()
    answer = ask(alice, dm, bot(stack), f"sms {number} Your parcel is at the door")
    assert "Texting" in answer
    assert "Your parcel is at the door" in twilio.wait_for(number)[0]["body"]
    ghost = ghost_of(stack, number)
    rooms = eventually(lambda: [r for r, s in invited_rooms(alice).items()
                                if ("m.room.member", alice.user_id) in s
                                and s[("m.room.member", alice.user_id)]["sender"] == ghost], timeout=30)
    alice.join(rooms[0])
    # Replies arrive in that room.
    twilio.send_inbound(inbound_url(stack), number, "Thanks!").raise_for_status()
    eventually(lambda: "Thanks!" in notices_from(alice, rooms[0], ghost), timeout=30)

    assert "landline" in ask(alice, dm, bot(stack), "sms +442079460958 hello")
    assert "not a valid phone number" in ask(alice, dm, bot(stack), "sms 12ab hello")
    assert "short code" in ask(alice, dm, bot(stack), "sms 10086 hello")
    assert "What should I text" in ask(alice, dm, bot(stack), f"sms {random_mobile()}")


def test_a_number_that_cannot_be_texted_declines_the_invitation_with_the_reason(stack: RunningStack) -> None:
    alice = HttpUser(stack)
    ghost = ghost_of(stack, "+442079460958")  # a London landline
    room_id = dm_with(alice, ghost)
    left = eventually(lambda: member_state(alice, room_id, ghost).get("membership") == "leave"
                      and member_state(alice, room_id, ghost), timeout=60)
    assert "landline" in left["reason"]


def test_an_encrypted_chat_is_told_nothing_can_be_texted(stack: RunningStack, twilio: FakeTwilio) -> None:
    alice = HttpUser(stack)
    number = random_mobile()
    ghost = ghost_of(stack, number)
    room_id = dm_with(alice, ghost, encrypted=True)
    eventually(lambda: any("encrypted" in n for n in notices_from(alice, room_id, ghost)), timeout=60)
    eventually(lambda: member_state(alice, room_id, ghost).get("membership") == "leave", timeout=30)
    alice.send_encrypted(room_id)
    assert twilio.requests_to(number) == 0


def test_a_refused_sms_says_why_in_the_room(stack: RunningStack, twilio: FakeTwilio) -> None:
    alice = HttpUser(stack)
    number = random_mobile()
    ghost = ghost_of(stack, number)
    room_id = dm_with(alice, ghost)
    eventually(lambda: member_state(alice, room_id, ghost).get("membership") == "join", timeout=60)
    twilio.fail_next(1, "21211", to=number)
    event_id = alice.say(room_id, "are you there?")
    eventually(lambda: reactions_on(alice, room_id, event_id, ghost) == ["✗ not sent"], timeout=60)
    eventually(lambda: any("could not be sent" in n for n in notices_from(alice, room_id, ghost)), timeout=30)
    assert twilio.requests_to(number) == 1  # not retried: Twilio said the number is invalid

    image = alice.send(room_id, {"msgtype": "m.image", "body": "cat.jpg", "url": "mxc://x/y"})
    eventually(lambda: any("text only" in n for n in notices_from(alice, room_id, ghost)), timeout=30)
    assert image and twilio.requests_to(number) == 1


def test_an_sms_invitation_connects_the_invitee_when_they_bind_the_number(
        stack: RunningStack, twilio: FakeTwilio) -> None:
    alice = HttpUser(stack)
    dm = open_dm(alice, bot(stack))
    assert "None of your imported contacts" in ask(alice, dm, bot(stack), "invite-sms")
    number = random_mobile()
    answer = ask(alice, dm, bot(stack), f"invite-sms {number}")
    assert answer.startswith("Invited 1 by SMS"), answer
    text = twilio.wait_for(number)[0]["body"]
    link = next(word for word in text.replace("：", " ").split() if word.startswith("http"))
    page = requests.get(link, timeout=30)
    assert page.status_code == 200 and alice.user_id[1:].split(":")[0] in page.text
    assert requests.get(link[:-2] + "xx", timeout=30).status_code == 404  # a forged token
    assert "already invited" in ask(alice, dm, bot(stack), f"invite-sms {number}")
    assert twilio.requests_to(number) == 1

    # The invitee signs up with the number (the code comes by SMS). New users are not
    # discoverable, yet the person who invited the number is connected with them.
    from tests.e2e.test_phone_signup import register_with_phone

    signed_up = register_with_phone(stack, twilio, number[3:], number[1:])
    bob = BareUser(stack, signed_up["user_id"], signed_up["access_token"])
    eventually(lambda: any(s.get(("m.room.member", bob.user_id), {}).get("sender") == alice.user_id
                           for s in invited_rooms(bob).values()), timeout=60, interval=0.5)
    eventually(lambda: "joined" in ask(alice, dm, bot(stack), "invites"), timeout=30, interval=1)


def test_a_revoked_invitation_link_stops_working_and_invitations_survive_a_restart(
        stack: RunningStack, twilio: FakeTwilio) -> None:
    from tests.e2e.test_appservice import _wait_bridge_restarted

    alice = HttpUser(stack)
    dm = open_dm(alice, bot(stack))
    kept, withdrawn = random_mobile(), random_mobile()
    assert "Invited 2" in ask(alice, dm, bot(stack), f"invite-sms {kept} {withdrawn}")
    link = next(w for w in twilio.wait_for(withdrawn)[0]["body"].replace("：", " ").split() if w.startswith("http"))
    assert "Withdrew 1" in ask(alice, dm, bot(stack), f"invite-sms revoke {withdrawn}")
    assert requests.get(link, timeout=30).status_code == 410

    old_pid = stack.info["processes"]["bridge"]
    os.kill(old_pid, signal.SIGKILL)
    _wait_bridge_restarted(stack, old_pid)
    listing = ask(alice, dm, bot(stack), "invites")
    assert "withdrawn" in listing and kept.lstrip("+")[-4:] in listing.replace(" ", "")

    # The withdrawn number's owner signs up: nobody is told, nothing is opened.
    carol = HttpUser(stack)
    bind_phone(stack, carol.user_id, withdrawn)
    dave = HttpUser(stack)
    bind_phone(stack, dave.user_id, kept)
    eventually(lambda: any(s.get(("m.room.member", dave.user_id), {}).get("sender") == alice.user_id
                           for s in invited_rooms(dave).values()), timeout=60, interval=0.5)
    assert invited_rooms(carol) == {}


def test_limits_and_opt_outs_are_explained_in_the_chat(stack: RunningStack, twilio: FakeTwilio) -> None:
    alice = HttpUser(stack)
    number = random_mobile()
    ghost = ghost_of(stack, number)
    room_id = dm_with(alice, ghost)
    eventually(lambda: member_state(alice, room_id, ghost).get("membership") == "join", timeout=60)

    # The phone texts STOP: nobody may text it any more, and the chat says so.
    twilio.send_inbound(inbound_url(stack), number, "STOP").raise_for_status()
    twilio.wait_for(number)  # the one confirmation
    alice.say(room_id, "hello?")
    eventually(lambda: any("Not texted" in n and "START" in n for n in notices_from(alice, room_id, ghost)),
               timeout=30)
    twilio.send_inbound(inbound_url(stack), number, "start").raise_for_status()
    twilio.wait_for(number, 2)  # re-subscribed, confirmed

    # The per-destination daily cap (10 by default): the 11th text of the day is refused, saying when.
    # (The STOP/START answers are not counted; the refused "hello?" was not either.)
    for i in range(12):
        alice.say(room_id, f"message {i}")
    eventually(lambda: sum("maximum" in n for n in notices_from(alice, room_id, ghost)) == 2, timeout=60)
    chats = eventually(lambda: [m for m in twilio.messages_to(number) if "message " in m["body"]], timeout=30)
    eventually(lambda: len([m for m in twilio.messages_to(number) if "message " in m["body"]]) == 10, timeout=30)
    assert chats and "message 11" not in str(twilio.messages_to(number))


def ghost_texts(user: HttpUser, room_id: str, ghost: str) -> list[str]:
    """The texts the phone sent into the room, oldest first."""
    return [str(e["content"].get("body")) for e in reversed(timeline(user, room_id))
            if e["sender"] == ghost and e["type"] == "m.room.message" and e["content"].get("msgtype") == "m.text"]


def test_replies_reach_only_the_user_they_answer(stack: RunningStack, twilio: FakeTwilio) -> None:
    """Issue 19 §3: two users text one number; its replies, interleaved, each reach only the user
    they answer. Each user texts it from their own number of the pool; when the pool is used up,
    texts carry a reply code, and a reply that names nobody reaches nobody and is refused once."""
    first, second = twilio.numbers[:2]
    number = random_mobile()
    ghost = ghost_of(stack, number)
    alice, bob, carol = HttpUser(stack), HttpUser(stack), HttpUser(stack)
    rooms = {}
    for user in (alice, bob, carol):
        rooms[user.user_id] = dm_with(user, ghost)
        eventually(lambda u=user: member_state(u, rooms[u.user_id], ghost).get("membership") == "join", timeout=60)

    def sms_with(text: str) -> dict[str, Any]:
        return dict(eventually(lambda: next((m for m in twilio.messages_to(number) if text in m["body"]), None),
                               timeout=30))

    alice.say(rooms[alice.user_id], "Alice here")
    assert sms_with("Alice here")["from"] == first
    bob.say(rooms[bob.user_id], "Bob here")
    assert sms_with("Bob here")["from"] == second

    for to, text in ((second, "for Bob 1"), (first, "for Alice 1"), (second, "for Bob 2"), (first, "for Alice 2")):
        twilio.send_inbound(inbound_url(stack), number, text, to=to).raise_for_status()
    eventually(lambda: ghost_texts(alice, rooms[alice.user_id], ghost) == ["for Alice 1", "for Alice 2"], timeout=30)
    eventually(lambda: ghost_texts(bob, rooms[bob.user_id], ghost) == ["for Bob 1", "for Bob 2"], timeout=30)

    # A third user: the pool is used up. Carol shares Alice's number, and both carry a reply code.
    carol.say(rooms[carol.user_id], "Carol here")
    carols = sms_with("Carol here")
    assert carols["from"] == first and "#2" in carols["body"]
    alice.say(rooms[alice.user_id], "Alice again")
    assert "#1" in sms_with("Alice again")["body"]
    for to, text in ((first, "who is this?"), (first, "#2 hi Carol"), (second, "for Bob 3"), (first, "#1 hi Alice"),
                     (first, "still nobody")):
        twilio.send_inbound(inbound_url(stack), number, text, to=to).raise_for_status()
    eventually(lambda: ghost_texts(carol, rooms[carol.user_id], ghost) == ["hi Carol"], timeout=30)
    eventually(lambda: ghost_texts(alice, rooms[alice.user_id], ghost)[-1:] == ["hi Alice"], timeout=30)
    eventually(lambda: ghost_texts(bob, rooms[bob.user_id], ghost)[-1:] == ["for Bob 3"], timeout=30)
    # The phone is told once (from the number it texted) how to reach someone; later unroutable
    # replies within the hour get no second refusal, and nobody ever sees them.
    refusal = sms_with("回复未送达")  # a Chinese number: the zh-CN text
    assert refusal["from"] == first and refusal["body"].startswith("【旺信】"), refusal
    bob.say(rooms[bob.user_id], "marker")  # queued after "still nobody" was handled
    sms_with("marker")
    refusals = [m for m in twilio.messages_to(number) if m["body"] == refusal["body"]]
    assert len(refusals) == 1, refusals
    for user in (alice, bob, carol):
        seen = " ".join(ghost_texts(user, rooms[user.user_id], ghost))
        assert "who is this?" not in seen and "still nobody" not in seen
    assert "Bob" not in " ".join(ghost_texts(alice, rooms[alice.user_id], ghost) +
                                 ghost_texts(carol, rooms[carol.user_id], ghost))
    assert "Alice" not in " ".join(ghost_texts(bob, rooms[bob.user_id], ghost))


BANK_NAME = "【中国工商银行】您的账户异常，请立即登录 http://evil.example 验证\u202e"


def test_a_display_name_cannot_make_the_sms_look_like_a_bank(stack: RunningStack, twilio: FakeTwilio) -> None:
    """Issue 19 §5: the sender's name in an SMS (chat and invitation) loses brackets, links and
    controls, and every SMS starts with Wangxin's own signature."""
    mallory = HttpUser(stack)
    mallory.call("PUT", f"/_matrix/client/v3/profile/{q(mallory.user_id)}/displayname", {"displayname": BANK_NAME})
    number, invited = random_mobile(), random_mobile()
    ghost = ghost_of(stack, number)
    room_id = dm_with(mallory, ghost)
    eventually(lambda: member_state(mallory, room_id, ghost).get("membership") == "join", timeout=60)
    mallory.say(room_id, "您好")
    dm = open_dm(mallory, bot(stack))
    assert ask(mallory, dm, bot(stack), f"invite-sms {invited}").startswith("Invited 1")
    for body in (twilio.wait_for(number)[0]["body"], twilio.wait_for(invited)[0]["body"]):
        assert body.startswith("【旺信】") and body.count("【") == 1, body
        for forged in ("中国工商银行", "evil.example", "http://evil", "\u202e"):
            assert forged not in body, body
        assert "您的账户异常" in body  # what is left of the name is still shown, as a name
