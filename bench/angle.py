"""你我36.8度: the pairing engine, angle submissions over HTTP, and coupon delivery.

**The engine**: the module's angle pairer (``discovery.module.pair_angles``: everyone in one pool,
no regions, blocks and the day's earlier pairs excluded) fed ``ENGINE_ENTRANTS`` entrants and
``ENGINE_EXCLUDED`` excluded pairs directly, in this process, timed over ``ENGINE_RUNS`` runs.

**Angles over HTTP** against the plain endpoint, as ``bench discovery`` measures shakes
(``discovery.shakes_vs_plain``, whose docstring says how): ``CLIENTS`` closed-loop clients, each
taking ``USERS_PER_CLIENT`` opted-in users in turn, send ``POST /discovery/angle {"angle": 36.8}``
(inside the tolerance: every try enters its window and is paired or not when it closes) in
phases alternating with ``GET /discovery/profile`` as the same users (plain, angle, angle, plain).
The users are real accounts whose discovery rows are bulk-written (``discovery.bulk_opt_in``).
The angle window is ``WINDOW_MS``, so a client's ceiling is one answer per window; each client
waits a random part of the window before each angle (``discovery._phase``'s ``spread_s``), so
that the clients do not all send at the instant a window's answers come.

**Coupon delivery**, on a second stack with the discovery bot and the stack's local coupon issuer
(``wangxin_stack/coupons.py``): ``PAIRS`` pairs of people who each chat with the bot; each pair
sends its angles together, both accept over HTTP, and the clock runs from the second accept's
answer until the bot's message with the coupon is in the /sync of both (each person's own chat
with the bot). What it contains: the module's request to the issuer, the bot's feed of coupon
changes (polled; a change shows there as soon as it is written),
the bot's send and the clients' /sync.
"""

from __future__ import annotations

import os
import random
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import requests

from bench.core import BenchStack
from bench.discovery import _session, _tokens, bulk_opt_in, shakes_vs_plain
from bench.merchant_circle import create_users
from bench.processes import RssSampler, synapse_pids
from bench.provenance import machine
from bench.stats import summary_ms
from synapse_modules.discovery.module import pair_angles
from synapse_modules.discovery.pairing import Entrant

D = "/_synapse/client/wangxin/v1/discovery"
ENGINE_ENTRANTS = 10_000
ENGINE_EXCLUDED = 2_000
ENGINE_RUNS = 21
WINDOW_MS = 1000
CLIENTS = 600
USERS_PER_CLIENT = 3
PAIRS = 15
GOALS = {"engine_10000_ms": 100.0, "angle_rate_ratio": 0.8}


def _stage(text: str) -> None:
    print(f"[angle] {time.strftime('%H:%M:%S')} {text}", file=sys.stderr, flush=True)


def engine(seed: int = 0) -> dict[str, Any]:
    rng = random.Random(seed)
    entrants = [Entrant(f"@e{i}:bench") for i in range(ENGINE_ENTRANTS)]
    excluded = [(f"@e{rng.randrange(ENGINE_ENTRANTS)}:bench", f"@e{rng.randrange(ENGINE_ENTRANTS)}:bench")
                for _ in range(ENGINE_EXCLUDED)]
    times: list[float] = []
    cpu: list[float] = []
    paired = 0
    for _ in range(ENGINE_RUNS):
        started, cpu_started = time.perf_counter(), time.thread_time()
        pairs = pair_angles(entrants, excluded)
        times.append(time.perf_counter() - started)
        cpu.append(time.thread_time() - cpu_started)
        paired = 2 * len(pairs)
    return {"entrants": ENGINE_ENTRANTS, "excluded_pairs": ENGINE_EXCLUDED, "runs": ENGINE_RUNS,
            "ms": summary_ms(times), "max_ms": round(max(times) * 1000, 2), "cpu_ms": summary_ms(cpu),
            "paired_last_run": paired}


def angles_over_http(postgres: bool) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="wx-bench-angle-") as tmp:
        bench = BenchStack(os.path.join(tmp, "wangxin"),
                           ["--no-bot", "--bcrypt-rounds", "4", "--discovery-options", f"angle.window_ms={WINDOW_MS}"],
                           postgres)
        sampler = RssSampler(synapse_pids(bench.stack))
        try:
            bench.settle()
            stack = bench.stack
            users = CLIENTS * USERS_PER_CLIENT
            _stage(f"making {users} accounts")
            user_ids = create_users(stack, users, 8)
            tokens = _tokens(stack, user_ids)
            bulk_opt_in(stack, [(u, f"角度{i}", None, None, None) for i, u in enumerate(user_ids)],
                        int(time.time() * 1000))
            start_rss = sampler.now()
            sampler.start()
            _stage("angles against the plain endpoint")
            per_client = [tokens[c::CLIENTS] for c in range(CLIENTS)]
            found = shakes_vs_plain(stack, per_client, arm="angle", window_ms=WINDOW_MS)
            found["synapse_rss_mb"] = sampler.report(start_rss, sampler.now())
            return found
        finally:
            sampler.stop.set()
            bench.stop()


