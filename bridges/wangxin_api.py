"""Calls from the bridge bot to the Wangxin Synapse modules, on behalf of the user who asked.

The modules accept their service secret with ``?user_id=`` in place of that user's access
token; the bridge only ever passes the sender of the command it is answering.
"""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import quote

import treq

from bridges.matrix_client import MatrixClient, MatrixRequestError

API = "/_synapse/client/wangxin/v1"


class WangxinApi:
    def __init__(self, client: MatrixClient, service_secret: str | None):
        self._client = client
        self._secret = service_secret

    @property
    def available(self) -> bool:
        return bool(self._secret)

    def _headers(self) -> dict[bytes | str, bytes | str]:
        return {"Authorization": f"Bearer {self._secret}", "Content-Type": "application/json"}

    async def call(self, method: str, path: str, user_id: str, body: Any = None) -> Any:
        if not self._secret:
            raise MatrixRequestError(0, "WX_NOT_CONFIGURED", "the bridge has no service_secret for the modules")
        response = await treq.request(
            method,
            self._client.base_url + API + path,
            params={"user_id": user_id},
            headers=self._headers(),
            data=json.dumps(body).encode() if body is not None else None,
            timeout=60,
        )
        text = await response.text("utf-8")
        data = json.loads(text) if text else {}
        if not 200 <= response.code < 300:
            raise MatrixRequestError(response.code, data.get("errcode"), data.get("error"), data)
        return data

    async def resolve_alias(self, alias: str) -> str:
        data = await self._client.request("GET", f"/_matrix/client/v3/directory/room/{quote(alias, safe='')}")
        return str(data["room_id"])
