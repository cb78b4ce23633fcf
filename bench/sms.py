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
  same concurrency (what the HTTP calls alone cost).
"""

from __future__ import annotations

import json
import os
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

