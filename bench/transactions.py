"""Database transactions the modules add: on an idle server, and per message sent.

Latency ratios near 1 are noisy on a shared machine (see docs/merchant-circle.md, "Cost"); a
count of database transactions is not. Both stacks run with ``--log-transactions`` (Synapse logs
"[TXN START] {name-id}" for each), settle, then stay idle for ``--seconds``, then each sends
``--messages`` messages into a room of two. The counts come from the Synapses' logs, by
transaction name; names starting with ``wangxin_`` are the modules' own. A third server, stock
Synapse carrying the bridge's registration (without a URL, so it sends the bridge nothing), tells
what the modules add from what a registered application service adds.
"""

from __future__ import annotations

import collections
import os
import re
import tempfile
import time
from typing import Any

from bench.core import BenchStack, Sender, registration_without_url
from bench.stats import ratio

_TXN = re.compile(r"\[TXN START\] \{(.+)-[0-9a-f]+\}")


class TxnLog:
    """Counts the transactions a stack's Synapse logs from a marked point on."""

    def __init__(self, stack: BenchStack):
        self.path = os.path.join(stack.stack.dir, "logs", "synapse.log")
        self.offset = 0

    def mark(self) -> None:
        self.offset = os.path.getsize(self.path)

    def since_mark(self) -> collections.Counter[str]:
        counts: collections.Counter[str] = collections.Counter()
        with open(self.path, "rb") as f:
            f.seek(self.offset)
            for line in f.read().decode("utf-8", "replace").splitlines():
                m = _TXN.search(line)
                if m:
                    counts[m.group(1)] += 1
        return counts


def _difference(wx: collections.Counter[str], st: collections.Counter[str], per: float) -> dict[str, float]:
    """Per-name difference (Wangxin minus stock), largest first, names that differ by ≥ 0.01 only."""
    diff = {name: (wx[name] - st[name]) / per for name in set(wx) | set(st)}
    return {k: round(v, 2) for k, v in sorted(diff.items(), key=lambda kv: -abs(kv[1])) if abs(v) >= 0.01}


def _top(counts: collections.Counter[str], per: float, n: int = 12) -> dict[str, float]:
    return {name: round(c / per, 2) for name, c in counts.most_common(n)}


def run(seconds: int = 60, messages: int = 200, postgres: bool = False) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="wx-bench-txn-") as tmp:
        stacks: list[BenchStack] = []
        try:
            stacks.append(BenchStack(os.path.join(tmp, "stock"), ["--stock", "--log-transactions"], postgres))
            stacks.append(BenchStack(os.path.join(tmp, "wangxin"), ["--log-transactions"], postgres))
            registration = os.path.join(tmp, "bridge-registration.yaml")
            registration_without_url(os.path.join(stacks[1].directory, "appservice-registration.yaml"), registration)
            stacks.append(BenchStack(os.path.join(tmp, "stock-appservice"),
                                     ["--stock", "--log-transactions", "--appservice-registration", registration],
                                     postgres))
            for s in stacks:  # they run their background updates at the same time; wait for all
                s.settle()
            senders = [Sender(s.stack) for s in stacks]
            for _ in range(20):  # warm all up
                for sender in senders:
                    sender.send_once()
            time.sleep(5)  # let the warm-up's background work end
            logs = [TxnLog(s) for s in stacks]
            for log in logs:
                log.mark()
            time.sleep(seconds)
            idle = [log.since_mark() for log in logs]
            sent = []
            for sender, log in zip(senders, logs, strict=True):
                log.mark()
                started = time.monotonic()
                for _ in range(messages):
                    sender.send_once()
                sent.append((log.since_mark(), time.monotonic() - started))
        finally:
            for s in reversed(stacks):
                s.stop()
    minutes = seconds / 60
    st_idle, wx_idle, as_idle = idle
    (st_sent, st_s), (wx_sent, wx_s), (as_sent, as_s) = sent
    wx_own = collections.Counter({k: v for k, v in wx_sent.items() if k.startswith("wangxin_")})
    return {
        "database": "postgres" if postgres else "sqlite",
        "idle": {
            "seconds": seconds,
            "wangxin_per_minute": round(sum(wx_idle.values()) / minutes, 1),
            "stock_per_minute": round(sum(st_idle.values()) / minutes, 1),
            "stock_with_the_bridge_registered_per_minute": round(sum(as_idle.values()) / minutes, 1),
            "difference_by_name_per_minute": _difference(wx_idle, st_idle, minutes),
            "stock_by_name_per_minute": _top(st_idle, minutes),
        },
        "messages": {
            "messages": messages,
            "wangxin_per_message": round(sum(wx_sent.values()) / messages, 2),
            "stock_per_message": round(sum(st_sent.values()) / messages, 2),
            "stock_with_the_bridge_registered_per_message": round(sum(as_sent.values()) / messages, 2),
            "ratio": ratio(sum(wx_sent.values()), sum(st_sent.values())),
            "modules_only_ratio": ratio(sum(wx_sent.values()), sum(as_sent.values())),
            "modules_own_per_message": _top(wx_own, messages),
            "difference_by_name_per_message": _difference(wx_sent, st_sent, messages),
            "modules_only_difference_by_name_per_message": _difference(wx_sent, as_sent, messages),
            "send_seconds": {"wangxin": round(wx_s, 1), "stock": round(st_s, 1),
                             "stock_with_the_bridge_registered": round(as_s, 1)},
        },
    }
