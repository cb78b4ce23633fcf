"""Moving contacts and groups over (通讯录转移): a user sends an export to the bridge bot, previews
it, confirms, and gets rooms, invitations and placeholders; people who arrive later replace
their placeholders. Real Synapse, real bridge; Bob's side is a matrix-nio client."""

from __future__ import annotations

import json
import os
import random
import secrets
import signal
from typing import Any

import pytest
import requests

from tests.harness.http import HttpUser, ask, eventually, open_dm, q, timeline
from tests.harness.matrix import client_for
from tests.harness.stack import RunningStack

# Own samples, written to reproduce real exports' quirks: they are in every checkout.
SAMPLES = os.path.join(os.path.dirname(__file__), "..", "unit", "importers", "samples")
PLACEHOLDER = " (not on Wangxin yet)"
SUMMARY = "org.wangxin.import.summary"


# -- helpers ---------------------------------------------------------------------------------


def bot(stack: RunningStack) -> str:
    return str(stack.info["bridge"]["bot_user_id"])


def random_mobile() -> str:
    """A fresh mainland mobile number (E.164), so tests sharing a stack never collide."""
    return "+86139" + "".join(random.choice("0123456789") for _ in range(8))


def send_file(user: HttpUser, room_id: str, data: bytes, filename: str) -> str:
    r = user.http.post(f"{user.stack.url}/_matrix/media/v3/upload", params={"filename": filename}, data=data,
                       headers={"Content-Type": "application/octet-stream"}, timeout=60)
    assert r.status_code == 200, r.text
    return user.send(room_id, {"msgtype": "m.file", "body": filename, "filename": filename,
                               "url": r.json()["content_uri"], "info": {"size": len(data)}})


def upload_and_preview(user: HttpUser, room_id: str, data: bytes, filename: str, stack: RunningStack) -> str:
    event_id = send_file(user, room_id, data, filename)
    eventually(lambda: any(_replies_to(e, event_id, bot(stack)) for e in timeline(user, room_id)), timeout=30)
    return ask(user, room_id, bot(stack), "import", timeout=60)


def _replies_to(event: dict[str, Any], event_id: str, sender: str) -> bool:
    relates = (event.get("content") or {}).get("m.relates_to") or {}
    return event.get("sender") == sender and (relates.get("m.in_reply_to") or {}).get("event_id") == event_id


def summaries(user: HttpUser, room_id: str, stack: RunningStack) -> list[dict[str, int]]:
    """Final summaries (not the edits of the status message), oldest first."""
    found = [e["content"][SUMMARY] for e in timeline(user, room_id)
             if e["sender"] == bot(stack) and SUMMARY in e.get("content", {})
             and (e["content"].get("m.relates_to") or {}).get("rel_type") != "m.replace"]
    return list(reversed(found))


def confirm(user: HttpUser, room_id: str, stack: RunningStack, timeout: float = 120) -> dict[str, int]:
    before = len(summaries(user, room_id, stack))
    user.say(room_id, "import confirm")
    return eventually(lambda: summaries(user, room_id, stack)[before:] and summaries(user, room_id, stack)[-1],
                      timeout=timeout, interval=0.5)


def admin(stack: RunningStack, method: str, path: str, body: Any = None) -> Any:
    r = requests.request(method, stack.info["main_process_url"] + path, json=body, headers=stack.admin_headers(),
                         timeout=60)
    assert r.status_code in (200, 201), f"{method} {path} -> {r.status_code} {r.text}"
    return r.json()


def bind_phone(stack: RunningStack, user_id: str, e164: str) -> None:
    # The admin user API stores addresses verbatim: digits without '+' (docs/synapse.md, "Phone numbers").
    admin(stack, "PUT", f"/_synapse/admin/v2/users/{q(user_id)}",
          {"threepids": [{"medium": "msisdn", "address": e164.lstrip("+")}]})


def set_discoverable(user: HttpUser, on: bool) -> None:
    user.call("PUT", "/_synapse/client/wangxin/v1/import/discoverable", {"discoverable": on})


def invited_rooms(user: HttpUser) -> dict[str, dict[str, Any]]:
    """room id -> stripped invite state by (type, state_key), from a fresh /sync."""
    # A filter of its own: Synapse answers an identical /sync from a cache for two minutes.
    unique = json.dumps({"presence": {"not_types": [f"x.{secrets.token_hex(4)}"]}, "room": {"timeline": {"limit": 1}}})
    rooms = user.call("GET", "/_matrix/client/v3/sync", timeout="0", filter=unique).get("rooms", {}).get("invite", {})
    return {rid: {(e["type"], e.get("state_key")): e for e in r["invite_state"]["events"]} for rid, r in rooms.items()}


