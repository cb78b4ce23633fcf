"""What one follow costs the machine, against what one raw admin-API join costs.

The follow benchmark (``bench merchant_circle``) compares rates with every side sharing two
cores; a rate moves with whatever else the machine does. This one counts instead: three servers
(stock Synapse; stock Synapse carrying the bridge's registration, without a URL; Wangxin with
every module and the bridge) take their joins **one server at a time** while the others idle,
each wave filling a fresh room from 0 to ``followers`` members:

- stock: admin-API joins into a public room;
- stock with the bridge registered: the same;
- Wangxin: admin-API joins into a public room (what any join costs on the Wangxin server);
- Wangxin: purchase webhooks until the circle has every buyer (what a follow costs).

For each wave: CPU seconds of the homeserver process(es) and of the bridge (``/proc``, user +
system), and every database transaction by name with its duration (Synapse's
``synapse.storage.txn`` log, ``--log-transactions``). Per join: CPU ms, database ms (on SQLite
Synapse has one connection, so database time is time every other join waits for), transaction
count; and by transaction name, where the Wangxin figures differ from the registered stock ones.
"""

from __future__ import annotations

import collections
import os
import re
import sys
import tempfile
import time
from typing import Any
from urllib.parse import quote

import requests

from bench.core import BenchStack, registration_without_url
from bench.merchant_circle import API, admin_joins, create_users, wangxin_purchase_follows
from bench.progress import together
from bench.stats import ratio

