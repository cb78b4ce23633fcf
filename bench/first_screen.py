"""What a heavy user opens, modules on against stock Synapse holding the same data.

The heavy account is built once, on the Wangxin stack (bench/heavy_account.py). Then the
Wangxin stack is stopped, its database (and media) copied, and stock Synapse started on the
copy under the same server name while Wangxin starts again (``BenchStack.stock_copies``): both
sides hold exactly the same rooms, messages, receipts and images, and both processes start
cold. The measurements alternate between the sides, one request at a time (each round starts
with the other side), so drift in the machine's load hits both alike:

- **first screen, sliding sync**: Element X's first room-list request (MSC4186, rooms 0-19 by
  recency, one timeline event each, its required state; bench/first_screen_plan.py), a new
  connection each time; time and bytes; and the same request with the merchant circles filtered
  out as a client that knows Wangxin would (``first_screen_chats_only``);
- **initial /v3/sync** with Element Web's inline filter (lazy-loaded members, 20 events a room);
  ``timeout`` differs per request so that Synapse's sync response cache never answers;
- **incremental sync** after one new message: a member of the 10-member room sends, then the
  viewer's ``/v3/sync?since=`` (Element Web's uploaded filter, long poll) and, separately, its
  sliding-sync request with ``pos`` (long poll), until the message is in the answer;
- **opening a circle**: ``/messages`` for the last 20 posts (lazy-loaded members), then the
  800x600 thumbnails of their images over six connections as a browser would; the circles
  take turns;
- **message send** by the viewer in the 10-member room and in the big group, ten at a time
  per side, the side that starts a round taking turns.

Every measurement has a third side: another copy, stock Synapse carrying the bridge's
application-service registration with no URL (``stock_with_registration``: Synapse sends it
nothing but does its per-event bookkeeping for it), which tells what the modules cost from what
any registered application service costs.

Bytes are the JSON's (``bytes_p50``), what it would weigh gzipped (``gzip_bytes_last``, computed
here) and what came over the connection (``wire_bytes_p50``: the same as the JSON's unless
something in front of Synapse compresses, as the worker topology's router does like a production
proxy; docs/operating.md, "Deploying for speed").

On PostgreSQL both databases get ``VACUUM ANALYZE`` before the measurements (a copy starts with
no activity counters, so autovacuum would visit only Wangxin's). On ``--workers`` (PostgreSQL
and Redis) both sides run the worker topology; the stock copy replicates through a Redis server
of its own (Synapse names its Redis channels after the server name, which the copy shares),
started here from ``redis-server``. ``--keep-build`` / ``--reuse-build`` measure one built
account again (bench/kept_build.py).
"""

from __future__ import annotations

import contextlib
import gzip
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from statistics import median
from typing import Any
from urllib.parse import quote

import requests

from bench.core import BenchStack, free_base_port
from bench.first_screen_plan import (
    BROWSER_CONNECTIONS,
    CHATS_ONLY_FILTERS,
    ELEMENT_WEB_FILTER,
    ELEMENT_WEB_INITIAL_FILTER,
    MESSAGES_PARAMS,
    SLIDING_SYNC_PATH,
    THUMBNAIL_PARAMS,
    Sizes,
    element_x_room_list,
    goals,
    mxc_parts,
)
from bench.heavy_account import Account, Builder, wait_for_bridge
from bench.progress import Progress
from bench.provenance import commit, machine
from bench.stats import p50_ratio_interval, ratio, summary_ms

CLIENT = "/_matrix/client/v3"
WARMUP = 2  # unmeasured requests per side before each measurement


def q(value: str) -> str:
    return quote(value, safe="")