def room_state(stack: RunningStack, room_id: str) -> list[dict[str, Any]]:
    return list(admin(stack, "GET", f"/_synapse/admin/v1/rooms/{q(room_id)}/state")["state"])


def members(stack: RunningStack, room_id: str) -> dict[str, dict[str, Any]]:
    return {e["state_key"]: e["content"] for e in room_state(stack, room_id) if e["type"] == "m.room.member"}


def rooms_named(user: HttpUser) -> dict[str, list[str]]:
    names: dict[str, list[str]] = {}
    for room_id, state in invited_rooms(user).items():
        name = state.get(("m.room.name", ""), {}).get("content", {}).get("name")
        if name:
            names.setdefault(name, []).append(room_id)
    return names


def wechat_export(me: str, contacts: list[tuple[str, str, str | None]],
                  groups: list[tuple[str, str, list[str]]]) -> bytes:
    """A PyWxDump-style WeChat contact dump: contacts (wxid, name, phone) and groups (id, name, wxids)."""
    return json.dumps({
        "self_wxid": me,
        "contacts": [{"wxid": w, "nickname": n, **({"phone": p} if p else {})} for w, n, p in contacts],
        "chatrooms": [{"chatroom_id": g, "nickname": n, "member_list": [{"wxid": m} for m in ms]}
                      for g, n, ms in groups],
    }, ensure_ascii=False).encode()


def wxid() -> str:
    return "wxid_" + secrets.token_hex(6)


# -- tests -----------------------------------------------------------------------------------


