"""The bridge's appservice core against a real Synapse: ping, tokens, durable transaction dedup."""

from __future__ import annotations

import os
import secrets
import signal
import time

import pytest
import requests

from tests.harness.matrix import client_for, create_dm, is_reply_to, room_events, send_text, wait_for_event
from tests.harness.stack import RunningStack


def test_synapse_pings_the_bridge(stack: RunningStack) -> None:
    r = requests.post(
        f"{stack.url}/_matrix/client/v1/appservice/{stack.info['appservice_id']}/ping",
        json={"transaction_id": "test-ping"},
        headers={"Authorization": f"Bearer {stack.info['bridge']['as_token']}"},
        timeout=30,
    )
    assert r.status_code == 200, r.text
    assert isinstance(r.json()["duration_ms"], int)


@pytest.mark.parametrize(
    "headers, status, errcode",
    [
        ({"Authorization": "Bearer wrong-token"}, 403, "M_FORBIDDEN"),
        ({}, 401, "M_UNAUTHORIZED"),
    ],
)
def test_bridge_refuses_a_wrong_or_missing_hs_token(stack: RunningStack, headers: dict, status: int,
                                                    errcode: str) -> None:
    bridge = stack.info["bridge"]["url"]
    for method, path in [
        ("PUT", "/_matrix/app/v1/transactions/forged-1"),
        ("GET", f"/_matrix/app/v1/users/@wx_someone:{stack.server_name}"),
        ("POST", "/_matrix/app/v1/ping"),
    ]:
        r = requests.request(method, bridge + path, json={"events": []}, headers=headers, timeout=10)
        assert r.status_code == status, (path, r.text)
        assert r.json()["errcode"] == errcode


def test_user_query_for_unknown_ghost_is_404(stack: RunningStack) -> None:
    r = requests.get(
        f"{stack.info['bridge']['url']}/_matrix/app/v1/users/@wx_nobody:{stack.server_name}",
        headers={"Authorization": f"Bearer {stack.info['bridge']['hs_token']}"},
        timeout=10,
    )
    assert r.status_code == 404
    assert r.json()["errcode"] == "M_NOT_FOUND"


def _put_txn(stack: RunningStack, txn_id: str, events: list[dict]) -> None:
    r = requests.put(
        f"{stack.info['bridge']['url']}/_matrix/app/v1/transactions/{txn_id}",
        json={"events": events},
        headers={"Authorization": f"Bearer {stack.info['bridge']['hs_token']}"},
        timeout=30,
    )
    assert r.status_code == 200, r.text
    assert r.json() == {}


def _command_event(room_id: str, sender: str, body: str) -> dict:
    return {
        "event_id": f"$test-{secrets.token_hex(8)}",
        "room_id": room_id,
        "sender": sender,
        "type": "m.room.message",
        "origin_server_ts": int(time.time() * 1000),
        "content": {"msgtype": "m.text", "body": body},
    }