@contextlib.contextmanager
def private_redis() -> Iterator[str]:
    """A throw-away ``redis-server`` on a free loopback port; yields ``HOST:PORT``."""
    binary = shutil.which("redis-server")
    if binary is None:
        raise RuntimeError("--workers: the stock copy needs a Redis of its own and redis-server is not installed")
    port = free_base_port()
    proc = subprocess.Popen([binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        import socket

        deadline = time.monotonic() + 30
        while True:
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=1) as s:
                    s.sendall(b"PING\r\n")
                    if s.recv(16).startswith(b"+PONG"):
                        break
            except OSError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"redis-server did not start on port {port}") from None
                time.sleep(0.2)
        yield f"127.0.0.1:{port}"
    finally:
        proc.terminate()
        proc.wait(30)



def wire_request(session: requests.Session, method: str, url: str, **kwargs: Any) -> requests.Response:
    """``session.request``, reading the body as it came over the connection (gzipped by the
    router, or not) before decoding it; its length is the answer's ``wire_bytes``. (urllib3's
    ``tell()`` counts nothing for a chunked body, which is how a gzipped answer comes.)"""
    r = session.request(method, url, timeout=300, stream=True, **kwargs)
    raw = r.raw.read(decode_content=False)
    encoding = r.headers.get("Content-Encoding", "").lower()
    r._content = gzip.decompress(raw) if encoding == "gzip" else raw
    r._content_consumed = True
    r.wire_bytes = len(raw)  # type: ignore[attr-defined]
    r.close()
    return r

