"""The modules' HTTP plumbing: JSON resources with path parameters and Matrix error bodies."""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable
from typing import Any

from synapse.module_api import DirectServeJsonResource, errors

Route = Callable[..., Awaitable[tuple[int, Any]]]


class RoutedJsonResource(DirectServeJsonResource):
    """Serves everything below its mount point, dispatching on method and a path regex.

    Synapse mounts module resources with ``register_web_resource``; marking the resource
    as a leaf hands it the rest of the path, so ``/merchants/{userId}`` needs one resource.
    """

    isLeaf = True

    def __init__(self) -> None:
        super().__init__()
        self._routes: list[tuple[str, re.Pattern[str], Route]] = []

    def route(self, method: str, pattern: str, handler: Route) -> None:
        self._routes.append((method, re.compile(f"^{pattern}$"), handler))

    async def _async_render(self, request: Any) -> tuple[int, Any]:
        from urllib.parse import unquote

        path = "/" + "/".join(unquote(p.decode("utf-8")) for p in request.postpath)
        path = path.rstrip("/") if path != "/" else path
        method = request.method.decode("ascii")
        allowed = False
        for route_method, regex, handler in self._routes:
            match = regex.match(path)
            if not match:
                continue
            allowed = True
            if route_method == method:
                return await handler(request, **match.groupdict())
        if allowed:
            raise errors.SynapseError(405, f"{method} is not allowed here", errors.Codes.UNRECOGNIZED)
        raise errors.SynapseError(404, "Unknown Wangxin endpoint", errors.Codes.UNRECOGNIZED)


USER_ID_RE = re.compile(r"^@[^:\s]+:[^\s]+$")


def bearer_matches(request: Any, secret: str | None) -> bool:
    """Whether the request's bearer token is ``secret`` (compared in constant time)."""
    import hmac

    header = request.getHeader(b"authorization")
    if not secret or not header:
        return False
    token = header.decode("utf-8", "replace").removeprefix("Bearer ")
    return hmac.compare_digest(token.encode(), secret.encode())


async def acting_user(request: Any, api: Any, service_secret: str | None, *, service_only: bool = False) -> str:
    """The user a request acts for: the access token's owner, or, when the bearer token is the
    modules' service secret (the bridge bot acting for the sender of a command), ``?user_id=``."""
    if bearer_matches(request, service_secret):
        args = request.args.get(b"user_id")
        user_id = args[0].decode("utf-8") if args else ""
        if not USER_ID_RE.match(user_id) or not api.is_mine(user_id):
            raise errors.SynapseError(400, "user_id must name a local user", errors.Codes.INVALID_PARAM)
        return user_id
    if service_only:
        raise errors.SynapseError(403, "Only the Wangxin bridge may call this", errors.Codes.FORBIDDEN)
    requester = await api.get_user_by_req(request)
    return str(requester.user.to_string())


class ModuleDb:
    """``api.run_db_interaction`` that first creates the module's tables (once per process)."""

    def __init__(self, api: Any, name: str, create_schema_txn: Callable[[Any], None]):
        self._api = api
        self._name = name
        self._create_schema_txn = create_schema_txn
        self._ready = False

    async def run(self, desc: str, func: Any, *args: Any) -> Any:
        if not self._ready:
            await self._api.run_db_interaction(f"{self._name}_schema", self._create_schema_txn)
            self._ready = True
        return await self._api.run_db_interaction(desc, func, *args)
