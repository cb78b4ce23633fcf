"""A fast loopback SMS gateway for ``bench/sms.py``, and the treq floor client. Run as a process:

    python -m bench.sms_gateway serve --port N      # answers Twilio's create call, counts messages
    python -m bench.sms_gateway floor --url U --count N --concurrency C   # N POSTs with treq, timed

``serve`` answers ``POST .../Messages.json`` with 201 and a Twilio-shaped body, ``GET
.../Messages.json`` (the bridge's "did you get it?" check) with an empty page, and ``GET /stats``
with the number of messages accepted in each second. ``floor`` prints the seconds one treq
client needs for the same POSTs: the cost of the HTTP calls alone.
"""

from __future__ import annotations

import argparse
import json
import secrets
import sys
import time
from collections import Counter
from typing import Any

from twisted.internet import defer, reactor, task
from twisted.web import resource, server


class Gateway(resource.Resource):
    isLeaf = True

    def __init__(self) -> None:
        super().__init__()
        self.count = 0
        self.per_second: Counter[int] = Counter()

    def render_POST(self, request: Any) -> bytes:  # noqa: N802 (twisted.web's name)
        now = time.time()
        self.count += 1
        self.per_second[int(now)] += 1
        to = (request.args.get(b"To") or [b""])[0].decode()
        body = json.dumps({"sid": "SM" + secrets.token_hex(16), "status": "queued", "to": to, "num_segments": "1",
                           "direction": "outbound-api"}).encode()
        request.setResponseCode(201)
        request.setHeader(b"Content-Type", b"application/json")
        return body

    def render_GET(self, request: Any) -> bytes:  # noqa: N802
        request.setHeader(b"Content-Type", b"application/json")
        if request.path == b"/stats":
            return json.dumps({"count": self.count, "per_second": dict(self.per_second)}).encode()
        return json.dumps({"messages": [], "next_page_uri": None}).encode()


def serve(port: int) -> None:
    site = server.Site(Gateway())
    site.noisy = False
    site.log = lambda request: None  # type: ignore[method-assign]
    reactor.listenTCP(port, site, interface="127.0.0.1")  # type: ignore[attr-defined,arg-type]
    print("ready", flush=True)
    reactor.run()  # type: ignore[attr-defined]


async def _floor(url: str, count: int, concurrency: int) -> float:
    import treq
    from twisted.web.client import HTTPConnectionPool

    pool = HTTPConnectionPool(reactor, persistent=True)
    pool.maxPersistentPerHost = concurrency
    sem = defer.DeferredSemaphore(concurrency)
    started = time.perf_counter()

    async def one(i: int) -> None:
        form = {"To": f"+8613{i:09d}", "Body": f"benchmark {i}", "From": "+15005550006",
                "StatusCallback": f"http://127.0.0.1:1/_wangxin/v1/sms/twilio/status?sms_id={i}"}
        response = await treq.post(url, data=form, auth=("AC" + "0" * 32, "token"), pool=pool)
        await response.content()

    await defer.gatherResults([sem.run(one, i) for i in range(count)])
    elapsed = time.perf_counter() - started
    await pool.closeCachedConnections()
    return elapsed


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="bench.sms_gateway")
    sub = parser.add_subparsers(dest="command", required=True)
    s = sub.add_parser("serve")
    s.add_argument("--port", type=int, required=True)
    f = sub.add_parser("floor")
    f.add_argument("--url", required=True)
    f.add_argument("--count", type=int, required=True)
    f.add_argument("--concurrency", type=int, default=8)
    args = parser.parse_args(argv)
    if args.command == "serve":
        serve(args.port)
    else:
        _run_floor(args.url, args.count, args.concurrency)
    return 0


def _run_floor(url: str, count: int, concurrency: int) -> None:
    out: dict[str, float] = {}

    async def main(_reactor: Any) -> None:
        out["seconds"] = await _floor(url, count, concurrency)
        print(json.dumps({"count": count, "seconds": round(out["seconds"], 3),
                          "per_second": round(count / out["seconds"], 1)}), flush=True)

    task.react(lambda r: defer.ensureDeferred(main(r)))


if __name__ == "__main__":
    sys.exit(main())