class Side:
    """One server as the viewer's client sees it."""

    def __init__(self, name: str, stack: Any, account: Account):
        self.name, self.stack, self.account = name, stack, account
        self.url = stack.url
        self.viewer = self._session(account.viewer_token, 8)
        self.speaker = self._session(account.small_speakers[0], 2)
        self.thumbs = self._session(account.viewer_token, BROWSER_CONNECTIONS)
        self.thumb_pool = ThreadPoolExecutor(BROWSER_CONNECTIONS)
        self.since = ""  # the viewer's /v3/sync token
        self.pos = ""  # the viewer's sliding-sync position
        self.sent = 0
        self.initial_syncs = 0
        self.wire = 0  # body bytes received over the connections, as sent (compressed or not)

    @staticmethod
    def _session(token: str, pool: int) -> requests.Session:
        s = requests.Session()
        s.headers["Authorization"] = f"Bearer {token}"
        s.mount("http://", requests.adapters.HTTPAdapter(pool_connections=pool, pool_maxsize=pool))
        return s

    def close(self) -> None:
        self.thumb_pool.shutdown(wait=False)

    def _timed(self, method: str, path: str, session: requests.Session | None = None,
               **kwargs: Any) -> tuple[float, requests.Response]:
        started = time.perf_counter()
        r = wire_request(session or self.viewer, method, self.url + path, **kwargs)
        elapsed = time.perf_counter() - started
        if r.status_code != 200:
            raise RuntimeError(f"{self.name}: {method} {path} -> {r.status_code}: {r.text[:300]}")
        self.wire += int(getattr(r, "wire_bytes", 0))
        return elapsed, r

    # -- the measurements: each returns (seconds, bytes of the answers) ---------------------

    def first_screen(self, _: int) -> tuple[float, int, dict[str, Any]]:
        elapsed, r = self._timed("POST", SLIDING_SYNC_PATH, params={"timeout": "0"}, json=element_x_room_list())
        return elapsed, len(r.content), r.json()

    def first_screen_chats_only(self, _: int) -> tuple[float, int, dict[str, Any]]:
        elapsed, r = self._timed("POST", SLIDING_SYNC_PATH, params={"timeout": "0"},
                                 json=element_x_room_list(filters=CHATS_ONLY_FILTERS))
        return elapsed, len(r.content), r.json()

    def initial_sync(self, i: int) -> tuple[float, int, dict[str, Any]]:
        # The response cache is keyed on (user, timeout, since, filter, …): a new timeout per
        # request makes Synapse compute each one, as for a new login.
        self.initial_syncs += 1
        elapsed, r = self._timed("GET", f"{CLIENT}/sync", params={"filter": json.dumps(ELEMENT_WEB_INITIAL_FILTER),
                                                                 "timeout": str(self.initial_syncs)})
        body = r.json()
        self.since = body["next_batch"]
        return elapsed, len(r.content), body

    def _send_news(self) -> str:
        self.sent += 1
        room = self.account.rooms["small"]
        r = self.speaker.put(f"{self.url}{CLIENT}/rooms/{q(room)}/send/m.room.message/news{self.sent}",
                             json={"msgtype": "m.text", "body": f"新消息 {self.sent}"}, timeout=120)
        r.raise_for_status()
        return str(r.json()["event_id"])

    def incremental_sync(self, _: int) -> tuple[float, int, dict[str, Any]]:
        event_id = self._send_news()
        total, size = 0.0, 0
        for _attempt in range(5):
            elapsed, r = self._timed("GET", f"{CLIENT}/sync", params={
                "filter": self.account.filter_id, "timeout": "30000", "since": self.since})
            total, size = total + elapsed, size + len(r.content)
            body = r.json()
            self.since = body["next_batch"]
            timeline = body.get("rooms", {}).get("join", {}).get(self.account.rooms["small"], {}).get("timeline", {})
            if any(e.get("event_id") == event_id for e in timeline.get("events", [])):
                return total, size, body
        raise RuntimeError(f"{self.name}: the new message did not come in 5 incremental syncs")

    def incremental_sliding_sync(self, _: int) -> tuple[float, int, dict[str, Any]]:
        if not self.pos:
            self.pos = self.first_screen(0)[2]["pos"]
        event_id = self._send_news()
        total, size = 0.0, 0
        for _attempt in range(5):
            elapsed, r = self._timed("POST", SLIDING_SYNC_PATH, params={"timeout": "30000", "pos": self.pos},
                                     json=element_x_room_list())
            total, size = total + elapsed, size + len(r.content)
            body = r.json()
            self.pos = body["pos"]
            room = body.get("rooms", {}).get(self.account.rooms["small"], {})
            if any(e.get("event_id") == event_id for e in room.get("timeline", [])):
                return total, size, body
        raise RuntimeError(f"{self.name}: the new message did not come in 5 sliding-sync requests")

    def open_circle(self, i: int) -> tuple[float, int, dict[str, Any]]:
        circle = self.account.circles[i % len(self.account.circles)]
        started = time.perf_counter()
        messages_s, r = self._timed("GET", f"{CLIENT}/rooms/{q(circle)}/messages", params=MESSAGES_PARAMS)
        images = [e["content"]["url"] for e in r.json().get("chunk", [])
                  if e.get("type") == "m.room.message" and e.get("content", {}).get("msgtype") == "m.image"]

        def thumbnail(mxc: str) -> tuple[int, int]:
            server, media_id = mxc_parts(mxc)
            got = wire_request(self.thumbs, "GET",
                               f"{self.url}/_matrix/client/v1/media/thumbnail/{q(server)}/{q(media_id)}",
                               params=THUMBNAIL_PARAMS)
            if got.status_code != 200:
                raise RuntimeError(f"{self.name}: thumbnail of {mxc} -> {got.status_code}: {got.text[:200]}")
            return len(got.content), int(getattr(got, "wire_bytes", 0))

        sizes = list(self.thumb_pool.map(thumbnail, images))
        thumb_bytes = sum(size for size, _ in sizes)
        self.wire += sum(wire for _, wire in sizes)
        total = time.perf_counter() - started
        return total, len(r.content) + thumb_bytes, {"messages_s": messages_s, "images": len(images),
                                                     "thumbnail_bytes": thumb_bytes}

    def send(self, room_key: str) -> Callable[[], float]:
        room = self.account.rooms[room_key]

        def once() -> float:
            self.sent += 1
            elapsed, _ = self._timed("PUT", f"{CLIENT}/rooms/{q(room)}/send/m.room.message/s{self.sent}",
                                     json={"msgtype": "m.text", "body": f"发送测试 {self.sent}"})
            return elapsed

        return once


