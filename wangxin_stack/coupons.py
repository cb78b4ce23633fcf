"""The dev stack's coupon issuer: a stand-in for the shop platform's coupon endpoint, on loopback.

It speaks the protocol the discovery module uses (``synapse_modules/discovery/coupon_protocol.py``,
docs/discovery.md "Coupons"): it checks the ``X-Wangxin-Signature`` of each request against the
stack's coupon secret (401 when it does not match), answers with a generated code per person,
the same codes again for a pairing it has seen (a retry), and records every request and its
answer as one JSON line in ``coupon-outbox.jsonl`` in the stack's directory, so a developer sees
what the platform would have been asked. ``--coupon-url`` points the module at a real platform
instead, and then this issuer does not run.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import time
from typing import Any

from twisted.internet import reactor
from twisted.web import resource, server

from synapse_modules.discovery.coupon_protocol import SIGNATURE_HEADER, signature_matches

PATH = b"/coupons"
TITLE = "36.8° together: 10% off your next order"
VALID_DAYS = 30
MAX_BODY = 64 * 1024


class CouponIssuer(resource.Resource):
    isLeaf = True

    def __init__(self, secret: str, outbox_path: str):
        super().__init__()
        self._secret = secret
        self._outbox_path = outbox_path
        self._seen: set[str] = set()

    def render_POST(self, request: Any) -> bytes:
        request.setHeader(b"Content-Type", b"application/json")
        if request.path != PATH:
            request.setResponseCode(404)
            return b'{"error": "not found"}'
        raw = request.content.read(MAX_BODY + 1)
        header = request.getHeader(SIGNATURE_HEADER)
        record: dict[str, Any] = {"received_ts": int(time.time() * 1000)}
        if len(raw) > MAX_BODY or not signature_matches(raw, self._secret, header):
            record["rejected"] = "signature"
            self._record(record)
            request.setResponseCode(401)
            return b'{"error": "bad signature"}'
        try:
            body = json.loads(raw)
            pairing_id, users, at = body["pairing_id"], body["users"], body["at"]
            if not isinstance(pairing_id, str) or not isinstance(users, list):
                raise ValueError
        except (ValueError, KeyError, TypeError):
            record["rejected"] = "body"
            self._record(record)
            request.setResponseCode(400)
            return b'{"error": "expected {pairing_id, users, at}"}'
        expires = time.strftime("%Y-%m-%d", time.gmtime(time.time() + VALID_DAYS * 86400))
        coupons = {str(u): {"code": self._code(pairing_id, str(u)), "title": TITLE, "expires_at": expires}
                   for u in users}
        record.update(pairing_id=pairing_id, users=users, at=at, repeat=pairing_id in self._seen,
                      answer={"coupons": coupons})
        self._seen.add(pairing_id)
        self._record(record)
        return json.dumps({"coupons": coupons}).encode()

    def _code(self, pairing_id: str, user_id: str) -> str:
        """The same code for the same person and pairing, whenever asked: a retry is a repeat."""
        digest = hmac.new(self._secret.encode(), f"{pairing_id}\n{user_id}".encode(), hashlib.sha256).hexdigest()
        return "WX368-" + digest[:10].upper()

    def _record(self, record: dict[str, Any]) -> None:
        with open(self._outbox_path, "a", encoding="utf-8") as f:
            f.write(json.dumps(record, ensure_ascii=False) + "\n")


def listen_coupon_issuer(port: int, secret: str, outbox_path: str) -> Any:
    os.makedirs(os.path.dirname(outbox_path) or ".", exist_ok=True)
    site = server.Site(CouponIssuer(secret, outbox_path))
    site.noisy = False
    return reactor.listenTCP(port, site, interface="127.0.0.1")  # type: ignore[attr-defined,arg-type]


def issuer_url(port: int) -> str:
    return f"http://127.0.0.1:{port}{PATH.decode()}"
