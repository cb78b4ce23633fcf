"""A local push gateway speaking the Push Gateway API (``POST /_matrix/push/v1/notify``).

Synapse's HTTP pusher delivers here exactly as it would to Sygnal; the gateway records every
notification so tests can see what a phone would have been sent.
"""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


class PushGateway:
    def __init__(self) -> None:
        self.notifications: list[dict[str, Any]] = []
        self._lock = threading.Lock()
        gateway = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 (http.server's name)
                length = int(self.headers.get("Content-Length", 0))
                body = json.loads(self.rfile.read(length) or b"{}")
                if self.path != "/_matrix/push/v1/notify" or "notification" not in body:
                    self.send_response(400)
                    self.end_headers()
                    return
                with gateway._lock:
                    gateway.notifications.append(body["notification"])
                payload = json.dumps({"rejected": []}).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            def log_message(self, *args: Any) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}/_matrix/push/v1/notify"

    def for_event(self, event_id: str) -> list[dict[str, Any]]:
        with self._lock:
            return [n for n in self.notifications if n.get("event_id") == event_id]

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()