def _alternate(sides: list[Side], fn: Callable[[Side, int], tuple[float, int, dict[str, Any]]], samples: int,
               progress: Progress, label: str) -> dict[str, dict[str, list[Any]]]:
    """``samples`` measurements per side, one side then the other, starting with each in turn."""
    for i in range(WARMUP):
        for side in sides:
            fn(side, -1 - i)
    got: dict[str, dict[str, list[Any]]] = {s.name: {"s": [], "bytes": [], "wire": [], "last": [], "parts": []}
                                            for s in sides}
    for i in range(samples):
        for side in (sides if i % 2 == 0 else sides[::-1]):
            wire_before = side.wire
            seconds, size, body = fn(side, i)
            got[side.name]["s"].append(seconds)
            got[side.name]["bytes"].append(size)
            got[side.name]["wire"].append(side.wire - wire_before)
            got[side.name]["last"] = [body]  # sync answers are megabytes: keep the last only
            if "messages_s" in body:
                got[side.name]["parts"].append(body)
        progress.tick(label)
    return got


REGISTERED = "stock_with_registration"


def _compare(got: dict[str, dict[str, list[Any]]]) -> dict[str, Any]:
    """Each side's figures and Wangxin / stock; with the third side (stock carrying the bridge's
    registration), also the ratios Wangxin / it and it / stock."""
    wx, st = got["wangxin"], got["stock"]
    out: dict[str, Any] = {}
    for name, data in got.items():
        out[name] = {**summary_ms(data["s"]), "bytes_p50": int(median(data["bytes"]))}
        if data.get("wire"):
            out[name]["wire_bytes_p50"] = int(median(data["wire"]))
    out["p50_ratio"] = ratio(out["wangxin"]["p50_ms"], out["stock"]["p50_ms"])
    out["p50_ratio_95pct_interval"] = p50_ratio_interval(wx["s"], st["s"])
    out["p95_ratio"] = ratio(out["wangxin"]["p95_ms"], out["stock"]["p95_ms"])
    out["bytes_ratio"] = ratio(out["wangxin"]["bytes_p50"], out["stock"]["bytes_p50"])
    if REGISTERED in got:
        reg = got[REGISTERED]["s"]
        out["wangxin_vs_registered_p50_ratio"] = ratio(out["wangxin"]["p50_ms"], out[REGISTERED]["p50_ms"])
        out["wangxin_vs_registered_95pct_interval"] = p50_ratio_interval(wx["s"], reg)
        out["registered_vs_stock_p50_ratio"] = ratio(out[REGISTERED]["p50_ms"], out["stock"]["p50_ms"])
        out["registered_vs_stock_95pct_interval"] = p50_ratio_interval(reg, st["s"])
    return out


def _gzip_size(body: dict[str, Any]) -> int:
    """What the answer would weigh gzipped (level 6) by a proxy in front of Synapse."""
    return len(gzip.compress(json.dumps(body, separators=(",", ":")).encode(), 6))


def _sends(sides: list[Side], room_key: str, messages: int, progress: Progress, label: str) -> dict[str, Any]:
    """Ten sends per side in turn, each round starting with the next side (so that no side
    always follows the same other side's batch, and the work that batch leaves behind). With a
    third side (stock carrying the bridge's registration), also its figures and the ratios
    Wangxin / it and it / stock."""
    senders = [s.send(room_key) for s in sides]
    for _ in range(10):
        for send in senders:
            send()
    samples: list[list[float]] = [[] for _ in sides]
    round_no = 0
    while len(samples[0]) < messages:
        for k in range(len(sides)):
            i = (round_no + k) % len(sides)
            samples[i] += [senders[i]() for _ in range(10)]
        round_no += 1
        progress.tick(label, 10)
    out = _compare({s.name: {"s": got, "bytes": [0]} for s, got in zip(sides, samples, strict=True)})
    for name in (s.name for s in sides):
        out[name].pop("bytes_p50", None)
    out.pop("bytes_ratio", None)
    return out


def _encoded_size(value: Any) -> int:
    """Bytes as Synapse encodes JSON: compact, and ASCII-only (a Chinese character is a
    six-byte ``\\uXXXX``)."""
    return len(json.dumps(value, separators=(",", ":")))


