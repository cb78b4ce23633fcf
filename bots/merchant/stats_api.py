"""The merchant bot's view of an account's stats (``GET /accounts/{id}/stats``, docs/accounts.md,
"Stats"). The bot authenticates as itself and names the owner who asked as ``?user_id=``; the
module answers only when that person owns the account (or is a server admin)."""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

import aiohttp

API = "/_synapse/client/wangxin/v1"


class StatsApiError(RuntimeError):
    """The module answered with an unexpected status or body."""


class NotYours(Exception):
    """The account is unknown, or the person who asked does not own it."""


class StatsApi:
    def __init__(self, homeserver_url: str, access_token: str = ""):
        self._url = homeserver_url.rstrip("/")
        self._token = access_token

    def use_token(self, access_token: str) -> None:
        self._token = access_token

    async def stats(self, account_id: str, user_id: str, days: int) -> dict[str, Any]:
        async with aiohttp.ClientSession() as session:
            async with session.get(f"{self._url}{API}/accounts/{quote(account_id)}/stats",
                                   params={"user_id": user_id, "days": str(days)},
                                   headers={"Authorization": f"Bearer {self._token}"},
                                   timeout=aiohttp.ClientTimeout(total=120)) as r:
                body = await r.json(content_type=None)
                if r.status in (403, 404):
                    raise NotYours(account_id)
                if r.status != 200 or not isinstance(body, dict):
                    raise StatsApiError(f"stats of {account_id}: {r.status} {body!r:.200}")
                return body