class _Watcher(threading.Thread):
    """Long-polls one person's /sync and notes when the bot's message with a coupon code first
    shows in their chat with the bot."""

    def __init__(self, url: str, token: str, room_id: str, bot: str):
        super().__init__(daemon=True)
        self.http = _session(token)
        self.url, self.room_id, self.bot = url, room_id, bot
        self.seen: dict[str, float] = {}  # code -> when first seen
        self.stop = threading.Event()
        r = self.http.get(f"{url}/_matrix/client/v3/sync", params={"timeout": 0}, timeout=120)
        r.raise_for_status()
        self.since = r.json()["next_batch"]

    def run(self) -> None:
        while not self.stop.is_set():
            try:
                r = self.http.get(f"{self.url}/_matrix/client/v3/sync",
                                  params={"since": self.since, "timeout": 5000}, timeout=60)
                r.raise_for_status()
            except requests.RequestException:
                continue
            now = time.monotonic()
            body = r.json()
            self.since = body["next_batch"]
            room = body.get("rooms", {}).get("join", {}).get(self.room_id, {})
            for event in room.get("timeline", {}).get("events", []):
                text = str(event.get("content", {}).get("body", ""))
                if event.get("sender") == self.bot and "WX368-" in text:
                    code = text[text.index("WX368-"):][:16]
                    self.seen.setdefault(code, now)


def _dm_with_bot(http: requests.Session, url: str, bot: str) -> str:
    r = http.post(f"{url}/_matrix/client/v3/createRoom", json={"preset": "trusted_private_chat", "is_direct": True,
                                                                "invite": [bot]}, timeout=60)
    r.raise_for_status()
    room_id = str(r.json()["room_id"])
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:  # the bot joins, then knows this chat as the person's
        members = http.get(f"{url}/_matrix/client/v3/rooms/{room_id}/joined_members", timeout=60).json()
        if bot in members.get("joined", {}):
            break
        time.sleep(0.2)
    http.put(f"{url}/_matrix/client/v3/rooms/{room_id}/send/m.room.message/hello{time.time_ns()}",
             json={"msgtype": "m.text", "body": "help"}, timeout=60).raise_for_status()
    return room_id


def coupon_delivery(postgres: bool) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="wx-bench-coupons-") as tmp:
        bench = BenchStack(os.path.join(tmp, "wangxin"),
                           ["--bcrypt-rounds", "4", "--discovery-options",
                            f"angle.window_ms={WINDOW_MS},coupons.rewards_per_day={PAIRS}"], postgres)
        try:
            bench.settle()
            stack = bench.stack
            url, bot = stack.url, str(stack.info["discovery"]["bot_user_id"])
            user_ids = create_users(stack, 2 * PAIRS, 8)
            tokens = _tokens(stack, user_ids)
            people = [_session(t) for t in tokens]
            for http in people:
                http.put(f"{url}{D}/profile", json={"enabled": True}, timeout=60).raise_for_status()
            _stage(f"{2 * PAIRS} people open their chat with the bot")
            watchers = [_Watcher(url, t, _dm_with_bot(h, url, bot), bot) for t, h in zip(tokens, people, strict=True)]
            for w in watchers:
                w.start()
            delays: list[float] = []
            for n in range(PAIRS):
                a, b = 2 * n, 2 * n + 1
                while not 50 <= time.time() * 1000 % WINDOW_MS <= WINDOW_MS / 4:
                    time.sleep(0.005)
                with ThreadPoolExecutor(2) as pool:
                    answers = dict(zip((a, b), pool.map(
                        lambda i: people[i].post(f"{url}{D}/angle", json={"angle": 36.8}, timeout=60).json(),
                        (a, b)), strict=True))
                request_id = answers[a].get("request_id")
                if not request_id:
                    raise RuntimeError(f"pair {n} was not paired: {answers}")
                people[a].post(f"{url}{D}/requests/{request_id}/accept", json={}, timeout=60).raise_for_status()
                people[b].post(f"{url}{D}/requests/{request_id}/accept", json={}, timeout=60).raise_for_status()
                accepted = time.monotonic()
                deadline = accepted + 120
                codes: list[str] = []
                while time.monotonic() < deadline and len(codes) < 2:
                    codes = [c["code"] for i in (a, b) for c in people[i].get(f"{url}{D}/coupons", timeout=60).json()[
                        "coupons"] if c["pairing_id"] == request_id and c["state"] == "issued"]
                    time.sleep(0.05)
                while time.monotonic() < deadline and not all(
                        code[:16] in watchers[i].seen for i, code in zip((a, b), codes, strict=True)):
                    time.sleep(0.02)
                seen = [watchers[i].seen.get(code[:16]) for i, code in zip((a, b), codes, strict=True)]
                if len(codes) < 2 or None in seen:
                    raise RuntimeError(f"pair {n}: the coupons did not reach both chats within 120 s")
                delays.append(max(s for s in seen if s is not None) - accepted)
                _stage(f"pair {n + 1}/{PAIRS}: both saw their coupon {delays[-1] * 1000:.0f} ms after the accept")
            for w in watchers:
                w.stop.set()
            return {"pairs": PAIRS, "delivery_ms": summary_ms(delays)}
        finally:
            bench.stop()


def run(postgres: bool = False) -> dict[str, Any]:
    result: dict[str, Any] = {"database": "postgres" if postgres else "sqlite", "machine": machine(),
                              "plain_endpoint": f"GET {D}/profile"}
    result["engine"] = engine()  # before any stack starts: the machine as quiet as it gets here
    result["angles_over_http"] = angles_over_http(postgres)
    result["coupon_delivery"] = coupon_delivery(postgres)
    angles = result["angles_over_http"]
    result["goals"] = {
        "engine_10000_under_100ms": result["engine"]["ms"]["p50_ms"] < GOALS["engine_10000_ms"],
        "angle_rate_ge_0.8x_plain": angles["ratio"] >= GOALS["angle_rate_ratio"],
        "angle_rate_was_server_bound": angles["shake_ceiling_per_s"] > angles["plain_rate_per_s"],
    }
    return result