def _first_screen_facts(body: dict[str, Any]) -> dict[str, Any]:
    """What the first screen showed: how many rooms, which of them Wangxin's own, and where
    its bytes go (per field of the room entries, per type of required state)."""
    rooms = body.get("rooms", {})
    kinds: dict[str, int] = {}
    fields: dict[str, int] = {}
    state: dict[str, int] = {}
    for room in rooms.values():
        create = next((e for e in room.get("required_state", []) if e.get("type") == "m.room.create"), None)
        kind = (create or {}).get("content", {}).get("type") or "chat"
        kinds[kind] = kinds.get(kind, 0) + 1
        for key, value in room.items():
            fields[key] = fields.get(key, 0) + _encoded_size(value)
        for event in room.get("required_state", []):
            state[event.get("type", "?")] = state.get(event.get("type", "?"), 0) + _encoded_size(event)
    return {"rooms_in_list": body.get("lists", {}).get("all_rooms", {}).get("count"), "rooms_returned": len(rooms),
            "room_types_returned": kinds,
            "bytes_by_room_field": dict(sorted(fields.items(), key=lambda kv: -kv[1])),
            "required_state_bytes_by_type": dict(sorted(state.items(), key=lambda kv: -kv[1])),
            "extensions_bytes": _encoded_size(body.get("extensions", {}))}


def measure(wx: Any, stock: Any, account: Account, samples: int, messages: int,
            registered: Any | None = None) -> dict[str, Any]:
    """``registered``: stock Synapse carrying the bridge's registration, a third side."""
    sides = [Side("wangxin", wx, account), Side("stock", stock, account)]
    if registered is not None:
        sides.append(Side(REGISTERED, registered, account))
    result: dict[str, Any] = {}
    try:
        plan = [("first_screen_sliding_sync", Side.first_screen),
                ("first_screen_chats_only", Side.first_screen_chats_only), ("initial_sync_v3", Side.initial_sync),
                ("incremental_sync_v3", Side.incremental_sync),
                ("incremental_sliding_sync", Side.incremental_sliding_sync), ("open_circle", Side.open_circle)]
        totals = {label: samples for label, _ in plan}
        totals.update(send_small_room=messages, send_big_group=messages)
        with Progress("first_screen measuring", totals) as progress:
            for label, fn in plan:
                print(f"[first_screen] measuring {label}", file=sys.stderr, flush=True)
                got = _alternate(sides, fn, samples, progress, label)
                result[label] = _compare(got)
                last = {name: data["last"][0] for name, data in got.items()}
                if label in ("first_screen_sliding_sync", "first_screen_chats_only", "initial_sync_v3"):
                    for name in ("wangxin", "stock"):
                        result[label][name]["gzip_bytes_last"] = _gzip_size(last[name])
                if label in ("first_screen_sliding_sync", "first_screen_chats_only"):
                    result[label]["shown"] = {n: _first_screen_facts(b) for n, b in last.items()}
                if label == "initial_sync_v3":
                    result[label]["joined_rooms"] = {n: len(b.get("rooms", {}).get("join", {}))
                                                     for n, b in last.items()}
                if label == "open_circle":
                    result[label]["images_per_opening"] = last["wangxin"]["images"]
                    for name in ("wangxin", "stock"):
                        parts = got[name]["parts"]
                        result[label][name]["messages_p50_ms"] = round(
                            median(p["messages_s"] for p in parts) * 1000, 2)
                        result[label][name]["thumbnail_bytes_p50"] = int(median(p["thumbnail_bytes"] for p in parts))
            for label, key in (("send_small_room", "small"), ("send_big_group", "big")):
                print(f"[first_screen] measuring {label}", file=sys.stderr, flush=True)
                result[label] = _sends(sides, key, messages, progress, label)
    finally:
        for side in sides:
            side.close()
    return result