def _wait_bridge_restarted(stack: RunningStack, old_pid: int, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        pid = stack.reload_info()["processes"].get("bridge")
        if pid and pid != old_pid:
            try:
                if requests.get(stack.info["bridge"]["url"] + "/health", timeout=2).status_code == 200:
                    return
            except requests.ConnectionError:
                pass
        time.sleep(0.3)
    raise AssertionError("the launcher did not restart the bridge")


async def test_a_replayed_transaction_is_processed_once_even_after_a_restart(stack: RunningStack) -> None:
    user = stack.register_user()
    bot = stack.info["bridge"]["bot_user_id"]
    client = await client_for(stack.url, user)
    try:
        room_id = await create_dm(client, bot)
        await wait_for_event(client, room_id, lambda e: e.get("sender") == bot and "help" in str(e.get("content")))

        first = _command_event(room_id, user["user_id"], "version")
        txn_id = f"replay-{secrets.token_hex(4)}"
        _put_txn(stack, txn_id, [first])
        await wait_for_event(client, room_id, is_reply_to(first["event_id"], bot))
        _put_txn(stack, txn_id, [first])  # Synapse retrying: acknowledged, not processed again

        # Kill the bridge hard; the launcher restarts it. Synapse retrying the same transaction
        # is still acknowledged without processing.
        old_pid = stack.info["processes"]["bridge"]
        os.kill(old_pid, signal.SIGKILL)
        _wait_bridge_restarted(stack, old_pid)
        _put_txn(stack, txn_id, [dict(first, unsigned={"age": 1234})])

        # Synapse on SQLite reuses transaction ids after its own restart: the same id with other
        # events is a new transaction and must not be dropped.
        second = _command_event(room_id, user["user_id"], "help")
        _put_txn(stack, txn_id, [second])
        await wait_for_event(client, room_id, is_reply_to(second["event_id"], bot))

        # A fresh transaction after the restart is processed: the bridge is alive, not deaf.
        probe = _command_event(room_id, user["user_id"], "version")
        _put_txn(stack, f"probe-{secrets.token_hex(4)}", [probe])
        await wait_for_event(client, room_id, is_reply_to(probe["event_id"], bot))

        events = await room_events(client, room_id)
        assert sum(is_reply_to(first["event_id"], bot)(e) for e in events) == 1
        assert sum(is_reply_to(second["event_id"], bot)(e) for e in events) == 1
    finally:
        await client.close()


async def test_bridge_bot_answers_help_in_a_dm(stack: RunningStack) -> None:
    user = stack.register_user()
    bot = stack.info["bridge"]["bot_user_id"]
    client = await client_for(stack.url, user)
    try:
        room_id = await create_dm(client, bot)
        await wait_for_event(client, room_id, lambda e: e.get("sender") == bot)
        asked = await send_text(client, room_id, "help")
        reply = await wait_for_event(client, room_id, is_reply_to(asked, bot))
        assert reply["content"]["msgtype"] == "m.notice"
        assert "help — show this list of commands" in reply["content"]["body"]
        asked = await send_text(client, room_id, "frobnicate")
        reply = await wait_for_event(client, room_id, is_reply_to(asked, bot))
        assert "don't know the command “frobnicate”" in reply["content"]["body"]
    finally:
        await client.close()


async def test_bridge_bot_explains_it_cannot_read_an_encrypted_dm(stack: RunningStack) -> None:
    user = stack.register_user()
    bot = stack.info["bridge"]["bot_user_id"]
    client = await client_for(stack.url, user)
    try:
        room_id = await create_dm(client, bot, encrypted=True)
        await wait_for_event(client, room_id, lambda e: e.get("sender") == bot)
        r = await client.room_send(
            room_id,
            "m.room.encrypted",
            {"algorithm": "m.megolm.v1.aes-sha2", "ciphertext": "AwgAEn", "sender_key": "k", "session_id": "s",
             "device_id": "D"},
        )
        reply = await wait_for_event(client, room_id, is_reply_to(r.event_id, bot))
        assert "end-to-end encrypted" in reply["content"]["body"]
    finally:
        await client.close()


# Bodies no JSON endpoint of the bridge may choke on: each is a 400 with a Matrix error.
_HOSTILE_BODIES = [
    pytest.param(b"[" * 100_000 + b"]" * 100_000, "M_BAD_JSON", "nested", id="deep-array"),
    pytest.param(b'{"events": [' + b'{"a":' * 50_000 + b"1" + b"}" * 50_000 + b"]}", "M_BAD_JSON", "nested",
                 id="deep-object"),
    pytest.param(b'{"events": [], "x": NaN}', "M_BAD_JSON", "NaN", id="nan"),
    pytest.param(b'{"events": [], "x": -Infinity}', "M_BAD_JSON", "-Infinity", id="infinity"),
    pytest.param(b'["events"]', "M_BAD_JSON", "object", id="not-an-object"),
    pytest.param(b'{"events": [', "M_NOT_JSON", "JSON", id="truncated"),
]


@pytest.mark.parametrize("raw, errcode, says", _HOSTILE_BODIES)
async def test_hostile_json_gets_a_400_and_changes_nothing(stack: RunningStack, raw: bytes, errcode: str,
                                                         says: str) -> None:
    from bridges.config import load_config

    bridge = stack.info["bridge"]["url"]
    hs_token = {"Authorization": f"Bearer {stack.info['bridge']['hs_token']}"}
    secret = load_config(stack.info["bridge"]["config"]).homeserver.service_secret
    txn_id = f"hostile-{secrets.token_hex(4)}"
    for path, headers in [(f"/_matrix/app/v1/transactions/{txn_id}", hs_token), ("/_matrix/app/v1/ping", hs_token),
                          ("/_wangxin/v1/arrivals", {"Authorization": f"Bearer {secret}"})]:
        method = "PUT" if "transactions" in path else "POST"
        r = requests.request(method, bridge + path, data=raw,
                             headers={**headers, "Content-Type": "application/json"}, timeout=60)
        assert r.status_code == 400, (path, r.status_code, r.text)
        assert r.json()["errcode"] == errcode and says in r.json()["error"], (path, r.text)

    # The refused transaction was not recorded: Synapse sending that id again with real events
    # gets them handled.
    user = stack.register_user()
    bot = stack.info["bridge"]["bot_user_id"]
    client = await client_for(stack.url, user)
    try:
        room_id = await create_dm(client, bot)
        await wait_for_event(client, room_id, lambda e: e.get("sender") == bot)
        event = _command_event(room_id, user["user_id"], "version")
        _put_txn(stack, txn_id, [event])
        await wait_for_event(client, room_id, is_reply_to(event["event_id"], bot))
    finally:
        await client.close()
