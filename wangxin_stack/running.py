"""Start and stop a Wangxin stack in a subprocess, exactly as ``python3 run.py up`` does.

Used by the test harness and the benchmarks (``requests`` comes with the test extra).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from typing import Any


class StackFailed(Exception):
    pass


class RunningStack:
    """A launcher process and what its ``stack.json`` says about the stack."""

    def __init__(self, directory: str, args: list[str]):
        self.dir = directory
        self.args = args
        self.proc: subprocess.Popen[bytes] | None = None
        self.info: dict[str, Any] = {}
        self.output_path = os.path.join(directory, "launcher.out")

    @property
    def url(self) -> str:
        return str(self.info["homeserver_url"])

    @property
    def server_name(self) -> str:
        return str(self.info["server_name"])

    def start(self, timeout: float = 300) -> RunningStack:
        os.makedirs(self.dir, exist_ok=True)
        stack_file = os.path.join(self.dir, "stack.json")
        if os.path.exists(stack_file):
            os.remove(stack_file)
        out = open(self.output_path, "ab")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "wangxin_stack", "up", "--dir", self.dir, *self.args],
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # so a stuck stack can be killed as one process group
        )
        out.close()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise StackFailed(f"the stack exited with {self.proc.returncode}:\n{self.output()}")
            try:
                with open(stack_file, encoding="utf-8") as f:
                    info = json.load(f)
                if info.get("launcher_pid") == self.proc.pid:
                    self.info = info
                    return self
            except (FileNotFoundError, ValueError):
                pass
            time.sleep(0.2)
        self.kill()
        raise StackFailed(f"the stack was not ready within {timeout}s:\n{self.output()}")

    def reload_info(self) -> dict[str, Any]:
        with open(os.path.join(self.dir, "stack.json"), encoding="utf-8") as f:
            self.info = json.load(f)
        return self.info

    def output(self) -> str:
        try:
            with open(self.output_path, encoding="utf-8", errors="replace") as f:
                return f.read()[-5000:]
        except FileNotFoundError:
            return ""

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 90) -> int:
        """Signal the launcher only, and wait; returns its exit code."""
        assert self.proc is not None
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.kill()
                raise StackFailed(f"the stack did not stop within {timeout}s:\n{self.output()}") from None
        return int(self.proc.returncode)

    def kill(self) -> None:
        if self.proc is not None:
            try:
                os.killpg(self.proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            self.proc.wait(30)

    # -- conveniences for tests -------------------------------------------------------------

    def admin_headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.info['admin']['access_token']}"}

    def register_user(self, localpart: str | None = None, admin: bool = False) -> dict[str, Any]:
        """A fresh user through shared-secret registration; returns user_id, access_token, device_id."""
        import secrets as _secrets

        import requests

        from wangxin_stack.homeserver_admin import registration_mac

        localpart = localpart or f"u{_secrets.token_hex(5)}"
        password = _secrets.token_urlsafe(12)
        base = self.info["main_process_url"]  # nonces live in the main process
        nonce = requests.get(f"{base}/_synapse/admin/v1/register", timeout=30).json()["nonce"]
        mac = registration_mac(self.info["registration_shared_secret"], nonce, localpart, password, admin)
        r = requests.post(
            f"{base}/_synapse/admin/v1/register",
            json={"nonce": nonce, "username": localpart, "password": password, "admin": admin, "mac": mac},
            timeout=30,
        )
        r.raise_for_status()
        data = dict(r.json())
        data["password"] = password
        return data
