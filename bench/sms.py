"""Outbound SMS relay: operator sends through the bridge to a loopback gateway, sustained.

A stack runs with ``--sms-provider twilio`` pointed at a fast local gateway
(``bench/sms_gateway.py``, its own process, that only counts). Worker threads POST
``/_wangxin/v1/sms/messages`` for ``seconds`` at up to ``rate`` per second (each SMS to its own
number, so per-destination caps do not interfere; the global rate limit is lifted above the
offered rate). Reported:

- the gateway's accepted messages per second during the run (median and lowest full second)
  and over the whole run, and how long the queue took to drain after the last POST;
- the bridge's CPU time per SMS (independent of other load on the machine);
- the bridge's RSS sampled every second: the mean of the first and of the last 10 seconds;
- the floor: the same number of POSTs sent straight to the gateway by one treq client with the
  same concurrency (what the HTTP calls alone cost);
- inbound: a signed Twilio webhook for a text from a phone, until the message is in the user's
  /sync (p50/p95 over ``INBOUND_SAMPLES``), next to the same text sent by a Matrix client into
  the same room (stock Synapse's own send-to-sync latency, the floor).
"""

from __future__ import annotations

import json
import os
import secrets
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from typing import Any

import requests

from bench.core import BenchStack
from tests.harness.services import free_port_block

INBOUND_SAMPLES = 200
CONCURRENCY = 16  # the bridge's gateway requests in flight
POSTERS = 12  # client threads posting to the bridge


def _rss_mb(pid: int) -> float:
    with open(f"/proc/{pid}/status", encoding="ascii") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return 0.0


def _cpu_s(pid: int) -> float:
    """User + system CPU seconds the process has used."""
    with open(f"/proc/{pid}/stat", encoding="ascii") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _gateway_stats(url: str) -> dict[str, Any]:
    return dict(requests.get(f"{url}/stats", timeout=10).json())


def run(seconds: int = 60, rate: int = 300, postgres: bool = False) -> dict[str, Any]:
    port = free_port_block(1)
    gateway_url = f"http://127.0.0.1:{port}"
    gateway = subprocess.Popen([sys.executable, "-m", "bench.sms_gateway", "serve", "--port", str(port)],
                               stdout=subprocess.PIPE, text=True)
    try:
        assert gateway.stdout is not None and gateway.stdout.readline().strip() == "ready"
        limits = (f"per_destination_per_day=1000000,global_per_second={rate * 4},concurrency={CONCURRENCY},"
                  "request_timeout_s=10")
        twilio = ["--sms-provider", "twilio", "--twilio-base-url", gateway_url,
                  "--twilio-account-sid", "AC" + "0" * 32, "--twilio-auth-token", "bench",
                  "--sms-from", "+15005550006", "--sms-limits", limits]
        with tempfile.TemporaryDirectory(prefix="wx-bench-sms-") as tmp:
            bench = BenchStack(os.path.join(tmp, "wangxin"), ["--no-bot", *twilio], postgres)
            try:
                result = _measure(bench, gateway_url, seconds, rate)
                result["inbound"] = _inbound(bench)
            finally:
                bench.stop()
        result["floor_treq_direct"] = _floor(gateway_url, result["accepted"])
        result["database"] = "postgres" if postgres else "sqlite"
        return result
    finally:
        gateway.terminate()
        gateway.wait(30)


class _Poster(threading.Thread):
    """Posts SMS to the bridge at its share of the offered rate until told to stop."""

    def __init__(self, stack_url: str, token: str, index: int, rate: float, stop: threading.Event):
        super().__init__(daemon=True)
        self.http = requests.Session()
        self.http.headers["Authorization"] = f"Bearer {token}"
        self.url = f"{stack_url}/_wangxin/v1/sms/messages"
        self.index, self.interval, self.stop = index, 1 / rate, stop
        self.accepted = self.refused = 0

    def run(self) -> None:
        n = 0
        next_at = time.monotonic()
        while not self.stop.is_set():
            n += 1
            to = f"+86139{self.index:02d}{n:06d}"
            r = self.http.post(self.url, json={"to": to, "body": f"旺信基准测试 {self.index}-{n}"}, timeout=60)
            if r.status_code == 202:
                self.accepted += 1
            else:
                self.refused += 1
            next_at += self.interval
            delay = next_at - time.monotonic()
            if delay > 0:
                time.sleep(delay)
            else:
                next_at = time.monotonic()  # behind: do not burst to catch up


