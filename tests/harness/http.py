"""A plain-HTTP Matrix user for tests: what any client that knows nothing of Wangxin would send."""

from __future__ import annotations

import secrets
import time
from collections.abc import Callable
from typing import Any
from urllib.parse import quote

import requests

from wangxin_stack.running import RunningStack


def q(value: str) -> str:
    return quote(value, safe="")


class HttpUser:
    def __init__(self, stack: RunningStack, localpart: str | None = None):
        info = stack.register_user(localpart)
        self.stack = stack
        self.user_id: str = info["user_id"]
        self.token: str = info["access_token"]
        self.device_id: str = info["device_id"]
        self.info = info
        self.http = requests.Session()
        self.http.headers["Authorization"] = f"Bearer {self.token}"

    def call(self, method: str, path: str, body: Any = None, expect: int | None = 200, **params: Any) -> Any:
        r = self.http.request(method, self.stack.url + path, json=body, params=params or None, timeout=60)
        if expect is not None:
            assert r.status_code == expect, f"{method} {path} -> {r.status_code} {r.text}"
        return r.json() if r.content else {}

    def raw(self, method: str, path: str, body: Any = None) -> requests.Response:
        return self.http.request(method, self.stack.url + path, json=body, timeout=60)

    # -- rooms -------------------------------------------------------------------------

    def create_room(self, *, encrypted: bool = False, invite: list[str] | None = None, **extra: Any) -> str:
        body: dict[str, Any] = {"preset": "private_chat", "invite": invite or [], **extra}
        if encrypted:
            body["initial_state"] = [
                {"type": "m.room.encryption", "state_key": "", "content": {"algorithm": "m.megolm.v1.aes-sha2"}}
            ]
        return str(self.call("POST", "/_matrix/client/v3/createRoom", body)["room_id"])

    def join(self, room_id: str) -> None:
        self.call("POST", f"/_matrix/client/v3/join/{q(room_id)}", {})

    def leave(self, room_id: str) -> None:
        self.call("POST", f"/_matrix/client/v3/rooms/{q(room_id)}/leave", {})

    def send(self, room_id: str, content: dict[str, Any], event_type: str = "m.room.message") -> str:
        txn = secrets.token_hex(8)
        path = f"/_matrix/client/v3/rooms/{q(room_id)}/send/{q(event_type)}/{txn}"
        return str(self.call("PUT", path, content)["event_id"])

    def say(self, room_id: str, body: str, **extra: Any) -> str:
        return self.send(room_id, {"msgtype": "m.text", "body": body, **extra})

    def send_encrypted(self, room_id: str) -> str:
        """An m.room.encrypted event as a client would send it; the server never sees the text."""
        return self.send(
            room_id,
            {"algorithm": "m.megolm.v1.aes-sha2", "ciphertext": "AwgAEnB" + secrets.token_hex(16),
             "sender_key": "k" * 43, "session_id": "s" * 43, "device_id": self.device_id},
            "m.room.encrypted",
        )

    def set_power_level(self, room_id: str, user_id: str, level: int) -> None:
        path = f"/_matrix/client/v3/rooms/{q(room_id)}/state/m.room.power_levels/"
        levels = self.call("GET", path)
        levels.setdefault("users", {})[user_id] = level
        self.call("PUT", path, levels)

    # -- push --------------------------------------------------------------------------

    def notifications(self) -> list[dict[str, Any]]:
        return list(self.call("GET", "/_matrix/client/v3/notifications", limit="100")["notifications"])

    def notified_event_ids(self) -> set[str]:
        return {n["event"]["event_id"] for n in self.notifications()}

    def override_rules(self) -> list[dict[str, Any]]:
        return list(self.call("GET", "/_matrix/client/v3/pushrules/")["global"]["override"])

    def set_pusher(self, gateway_url: str) -> str:
        pushkey = secrets.token_hex(8)
        self.call(
            "POST",
            "/_matrix/client/v3/pushers/set",
            {"kind": "http", "app_id": "org.wangxin.test", "pushkey": pushkey, "app_display_name": "t",
             "device_display_name": "phone", "lang": "en", "data": {"url": gateway_url, "format": None}},
        )
        return pushkey

    # Element Web's exact requests (docs/synapse.md, "Element's mute").
    def element_mute(self, room_id: str) -> None:
        self.call(
            "PUT",
            f"/_matrix/client/v3/pushrules/global/override/{q(room_id)}",
            {"conditions": [{"kind": "event_match", "key": "room_id", "pattern": room_id}],
             "actions": ["dont_notify"]},
        )

    def element_unmute(self, room_id: str) -> None:
        self.call("DELETE", f"/_matrix/client/v3/pushrules/global/override/{q(room_id)}")


def eventually(check: Callable[[], Any], timeout: float = 10, interval: float = 0.1) -> Any:
    """Retry ``check`` until it returns a truthy value (or stops raising AssertionError)."""
    deadline = time.monotonic() + timeout
    last: Exception | None = None
    while time.monotonic() < deadline:
        try:
            result = check()
            if result:
                return result
        except AssertionError as e:
            last = e
        time.sleep(interval)
    if last:
        raise last
    raise AssertionError(f"condition not met within {timeout}s")


def open_dm(user: HttpUser, bot: str) -> str:
    """A DM as Element creates one with a user who has no device keys: plain, ``is_direct``."""
    room_id = str(
        user.call("POST", "/_matrix/client/v3/createRoom",
                  {"preset": "trusted_private_chat", "is_direct": True, "invite": [bot]})["room_id"]
    )
    eventually(lambda: any(e["sender"] == bot for e in timeline(user, room_id)), timeout=90)
    return room_id


def timeline(user: HttpUser, room_id: str) -> list[dict[str, Any]]:
    return list(user.call("GET", f"/_matrix/client/v3/rooms/{q(room_id)}/messages", dir="b", limit="100")["chunk"])


def ask(user: HttpUser, room_id: str, bot: str, text: str, timeout: float = 90, **extra: Any) -> str:
    """Send a command and return the bot's reply to it."""
    event_id = user.say(room_id, text, **extra)

    def reply() -> str | None:
        for e in timeline(user, room_id):
            relates = e.get("content", {}).get("m.relates_to", {})
            if e["sender"] == bot and relates.get("m.in_reply_to", {}).get("event_id") == event_id:
                return str(e["content"]["body"])
        return None

    return str(eventually(reply, timeout=timeout, interval=0.2))