REQUESTS = {
    "first_screen_sliding_sync": {"method": "POST", "path": SLIDING_SYNC_PATH, "query": {"timeout": "0"},
                                  "body": element_x_room_list()},
    "first_screen_chats_only": {"method": "POST", "path": SLIDING_SYNC_PATH, "query": {"timeout": "0"},
                                "body": element_x_room_list(filters=CHATS_ONLY_FILTERS)},
    "initial_sync_v3": {"method": "GET", "path": f"{CLIENT}/sync",
                        "query": {"filter": ELEMENT_WEB_INITIAL_FILTER, "timeout": "<sample number>"}},
    "incremental_sync_v3": {"method": "GET", "path": f"{CLIENT}/sync",
                            "query": {"filter": ELEMENT_WEB_FILTER, "timeout": "30000", "since": "<previous>"},
                            "after": "one m.text message sent into the 10-member room by another member"},
    "incremental_sliding_sync": {"method": "POST", "path": SLIDING_SYNC_PATH,
                                 "query": {"timeout": "30000", "pos": "<previous>"}, "body": "as the first screen",
                                 "after": "one m.text message sent into the 10-member room by another member"},
    "open_circle": {"messages": {"method": "GET", "path": f"{CLIENT}/rooms/<circle>/messages",
                                 "query": MESSAGES_PARAMS},
                    "thumbnails": {"method": "GET", "path": "/_matrix/client/v1/media/thumbnail/<server>/<id>",
                                   "query": THUMBNAIL_PARAMS, "connections": BROWSER_CONNECTIONS}},
    "sends": {"method": "PUT", "path": f"{CLIENT}/rooms/<room>/send/m.room.message/<txn>",
              "body": {"msgtype": "m.text", "body": "…"}, "by": "the viewer"},
}


def check_options(sizes: Sizes, samples: int, messages: int, postgres: bool, redis: str | None,
                  keep_build: str | None, reuse_build: str | None) -> None:
    """Refuse a run that cannot work before anything starts (``ValueError`` naming the option)."""
    if redis and not postgres:
        raise ValueError("--workers needs --postgres: Synapse workers share one PostgreSQL database")
    if samples < 1 or messages < 10:
        raise ValueError(f"--samples at least 1 and --messages at least 10, found {samples} and {messages}")
    if keep_build and reuse_build:
        raise ValueError("--keep-build and --reuse-build: one or the other")
    if keep_build and os.path.exists(keep_build):
        raise ValueError(f"--keep-build: {keep_build} exists; name a new directory")
    if reuse_build:
        from bench import kept_build

        kept_build.load(reuse_build, postgres)
    else:
        sizes.validate()