def _measure(bench: BenchStack, gateway_url: str, seconds: int, rate: int) -> dict[str, Any]:
    stack = bench.stack
    bridge_pid = stack.info["processes"]["bridge"]
    token = stack.info["bridge"]["as_token"]
    warm = _Poster(stack.info["bridge"]["url"], token, 99, rate, threading.Event())
    for _ in range(100):  # warm-up: connections, caches, the database file
        warm.http.post(warm.url, json={"to": "+8613700000000", "body": "warm-up"}, timeout=60)
    _wait_count(gateway_url, 100, 60)

    start_count = _gateway_stats(gateway_url)["count"]
    stop = threading.Event()
    posters = [_Poster(stack.info["bridge"]["url"], token, i, rate / POSTERS, stop) for i in range(POSTERS)]
    rss: list[float] = []
    cpu_before = _cpu_s(bridge_pid)
    started = time.time()
    for p in posters:
        p.start()
    while time.time() - started < seconds:
        time.sleep(1 - (time.time() - started) % 1)
        rss.append(_rss_mb(bridge_pid))
    stop.set()
    for p in posters:
        p.join(60)
    pushed_s = time.time() - started
    accepted = sum(p.accepted for p in posters)
    refused = sum(p.refused for p in posters)
    at_push_end = _gateway_stats(gateway_url)["count"] - start_count
    drain_started = time.time()
    stats = _wait_count(gateway_url, start_count + accepted, 300)
    drain_s = time.time() - drain_started
    cpu = _cpu_s(bridge_pid) - cpu_before
    per_second = {int(k): v for k, v in stats["per_second"].items()}
    full = [per_second.get(s, 0) for s in range(int(started) + 1, int(started + pushed_s))]
    return {
        "seconds": seconds,
        "offered_per_second": rate,
        "accepted": accepted,
        "refused": refused,
        "accepted_per_second": round(accepted / pushed_s, 1),
        "gateway_per_second": {
            "during_push": round(at_push_end / pushed_s, 1),
            "median_full_second": statistics.median(full) if full else 0,
            "lowest_full_second": min(full) if full else 0,
            "including_drain": round((stats["count"] - start_count) / (pushed_s + drain_s), 1),
        },
        "drain_after_push_s": round(drain_s, 2),
        # Under CPU contention (other processes on the machine) rates fall; CPU per SMS does not.
        "bridge_cpu_ms_per_sms": round(cpu * 1000 / max(1, accepted), 2),
        "bridge_cpu_share_of_a_core": round(cpu / (pushed_s + drain_s), 2),
        "bridge_rss_mb": {
            "first_10s_mean": round(statistics.fmean(rss[:10]), 1) if rss else None,
            "last_10s_mean": round(statistics.fmean(rss[-10:]), 1) if rss else None,
            "max": round(max(rss), 1) if rss else None,
        },
    }


def _wait_count(gateway_url: str, count: int, timeout: float) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        stats = _gateway_stats(gateway_url)
        if stats["count"] >= count or time.monotonic() > deadline:
            return stats
        time.sleep(0.2)


def _floor(gateway_url: str, count: int) -> dict[str, Any]:
    url = f"{gateway_url}/2010-04-01/Accounts/AC{'0' * 32}/Messages.json"
    out = subprocess.run([sys.executable, "-m", "bench.sms_gateway", "floor", "--url", url, "--count", str(count),
                          "--concurrency", str(CONCURRENCY)], capture_output=True, text=True, timeout=600,
                         check=True)
    return dict(json.loads(out.stdout.strip().splitlines()[-1]))



