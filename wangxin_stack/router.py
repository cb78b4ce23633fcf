"""A small reverse proxy in front of a worker topology, as nginx would be in production.

Requests go where Synapse's worker documentation says a worker of that kind can serve them:
sync (``/v3/sync``, the simplified sliding sync of Element X, ``/events``, ``initialSync``) to
the sync worker, media (``/_matrix/media``, ``/_matrix/client/v1/media`` and the media admin
API) to the media worker, the other documented generic-worker paths to the generic worker, the
rest to the main process. Like a production proxy with gzip on for ``application/json``, it
compresses JSON answers for clients that accept gzip (Synapse's own ``compress`` listener
option works on the main process only, and would compress images too).
"""

from __future__ import annotations

import re
import zlib
from typing import Any

from twisted.internet import reactor
from twisted.web import resource, server
from twisted.web.proxy import ProxyClient, ProxyClientFactory

SYNC_PATHS = [
    r"^/_matrix/client/(r0|v3)/sync$",
    r"^/_matrix/client/(api/v1|r0|v3)/events$",
    r"^/_matrix/client/(api/v1|r0|v3)/initialSync$",
    r"^/_matrix/client/(api/v1|r0|v3)/rooms/[^/]+/initialSync$",
    # MSC4186, Element X's sync: a generic worker serves it (its store includes the sliding-sync
    # connection tables), and one process for all of a user's connections keeps their caches warm.
    r"^/_matrix/client/unstable/org\.matrix\.simplified_msc3575/sync$",
]
MEDIA_PATHS = [
    r"^/_matrix/media/",
    r"^/_matrix/client/v1/media/",
    r"^/_synapse/admin/v1/purge_media_cache$",
    r"^/_synapse/admin/v1/room/.*/media.*$",
    r"^/_synapse/admin/v1/user/.*/media.*$",
    r"^/_synapse/admin/v1/media/.*$",
    r"^/_synapse/admin/v1/quarantine_media/.*$",
    r"^/_synapse/admin/v1/users/.*/media$",
]
WORKER_PATHS = [
    r"^/_matrix/client/(api/v1|r0|v3|unstable)/rooms/[^/]+/(messages|context/.*|members|joined_members|state.*)$",
    r"^/_matrix/client/(api/v1|r0|v3|unstable)/rooms/[^/]+/send/",
    r"^/_matrix/client/(api/v1|r0|v3|unstable)/rooms/[^/]+/(join|invite|leave|ban|unban|kick)$",
    r"^/_matrix/client/(api/v1|r0|v3|unstable)/join/",
    r"^/_matrix/client/(api/v1|r0|v3|unstable)/profile/",
    r"^/_matrix/client/(r0|v3|unstable)/keys/query$",
    r"^/_matrix/client/(r0|v3|unstable)/joined_rooms$",
]


def _any_of(patterns: list[str]) -> re.Pattern[str]:
    return re.compile("|".join(f"(?:{p})" for p in patterns))


_SYNC_RE, _MEDIA_RE, _WORKER_RE = _any_of(SYNC_PATHS), _any_of(MEDIA_PATHS), _any_of(WORKER_PATHS)
_ACCEPTS_GZIP = re.compile(rb"(^|[\s,])gzip($|[\s,;])")
GZIP_LEVEL = 6  # nginx's gzip_comp_level is 1..9; 6 gives most of 9's saving on JSON at a third of its CPU


class WorkerRouter(resource.Resource):
    isLeaf = True

    def __init__(self, main_port: int, worker_port: int, sync_port: int | None = None,
                 media_port: int | None = None):
        super().__init__()
        self.main_port = main_port
        self.worker_port = worker_port
        self.sync_port = sync_port or worker_port
        self.media_port = media_port or main_port  # without a media worker, the main process's media repo

    def backend_for(self, path: str) -> int:
        if _SYNC_RE.match(path):
            return self.sync_port
        if _MEDIA_RE.match(path):
            return self.media_port
        return self.worker_port if _WORKER_RE.match(path) else self.main_port

    def render(self, request: Any) -> Any:
        port = self.backend_for(request.path.decode("utf-8", "replace"))
        request.content.seek(0, 0)
        headers = request.getAllHeaders().copy()
        headers[b"host"] = f"127.0.0.1:{port}".encode()
        headers[b"x-forwarded-for"] = request.getClientAddress().host.encode()
        # The backend answers plainly; this proxy compresses (GzipProxyClient).
        accepts_gzip = bool(_ACCEPTS_GZIP.search(headers.pop(b"accept-encoding", b"")))
        # HTTP/1.0 to the backend: it then answers with a plain body, never chunked.
        factory = ProxyClientFactory(request.method, request.uri, b"HTTP/1.0", headers,
                                     request.content.read(), request)
        factory.protocol = GzipProxyClient if accepts_gzip else ProxyClient  # type: ignore[assignment]
        reactor.connectTCP("127.0.0.1", port, factory)
        return server.NOT_DONE_YET


def gzip_worth_it(content_type: bytes | None, content_encoding: bytes | None) -> bool:
    """JSON only (images and files are compressed already), and not twice."""
    return content_encoding is None and (content_type or b"").split(b";")[0].strip().lower() == b"application/json"


class GzipProxyClient(ProxyClient):
    """Passes the backend's answer on, gzipped when it is JSON (the client accepts gzip)."""

    _compressor: Any = None

    def handleEndHeaders(self) -> None:
        father = self.father
        content_type = (father.responseHeaders.getRawHeaders(b"content-type") or [None])[0]
        content_encoding = (father.responseHeaders.getRawHeaders(b"content-encoding") or [None])[0]
        if father.method != b"HEAD" and father.code not in (204, 304) and gzip_worth_it(content_type, content_encoding):
            self._compressor = zlib.compressobj(GZIP_LEVEL, zlib.DEFLATED, 16 + zlib.MAX_WBITS)
            father.responseHeaders.removeHeader(b"content-length")
            father.responseHeaders.setRawHeaders(b"content-encoding", [b"gzip"])
            father.responseHeaders.addRawHeader(b"vary", b"Accept-Encoding")

    def handleResponsePart(self, buffer: bytes) -> None:
        if self._compressor is None:
            super().handleResponsePart(buffer)
        else:
            compressed = self._compressor.compress(buffer)
            if compressed:
                self.father.write(compressed)

    def handleResponseEnd(self) -> None:
        if self._compressor is not None and not self._finished:
            rest, self._compressor = self._compressor.flush(), None
            self.father.write(rest)
        super().handleResponseEnd()


def listen_router(port: int, main_port: int, worker_port: int, sync_port: int | None = None,
                  media_port: int | None = None) -> Any:
    site = server.Site(WorkerRouter(main_port, worker_port, sync_port, media_port))
    site.noisy = False
    return reactor.listenTCP(port, site, interface="127.0.0.1")  # type: ignore[arg-type]
