"""A local shop platform's coupon endpoint, as the discovery module calls it (docs/discovery.md,
"Coupons"): it checks the ``X-Wangxin-Signature`` on the raw body with its own HMAC-SHA256
(independently of the module's code), deduplicates by ``pairing_id`` (a repeat gets the same
codes), records every request, and answers ``{"coupons": {...}}``. Faults can be set per person:
the next requests naming them answer 503, or hang past the module's timeout, or every request
naming them answers 503 until released (``hold``).

Tests point every stack's discovery module here (``--coupon-url``, ``--coupon-secret``).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import secrets
import threading
import time
from collections import defaultdict
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

PATH = "/v1/coupons"


class FakeCouponPlatform:
    def __init__(self) -> None:
        self.secret = secrets.token_hex(24)
        self._lock = threading.Lock()
        self._faults: dict[str, list[str]] = defaultdict(list)  # user id -> faults for the next requests
        self._held: set[str] = set()  # requests naming these people answer 503 until released
        self._codes: dict[str, dict[str, Any]] = {}  # pairing id -> its answer
        self.requests: list[dict[str, Any]] = []  # every request, in order: body, whether signed, what we answered
        self._hang = threading.Event()
        platform = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def do_POST(self) -> None:  # noqa: N802 (the standard library's name)
                raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                status, answer = platform._answer(self.path, raw, self.headers.get("X-Wangxin-Signature"))
                if status == 0:  # hang: answer after the module has given up
                    platform._hang.wait(30)
                    status, answer = 503, {"error": "too late"}
                data = json.dumps(answer).encode()
                try:
                    self.send_response(status)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(data)))
                    self.end_headers()
                    self.wfile.write(data)
                except OSError:
                    pass  # the module closed the connection (its timeout)

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}{PATH}"
        threading.Thread(target=self._server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self._hang.set()
        self._server.shutdown()
        self._server.server_close()

    def fail_next(self, user_id: str, *faults: str) -> None:
        """The next requests naming ``user_id`` answer these faults, in order: ``"503"`` or ``"hang"``."""
        with self._lock:
            self._faults[user_id].extend(faults)

    def hold(self, user_id: str) -> None:
        """Every request naming ``user_id`` answers 503 until ``release``."""
        with self._lock:
            self._held.add(user_id)

    def release(self, user_id: str) -> None:
        with self._lock:
            self._held.discard(user_id)

    def requests_for(self, user_id: str) -> list[dict[str, Any]]:
        with self._lock:
            return [r for r in self.requests if user_id in (r.get("body") or {}).get("users", [])]

    def _answer(self, path: str, raw: bytes, header: str | None) -> tuple[int, dict[str, Any]]:
        expected = "sha256=" + hmac.new(self.secret.encode(), raw, hashlib.sha256).hexdigest()
        signed = header is not None and hmac.compare_digest(expected, header)
        try:
            body = json.loads(raw)
        except ValueError:
            body = None
        record: dict[str, Any] = {"ts": time.time(), "path": path, "signed": signed, "body": body}
        with self._lock:
            self.requests.append(record)
            if path != PATH:
                record["status"] = 404
                return 404, {"error": "no such endpoint"}
            if not signed:
                record["status"] = 401
                return 401, {"error": "bad signature"}
            users = body.get("users", []) if isinstance(body, dict) else []
            for user_id in users:
                if user_id in self._held:
                    record["status"] = "503"
                    return 503, {"error": "coupon service unavailable"}
                if self._faults.get(user_id):
                    fault = self._faults[user_id].pop(0)
                    record["status"] = fault
                    return (0, {}) if fault == "hang" else (503, {"error": "coupon service unavailable"})
            pairing_id = str(body.get("pairing_id"))
            if pairing_id not in self._codes:
                self._codes[pairing_id] = {
                    u: {"code": f"TEST-{secrets.token_hex(4).upper()}", "title": "36.8° coupon: 15% off tea",
                        "expires_at": "2027-12-31T23:59:59Z"}
                    for u in users
                }
            record["status"] = 200
            record["answer"] = self._codes[pairing_id]
            return 200, {"coupons": self._codes[pairing_id]}
