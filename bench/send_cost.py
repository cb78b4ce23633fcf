"""``bench send_cost --reuse-build DIR [--postgres DSN] [--messages 300] [--py-spy]``: where the
milliseconds of a send go, Wangxin against stock Synapse with and without the bridge's
application-service registration, on an account kept by ``bench first_screen --keep-build``.

``first_screen`` says how much longer a send takes; this says why. Three servers on copies of
one database (single process each): Wangxin, stock Synapse carrying the bridge's registration
with no URL, and plain stock Synapse. For each:

- **idle**: CPU per second of every process of the stack, and (PostgreSQL) database transactions
  per second, over one window in which nobody sends (``--idle-seconds``): what the modules' polls
  and the bots cost when nothing happens;
- **sends** into the account's 10-member room, in rounds of ``--messages`` per side, the sides
  taking turns: p50/p95, CPU of every process per send (from ``/proc/PID/stat``), database
  transactions per send (PostgreSQL's ``pg_stat_database.xact_commit``);
- with ``--py-spy`` (``pip install py-spy``; it attaches to a running process, so it needs root
  or ``CAP_SYS_PTRACE``), a sampling profile of each side's Synapse process during its sends,
  summarised as the share of samples in Wangxin's modules (by function), in Synapse's wrappers
  around module callbacks, and in Synapse's application-service handling. The raw profiles are
  written beside the results (``bench/results/send_cost-*.txt``, py-spy's ``raw`` format, which
  flame-graph tools read). py-spy samples without stopping the process (``--nonblocking``),
  yet profiled sends are slower, and not by the same factor on every side: take the profile's
  shares from a profiled run and the times and ratios from a run without ``--py-spy``.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Iterable, Iterator
from statistics import median
from typing import Any

from bench.first_screen import REGISTERED, Side, _vacuum_analyze, process_cpu, wait_for_bridge
from bench.provenance import commit, machine
from bench.stats import p50_ratio_interval, ratio, summary_ms

ROOM = "small"  # the account's 10-member room
WARMUP = 20  # unmeasured sends per side before the rounds
SAMPLE_RATE = 200  # py-spy samples per second
ROUNDS = 2
# PostgreSQL's backends publish their transaction counts at most every 10 s when idle
# (PGSTAT_IDLE_INTERVAL): a count is read this long after the work it should include, and an
# idle window starts this long after the sends before it.
STATS_FLUSH_S = 11

# Where a profiled frame belongs (py-spy names a frame ``function (file:line)``).
MODULES = "synapse_modules/"
CALLBACK_WRAPPERS = "synapse/module_api/callbacks/"
APPSERVICE = ("synapse/handlers/appservice.py", "synapse/appservice/", "synapse/storage/databases/main/appservice.py")

_FRAME = re.compile(r"^(?P<function>.*) \((?P<file>[^()]*?)(?::\d+)?\)$")


def py_spy_binary() -> str | None:
    """py-spy next to this Python (a venv's ``bin/``), else on ``PATH``."""
    beside = os.path.join(os.path.dirname(sys.executable), "py-spy")
    return beside if os.access(beside, os.X_OK) else shutil.which("py-spy")


def _frame(text: str) -> tuple[str, str]:
    m = _FRAME.match(text)
    return (m.group("function"), m.group("file")) if m else (text, "")


def summarize_profile(lines: Iterable[str], top: int = 15) -> dict[str, Any]:
    """py-spy ``raw`` lines (``frame;frame;… count``, outermost first) -> samples in all, and
    those whose stack holds a frame of Wangxin's modules (by the innermost such function), of
    Synapse's module-callback wrappers with no module frame inside them (the wrapper's own
    cost), and of Synapse's application-service code."""
    total = modules = wrappers = appservice = 0
    by_function: Counter[str] = Counter()
    for line in lines:
        stack, _, count_text = line.rstrip("\n").rpartition(" ")
        if not stack or not count_text.isdigit():
            continue
        count = int(count_text)
        total += count
        frames = [_frame(f) for f in stack.split(";")]
        files = [file for _, file in frames]
        module_frames = [(fn, file) for fn, file in frames if MODULES in file]
        if module_frames:
            modules += count
            fn, file = module_frames[-1]
            by_function[f"{fn} ({file[file.index(MODULES):]})"] += count
        elif any(CALLBACK_WRAPPERS in file for file in files):
            wrappers += count
        if any(part in file for file in files for part in APPSERVICE):
            appservice += count
    share = (lambda n: round(n / total, 4)) if total else (lambda n: 0.0)
    return {"samples": total, "modules_share": share(modules), "callback_wrappers_share": share(wrappers),
            "appservice_share": share(appservice),
            "modules_top": {name: n for name, n in by_function.most_common(top)}}


def _database_name(stack: Any) -> str | None:
    return stack.databases[0].name if stack.databases else None


def transactions(database: str | None) -> int | None:
    """Transactions PostgreSQL has counted for ``database`` (committed and rolled back)."""
    if database is None:
        return None
    import psycopg2

    from tests.harness import services

    conn = psycopg2.connect(services.pg_dsn())
    try:
        conn.autocommit = True
        with conn.cursor() as cur:
            cur.execute("SELECT pg_stat_clear_snapshot()")
            cur.execute("SELECT xact_commit + xact_rollback FROM pg_stat_database WHERE datname = %s", (database,))
            row = cur.fetchone()
    finally:
        conn.close()
    return int(row[0]) if row else None


def _per(after: dict[str, float], before: dict[str, float], divisor: float) -> dict[str, float]:
    return {name: round((after[name] - before.get(name, 0.0)) * 1000 / divisor, 2) for name in after}


@contextlib.contextmanager
def _profiled(binary: str | None, pid: int | None, path: str) -> Iterator[None]:
    if binary is None or pid is None:
        yield
        return
    spy = subprocess.Popen([binary, "record", "--rate", str(SAMPLE_RATE), "--format", "raw", "--nonblocking",
                            "--output", path, "--pid", str(pid)], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    time.sleep(2)  # attached and sampling before the first send
    try:
        yield
    finally:
        spy.send_signal(signal.SIGINT)
        _, err = spy.communicate(timeout=120)
        if spy.returncode not in (0, -2) and not os.path.exists(path):
            raise RuntimeError(f"py-spy failed ({spy.returncode}): {err.decode(errors='replace')[-500:]}")


def run(reuse_build: str, postgres: bool, messages: int = 300, idle_seconds: int = 30, py_spy: bool = False,
        results_dir: str = "", command: str = "") -> dict[str, Any]:
    from bench import kept_build

    binary = py_spy_binary() if py_spy else None
    if py_spy and binary is None:
        raise ValueError("--py-spy: py-spy is not installed (pip install py-spy)")
    kept, sizes, account = kept_build.load(reuse_build, postgres)
    info: dict[str, Any] = {"database": "postgres" if postgres else "sqlite", "topology": "single process",
                            "commit": commit(), "machine": machine(), "command": command,
                            "build": {"reused": reuse_build, "kept_at": kept["kept_at"], **account.counts},
                            "messages": messages, "idle_seconds": idle_seconds, "room": "the 10-member room"}
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="wx-bench-send-") as tmp, contextlib.ExitStack() as stopping:
        extra = ["--circle-posts-per-day", str(sizes.posts * 2 + 10)]
        print(f"[send_cost] starting Wangxin on a copy of the account kept in {reuse_build}", file=sys.stderr,
              flush=True)
        wangxin = kept_build.restore(reuse_build, kept, os.path.join(tmp, "wangxin"), extra, None)
        stopping.callback(wangxin.stop)
        print("[send_cost] starting the two stock copies", file=sys.stderr, flush=True)
        registered, stock = wangxin.stock_copies([(os.path.join(tmp, "registered"), True, None),
                                                  (os.path.join(tmp, "stock"), False, None)])
        stopping.callback(registered.stop)
        stopping.callback(stock.stop)
        wait_for_bridge(wangxin.stack)
        if postgres:
            _vacuum_analyze(wangxin.databases[0], registered.databases[0], stock.databases[0])
        benches = {"wangxin": wangxin, REGISTERED: registered, "stock": stock}
        sides = [Side(name, b.stack, account) for name, b in benches.items()]
        try:
            result = _measure(sides, benches, messages, idle_seconds, binary, results_dir)
        finally:
            for side in sides:
                side.close()
    info["seconds"] = round(time.monotonic() - started, 1)
    info["machine"]["load_average_at_end"] = [round(x, 2) for x in os.getloadavg()]
    return {**info, **result}


def _measure(sides: list[Side], benches: dict[str, Any], messages: int, idle_seconds: int, binary: str | None,
             results_dir: str) -> dict[str, Any]:
    out: dict[str, Any] = {name: {} for name in benches}
    sends = {side.name: side.send(ROOM) for side in sides}
    for _ in range(WARMUP):
        for send in sends.values():
            send()
    print(f"[send_cost] idle for {idle_seconds} s", file=sys.stderr, flush=True)
    time.sleep(STATS_FLUSH_S)  # the warm-up's transactions counted before the window opens
    cpu0 = {name: process_cpu(b.stack) for name, b in benches.items()}
    tx0 = {name: transactions(_database_name(b)) for name, b in benches.items()}
    time.sleep(idle_seconds)
    for name, b in benches.items():
        out[name]["idle_cpu_ms_per_s"] = _per(process_cpu(b.stack), cpu0[name], idle_seconds)
        tx, before = transactions(_database_name(b)), tx0[name]
        if tx is not None and before is not None:
            out[name]["idle_transactions_per_s"] = round((tx - before) / idle_seconds, 2)
    samples: dict[str, list[float]] = {side.name: [] for side in sides}
    rounds: dict[str, list[dict[str, Any]]] = {side.name: [] for side in sides}
    for round_no in range(ROUNDS):
        for k in range(len(sides)):
            side = sides[(round_no + k) % len(sides)]
            b = benches[side.name]
            print(f"[send_cost] round {round_no + 1}: {messages} sends on {side.name}", file=sys.stderr, flush=True)
            pid = b.stack.reload_info().get("processes", {}).get("synapse")
            path = os.path.join(results_dir or ".", f"send_cost-{side.name}-{round_no + 1}.txt")
            cpu, tx = process_cpu(b.stack), transactions(_database_name(b))
            with _profiled(binary, pid, path):
                got = [sends[side.name]() for _ in range(messages)]
            entry: dict[str, Any] = {"p50_ms": round(median(got) * 1000, 2),
                                     "cpu_ms_per_send": _per(process_cpu(b.stack), cpu, messages)}
            if tx is not None:
                time.sleep(STATS_FLUSH_S)
            after = transactions(_database_name(b))
            if after is not None and tx is not None:
                entry["transactions_per_send"] = round((after - tx) / messages, 2)
            if binary is not None:
                with open(path, encoding="utf-8", errors="replace") as f:
                    entry["profile"] = {"raw": path, **summarize_profile(f)}
            rounds[side.name].append(entry)
            samples[side.name] += got
    for name in out:
        out[name]["sends"] = {**summary_ms(samples[name]), "rounds": rounds[name]}
        out[name]["synapse_cpu_ms_per_send"] = round(median(r["cpu_ms_per_send"].get("synapse", 0.0)
                                                            for r in rounds[name]), 2)
    wx, reg, st = samples["wangxin"], samples[REGISTERED], samples["stock"]
    out["ratios"] = {
        "wangxin_vs_stock_p50": ratio(median(wx), median(st)),
        "wangxin_vs_stock_95pct_interval": p50_ratio_interval(wx, st),
        "wangxin_vs_registered_p50": ratio(median(wx), median(reg)),
        "wangxin_vs_registered_95pct_interval": p50_ratio_interval(wx, reg),
        "registered_vs_stock_p50": ratio(median(reg), median(st)),
        "registered_vs_stock_95pct_interval": p50_ratio_interval(reg, st),
        "synapse_cpu_wangxin_vs_registered": ratio(out["wangxin"]["synapse_cpu_ms_per_send"],
                                                   out[REGISTERED]["synapse_cpu_ms_per_send"]),
        "synapse_cpu_registered_vs_stock": ratio(out[REGISTERED]["synapse_cpu_ms_per_send"],
                                                 out["stock"]["synapse_cpu_ms_per_send"]),
    }
    return out