async def test_import_builds_rooms_invitations_and_placeholders_and_is_idempotent(stack: RunningStack) -> None:
    alice, bob, carol, dave = (HttpUser(stack) for _ in range(4))
    phones = {name: random_mobile() for name in ("bob", "carol", "dave", "erin")}
    for user, name in ((bob, "bob"), (carol, "carol"), (dave, "dave")):
        bind_phone(stack, user.user_id, phones[name])
    set_discoverable(bob, True)
    set_discoverable(carol, True)  # dave stays undiscoverable: the default

    me, w_bob, w_carol, w_dave, w_erin, w_frank = (wxid() for _ in range(6))
    export = wechat_export(
        me,
        [(w_bob, "鲍勃", phones["bob"]), (w_carol, "Carol", phones["carol"]), (w_dave, "Dave", phones["dave"]),
         (w_erin, "Erin", phones["erin"]), (w_frank, "Frank", None)],
        [(f"{secrets.token_hex(4)}@chatroom", "家庭群", [me, w_bob, w_carol, w_erin, w_frank]),
         (f"{secrets.token_hex(4)}@chatroom", "周末羽毛球", [w_bob, w_dave])],
    )

    dm = open_dm(alice, bot(stack))
    preview = upload_and_preview(alice, dm, export, "contacts.json", stack)
    assert "WeChat" in preview and "5 contacts" in preview and "2 groups" in preview, preview
    assert "2 people are already on Wangxin" in preview, preview
    assert rooms_named(alice) == {}

    summary = confirm(alice, dm, stack)
    assert summary == {"contacts": 5, "matched": 2, "groups": 2, "rooms_created": 2, "invited": 5,
                       "placeholders": 3, "invitable_by_sms": 2, "skipped": 1, "errors": 0}

    # The groups are rooms named as the groups, the importer invited with power level 100.
    named = rooms_named(alice)
    assert sorted(named) == ["周末羽毛球", "家庭群"] and all(len(v) == 1 for v in named.values())
    family, badminton = named["家庭群"][0], named["周末羽毛球"][0]
    levels = next(e for e in room_state(stack, family) if e["type"] == "m.room.power_levels")["content"]
    assert levels["users"][alice.user_id] == 100

    # Members who are here are invited; the others are placeholders, joined, named as in the export.
    fam = members(stack, family)
    assert fam[alice.user_id]["membership"] == "invite"
    assert fam[bob.user_id]["membership"] == "invite" and fam[carol.user_id]["membership"] == "invite"
    ghosts = {c["displayname"]: uid for uid, c in fam.items() if c["membership"] == "join" and uid != bot(stack)}
    assert set(ghosts) == {"Erin" + PLACEHOLDER, "Frank" + PLACEHOLDER}
    assert all(uid.startswith("@wx_") for uid in ghosts.values())
    bad = members(stack, badminton)
    assert bad[bob.user_id]["membership"] == "invite"
    # Dave is not discoverable: nothing reveals his account; he is a placeholder like anyone absent.
    assert dave.user_id not in bad and dave.user_id not in fam
    assert "Dave" + PLACEHOLDER in {c.get("displayname") for c in bad.values()}
    assert invited_rooms(dave) == {}

    # Bob (a contact, like Carol) got a direct-chat invitation from Alice, with where they know each other from.
    bob_client = await client_for(stack.url, bob.info)
    try:
        sync = await bob_client.sync(timeout=0)
        invites = sync.rooms.invite  # type: ignore[union-attr]
        dms = [rid for rid, r in invites.items()
               if any(getattr(e, "sender", None) == alice.user_id and getattr(e, "state_key", None) == bob.user_id
                      for e in r.invite_state)]
        assert len(dms) == 1
        invite = next(e for e in invites[dms[0]].invite_state if getattr(e, "state_key", None) == bob.user_id)
        assert invite.content.get("is_direct") is True and "WeChat" in invite.content.get("reason", "")
    finally:
        await bob_client.close()

    # Importing the same file again makes nothing new.
    upload_and_preview(alice, dm, export, "contacts.json", stack)
    again = confirm(alice, dm, stack)
    assert again["rooms_created"] == 0 and again["invited"] == 0 and again["placeholders"] == 0
    assert again["errors"] == 0
    assert rooms_named(alice) == named
    assert len(invited_rooms(bob)) == 3  # one DM, two groups
    assert members(stack, family) == fam

    # Erin arrives: she binds her number and lets imports find her. Her placeholder leaves the
    # family group, she is invited in its place and gets Alice's DM invitation.
    erin = HttpUser(stack)
    set_discoverable(erin, True)
    bind_phone(stack, erin.user_id, phones["erin"])
    erin_ghost = ghosts["Erin" + PLACEHOLDER]

    def replaced() -> bool:
        now = members(stack, family)
        return now.get(erin.user_id, {}).get("membership") == "invite" and now[erin_ghost]["membership"] == "leave"

    eventually(replaced, timeout=60, interval=0.5)
    assert family in invited_rooms(erin)

    def alice_dm_invite() -> bool:  # sent right after the group invitations
        return any(s.get(("m.room.member", erin.user_id), {}).get("sender") == alice.user_id
                   and s[("m.room.member", erin.user_id)]["content"].get("is_direct")
                   for s in invited_rooms(erin).values())

    eventually(alice_dm_invite, timeout=30, interval=0.5)
    assert "Frank" not in json.dumps(members(stack, family).get(erin.user_id))

    # Status and forget.
    assert "finished" in ask(alice, dm, bot(stack), "import status")
    assert "Forgotten" in ask(alice, dm, bot(stack), "forget")
    assert "not imported anything" in ask(alice, dm, bot(stack), "import status")


def test_discoverable_command_and_lookup_is_only_for_the_bridge(stack: RunningStack) -> None:
    user = HttpUser(stack)
    dm = open_dm(user, bot(stack))
    assert "off" in ask(user, dm, bot(stack), "discoverable")
    assert "Discoverable: on" in ask(user, dm, bot(stack), "discoverable on")
    assert user.call("GET", "/_synapse/client/wangxin/v1/import/discoverable") == {"discoverable": True}
    assert "Discoverable: off" in ask(user, dm, bot(stack), "discoverable off")
    # A client cannot use the lookup to probe numbers; only the bridge (service secret) may.
    user.call("POST", "/_synapse/client/wangxin/v1/import/lookup", {"msisdns": ["8613912345678"]}, expect=403)
    r = requests.post(stack.info["bridge"]["url"] + "/_wangxin/v1/arrivals", json={"arrivals": []},
                      headers={"Authorization": "Bearer forged"}, timeout=10)
    assert r.status_code == 403


