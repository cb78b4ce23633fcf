"""The stack as a user and an operator meet it: it comes up complete, answers, and its parts talk."""

from __future__ import annotations

import requests

from tests.harness.stack import RunningStack


def test_stack_json_describes_a_running_stack(stack: RunningStack) -> None:
    info = stack.info
    for key in ("homeserver_url", "server_name", "registration_shared_secret", "appservice_id", "bot_user_ids"):
        assert info[key], key
    assert info["admin"]["user_id"] == f"@admin:{stack.server_name}"
    assert info["bridge"]["url"].startswith("http://127.0.0.1:")
    assert info["bridge"]["bot_user_id"] in info["bot_user_ids"]
    assert info["merchant_bot"]["user_id"] in info["bot_user_ids"]
    assert requests.get(f"{stack.url}/health", timeout=10).text == "OK"


def test_admin_token_is_a_server_admin(stack: RunningStack) -> None:
    r = requests.get(
        f"{stack.url}/_synapse/admin/v2/users/{stack.info['demo']['user_id']}",
        headers=stack.admin_headers(),
        timeout=10,
    )
    assert r.status_code == 200, r.text
    assert r.json()["name"] == stack.info["demo"]["user_id"]


def test_modules_are_loaded(stack: RunningStack) -> None:
    r = requests.get(f"{stack.url}/_synapse/client/wangxin/v1/info", timeout=10)
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["server_name"] == stack.server_name
    assert body["bridge_bot"] == stack.info["bridge"]["bot_user_id"]
    assert body["merchant_bot"] == stack.info["merchant_bot"]["user_id"]


def test_stock_client_behaviour_is_intact(stack: RunningStack) -> None:
    """A client that knows nothing of Wangxin registers, creates a room and reads it back."""
    user = stack.register_user()
    headers = {"Authorization": f"Bearer {user['access_token']}"}
    r = requests.post(f"{stack.url}/_matrix/client/v3/createRoom", json={"name": "plain"}, headers=headers, timeout=30)
    assert r.status_code == 200, r.text
    room_id = r.json()["room_id"]
    r = requests.put(
        f"{stack.url}/_matrix/client/v3/rooms/{room_id}/send/m.room.message/t1",
        json={"msgtype": "m.text", "body": "hello"},
        headers=headers,
        timeout=30,
    )
    assert r.status_code == 200, r.text
    r = requests.get(
        f"{stack.url}/_matrix/client/v3/rooms/{room_id}/messages", params={"dir": "b"}, headers=headers, timeout=30
    )
    assert any(e["content"].get("body") == "hello" for e in r.json()["chunk"])


def test_worker_topology_really_runs_workers(stack: RunningStack) -> None:
    if stack.info["workers"]:
        assert set(stack.info["workers"]) == {"persister1", "worker1", "sync1", "media1"}
        assert {"synapse", "synapse-persister1", "synapse-worker1", "synapse-sync1", "synapse-media1"} <= set(
            stack.info["processes"])
        assert stack.info["database"] == "postgres"
    else:
        # coturn runs where it is installed (.ci/run installs it; tests/e2e/test_turn.py).
        assert set(stack.info["processes"]) - {"coturn"} == {"synapse", "bridge", "merchant-bot", "parcels-bot",
                                                             "discovery-bot"}
    assert ("coturn" in stack.info["processes"]) == (stack.info["turn"] is not None)
