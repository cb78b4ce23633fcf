"""The bots' view of the parcels module's HTTP API (docs/parcels.md, "HTTP for people, bots and
merchants").

A bot reads for the person who sent it a command, never for anyone else: it authenticates with
the modules' service secret (``service_secret`` in the module's config and in the bot's) and
names that person as ``?user_id=``. The module answers with that person's parcels only (or, for
a merchant, the shipments that named them), so the bot cannot show one person's parcels to
another even by mistake in what it asks.
"""

from __future__ import annotations

from typing import Any

import aiohttp

from bots.parcels.text import ParcelView, parse_parcels

API = "/_synapse/client/wangxin/v1"


class ParcelsApiError(RuntimeError):
    """The module answered with an unexpected status or body."""


class ParcelsApi:
    def __init__(self, homeserver_url: str, service_secret: str):
        self._url = homeserver_url.rstrip("/")
        self._secret = service_secret

    async def _get(self, path: str, params: dict[str, str]) -> Any:
        async with aiohttp.ClientSession() as session:
            async with session.get(f"{self._url}{API}{path}", params=params,
                                   headers={"Authorization": f"Bearer {self._secret}"},
                                   timeout=aiohttp.ClientTimeout(total=30)) as r:
                body = await r.json(content_type=None)
                if r.status != 200 or not isinstance(body, dict):
                    raise ParcelsApiError(f"GET {path} for {params.get('user_id')}: {r.status} {body!r:.300}")
                return body

    async def parcels_of(self, user_id: str) -> list[ParcelView]:
        """The person's parcels on their way and those over in the last 30 days, newest first."""
        body = await self._get("/parcels", {"user_id": user_id})
        try:
            return parse_parcels(body["parcels"])
        except (KeyError, TypeError, ValueError) as e:
            raise ParcelsApiError(f"unexpected GET /parcels answer: {e}") from e

    async def shipments_of_merchant(self, merchant: str, order_id: str | None = None) -> list[ParcelView]:
        """The merchant's recent shipments (one order's, if given), newest first."""
        params = {"user_id": merchant}
        if order_id is not None:
            params["order_id"] = order_id
        body = await self._get("/parcels/merchant", params)
        try:
            return parse_parcels(body["shipments"])
        except (KeyError, TypeError, ValueError) as e:
            raise ParcelsApiError(f"unexpected GET /parcels/merchant answer: {e}") from e
