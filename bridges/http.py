"""JSON-over-HTTP plumbing for the bridge's Twisted web server: routing and Matrix error bodies."""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import unquote

from twisted.internet import defer
from twisted.web import resource, server
from twisted.web.iweb import IRequest

logger = logging.getLogger(__name__)

Handler = Callable[..., Awaitable[tuple[int, Any]]]


class MatrixError(Exception):
    """Answered as ``{"errcode": ..., "error": ...}`` with the given HTTP status."""

    def __init__(self, status: int, errcode: str, error: str, **extra: Any):
        super().__init__(error)
        self.status = status
        self.errcode = errcode
        self.error = error
        self.extra = extra

    def body(self) -> dict[str, Any]:
        return {"errcode": self.errcode, "error": self.error, **self.extra}


def _refuse_constant(name: str) -> Any:
    # Python's decoder accepts NaN and ±Infinity, which are not JSON (RFC 8259) and no Matrix server sends.
    raise MatrixError(400, "M_BAD_JSON", f"The request body contains {name}, which is not a JSON number")


def read_json_object(request: IRequest, max_bytes: int = 10 * 1024 * 1024) -> dict[str, Any]:
    """The body as a JSON object, or a 4xx ``MatrixError`` saying what is wrong with it."""
    raw = request.content.read(max_bytes + 1)  # type: ignore[attr-defined]
    if len(raw) > max_bytes:
        raise MatrixError(413, "M_TOO_LARGE", f"The request body is larger than {max_bytes} bytes")
    try:
        body = json.loads(raw or b"{}", parse_constant=_refuse_constant)
    except RecursionError:
        # The decoder recurses once per level; Synapse itself cannot produce such depths.
        raise MatrixError(400, "M_BAD_JSON", "The request body is nested too deeply") from None
    except ValueError:
        raise MatrixError(400, "M_NOT_JSON", "The request body is not valid JSON") from None
    if not isinstance(body, dict):
        raise MatrixError(400, "M_BAD_JSON", "The request body must be a JSON object")
    return body


class Router(resource.Resource):
    """A leaf resource dispatching ``(method, path regex)`` to async handlers returning ``(status, body)``."""

    isLeaf = True

    def __init__(self) -> None:
        super().__init__()
        self._routes: list[tuple[str, re.Pattern[str], Handler]] = []

    def add(self, method: str, pattern: str, handler: Handler) -> None:
        self._routes.append((method, re.compile(f"^{pattern}$"), handler))

    def render(self, request: IRequest) -> Any:  # type: ignore[override]
        defer.ensureDeferred(self._dispatch(request))
        return server.NOT_DONE_YET

    async def _dispatch(self, request: Any) -> None:
        path = unquote(request.path.decode("utf-8", "replace"))
        method = request.method.decode("ascii", "replace")
        try:
            status, body = await self._route(request, method, path)
        except MatrixError as e:
            status, body = e.status, e.body()
        except Exception:
            logger.exception("Error handling %s %s", method, path)
            status, body = 500, {"errcode": "M_UNKNOWN", "error": "Internal error in the Wangxin bridge"}
        if request._disconnected:  # the client went away; nothing to answer
            return
        if isinstance(body, bytes):
            payload = body
        else:
            payload = json.dumps(body).encode("utf-8")
            request.setHeader(b"Content-Type", b"application/json")
        request.setResponseCode(status)
        request.setHeader(b"Content-Length", str(len(payload)).encode())
        request.write(payload)
        request.finish()

    async def _route(self, request: Any, method: str, path: str) -> tuple[int, Any]:
        allowed = False
        for route_method, regex, handler in self._routes:
            match = regex.match(path)
            if match:
                allowed = True
                if route_method == method:
                    return await handler(request, **match.groupdict())
        if allowed:
            raise MatrixError(405, "M_UNRECOGNIZED", f"{method} is not allowed on {path}")
        raise MatrixError(404, "M_UNRECOGNIZED", f"Unknown endpoint {path}")