@pytest.mark.parametrize("path", [
    f"{SAMPLES}/vcard30_macos_latin1.vcf",
    f"{SAMPLES}/outlook_csv_from_google.csv",
    f"{SAMPLES}/telegram_private_group.json",
    f"{SAMPLES}/whatsapp_android_dotdate_crlf.txt",
    f"{SAMPLES}/wechat_pywxdump_lists.json",
    f"{SAMPLES}/telegram_full_export.json",
], ids=lambda p: os.path.basename(p))
def test_each_sample_format_imports(stack: RunningStack, path: str) -> None:
    from bridges.contact_import.plan import build_plan
    from bridges.importers import parse_export

    data = open(path, "rb").read()
    filename = os.path.basename(path)
    plan = build_plan(parse_export(data, filename))
    user = HttpUser(stack)
    dm = open_dm(user, bot(stack))
    preview = upload_and_preview(user, dm, data, filename, stack)
    assert plan.format_label in preview
    summary = confirm(user, dm, stack)
    assert summary["contacts"] == len(plan.contacts) and summary["groups"] == len(plan.groups)
    assert summary["rooms_created"] == len(plan.groups) and summary["errors"] == 0
    distinct = {p.key for g in plan.groups for p in g.members}
    assert summary["placeholders"] + summary["matched"] >= len(distinct) >= summary["placeholders"]
    named = rooms_named(user)
    assert sorted(n for n, ids in named.items() for _ in ids) == sorted(g.name for g in plan.groups)
    for group in plan.groups:
        room_id = named[group.name][0]
        placeholders = [c for c in members(stack, room_id).values()
                        if c["membership"] == "join" and c.get("displayname", "").endswith(PLACEHOLDER)]
        assert 0 < len(placeholders) <= len(group.members)


@pytest.mark.parametrize("data, filename, words", [
    (b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 4, "photo.png", "not an export"),
    (b'{"about": "Here is the data you requested", "chats": {"list": [{"name": "x", "type": "priv',
     "result.json", "cut off"),
    (open(f"{SAMPLES}/telegram_messages.html", "rb").read(), "messages.html", "Machine-readable JSON"),
    (open(f"{SAMPLES}/facebook_messenger_message_1.json", "rb").read(), "message_1.json", "not a format"),
    ("BEGIN:VCARD\r\nVERSION:3.0\r\nFN:张三\r\n".encode("utf-16"), "contacts.vcf", ""),
], ids=["binary", "truncated", "telegram-html", "unsupported", "utf16-truncated-vcard"])
def test_bad_files_get_a_clear_message_and_nothing_is_imported(stack: RunningStack, data: bytes, filename: str,
                                                              words: str) -> None:
    user = HttpUser(stack)
    dm = open_dm(user, bot(stack))
    answer = upload_and_preview(user, dm, data, filename, stack)
    assert answer.startswith(f"I can't import {filename}:") and answer.endswith("Nothing was imported."), answer
    assert words in answer
    assert "nothing to confirm" in ask(user, dm, bot(stack), "import confirm")
    assert invited_rooms(user) == {}


def test_import_killed_midway_finishes_after_restart_without_duplicates(stack: RunningStack) -> None:
    from tests.e2e.test_appservice import _wait_bridge_restarted

    me = wxid()
    # Big enough that the kill below lands with most groups still to make (it comes after the
    # second), small enough not to dominate the suite on the worker topology.
    people = [(wxid(), f"人{i}", random_mobile() if i % 2 else None) for i in range(60)]
    groups = [(f"{secrets.token_hex(4)}@chatroom", f"群{i:02d}", [me] + [people[(i * 7 + k) % 60][0]
                                                                       for k in range(12)])
              for i in range(16)]
    export = wechat_export(me, people, groups)
    alice = HttpUser(stack)
    dm = open_dm(alice, bot(stack))
    upload_and_preview(alice, dm, export, "big.json", stack)
    alice.say(dm, "import confirm")
    eventually(lambda: len(invited_rooms(alice)) >= 2, timeout=120, interval=0.2)
    old_pid = stack.info["processes"]["bridge"]
    os.kill(old_pid, signal.SIGKILL)
    assert len(invited_rooms(alice)) < len(groups)  # killed midway indeed
    _wait_bridge_restarted(stack, old_pid)

    summary = eventually(lambda: summaries(alice, dm, stack) and summaries(alice, dm, stack)[-1], timeout=300,
                         interval=1)
    assert summary["errors"] == 0 and summary["groups"] == 16
    named = rooms_named(alice)
    assert sorted(named) == sorted(g[1] for g in groups)
    assert all(len(ids) == 1 for ids in named.values()), {n: len(i) for n, i in named.items() if len(i) > 1}
    for name, member_ids in ((g[1], g[2][1:]) for g in groups):
        joined = [c for uid, c in members(stack, named[name][0]).items()
                  if c["membership"] == "join" and uid != bot(stack)]
        assert len(joined) == len(member_ids)  # one placeholder per member, none twice
    # Placeholders are per person: 60 people, all absent from Wangxin, at most one ghost each.
    ghosts = {uid for ids in named.values() for uid in members(stack, ids[0]) if uid.startswith("@wx_")}
    assert len(ghosts) <= 60
    assert "finished" in ask(alice, dm, bot(stack), "import status")


