"""The bridge's client-server API calls, made with the appservice's ``as_token`` (treq)."""

from __future__ import annotations

import hashlib
import json
import logging
from typing import Any
from urllib.parse import quote

import treq
from twisted.internet import defer, reactor
from twisted.internet.error import ConnectError, ConnectionRefusedError
from twisted.web.client import HTTPConnectionPool

logger = logging.getLogger(__name__)


class MatrixRequestError(Exception):
    def __init__(self, status: int, errcode: str | None, error: str | None, body: Any = None):
        super().__init__(f"{status} {errcode}: {error}")
        self.status = status
        self.errcode = errcode
        self.error = error
        self.body = body


def q(value: str) -> str:
    return quote(value, safe="")


def txn_id_for(*parts: str) -> str:
    """A deterministic transaction id, so a retried send is deduplicated by Synapse."""
    return "wx-" + hashlib.sha256("\x00".join(parts).encode()).hexdigest()[:32]


class MatrixClient:
    """Client-server API with the appservice token; ``as_user`` masquerades as a namespace user."""

    def __init__(self, base_url: str, as_token: str, *, max_retries: int = 5):
        self.base_url = base_url.rstrip("/")
        self._headers: dict[bytes | str, bytes | str] = {
            "Authorization": f"Bearer {as_token}",
            "Content-Type": "application/json",
        }
        self._max_retries = max_retries
        self._pool = HTTPConnectionPool(reactor, persistent=True)
        self._pool.maxPersistentPerHost = 10

    async def request(
        self,
        method: str,
        path: str,
        body: Any = None,
        *,
        as_user: str | None = None,
        params: dict[str, str] | None = None,
        retry: bool = True,
    ) -> Any:
        """Send one request; 429 and 5xx are retried with back-off, other errors raised."""
        query = dict(params or {})
        if as_user:
            query["user_id"] = as_user
        url = self.base_url + path
        delay = 0.5
        for attempt in range(self._max_retries + 1):
            try:
                response = await treq.request(
                    method,
                    url,
                    params=query or None,
                    headers=self._headers,
                    data=json.dumps(body).encode() if body is not None else None,
                    pool=self._pool,
                    timeout=60,
                )
                text = await response.text("utf-8")
            except (ConnectError, ConnectionRefusedError, defer.TimeoutError) as e:
                if not retry or attempt == self._max_retries:
                    raise MatrixRequestError(0, "WX_CONNECTION_FAILED", str(e)) from e
                logger.warning("%s %s failed (%s); retrying in %.1fs", method, path, e, delay)
                await _sleep(delay)
                delay = min(delay * 2, 30)
                continue
            try:
                data = json.loads(text) if text else {}
            except ValueError:
                data = {"raw": text}
            if 200 <= response.code < 300:
                return data
            errcode = data.get("errcode") if isinstance(data, dict) else None
            if retry and attempt < self._max_retries and (response.code == 429 or response.code >= 500):
                wait = delay
                if response.code == 429 and isinstance(data, dict) and "retry_after_ms" in data:
                    wait = max(float(data["retry_after_ms"]) / 1000, 0.05)
                logger.info("%s %s -> %s; retrying in %.1fs", method, path, response.code, wait)
                await _sleep(wait)
                delay = min(delay * 2, 30)
                continue
            raise MatrixRequestError(
                response.code, errcode, data.get("error") if isinstance(data, dict) else None, data
            )
        raise AssertionError("unreachable")

    # -- the few calls the bridge needs ---------------------------------------------------

    async def register_user(self, localpart: str) -> bool:
        """Register a namespace user; False if it already existed."""
        try:
            await self.request(
                "POST",
                "/_matrix/client/v3/register",
                {"type": "m.login.application_service", "username": localpart, "inhibit_login": True},
            )
            return True
        except MatrixRequestError as e:
            if e.errcode == "M_USER_IN_USE":
                return False
            raise

    async def set_displayname(self, user_id: str, name: str) -> None:
        await self.request(
            "PUT", f"/_matrix/client/v3/profile/{q(user_id)}/displayname", {"displayname": name}, as_user=user_id
        )

    async def join_room(self, room_id: str, *, as_user: str | None = None, displayname: str | None = None) -> None:
        """Join a room. With ``displayname`` the join event carries that name itself: a join
        copies the profile as the joining process sees it, and on workers a ghost's just-set name
        may not have reached that process yet (the room would show the bare user id)."""
        if displayname is None or as_user is None:
            await self.request("POST", f"/_matrix/client/v3/rooms/{q(room_id)}/join", {}, as_user=as_user)
            return
        await self.request("PUT", f"/_matrix/client/v3/rooms/{q(room_id)}/state/m.room.member/{q(as_user)}",
                           {"membership": "join", "displayname": displayname}, as_user=as_user)

    async def leave_room(self, room_id: str, *, as_user: str | None = None, reason: str | None = None) -> None:
        body = {"reason": reason} if reason else {}
        await self.request("POST", f"/_matrix/client/v3/rooms/{q(room_id)}/leave", body, as_user=as_user)

    async def send_event(
        self, room_id: str, event_type: str, content: dict[str, Any], txn_id: str, *, as_user: str | None = None
    ) -> str:
        data = await self.request(
            "PUT",
            f"/_matrix/client/v3/rooms/{q(room_id)}/send/{q(event_type)}/{q(txn_id)}",
            content,
            as_user=as_user,
        )
        return str(data["event_id"])

    async def send_notice(self, room_id: str, text: str, txn_id: str, *, extra: dict[str, Any] | None = None) -> str:
        content: dict[str, Any] = {"msgtype": "m.notice", "body": text}
        content.update(extra or {})
        return await self.send_event(room_id, "m.room.message", content, txn_id)

    async def create_room(self, body: dict[str, Any], *, as_user: str | None = None) -> str:
        data = await self.request("POST", "/_matrix/client/v3/createRoom", body, as_user=as_user)
        return str(data["room_id"])

    async def redact(self, room_id: str, event_id: str, txn_id: str, *, as_user: str | None = None) -> None:
        await self.request(
            "PUT", f"/_matrix/client/v3/rooms/{q(room_id)}/redact/{q(event_id)}/{q(txn_id)}", {}, as_user=as_user
        )

    async def state_event(
        self, room_id: str, event_type: str, state_key: str = "", *, as_user: str | None = None
    ) -> dict[str, Any] | None:
        """A room's current state event content, or None if the room has no such state."""
        try:
            data = await self.request(
                "GET", f"/_matrix/client/v3/rooms/{q(room_id)}/state/{q(event_type)}/{q(state_key)}", as_user=as_user
            )
        except MatrixRequestError as e:
            if e.status == 404:
                return None
            raise
        return dict(data)

    async def displayname(self, user_id: str) -> str | None:
        try:
            data = await self.request("GET", f"/_matrix/client/v3/profile/{q(user_id)}/displayname")
        except MatrixRequestError as e:
            if e.status == 404:
                return None
            raise
        name = data.get("displayname")
        return name if isinstance(name, str) and name else None

    async def send_notice_as(
        self, user_id: str, room_id: str, text: str, txn_id: str, *, extra: dict[str, Any] | None = None
    ) -> str:
        content: dict[str, Any] = {"msgtype": "m.notice", "body": text}
        content.update(extra or {})
        return await self.send_event(room_id, "m.room.message", content, txn_id, as_user=user_id)

    async def name_of(self, user_id: str) -> str:
        """What to call a user in a text: their display name, else their localpart."""
        try:
            name = await self.displayname(user_id)
        except MatrixRequestError:
            name = None
        return name or user_id[1:].split(":", 1)[0]

    async def joined_members(self, room_id: str) -> dict[str, Any]:
        data = await self.request("GET", f"/_matrix/client/v3/rooms/{q(room_id)}/joined_members")
        return dict(data.get("joined", {}))

    async def ping_appservice(self, appservice_id: str, transaction_id: str | None = None) -> int:
        body = {"transaction_id": transaction_id} if transaction_id else {}
        data = await self.request("POST", f"/_matrix/client/v1/appservice/{q(appservice_id)}/ping", body, retry=False)
        return int(data.get("duration_ms", 0))

    async def close(self) -> None:
        await self._pool.closeCachedConnections()


async def _sleep(seconds: float) -> None:
    from twisted.internet.task import deferLater

    await deferLater(reactor, seconds, lambda: None)
