"""The application-service API that Synapse calls: transactions, user queries and ping.

Facts this relies on (``docs/synapse.md``, "Application services"): Synapse sends one
transaction at a time, at most 100 events each, and retries a failed one with the same id,
so ids are deduplicated durably; the token arrives as ``Authorization: Bearer <hs_token>``.
"""

from __future__ import annotations

import hmac
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from bridges.config import BridgeConfig
from bridges.http import MatrixError, Router, read_json_object
from bridges.store import BridgeStore

logger = logging.getLogger(__name__)

GhostResolver = Callable[[str], Awaitable[bool]]


class AppserviceApi:
    def __init__(
        self,
        config: BridgeConfig,
        store: BridgeStore,
        on_new_events: Callable[[], None],
        resolve_ghost: GhostResolver,
    ):
        self._config = config
        self._store = store
        self._on_new_events = on_new_events
        self._resolve_ghost = resolve_ghost
        self.transactions_received = 0

    def install(self, router: Router) -> None:
        prefix = "/_matrix/app/v1"
        router.add("PUT", prefix + r"/transactions/(?P<txn_id>[^/]+)", self._put_transaction)
        router.add("GET", prefix + r"/users/(?P<user_id>[^/]+)", self._get_user)
        router.add("GET", prefix + r"/rooms/(?P<alias>[^/]+)", self._get_room_alias)
        router.add("POST", prefix + "/ping", self._post_ping)

    def _check_token(self, request: Any) -> None:
        """401 when Synapse sent no token, 403 when it is wrong (appservice API spec)."""
        raw = request.getHeader(b"authorization")
        header = raw.decode("utf-8", "replace") if raw else ""
        token: str | None = None
        if header.startswith("Bearer "):
            token = header[len("Bearer ") :]
        elif request.args.get(b"access_token"):
            # use_appservice_legacy_authorization: true sends it in the query string.
            token = request.args[b"access_token"][0].decode("utf-8", "replace")
        if token is None:
            raise MatrixError(401, "M_UNAUTHORIZED", "Missing hs_token: send Authorization: Bearer <hs_token>")
        if not hmac.compare_digest(token.encode(), self._config.appservice.hs_token.encode()):
            raise MatrixError(403, "M_FORBIDDEN", "The hs_token is not this bridge's hs_token")

    async def _put_transaction(self, request: Any, txn_id: str) -> tuple[int, Any]:
        self._check_token(request)
        body = read_json_object(request, max_bytes=64 * 1024 * 1024)
        events = body.get("events", [])
        if not isinstance(events, list):
            raise MatrixError(400, "M_BAD_JSON", "'events' must be a list")
        fresh = await self._store.accept_transaction(txn_id, [e for e in events if isinstance(e, dict)])
        if fresh:
            self.transactions_received += 1
            self._on_new_events()
        else:
            logger.info("Transaction %s was already accepted; acknowledging without processing", txn_id)
        return 200, {}

    async def _get_user(self, request: Any, user_id: str) -> tuple[int, Any]:
        self._check_token(request)
        if self._config.is_ghost(user_id) and await self._resolve_ghost(user_id):
            return 200, {}
        raise MatrixError(404, "M_NOT_FOUND", f"{user_id} is not a user this bridge provides")

    async def _get_room_alias(self, request: Any, alias: str) -> tuple[int, Any]:
        self._check_token(request)
        raise MatrixError(404, "M_NOT_FOUND", "This bridge does not provide room aliases")

    async def _post_ping(self, request: Any) -> tuple[int, Any]:
        self._check_token(request)
        body = read_json_object(request)
        logger.info("Ping from the homeserver (transaction_id=%s)", body.get("transaction_id"))
        return 200, {}
