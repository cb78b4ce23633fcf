"""The stack's life: up, down on a signal with every child gone, up again on the same data."""

from __future__ import annotations

import json
import os
import secrets
import signal
import subprocess
import sys

import requests

from tests.harness import services
from tests.harness.http import eventually
from tests.harness.stack import RunningStack


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie that its parent has not reaped yet counts as gone.
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split()[2] != "Z"
    except FileNotFoundError:
        return False


def _a_pairing_gets_coupons_from_the_local_issuer(stack: RunningStack) -> None:
    """Without --coupon-url the stack runs its own coupon issuer: a 36.8° pairing's coupons come
    from it, and its outbox records what it was asked and answered."""
    from tests.e2e.test_discovery import person
    from tests.e2e.test_discovery_angle import accept_both, issued, pair_by_angle

    outbox = stack.info["discovery"]["coupon_outbox"]
    assert outbox and stack.info["discovery"]["coupon_url"].startswith("http://127.0.0.1:")
    a, b = person(stack, None), person(stack, None)
    request_id = pair_by_angle(stack, a, b)
    assert accept_both(a, b, request_id)["coupon"] == "requested"
    mine = eventually(lambda: issued(a, request_id), timeout=60)
    with open(outbox, encoding="utf-8") as f:
        (line,) = [json.loads(x) for x in f if request_id in x]
    assert line["users"] == [a.user_id, b.user_id] or line["users"] == [b.user_id, a.user_id]
    assert line["answer"]["coupons"][a.user_id]["code"] == mine["code"] and not line["repeat"]


def test_stack_stops_on_sigint_and_restarts_on_the_same_data(tmp_path) -> None:
    directory = str(tmp_path / "stack")
    port = services.free_port_block()
    args = ["--port", str(port), "--server-name", f"wx{secrets.token_hex(3)}.test"]
    first = RunningStack(directory, args).start()
    try:
        children = dict(first.info["processes"])
        assert set(children) - {"coturn"} == {"synapse", "bridge", "merchant-bot", "parcels-bot", "discovery-bot"}
        token = first.info["admin"]["access_token"]
        secret = first.info["registration_shared_secret"]
        created = first.register_user("keepme")
        _a_pairing_gets_coupons_from_the_local_issuer(first)

        # A second stack on the same ports is refused with a sentence, before anything starts.
        clash = subprocess.run(
            [sys.executable, "-m", "wangxin_stack", "up", "--dir", str(tmp_path / "other"), "--port", str(port)],
            capture_output=True, text=True, timeout=60,
        )
        assert clash.returncode == 2
        assert f"port {port}" in clash.stderr and "already in use" in clash.stderr
    finally:
        code = first.stop(signal.SIGINT)
    assert code == 0, first.output()
    assert not [name for name, pid in children.items() if _alive(pid)]
    assert not os.path.exists(os.path.join(directory, "stack.json"))

    second = RunningStack(directory, args).start()
    try:
        assert second.info["admin"]["access_token"] == token
        assert second.info["registration_shared_secret"] == secret
        r = requests.get(
            f"{second.url}/_synapse/admin/v2/users/{created['user_id']}", headers=second.admin_headers(), timeout=30
        )
        assert r.status_code == 200, r.text
    finally:
        assert second.stop(signal.SIGTERM) == 0, second.output()


def test_a_changed_server_name_is_refused(tmp_path) -> None:
    directory = tmp_path / "stack"
    directory.mkdir()
    (directory / "server_name").write_text("first.test\n")
    result = subprocess.run(
        [sys.executable, "-m", "wangxin_stack", "up", "--dir", str(directory), "--server-name", "second.test",
         "--port", str(services.free_port_block())],
        capture_output=True, text=True, timeout=60,
    )
    assert result.returncode == 2
    assert "--server-name" in result.stderr and "first.test" in result.stderr
