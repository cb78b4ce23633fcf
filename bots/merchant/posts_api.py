"""The merchant bot's view of the accounts' posting API (docs/accounts.md, "Posting").

The bot authenticates as itself and names the owner who wrote to it as ``?user_id=``; the module
lets the merchant bot (the accounts' bot) act so for an account's owner only, and for nothing
else, so the bot cannot post for anyone but the person who sent the command.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

import aiohttp
import attrs

API = "/_synapse/client/wangxin/v1"


class PostsApiError(RuntimeError):
    """The module answered with an unexpected status or body."""


@attrs.frozen
class OwnedAccount:
    account_id: str
    kind: str
    name: str
    sender: str = ""  # the account's user, whom its posts come from (a merchant's: the merchant)


@attrs.frozen
class Answer:
    status: int
    body: dict[str, Any]

    @property
    def error(self) -> str:
        return str(self.body.get("error") or f"the server answered {self.status}")


class PostsApi:
    def __init__(self, homeserver_url: str, access_token: str = ""):
        self._url = homeserver_url.rstrip("/")
        self._token = access_token

    def use_token(self, access_token: str) -> None:
        self._token = access_token

    async def _call(self, method: str, path: str, user_id: str, body: dict[str, Any] | None = None,
                    **params: str) -> Answer:
        async with aiohttp.ClientSession() as session:
            async with session.request(method, f"{self._url}{API}{path}", params={"user_id": user_id, **params},
                                       json=body,
                                       headers={"Authorization": f"Bearer {self._token}"},
                                       timeout=aiohttp.ClientTimeout(total=60)) as r:
                answer = await r.json(content_type=None)
                if not isinstance(answer, dict):
                    raise PostsApiError(f"{method} {path}: {r.status} {answer!r:.200}")
                return Answer(r.status, answer)

    async def owned(self, user_id: str) -> list[OwnedAccount]:
        answer = await self._call("GET", f"/owners/{quote(user_id)}/accounts", user_id)
        if answer.status != 200:
            raise PostsApiError(f"owned accounts of {user_id}: {answer.status} {answer.body!r:.200}")
        return [OwnedAccount(a["account_id"], a["kind"], a["name"], str(a.get("sender") or ""))
                for a in answer.body["accounts"]]

    async def post(self, account_id: str, user_id: str, text: str, at: int | None = None) -> Answer:
        body: dict[str, Any] = {"body": text}
        if at is not None:
            body["at"] = at
        return await self._call("POST", f"/accounts/{quote(account_id)}/posts", user_id, body)

    async def post_product(self, account_id: str, user_id: str, caption: str, product: dict[str, Any],
                           image: dict[str, Any]) -> Answer:
        """A product post, sent by the server from the account's user: ``product`` is
        ``{id, title, price, currency, url}``, ``image`` ``{url, filename?, info?}``."""
        return await self._call("POST", f"/accounts/{quote(account_id)}/posts", user_id,
                                {"body": caption, "product": product, "image": image})

    async def scheduled(self, account_id: str, user_id: str) -> list[dict[str, Any]]:
        answer = await self._call("GET", f"/accounts/{quote(account_id)}/posts", user_id, state="scheduled")
        if answer.status != 200:
            raise PostsApiError(f"scheduled posts of {account_id}: {answer.status} {answer.body!r:.200}")
        return list(answer.body["posts"])

    async def cancel(self, account_id: str, user_id: str, post_id: str) -> Answer:
        return await self._call("DELETE", f"/accounts/{quote(account_id)}/posts/{quote(post_id)}", user_id)
