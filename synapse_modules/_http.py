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