def test_operator_cli_imports_a_file_for_a_user(stack: RunningStack, tmp_path: Any) -> None:
    import subprocess
    import sys

    user = HttpUser(stack)
    me = wxid()
    people = [(wxid(), f"客户{i}", random_mobile()) for i in range(6)]
    path = tmp_path / "wechat.json"
    path.write_bytes(wechat_export(me, people, [(f"{secrets.token_hex(4)}@chatroom", "供应商群",
                                                 [me] + [p[0] for p in people])]))
    argv = [sys.executable, "-m", "bridges", "import", "-c", stack.info["bridge"]["config"], "--user", user.user_id]
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

    dry = subprocess.run([*argv, "--dry-run", str(path)], capture_output=True, text=True, timeout=120, cwd=root)
    assert dry.returncode == 0, dry.stderr
    assert "6 contacts" in dry.stdout and "1 groups" in dry.stdout
    assert invited_rooms(user) == {}

    run = subprocess.run([*argv, str(path)], capture_output=True, text=True, timeout=300, cwd=root)
    assert run.returncode == 0, run.stderr
    result = json.loads(run.stdout.strip().splitlines()[-1])
    assert result["state"] == "done"
    assert result["summary"]["rooms_created"] == 1 and result["summary"]["placeholders"] == 6
    assert result["summary"]["invitable_by_sms"] == 6
    # The progress bar, polled twice a second: its last line; which phases it caught in between
    # depends on the machine's speed.
    assert "done " in run.stderr and "[" in run.stderr
    assert list(rooms_named(user)) == ["供应商群"]


# -- limits ------------------------------------------------------------------------------------


def _bridge_config(stack: RunningStack) -> Any:
    from bridges.config import load_config

    return load_config(stack.info["bridge"]["config"])


def _wait_reply(user: HttpUser, room_id: str, event_id: str, stack: RunningStack) -> None:
    eventually(lambda: any(_replies_to(e, event_id, bot(stack)) for e in timeline(user, room_id)), timeout=30)


def _refused(answer: str, filename: str) -> bool:
    return answer.startswith(f"I can't import {filename}:") and answer.endswith("Nothing was imported.")


