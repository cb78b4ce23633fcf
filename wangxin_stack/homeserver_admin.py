"""The few homeserver calls the launcher makes: readiness, shared-secret registration, rate-limit
exemptions, ping."""

from __future__ import annotations

import hashlib
import hmac
import json
import time
from typing import Any

import treq
from twisted.internet import reactor
from twisted.internet.task import deferLater


class HomeserverError(Exception):
    pass


def registration_mac(secret: str, nonce: str, username: str, password: str, admin: bool) -> str:
    """HMAC-SHA1 of Synapse's shared-secret registration (``synapse/rest/admin/users.py:UserRegisterServlet``)."""
    mac = hmac.new(secret.encode("utf-8"), digestmod=hashlib.sha1)
    for part in (nonce, username, password):
        mac.update(part.encode("utf-8"))
        mac.update(b"\x00")
    mac.update(b"admin" if admin else b"notadmin")
    return mac.hexdigest()


async def _json(method: str, url: str, body: Any = None, token: str | None = None) -> tuple[int, Any]:
    headers: dict[bytes | str, bytes | str] = {"Content-Type": "application/json"}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    response = await treq.request(
        method, url, data=json.dumps(body).encode() if body is not None else None, headers=headers, timeout=30
    )
    text = await response.text("utf-8")
    try:
        return response.code, json.loads(text) if text else {}
    except ValueError:
        return response.code, {"raw": text}


async def sleep(seconds: float) -> None:
    await deferLater(reactor, seconds, lambda: None)


async def wait_until_healthy(url: str, timeout: float, is_alive: Any = None) -> None:
    """Poll ``url`` until it answers 200; fail early if ``is_alive()`` turns false."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if is_alive is not None and not is_alive():
            raise HomeserverError("the process exited before it was ready")
        try:
            response = await treq.get(url, timeout=5)
            await response.content()
            if response.code == 200:
                return
        except Exception:
            pass
        await sleep(0.2)
    raise HomeserverError(f"{url} did not answer within {timeout:.0f}s")


async def register_with_shared_secret(
    base_url: str, secret: str, username: str, password: str, admin: bool = False
) -> dict[str, Any] | None:
    """Create a user; ``None`` if the username is taken already."""
    code, data = await _json("GET", f"{base_url}/_synapse/admin/v1/register")
    if code != 200:
        raise HomeserverError(f"cannot get a registration nonce: {code} {data}")
    nonce = data["nonce"]
    body = {
        "nonce": nonce,
        "username": username,
        "password": password,
        "admin": admin,
        "mac": registration_mac(secret, nonce, username, password, admin),
    }
    code, data = await _json("POST", f"{base_url}/_synapse/admin/v1/register", body)
    if code == 400 and data.get("errcode") == "M_USER_IN_USE":
        return None
    if code != 200:
        raise HomeserverError(f"registering {username} failed: {code} {data}")
    return dict(data)


async def login(base_url: str, user_id: str, password: str) -> dict[str, Any]:
    code, data = await _json(
        "POST",
        f"{base_url}/_matrix/client/v3/login",
        {"type": "m.login.password", "identifier": {"type": "m.id.user", "user": user_id}, "password": password},
    )
    if code != 200:
        raise HomeserverError(f"login as {user_id} failed: {code} {data}")
    return dict(data)


async def whoami(base_url: str, token: str) -> bool:
    code, _ = await _json("GET", f"{base_url}/_matrix/client/v3/account/whoami", token=token)
    return code == 200


async def exempt_from_rate_limits(base_url: str, admin_token: str, user_id: str) -> None:
    """Per-user override with 0 messages a second: no rate limit on the user's sends (and joins,
    invites) at all (``synapse/api/ratelimiting.py:Ratelimiter.can_do_action``)."""
    from urllib.parse import quote

    code, data = await _json("POST", f"{base_url}/_synapse/admin/v1/users/{quote(user_id)}/override_ratelimit",
                             {"messages_per_second": 0, "burst_count": 0}, token=admin_token)
    if code != 200:
        raise HomeserverError(f"exempting {user_id} from rate limits failed: {code} {data}")


async def ping_appservice(base_url: str, appservice_id: str, as_token: str) -> tuple[int, Any]:
    return await _json("POST", f"{base_url}/_matrix/client/v1/appservice/{appservice_id}/ping", {}, token=as_token)