_TXN_END = re.compile(r"\[TXN END\] \{(.+)-[0-9a-f]+\} ([0-9.]+) sec")
_TICKS = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds a process has used so far."""
    with open(f"/proc/{pid}/stat", encoding="ascii") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / _TICKS  # utime, stime (fields 14 and 15)


def parse_transactions(text: str) -> dict[str, tuple[int, float]]:
    """``{name: (count, seconds)}`` from the ``[TXN END]`` lines of a Synapse log."""
    found: dict[str, list[float]] = collections.defaultdict(lambda: [0, 0.0])
    for m in _TXN_END.finditer(text):
        entry = found[m.group(1)]
        entry[0] += 1
        entry[1] += float(m.group(2))
    return {name: (int(c), s) for name, (c, s) in found.items()}


class Meter:
    """CPU and database transactions of one stack between ``start`` and ``stop``."""

    def __init__(self, stack: Any):
        self.stack = stack
        self.logs = [os.path.join(stack.dir, "logs", name) for name in os.listdir(os.path.join(stack.dir, "logs"))
                     if name.startswith("synapse") and name.endswith(".log") and name != "synapse-keygen.log"]

    def _pids(self) -> dict[str, int]:
        return self.stack.reload_info()["processes"]

    def start(self) -> None:
        self.offsets = {path: os.path.getsize(path) for path in self.logs}
        self.cpu = {name: cpu_seconds(pid) for name, pid in self._pids().items()}
        self.started = time.perf_counter()

    def stop(self, joins: int) -> dict[str, Any]:
        wall = time.perf_counter() - self.started
        cpu = {name: cpu_seconds(pid) - self.cpu[name] for name, pid in self._pids().items() if name in self.cpu}
        text = ""
        for path, offset in self.offsets.items():
            with open(path, "rb") as f:
                f.seek(offset)
                text += f.read().decode("utf-8", "replace")
        txns = parse_transactions(text)
        homeserver = sum(s for name, s in cpu.items() if name not in ("bridge", "merchant-bot"))
        return {
            "joins": joins,
            "wall_s": round(wall, 1),
            "joins_per_s": round(joins / wall, 2),
            "homeserver_cpu_ms_per_join": round(1000 * homeserver / joins, 2),
            "bridge_cpu_ms_per_join": round(1000 * cpu.get("bridge", 0.0) / joins, 2),
            "db_ms_per_join": round(1000 * sum(s for _, s in txns.values()) / joins, 2),
            "transactions_per_join": round(sum(c for c, _ in txns.values()) / joins, 2),
            "_txns": txns,
        }


def _public_room(stack: Any) -> str:
    owner = stack.register_user()
    r = requests.post(f"{stack.url}/_matrix/client/v3/createRoom", json={"preset": "public_chat"},
                      headers={"Authorization": f"Bearer {owner['access_token']}"}, timeout=60)
    r.raise_for_status()
    return r.json()["room_id"]


def _join_wave(stack: Any, followers: int, concurrency: int, label: str) -> dict[str, Any]:
    room = _public_room(stack)
    users = create_users(stack, followers, concurrency)
    time.sleep(5)  # the user creations' background work ends outside the measurement
    meter = Meter(stack)
    print(f"[follow_cost] {label}: {followers} admin joins", file=sys.stderr, flush=True)
    meter.start()
    admin_joins(stack, room, users, concurrency)
    return meter.stop(followers)


def _follow_wave(stack: Any, followers: int, concurrency: int) -> dict[str, Any]:
    merchant = stack.register_user()
    r = requests.put(f"{stack.url}{API}/merchants/{quote(merchant['user_id'])}", json={"name": "Bench"},
                     headers=stack.admin_headers(), timeout=60)
    r.raise_for_status()
    buyers = create_users(stack, followers, concurrency)
    time.sleep(5)
    meter = Meter(stack)
    print(f"[follow_cost] wangxin: {followers} purchase follows", file=sys.stderr, flush=True)
    meter.start()
    answered, _, _ = wangxin_purchase_follows(stack, merchant["user_id"], buyers, concurrency, wait_for_filing=False)
    result = meter.stop(followers)
    result["webhooks_answered_s"] = round(answered, 1)
    return result


def _by_name(a: dict[str, tuple[int, float]], b: dict[str, tuple[int, float]], joins: int,
             n: int = 15) -> list[dict[str, Any]]:
    """Transaction names whose database time per join differs most between ``a`` and ``b``."""
    rows: list[dict[str, Any]] = []
    for name in set(a) | set(b):
        ca, sa = a.get(name, (0, 0.0))
        cb, sb = b.get(name, (0, 0.0))
        rows.append({"name": name, "db_ms_per_join": round(1000 * (sa - sb) / joins, 3),
                     "count_per_join": round((ca - cb) / joins, 3)})
    rows.sort(key=lambda r: -abs(r["db_ms_per_join"]))
    return rows[:n]


def run(followers: int = 2000, concurrency: int = 8, postgres: bool = False) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="wx-bench-cost-") as tmp:
        stacks: list[BenchStack] = []
        try:
            stacks.append(BenchStack(os.path.join(tmp, "stock"), ["--stock", "--log-transactions"], postgres))
            stacks.append(BenchStack(os.path.join(tmp, "wangxin"), ["--no-bot", "--log-transactions"], postgres))
            registration = os.path.join(tmp, "bridge-registration.yaml")
            registration_without_url(os.path.join(stacks[1].directory, "appservice-registration.yaml"), registration)
            stacks.append(BenchStack(os.path.join(tmp, "stock-registered"),
                                     ["--stock", "--log-transactions", "--appservice-registration", registration],
                                     postgres))
            together(*[s.settle for s in stacks])
            stock, wangxin, registered = (s.stack for s in stacks)
            waves = {
                "stock_admin_joins": _join_wave(stock, followers, concurrency, "stock"),
                "stock_with_the_bridge_registered_admin_joins": _join_wave(registered, followers, concurrency,
                                                                           "stock with the bridge registered"),
                "wangxin_admin_joins": _join_wave(wangxin, followers, concurrency, "wangxin"),
                "wangxin_follows": _follow_wave(wangxin, followers, concurrency),
            }
        finally:
            for s in reversed(stacks):
                s.stop()
    txns = {key: wave.pop("_txns") for key, wave in waves.items()}
    st, reg = waves["stock_admin_joins"], waves["stock_with_the_bridge_registered_admin_joins"]
    wxj, wxf = waves["wangxin_admin_joins"], waves["wangxin_follows"]

    def ratios(a: dict[str, Any], b: dict[str, Any]) -> dict[str, Any]:
        return {key: ratio(a[key], b[key]) for key in
                ("homeserver_cpu_ms_per_join", "db_ms_per_join", "transactions_per_join", "joins_per_s")}

    return {
        "database": "postgres" if postgres else "sqlite",
        "followers": followers,
        "concurrency": concurrency,
        "measured": "one server at a time, the others idle; each wave fills a fresh room",
        "waves": waves,
        "ratios": {
            "registration_only": ratios(reg, st),
            "wangxin_server_joins_vs_registered_stock": ratios(wxj, reg),
            "follows_vs_wangxin_admin_joins": ratios(wxf, wxj),
            "follows_vs_registered_stock": ratios(wxf, reg),
            "follows_vs_stock": ratios(wxf, st),
        },
        "where_wangxin_server_joins_differ_from_registered_stock": _by_name(txns["wangxin_admin_joins"],
                                                                           txns["stock_with_the_bridge_registered_admin_joins"],
                                                                           followers),
        "where_follows_differ_from_wangxin_admin_joins": _by_name(txns["wangxin_follows"],
                                                                  txns["wangxin_admin_joins"], followers),
    }