def test_a_file_over_max_bytes_is_refused_whether_or_not_its_size_is_declared(stack: RunningStack) -> None:
    limit = _bridge_config(stack).imports.max_bytes
    card = b"BEGIN:VCARD\r\nVERSION:3.0\r\nFN:A\r\nTEL:+8613912345678\r\nEND:VCARD\r\n"
    data = card * (limit // len(card) + 1)
    assert len(data) > limit
    user = HttpUser(stack)
    dm = open_dm(user, bot(stack))
    r = user.http.post(f"{stack.url}/_matrix/media/v3/upload", params={"filename": "all.vcf"}, data=data,
                       headers={"Content-Type": "text/vcard"}, timeout=120)
    assert r.status_code == 200, r.text
    mxc = r.json()["content_uri"]
    for info in ({"size": len(data)}, {}):  # declared: refused unread; undeclared: refused while downloading
        event_id = user.send(dm, {"msgtype": "m.file", "body": "all.vcf", "filename": "all.vcf", "url": mxc,
                                  "info": info})
        _wait_reply(user, dm, event_id, stack)
        answer = ask(user, dm, bot(stack), "import", timeout=120)
        assert _refused(answer, "all.vcf"), answer
        assert f"imports.max_bytes = {limit} bytes" in answer, answer
        assert "nothing to confirm" in ask(user, dm, bot(stack), "import confirm")
    assert invited_rooms(user) == {}


def test_a_file_over_max_rows_is_refused_naming_the_limit_and_the_line(stack: RunningStack) -> None:
    rows = _bridge_config(stack).imports.max_rows
    # A WhatsApp group chat with one message more than the limit allows (≈ 30 bytes a line).
    data = "".join(f"12/01/2023, 10:00 - P{n % 40}: hi\n" for n in range(rows + 1)).encode()
    user = HttpUser(stack)
    dm = open_dm(user, bot(stack))
    filename = "WhatsApp Chat with Club.txt"
    answer = upload_and_preview(user, dm, data, filename, stack)
    assert _refused(answer, filename), answer
    assert f"max_rows={rows}" in answer and f"line {rows + 1}" in answer, answer
    assert "nothing to confirm" in ask(user, dm, bot(stack), "import confirm")
    assert invited_rooms(user) == {}


def test_the_daily_lookup_limit_stops_an_import_and_reveals_nobody(stack: RunningStack) -> None:
    per_day = _lookups_per_day(stack)
    lookup_url = f"{stack.url}/_synapse/client/wangxin/v1/import/lookup"
    headers = {"Authorization": f"Bearer {_bridge_config(stack).homeserver.service_secret}"}

    alice, bob, dave = HttpUser(stack), HttpUser(stack), HttpUser(stack)
    phones = {"bob": random_mobile(), "dave": random_mobile()}
    bind_phone(stack, bob.user_id, phones["bob"])
    bind_phone(stack, dave.user_id, phones["dave"])
    set_discoverable(bob, True)  # Dave is not

    def lookup(numbers: list[str]) -> requests.Response:
        return requests.post(lookup_url, params={"user_id": alice.user_id}, json={"msisdns": numbers},
                             headers=headers, timeout=60)

    # Alice's imports spend her quota, as the bridge does, in batches of at most 1000 numbers.
    # Only the discoverable Bob is ever found.
    fillers = [f"86137{n:08d}" for n in random.sample(range(10**8), per_day)]
    first = [phones["bob"].lstrip("+"), phones["dave"].lstrip("+")] + fillers[:998]
    r = lookup(first)
    assert r.status_code == 200, r.text
    assert r.json()["matches"] == {phones["bob"].lstrip("+"): bob.user_id}
    for start in range(998, per_day - 2, 1000):
        r = lookup(fillers[start:min(start + 1000, per_day - 2)])
        assert r.status_code == 200, r.text

    # The quota is spent: the next lookup is refused and answers nothing about anyone.
    r = lookup([phones["dave"].lstrip("+")])
    assert r.status_code == 429, r.text
    body = r.json()
    assert body["errcode"] == "M_LIMIT_EXCEEDED" and body["retry_after_ms"] > 0
    assert "matches" not in body and dave.user_id not in r.text and bob.user_id not in r.text

    # An import says so in chat and when it would start, and neither imports nor reveals anything,
    # also once confirmed: it waits for the lookups to renew.
    me = wxid()
    export = wechat_export(me, [(wxid(), "Bob", phones["bob"]), (wxid(), "Dave", phones["dave"])],
                           [(f"{secrets.token_hex(4)}@chatroom", "同学", [me])])
    dm = open_dm(alice, bot(stack))
    answer = upload_and_preview(alice, dm, export, "contacts.json", stack)
    assert "no phone-number lookups left today" in answer and "lookups_per_day" in answer, answer
    assert "00:00 UTC" in answer and "import confirm" in answer, answer
    assert bob.user_id not in answer and dave.user_id not in answer and "already on Wangxin" not in answer
    alice.say(dm, "import confirm")
    part = eventually(lambda: _parts(alice, dm, stack), timeout=120, interval=0.5)[-1]
    assert part["contacts_done"] == 0 and part["numbers_checked"] == 0 and part["resumes_in_ms"] > 0, part
    status = ask(alice, dm, bot(stack), "import status")
    assert "Nothing of contacts.json is imported yet" in status and "00:00 UTC" in status, status
    assert "used up" in ask(alice, dm, bot(stack), "import confirm")
    assert "Stopping" in ask(alice, dm, bot(stack), "import cancel")
    assert invited_rooms(alice) == {} and invited_rooms(bob) == {} and invited_rooms(dave) == {}
    assert summaries(alice, dm, stack) == []


# -- an export naming its owner's own id ---------------------------------------------------------


def _notice_about(user: HttpUser, room_id: str, stack: RunningStack, claimant: str) -> str | None:
    for e in timeline(user, room_id):
        body = str((e.get("content") or {}).get("body", ""))
        if e["sender"] == bot(stack) and body.startswith(f"{claimant} says they are"):
            return body
    return None


def test_an_own_id_in_an_export_is_only_a_claim_the_importer_must_accept(stack: RunningStack) -> None:
    alice, erin, mallory = HttpUser(stack), HttpUser(stack), HttpUser(stack)
    set_discoverable(erin, True)
    set_discoverable(mallory, True)
    me, w_erin, w_frank = wxid(), wxid(), wxid()
    export = wechat_export(me, [(w_erin, "Erin", None), (w_frank, "Frank", None)],
                           [(f"{secrets.token_hex(4)}@chatroom", "读书会", [me, w_erin, w_frank])])
    dm = open_dm(alice, bot(stack))
    upload_and_preview(alice, dm, export, "contacts.json", stack)
    assert confirm(alice, dm, stack)["placeholders"] == 2
    room = rooms_named(alice)["读书会"][0]
    ghost = next(uid for uid, c in members(stack, room).items() if c.get("displayname") == "Erin" + PLACEHOLDER)

    # Mallory writes Erin's WeChat id into "her own" export. That alone gets her nowhere.
    mallory_dm = open_dm(mallory, bot(stack))
    preview = upload_and_preview(mallory, mallory_dm, wechat_export(w_erin, [(wxid(), "X", None)], []),
                                 "mine.json", stack)
    assert f"names you as WeChat user {w_erin}" in preview, preview
    confirm(mallory, mallory_dm, stack)
    notice = eventually(lambda: _notice_about(alice, dm, stack, mallory.user_id), timeout=60, interval=0.5)
    assert "“Erin”" in notice and f"import accept {mallory.user_id}" in notice and "1 of your imported rooms" in notice
    assert mallory.user_id not in members(stack, room) and invited_rooms(mallory) == {}
    assert members(stack, room)[ghost]["membership"] == "join"

    # Erin's own export makes the same claim; Alice knows her and accepts.
    erin_dm = open_dm(erin, bot(stack))
    upload_and_preview(erin, erin_dm, wechat_export(w_erin, [(wxid(), "Y", None)], []), "mine.json", stack)
    confirm(erin, erin_dm, stack)
    eventually(lambda: _notice_about(alice, dm, stack, erin.user_id), timeout=60, interval=0.5)
    answer = ask(alice, dm, bot(stack), f"import accept {erin.user_id}")
    assert answer.startswith(f"Done: {erin.user_id} took the place of “Erin” in 1 rooms"), answer
    now = members(stack, room)
    assert now[erin.user_id]["membership"] == "invite" and now[ghost]["membership"] == "leave"
    assert room in invited_rooms(erin)

    # Mallory's claim is spent: there is no placeholder left for her to take.
    assert "has not asked" in ask(alice, dm, bot(stack), f"import accept {mallory.user_id}")
    assert mallory.user_id not in members(stack, room) and invited_rooms(mallory) == {}


# -- an address book larger than a day's lookups ---------------------------------------------------


def _lookups_per_day(stack: RunningStack) -> int:
    import yaml

    with open(stack.info["homeserver_config"]) as f:
        modules = yaml.safe_load(f)["modules"]
    module = next(m["config"] for m in modules if m["module"].endswith("contact_import.ContactImport"))
    return int(module.get("lookups_per_day", 50_000))


def _quota(stack: RunningStack, user_id: str) -> dict[str, int]:
    r = requests.get(f"{stack.url}/_synapse/client/wangxin/v1/import/quota", params={"user_id": user_id},
                     headers={"Authorization": f"Bearer {_bridge_config(stack).homeserver.service_secret}"},
                     timeout=60)
    assert r.status_code == 200, r.text
    return dict(r.json())


def _vcard(cards: list[tuple[str, list[str]]]) -> bytes:
    def card(name: str, phones: list[str]) -> str:
        tels = "".join(f"TEL;TYPE=CELL:{p}\r\n" for p in phones)
        return f"BEGIN:VCARD\r\nVERSION:3.0\r\nFN:{name}\r\n{tels}END:VCARD\r\n"

    return "".join(card(name, phones) for name, phones in cards).encode()


PART_KEY = "org.wangxin.import.part"


def _parts(user: HttpUser, room_id: str, stack: RunningStack) -> list[dict[str, Any]]:
    return [e["content"][PART_KEY] for e in timeline(user, room_id)
            if e["sender"] == bot(stack) and PART_KEY in e.get("content", {})
            and (e["content"].get("m.relates_to") or {}).get("rel_type") != "m.replace"]


def test_an_address_book_larger_than_a_days_lookups_is_imported_in_parts(stack: RunningStack) -> None:
    from tests.e2e.test_appservice import _wait_bridge_restarted

    per_day = _lookups_per_day(stack)
    cap = _bridge_config(stack).imports.max_phones_per_contact
    assert per_day % cap == 0
    alice, bob, dave = HttpUser(stack), HttpUser(stack), HttpUser(stack)
    phones = {"bob": random_mobile(), "dave": random_mobile()}
    for user, name in ((bob, "bob"), (dave, "dave")):
        bind_phone(stack, user.user_id, phones[name])
        set_discoverable(user, True)
    fillers = iter(f"+86135{n:08d}" for n in random.sample(range(10**8), per_day + 3 * cap))
    # Bob's card has 25 numbers (only the first `cap` count), then cards of `cap` numbers each
    # until a day's lookups are used up, one more, and Dave last.
    cards = [("Bob", [phones["bob"]] + [next(fillers) for _ in range(24)])]
    cards += [(f"P{i}", [next(fillers) for _ in range(cap)]) for i in range(per_day // cap)]
    cards += [("Dave", [phones["dave"]])]
    numbers = per_day + cap + 1
    first_part = per_day // cap  # Bob and the cards before the one that does not fit today

    dm = open_dm(alice, bot(stack))
    preview = upload_and_preview(alice, dm, _vcard(cards), "phone.vcf", stack)
    assert f"{len(cards)} contacts" in preview and f"{numbers} phone numbers" in preview, preview
    assert f"more than {cap} phone numbers" in preview, preview
    assert f"the first {first_part} contacts today" in preview and "later days" in preview, preview
    assert _quota(stack, alice.user_id)["used_today"] == 0  # a preview of a book this big spends nothing

    alice.say(dm, "import confirm")
    part = eventually(lambda: _parts(alice, dm, stack), timeout=300, interval=1)[-1]
    assert part == {"contacts": len(cards), "contacts_done": first_part, "groups": 0, "groups_done": 0,
                    "numbers": numbers, "numbers_checked": per_day, "resumes_in_ms": part["resumes_in_ms"]}
    assert 0 < part["resumes_in_ms"] <= 24 * 3600 * 1000
    quota = _quota(stack, alice.user_id)
    assert quota["used_today"] == per_day and quota["remaining_today"] == 0, quota
    eventually(lambda: len(invited_rooms(bob)) == 1, timeout=60, interval=0.5)  # Alice's DM: Bob was in part 1
    assert invited_rooms(dave) == {} and summaries(alice, dm, stack) == []
    status = ask(alice, dm, bot(stack), "import status")
    assert f"{first_part} of {len(cards)} contacts" in status and "continues" in status, status

    # The waiting import survives a crash of the bridge and spends nothing more when it resumes.
    old_pid = stack.info["processes"]["bridge"]
    os.kill(old_pid, signal.SIGKILL)
    _wait_bridge_restarted(stack, old_pid)
    eventually(lambda: "continues" in ask(alice, dm, bot(stack), "import status"), timeout=120, interval=1)
    assert _quota(stack, alice.user_id)["used_today"] == per_day and len(_parts(alice, dm, stack)) == 1

    # An administrator (nobody else) gives Alice her lookups back; “import confirm” continues at once.
    r = alice.raw("DELETE", f"/_synapse/client/wangxin/v1/import/quota?user_id={q(alice.user_id)}")
    assert r.status_code == 403 and r.json()["errcode"] == "M_FORBIDDEN", r.text
    r = requests.delete(f"{stack.url}/_synapse/client/wangxin/v1/import/quota", params={"user_id": alice.user_id},
                        headers=stack.admin_headers(), timeout=60)
    assert r.status_code == 200 and r.json()["remaining_today"] == per_day, r.text
    assert "Continuing" in ask(alice, dm, bot(stack), "import confirm")
    summary = eventually(lambda: summaries(alice, dm, stack), timeout=300, interval=1)[-1]
    assert summary == {"contacts": len(cards), "matched": 2, "groups": 0, "rooms_created": 0, "invited": 2,
                       "placeholders": 0, "invitable_by_sms": len(cards) - 2, "skipped": 0, "errors": 0}
    assert _quota(stack, alice.user_id)["used_today"] == cap + 1
    eventually(lambda: len(invited_rooms(dave)) == 1, timeout=60, interval=0.5)
    assert len(invited_rooms(bob)) == 1