class _SyncWatcher(threading.Thread):
    """Long-polls /sync for one user and notes when each message body first shows in a room."""

    def __init__(self, stack_url: str, token: str, room_id: str):
        super().__init__(daemon=True)
        self.http = requests.Session()
        self.http.headers["Authorization"] = f"Bearer {token}"
        self.url, self.room_id = f"{stack_url}/_matrix/client/v3/sync", room_id
        self.seen: dict[str, float] = {}
        self.stop = threading.Event()
        self.ready = threading.Event()

    def run(self) -> None:
        since = None
        while not self.stop.is_set():
            params = {"timeout": "10000", "filter": json.dumps({"room": {"timeline": {"limit": 50}}})}
            if since:
                params["since"] = since
            try:
                data = self.http.get(self.url, params=params, timeout=60).json()
            except requests.RequestException:
                if self.stop.is_set():  # the stack is stopping under the last long-poll
                    return
                raise
            now = time.monotonic()
            since = data["next_batch"]
            room = data.get("rooms", {}).get("join", {}).get(self.room_id, {})
            for event in room.get("timeline", {}).get("events", []):
                body = event.get("content", {}).get("body")
                if isinstance(body, str):
                    self.seen.setdefault(body, now)
            self.ready.set()

    def wait_for(self, body: str, timeout: float = 30) -> float:
        deadline = time.monotonic() + timeout
        while body not in self.seen:
            if time.monotonic() > deadline:
                raise TimeoutError(f"{body!r} did not reach /sync")
            time.sleep(0.002)
        return self.seen[body]


def _inbound(bench: BenchStack) -> dict[str, Any]:
    from tests.harness.fake_twilio import twilio_signature

    stack = bench.stack
    user = stack.register_user()
    friend = stack.register_user()
    http = requests.Session()
    http.headers["Authorization"] = f"Bearer {user['access_token']}"
    phone = "+8613912340000"
    ghost = f"@wx_sms_{phone[1:]}:{stack.server_name}"
    room_id = http.post(f"{stack.url}/_matrix/client/v3/createRoom", timeout=60, json={
        "preset": "trusted_private_chat", "is_direct": True, "invite": [ghost, friend["user_id"]]}).json()["room_id"]
    friend_http = requests.Session()
    friend_http.headers["Authorization"] = f"Bearer {friend['access_token']}"
    friend_http.post(f"{stack.url}/_matrix/client/v3/join/{room_id}", json={}, timeout=60).raise_for_status()
    member = f"{stack.url}/_matrix/client/v3/rooms/{room_id}/state/m.room.member/{ghost}"
    deadline = time.monotonic() + 60
    while http.get(member, timeout=10).json().get("membership") != "join":
        assert time.monotonic() < deadline, "the SMS ghost did not join"
        time.sleep(0.1)
    watcher = _SyncWatcher(stack.url, user["access_token"], room_id)
    watcher.start()
    watcher.ready.wait(30)
    webhook = stack.info["bridge"]["url"] + "/_wangxin/v1/sms/twilio/inbound"
    hook = requests.Session()

    def by_sms(i: int) -> float:
        body = f"inbound {i} {secrets.token_hex(4)}"
        sid = "SM" + secrets.token_hex(16)
        params = {"MessageSid": sid, "SmsSid": sid, "AccountSid": "AC" + "0" * 32, "From": phone,
                  "To": "+15005550006", "Body": body, "NumMedia": "0", "NumSegments": "1"}
        headers = {"X-Twilio-Signature": twilio_signature("bench", webhook, params)}
        started = time.monotonic()
        hook.post(webhook, data=params, headers=headers, timeout=60).raise_for_status()
        return watcher.wait_for(body) - started

    def by_client(i: int) -> float:
        body = f"direct {i} {secrets.token_hex(4)}"
        started = time.monotonic()
        friend_http.put(f"{stack.url}/_matrix/client/v3/rooms/{room_id}/send/m.room.message/{secrets.token_hex(8)}",
                        json={"msgtype": "m.text", "body": body}, timeout=60).raise_for_status()
        return watcher.wait_for(body) - started

    for i in range(10):  # warm-up
        by_sms(-i)
        by_client(-i)
    sms_ms: list[float] = []
    client_ms: list[float] = []
    for i in range(INBOUND_SAMPLES):  # interleaved, so both see the same machine
        sms_ms.append(by_sms(i) * 1000)
        client_ms.append(by_client(i) * 1000)
    watcher.stop.set()

    def pct(values: list[float], q: float) -> float:
        return round(sorted(values)[min(len(values) - 1, int(q * len(values)))], 1)

    return {
        "samples": INBOUND_SAMPLES,
        "webhook_to_sync_ms": {"p50": pct(sms_ms, 0.5), "p95": pct(sms_ms, 0.95)},
        "client_send_to_sync_ms": {"p50": pct(client_ms, 0.5), "p95": pct(client_ms, 0.95)},
        "ratio_p50": round(pct(sms_ms, 0.5) / pct(client_ms, 0.5), 2),
    }
