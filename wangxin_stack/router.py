"""A small reverse proxy in front of a worker topology, as nginx would be in production.

Requests that Synapse's generic workers can serve go to the worker; the rest go to the main
process. The path lists follow Synapse's worker documentation for ``generic_worker``.
"""

from __future__ import annotations

import re
from typing import Any

from twisted.internet import reactor
from twisted.web import resource, server
from twisted.web.proxy import ProxyClientFactory

WORKER_PATHS = [
    r"^/_matrix/client/(r0|v3)/sync$",
    r"^/_matrix/client/(api/v1|r0|v3)/events$",
    r"^/_matrix/client/(api/v1|r0|v3)/initialSync$",
    r"^/_matrix/client/(api/v1|r0|v3)/rooms/[^/]+/initialSync$",
    r"^/_matrix/client/(api/v1|r0|v3|unstable)/rooms/[^/]+/(messages|context/.*|members|joined_members|state.*)$",
    r"^/_matrix/client/(api/v1|r0|v3|unstable)/rooms/[^/]+/send/",
    r"^/_matrix/client/(api/v1|r0|v3|unstable)/rooms/[^/]+/(join|invite|leave|ban|unban|kick)$",
    r"^/_matrix/client/(api/v1|r0|v3|unstable)/join/",
    r"^/_matrix/client/(api/v1|r0|v3|unstable)/profile/",
    r"^/_matrix/client/(r0|v3|unstable)/keys/query$",
    r"^/_matrix/client/(r0|v3|unstable)/joined_rooms$",
]
_WORKER_RE = re.compile("|".join(f"(?:{p})" for p in WORKER_PATHS))


class WorkerRouter(resource.Resource):
    isLeaf = True

    def __init__(self, main_port: int, worker_port: int):
        super().__init__()
        self.main_port = main_port
        self.worker_port = worker_port

    def backend_for(self, path: str) -> int:
        return self.worker_port if _WORKER_RE.match(path) else self.main_port

    def render(self, request: Any) -> Any:
        port = self.backend_for(request.path.decode("utf-8", "replace"))
        request.content.seek(0, 0)
        headers = request.getAllHeaders().copy()
        headers[b"host"] = f"127.0.0.1:{port}".encode()
        headers[b"x-forwarded-for"] = request.getClientAddress().host.encode()
        # HTTP/1.0 to the backend: it then answers with a plain body, never chunked.
        factory = ProxyClientFactory(request.method, request.uri, b"HTTP/1.0", headers,
                                     request.content.read(), request)
        reactor.connectTCP("127.0.0.1", port, factory)
        return server.NOT_DONE_YET


def listen_router(port: int, main_port: int, worker_port: int) -> Any:
    site = server.Site(WorkerRouter(main_port, worker_port))
    site.noisy = False
    return reactor.listenTCP(port, site, interface="127.0.0.1")  # type: ignore[arg-type]
