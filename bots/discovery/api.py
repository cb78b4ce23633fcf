"""The discovery bot's view of the discovery module's HTTP API (docs/discovery.md).

The bot acts for the person who sent it a command, never for anyone else: it authenticates with
the discovery module's ``service_secret`` and names that person as ``?user_id=``, so every call
has exactly the effect of the same call made with the person's own token, limits included (they
count per person, not per bot). The calls for no person are the two feeds the bot reads to tell
people what concerns them: ``changes`` (changed requests) and ``coupon_changes`` (coupons asked
for, delayed, issued or not given).

A refused call raises ``ApiError`` with the module's status, error code and sentence; the
commands turn it into a plain answer (``text.plain_error``).
"""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import quote

import aiohttp
import attrs

PREFIX = "/_synapse/client/wangxin/v1/discovery"
# A shake or an angle answers when its window closes (at most 60 s, plus a settle time).
TIMEOUT_S = 90


@attrs.frozen
class ApiError(Exception):
    """The module refused a call: ``status``, ``errcode``, its sentence, and for a 429 when to
    try again and which limit (``org.wangxin.limit``)."""

    status: int
    errcode: str
    message: str
    retry_after_ms: int | None = None
    limit: str | None = None

    def __str__(self) -> str:
        return f"{self.status} {self.errcode}: {self.message}"


def api_error(status: int, body: Any) -> ApiError:
    body = body if isinstance(body, dict) else {}
    retry = body.get("retry_after_ms")
    limit = body.get("org.wangxin.limit")
    return ApiError(status, str(body.get("errcode") or "M_UNKNOWN"), str(body.get("error") or f"HTTP {status}"),
                    retry if isinstance(retry, int) and not isinstance(retry, bool) else None,
                    limit if isinstance(limit, str) else None)


class DiscoveryApi:
    def __init__(self, homeserver_url: str, service_secret: str):
        self._url = homeserver_url.rstrip("/")
        self._secret = service_secret
        self._session: aiohttp.ClientSession | None = None

    async def call(self, method: str, path: str, user_id: str | None, body: dict[str, Any] | None = None,
                   params: dict[str, str] | None = None) -> dict[str, Any]:
        """``method PREFIX+path`` for ``user_id``; the answer's JSON object, or ``ApiError``."""
        if self._session is None:
            self._session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=TIMEOUT_S))
        query = dict(params or {})
        if user_id is not None:
            query["user_id"] = user_id
        # json.dumps writes NaN and Infinity as such: the module names the field they are in.
        data = None if body is None else json.dumps(body)
        async with self._session.request(method, f"{self._url}{PREFIX}{path}", params=query, data=data,
                                         headers={"Authorization": f"Bearer {self._secret}",
                                                  "Content-Type": "application/json"}) as r:
            answer = await r.json(content_type=None)
            if r.status != 200 or not isinstance(answer, dict):
                raise api_error(r.status, answer)
            return answer

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    # -- one method per call, as docs/discovery.md lists them --------------------------------

    async def profile(self, user_id: str) -> dict[str, Any]:
        return await self.call("GET", "/profile", user_id)

    async def set_profile(self, user_id: str, enabled: bool, name: str | None = None) -> dict[str, Any]:
        body: dict[str, Any] = {"enabled": enabled}
        if name is not None:
            body["name"] = name
        return await self.call("PUT", "/profile", user_id, body)

    async def set_location(self, user_id: str, latitude: float, longitude: float) -> dict[str, Any]:
        return await self.call("PUT", "/location", user_id, {"latitude": latitude, "longitude": longitude})

    async def stop_location(self, user_id: str) -> dict[str, Any]:
        return await self.call("DELETE", "/location", user_id)

    async def nearby(self, user_id: str) -> list[dict[str, Any]]:
        return list((await self.call("GET", "/nearby", user_id))["people"])

    async def say_hi(self, user_id: str, target: str, text: str | None) -> str:
        body: dict[str, Any] = {"user_id": target}
        if text:
            body["text"] = text
        return str((await self.call("POST", "/requests", user_id, body))["request_id"])

    async def shake(self, user_id: str) -> dict[str, Any]:
        return await self.call("POST", "/shake", user_id, {})

    async def angle(self, user_id: str, degrees: float) -> dict[str, Any]:
        """你我36.8度: answers when the window closes, ``{"paired", "request_id"?, "paired_with"?,
        "within_tolerance"?}``."""
        return await self.call("POST", "/angle", user_id, {"angle": degrees})

    async def join_video(self, user_id: str, language: str | None = None) -> dict[str, Any]:
        """面对面: ``{"state": "waiting", "expires_ts"}`` or ``{"state": "paired", "paired_with", "request_id"}``."""
        return await self.call("POST", "/video", user_id, {"language": language} if language else {})

    async def leave_video(self, user_id: str) -> dict[str, Any]:
        return await self.call("DELETE", "/video", user_id)

    async def video(self, user_id: str) -> dict[str, Any]:
        """Whether they wait in the face-to-face queue: ``{"state": "waiting", "expires_ts"}`` or
        ``{"state": "none"}``."""
        return await self.call("GET", "/video", user_id)

    async def coupons(self, user_id: str) -> list[dict[str, Any]]:
        """Their own coupons, newest first."""
        return list((await self.call("GET", "/coupons", user_id))["coupons"])

    async def throw(self, user_id: str, text: str) -> str:
        return str((await self.call("POST", "/bottles", user_id, {"text": text}))["bottle_id"])

    async def pick(self, user_id: str) -> dict[str, Any]:
        return await self.call("POST", "/bottles/pick", user_id, {})

    async def reply(self, user_id: str, bottle_id: str, text: str) -> str:
        answer = await self.call("POST", f"/bottles/{quote(bottle_id, safe='')}/reply", user_id, {"text": text})
        return str(answer["request_id"])

    async def requests(self, user_id: str) -> list[dict[str, Any]]:
        return list((await self.call("GET", "/requests", user_id))["requests"])

    async def answer(self, user_id: str, request_id: str, accept: bool) -> dict[str, Any]:
        verb = "accept" if accept else "decline"
        return await self.call("POST", f"/requests/{quote(request_id, safe='')}/{verb}", user_id, {})

    async def block(self, user_id: str, target: str) -> dict[str, Any]:
        return await self.call("POST", "/block", user_id, {"user_id": target})

    async def report(self, user_id: str, target: str, reason: str) -> dict[str, Any]:
        return await self.call("POST", "/report", user_id, {"user_id": target, "reason": reason})

    async def changes(self, since: str | None, limit: int) -> dict[str, Any]:
        """The feed of changed requests (the bot's own call): ``{"changes": [...], "next"}``."""
        params = {"limit": str(limit), **({"since": since} if since else {})}
        return await self.call("GET", "/requests/changes", None, params=params)

    async def coupon_changes(self, since: str | None, limit: int) -> dict[str, Any]:
        """The feed of changed coupons, one entry per person and pairing (the bot's own call):
        ``{"changes": [{"pairing_id", "user_id", "with", "state", ...}], "next"}``."""
        params = {"limit": str(limit), **({"since": since} if since else {})}
        return await self.call("GET", "/coupons/changes", None, params=params)
