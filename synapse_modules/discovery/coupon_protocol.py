"""What goes to the coupon platform and what comes back (docs/discovery.md, "Coupons"): pure.

The request: ``POST <url>`` with the JSON body ``{"pairing_id", "users": [...], "at"}`` (``at``:
when the pairing was accepted, ISO 8601 UTC; the body is the same on every retry) and the
header ``X-Wangxin-Signature: sha256=<hex HMAC-SHA256 of the body's bytes under the shared
secret>``, as GitHub signs its webhooks. The platform checks the signature on the raw bytes,
deduplicates by ``pairing_id``, and answers 2xx with
``{"coupons": {"<user id>": {"code", "title", "expires_at"?}}}``.

An answer is read strictly: a coupon for someone who was not asked for is ignored (a platform
bug, or an answer meant for another pairing, gives nobody else a coupon), and an answer that is
not of that shape is a failure, retried like a 5xx.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import Sequence
from datetime import UTC, datetime

from synapse_modules.discovery.store.coupons import Coupon

SIGNATURE_HEADER = "X-Wangxin-Signature"
MAX_ANSWER_BYTES = 64 * 1024
MAX_CODE_CHARS = 128
MAX_TITLE_CHARS = 200
MAX_EXPIRES_CHARS = 64


class BadAnswer(ValueError):
    """The platform's answer was not what the protocol says."""


def iso_utc(ts_ms: int) -> str:
    return datetime.fromtimestamp(ts_ms / 1000, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def request_body(pairing_id: str, users: Sequence[str], at_ts: int) -> bytes:
    return json.dumps({"pairing_id": pairing_id, "users": list(users), "at": iso_utc(at_ts)},
                      separators=(",", ":"), ensure_ascii=False).encode("utf-8")


def signature(body: bytes, secret: str) -> str:
    return "sha256=" + hmac.new(secret.encode("utf-8"), body, hashlib.sha256).hexdigest()


def signature_matches(body: bytes, secret: str, header: str | None) -> bool:
    """For the platform's side (the dev stack's issuer, tests): constant-time comparison."""
    return header is not None and hmac.compare_digest(signature(body, secret), header)


def parse_answer(raw: bytes, users: Sequence[str]) -> dict[str, Coupon]:
    """The coupons of the people asked for, from a 2xx answer; ``BadAnswer`` saying what is wrong."""
    if len(raw) > MAX_ANSWER_BYTES:
        raise BadAnswer(f"the answer is larger than {MAX_ANSWER_BYTES} bytes")
    try:
        body = json.loads(raw)
    except ValueError:
        raise BadAnswer("the answer is not JSON") from None
    coupons = body.get("coupons") if isinstance(body, dict) else None
    if not isinstance(coupons, dict):
        raise BadAnswer("the answer has no 'coupons' object")
    found = {}
    for user_id in users:
        entry = coupons.get(user_id)
        if entry is None:
            continue
        if not isinstance(entry, dict):
            raise BadAnswer(f"coupons[{user_id!r}] is not an object")
        code, title, expires = entry.get("code"), entry.get("title"), entry.get("expires_at")
        if not isinstance(code, str) or not code.strip() or len(code) > MAX_CODE_CHARS:
            raise BadAnswer(f"coupons[{user_id!r}].code must be a string of 1 to {MAX_CODE_CHARS} characters")
        if not isinstance(title, str) or not title.strip() or len(title) > MAX_TITLE_CHARS:
            raise BadAnswer(f"coupons[{user_id!r}].title must be a string of 1 to {MAX_TITLE_CHARS} characters")
        if expires is not None and (not isinstance(expires, str) or len(expires) > MAX_EXPIRES_CHARS):
            raise BadAnswer(f"coupons[{user_id!r}].expires_at must be a string")
        found[user_id] = Coupon(code.strip(), title.strip(), expires)
    return found


def retry_delay_ms(attempts: int, base_ms: int, max_ms: int) -> int:
    """The delay before the next try after ``attempts`` failures: doubling from ``base_ms``."""
    return min(max_ms, base_ms * 2 ** min(max(attempts - 1, 0), 30))
