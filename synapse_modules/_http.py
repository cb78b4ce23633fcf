"""The modules' HTTP plumbing: JSON resources with path parameters and Matrix error bodies."""

from __future__ import annotations

import hmac
import json
import re
from collections.abc import Awaitable, Callable, Mapping
from typing import Any
from urllib.parse import unquote

from synapse.module_api import DirectServeJsonResource, ModuleApi, errors

# A handler answers ``(status, JSON body)``, or ``None`` when it wrote its response itself (an HTML
# page, an image).
Route = Callable[..., Awaitable[tuple[int, Any] | None]]


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

    async def _async_render(self, request: Any) -> tuple[int, Any] | None:
        try:
            path = "/" + "/".join(unquote(p.decode("utf-8"), errors="strict") for p in request.postpath)
        except UnicodeDecodeError:
            raise errors.SynapseError(400, "The path is not UTF-8", errors.Codes.INVALID_PARAM) from None
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

# Request bodies: big enough for any legitimate call (a purchase with 100 items of 1 KiB), small
# enough that parsing and checking one stays cheap. Nesting deeper than this is never a real body.
MAX_JSON_BODY_BYTES = 256 * 1024
MAX_JSON_DEPTH = 32
# Numbers every JSON implementation reads exactly (Matrix's canonical JSON uses the same range).
MAX_SAFE_INTEGER = 2**53 - 1


def _json_error(code: int, message: str, errcode: str) -> Exception:
    return errors.SynapseError(code, message, errcode)


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def json_path(parent: str, key: str | int) -> str:
    """``items[3].sku`` style names for error messages."""
    if isinstance(key, int):
        return f"{parent}[{key}]"
    return f"{parent}.{key}" if parent else key


def check_json_value(value: Any, path: str = "", max_depth: int = MAX_JSON_DEPTH) -> None:
    """Raise 400 ``M_BAD_JSON`` naming the field if a parsed JSON value holds a string that is
    not valid Unicode (an unpaired UTF-16 surrogate, which ``\\ud800`` escapes produce and
    nothing can store or send on), a number that is not finite or beyond ±(2^53 - 1), or nests
    deeper than ``max_depth``. Iterative: no recursion, whatever the input."""
    stack: list[tuple[Any, str, int]] = [(value, path, 0)]
    while stack:
        item, where, depth = stack.pop()
        name = f"'{where}'" if where else "the body"
        if isinstance(item, str):
            if not _is_unicode(item):
                raise _json_error(400, f"{name} is not valid Unicode (it holds an unpaired UTF-16 surrogate)",
                                  errors.Codes.BAD_JSON)
        elif isinstance(item, bool) or item is None:
            continue
        elif isinstance(item, int):
            if abs(item) > MAX_SAFE_INTEGER:
                raise _json_error(400, f"{name} is out of range (at most ±{MAX_SAFE_INTEGER})", errors.Codes.BAD_JSON)
        elif isinstance(item, float):
            if item != item or item in (float("inf"), float("-inf")):
                raise _json_error(400, f"{name} must be a finite number", errors.Codes.BAD_JSON)
        elif isinstance(item, (Mapping, list)):
            if depth >= max_depth:
                raise _json_error(400, f"{name} is nested deeper than {max_depth} levels", errors.Codes.BAD_JSON)
            if isinstance(item, Mapping):
                for key, child in item.items():
                    if not _is_unicode(key):
                        raise _json_error(400, f"a key in {name} is not valid Unicode "
                                          "(it holds an unpaired UTF-16 surrogate)", errors.Codes.BAD_JSON)
                    stack.append((child, json_path(where, key), depth + 1))
            else:
                stack.extend((child, json_path(where, i), depth + 1) for i, child in enumerate(item))