def run(sizes: Sizes, samples: int = 30, messages: int = 300, postgres: bool = False, redis: str | None = None,
        concurrency: int = 6, command: str = "", keep_build: str | None = None,
        reuse_build: str | None = None) -> dict[str, Any]:
    """``keep_build``: also keep the built account in this new directory; ``reuse_build``:
    measure the account kept in this directory instead of building one (bench/kept_build.py)."""
    from bench import kept_build

    check_options(sizes, samples, messages, postgres, redis, keep_build, reuse_build)
    kept = None
    if reuse_build:
        kept, sizes, account = kept_build.load(reuse_build, postgres)
    sizes.validate()
    started = time.monotonic()
    info: dict[str, Any] = {
        "database": "postgres" if postgres else "sqlite",
        "topology": "workers (main; event persister; generic worker serving sends and /messages; sync worker "
                    "serving /v3/sync and sliding sync; media worker; a gzipping router in front)"
                    if redis else "single process",
        "commit": commit(), "machine": machine(), "command": command,
        "sizes": _sizes_json(sizes),
        "samples": samples, "messages": messages,
    }
    with tempfile.TemporaryDirectory(prefix="wx-bench-first-") as tmp, contextlib.ExitStack() as stopping:
        extra = ["--circle-posts-per-day", str(sizes.posts * 2 + 10)]
        if reuse_build and kept:
            print(f"[first_screen] starting Wangxin on a copy of the account kept in {reuse_build} "
                  f"({kept['kept_at']})", file=sys.stderr, flush=True)
            wangxin = kept_build.restore(reuse_build, kept, os.path.join(tmp, "wangxin"), extra, redis)
            stopping.callback(wangxin.stop)
            info["build"] = {"reused": reuse_build, "kept_at": kept["kept_at"], **account.build_s, **account.counts}
        else:
            wangxin = BenchStack(os.path.join(tmp, "wangxin"), extra, postgres, redis=redis)
            stopping.callback(wangxin.stop)
            wangxin.settle()
            account = Builder(wangxin.stack, sizes, concurrency).build()
            info["build"] = {**account.build_s, **account.counts,
                             "bridge_caught_up_s": round(wait_for_bridge(wangxin.stack), 1),
                             "cpu_s_by_process": process_cpu(wangxin.stack)}
            if keep_build:
                wangxin.stack.stop()  # stock_copies below starts it again
                kept_build.save(keep_build, wangxin, account, sizes, postgres)
                info["build"]["kept_in"] = keep_build
        print("[first_screen] copying the Wangxin database for stock Synapse; restarting both", file=sys.stderr,
              flush=True)
        copy_redis = [stopping.enter_context(private_redis()) if redis else None for _ in range(2)]
        stock, registered = wangxin.stock_copies([(os.path.join(tmp, "stock"), False, copy_redis[0]),
                                                  (os.path.join(tmp, "stock_registered"), True, copy_redis[1])])
        stopping.callback(stock.stop)
        stopping.callback(registered.stop)
        # Media files are not in the database: the copies serve the same thumbnails from their own stores.
        for copy in (stock, registered):
            shutil.copytree(os.path.join(wangxin.stack.dir, "media_store"), os.path.join(copy.stack.dir, "media_store"),
                            dirs_exist_ok=True)
        wait_for_bridge(wangxin.stack)
        if postgres:
            info["build"]["vacuum_analyze_s"] = round(_vacuum_analyze(
                wangxin.databases[0], stock.databases[0], registered.databases[0]), 1)
        result = measure(wangxin.stack, stock.stack, account, samples, messages, registered.stack)
    info["machine"]["load_average_at_end"] = [round(x, 2) for x in os.getloadavg()]
    info["requests"] = REQUESTS
    info["seconds"] = round(time.monotonic() - started, 1)
    return {**info, **result, "goals": goals(result)}


def process_cpu(stack: Any) -> dict[str, float]:
    """CPU seconds (user + system) each process of a stack has used since it started."""
    ticks = os.sysconf("SC_CLK_TCK")
    out = {}
    for name, pid in stack.reload_info().get("processes", {}).items():
        try:
            with open(f"/proc/{pid}/stat", encoding="ascii") as f:
                fields = f.read().rsplit(")", 1)[1].split()
            out[name] = round((int(fields[11]) + int(fields[12])) / ticks, 1)
        except (OSError, IndexError, ValueError):
            continue
    return out


def _vacuum_analyze(*databases: Any) -> float:
    """``VACUUM ANALYZE`` both databases before measuring. PostgreSQL's activity counters are not
    copied with a database: autovacuum would otherwise soon visit the one the build just wrote
    (Wangxin's) and not its copy (stock's), in the middle of the measurements, and leave the two
    with different planner statistics."""
    import psycopg2

    started = time.monotonic()
    for db in databases:
        conn = psycopg2.connect(db.dsn, connect_timeout=10)
        try:
            conn.autocommit = True
            with conn.cursor() as cur:
                cur.execute("VACUUM (ANALYZE)")
        finally:
            conn.close()
    return time.monotonic() - started


def _sizes_json(sizes: Sizes) -> dict[str, Any]:
    import attrs

    from bench.first_screen_plan import group_sizes

    groups = group_sizes(sizes.groups - 1, sizes.smallest_group, sizes.largest_group)
    return {**attrs.asdict(sizes), "dms_count": sizes.dms, "groups_count": sizes.groups,
            "group_members_median": median(groups) if groups else None,
            "group_members_total": sum(groups) + sizes.small_room}