def _is_unicode(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def parse_json_object(request: Any, *, max_bytes: int = MAX_JSON_BODY_BYTES,
                      max_depth: int = MAX_JSON_DEPTH, name_non_finite: bool = False) -> dict[str, Any]:
    """The request body as a JSON object, strictly, for every Wangxin endpoint that takes one.

    - over ``max_bytes``: 413 ``M_TOO_LARGE``;
    - not UTF-8, not JSON, or JSON's non-standard ``NaN`` / ``Infinity``: 400 ``M_NOT_JSON``;
    - nested deeper than ``max_depth`` (also what would exhaust the parser's recursion), a string
      with an unpaired surrogate, a number not finite or beyond ±(2^53 - 1), or not an object:
      400 ``M_BAD_JSON`` naming the field (:func:`check_json_value`).

    An empty body is ``{}``. Nothing here recurses on the input, so no body can raise
    ``RecursionError`` (a 500) in the caller either. With ``name_non_finite``, ``NaN`` and
    ``Infinity`` are read as numbers so that the 400 ``M_BAD_JSON`` names their field (a
    position from a phone's sensor: "'latitude' must be a finite number").
    """
    request.content.seek(0)
    raw = request.content.read(max_bytes + 1)
    if len(raw) > max_bytes:
        raise _json_error(413, f"The request body is larger than {max_bytes} bytes", errors.Codes.TOO_LARGE)
    if not raw.strip():
        return {}
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise _json_error(400, "The body is not UTF-8 JSON", errors.Codes.NOT_JSON) from None
    try:
        body = json.loads(text) if name_non_finite else json.loads(text, parse_constant=_reject_constant)
    except RecursionError:
        raise _json_error(400, f"The body is nested deeper than {max_depth} levels", errors.Codes.BAD_JSON) from None
    except ValueError:  # includes json.JSONDecodeError, and integers too long to convert
        raise _json_error(400, "The body is not valid JSON", errors.Codes.NOT_JSON) from None
    if not isinstance(body, dict):
        raise _json_error(400, "The body must be a JSON object", errors.Codes.BAD_JSON)
    check_json_value(body, "", max_depth)
    return body


def text_field(body: Any, key: str, max_chars: int, *, path: str | None = None) -> str:
    """``body[key]``, a non-empty string of at most ``max_chars`` characters: 400 ``M_BAD_JSON``
    if it is missing, not a string or not valid Unicode, 413 ``M_TOO_LARGE`` if it is longer;
    both name the field (``path``, default ``key``)."""
    name = path or key
    value = body.get(key) if isinstance(body, Mapping) else None
    if not isinstance(value, str) or not value.strip():
        raise _json_error(400, f"'{name}' must be a non-empty string", errors.Codes.BAD_JSON)
    if not _is_unicode(value):
        raise _json_error(400, f"'{name}' is not valid Unicode (it holds an unpaired UTF-16 surrogate)",
                          errors.Codes.BAD_JSON)
    if len(value) > max_chars:
        raise _json_error(413, f"'{name}' is longer than {max_chars} characters", errors.Codes.TOO_LARGE)
    return value


def query_arg(request: Any, name: str) -> str | None:
    """The first ``?name=`` of the request, decoded; ``None`` when absent. Not UTF-8: 400
    ``M_INVALID_PARAM`` naming it."""
    values = request.args.get(name.encode("ascii"))
    if not values:
        return None
    try:
        return str(values[0].decode("utf-8"))
    except UnicodeDecodeError:
        raise errors.SynapseError(400, f"'{name}' is not UTF-8", errors.Codes.INVALID_PARAM) from None


def bearer_matches(request: Any, secret: str | None) -> bool:
    """Whether the request's bearer token is ``secret`` (compared in constant time)."""
    header = request.getHeader(b"authorization")
    if not secret or not header:
        return False
    token = header.decode("utf-8", "replace").removeprefix("Bearer ")
    return hmac.compare_digest(token.encode(), secret.encode())


async def acting_user(request: Any, api: ModuleApi, service_secret: str | None, *, service_only: bool = False) -> str:
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
