"""Stack cold start, and message-send latency with all Wangxin modules vs stock Synapse.

Both stacks run at the same time on the same machine; sends alternate between them in small
batches, so drift in machine load hits both sides alike. Reported as ratios (wangxin / stock).
"""

from __future__ import annotations

import os
import secrets
import tempfile
import time
from typing import Any

import requests
import yaml

from bench.progress import both
from bench.stats import p50_ratio_interval, ratio, summary_ms
from wangxin_stack.running import RunningStack


def free_base_port() -> int:
    from tests.harness.services import free_port_block

    return free_port_block()


def registration_without_url(source: str, target: str) -> None:
    """A copy of an application-service registration with no URL: Synapse sends such a service
    nothing, but still checks its interest in every event and keeps its stream position."""
    with open(source, encoding="utf-8") as f:
        data = yaml.safe_load(f)
    data["url"] = None
    with open(target, "w", encoding="utf-8") as f:
        yaml.safe_dump(data, f)


class BenchStack:
    """A stack on SQLite, or on fresh PostgreSQL databases when ``postgres`` is true; on the
    worker topology when ``redis`` (``HOST:PORT``, with ``postgres``) is given."""

    def __init__(self, directory: str, extra: list[str], postgres: bool, redis: str | None = None):
        from tests.harness import services

        if redis and not postgres:
            raise ValueError("the worker topology needs PostgreSQL")
        self.databases = []
        args = ["--port", str(free_base_port()), "--server-name", f"bench{secrets.token_hex(3)}.test",
                "--relaxed-rate-limits", *extra]
        if postgres:
            self.databases = [services.create_database("wx_bench")]
            args += ["--postgres", self.databases[0].dsn]
            if "--stock" not in extra:
                self.databases.append(services.create_database("wx_bench_bridge"))
                args += ["--bridge-postgres", self.databases[1].dsn]
        if redis:
            args += ["--workers", "--redis", redis]
        self.directory, self.args = directory, args
        started = time.monotonic()
        self.stack = RunningStack(directory, args).start()
        self.startup_s = time.monotonic() - started

    def settle(self, timeout: float = 1200) -> float:
        """Wait until Synapse has run the background updates a new database starts with; returns
        the seconds waited. Synapse runs them one batch a second, and some walk every user: a stack
        that starts a few seconds after the other runs them during the measurement instead of
        before it (in a 10,000-follower run, Wangxin rebuilt its user directory over all 10,000
        users in the middle of the follow wave while stock had done it with two users)."""
        log = os.path.join(self.stack.dir, "logs", "synapse.log")
        started = time.monotonic()
        while time.monotonic() - started < timeout:
            try:
                with open(log, encoding="utf-8", errors="replace") as f:
                    if "No more background updates to do" in f.read():
                        return time.monotonic() - started
            except FileNotFoundError:
                pass
            time.sleep(1.0)
        raise RuntimeError(f"Synapse's background updates did not finish in {timeout:.0f} s (see {log})")

    def stock_copies(self, specs: list[tuple[str, bool, str | None]]) -> list[BenchStack]:
        """Stock Synapse (no modules, no bridge) serving copies of this stack's homeserver
        database, under the same server name, one per ``(directory, with_registration, redis)``; this
        stack is stopped while they are copied and started again after. ``with_registration``:
        the copy also registers this stack's application service (the bridge), with no URL (so
        Synapse sends it nothing, but does all its per-event bookkeeping for it), to tell what
        the modules cost from what a registered bridge costs. ``redis`` (``HOST:PORT``, or
        ``None`` for one process): the copy runs on the worker topology and replicates through
        it; it must not be this stack's Redis (nor another copy's, running at the same time):
        Synapse names its Redis channels after the server name, which the copies share."""
        import shutil

        from tests.harness import services

        self.stack.stop()
        plans = []
        try:
            for directory, with_registration, redis in specs:
                args = ["--port", str(free_base_port()), "--server-name", self.stack.server_name,
                        "--relaxed-rate-limits", "--stock"]
                databases = []
                if self.databases:
                    databases = [services.create_database("wx_bench_copy", copy_of=self.databases[0])]
                    args += ["--postgres", databases[0].dsn]
                if redis:
                    args += ["--workers", "--redis", redis]
                os.makedirs(directory)
                for name in os.listdir(self.directory):
                    # The stack's saved secrets and admin, and on SQLite the database itself.
                    if name == "state.json" or name.startswith("homeserver.db") or name.endswith(".signing.key"):
                        shutil.copy2(os.path.join(self.directory, name), directory)
                if with_registration:
                    registration = os.path.join(directory, "bridge-registration.yaml")
                    registration_without_url(os.path.join(self.directory, "appservice-registration.yaml"),
                                             registration)
                    args += ["--appservice-registration", registration]
                plans.append((directory, args, databases))
        finally:
            self.stack = RunningStack(self.directory, self.args).start()
        copies = []
        try:
            for directory, args, databases in plans:
                copy = BenchStack.__new__(BenchStack)
                copy.directory, copy.args, copy.databases = directory, args, databases
                started = time.monotonic()
                copy.stack = RunningStack(directory, args).start()
                copy.startup_s = time.monotonic() - started
                copies.append(copy)
        except BaseException:
            for copy in copies:
                copy.stop()
            for _, _, databases in plans[len(copies):]:
                for db in databases:
                    services.drop_database(db)
            raise
        return copies

    def stop(self) -> None:
        from tests.harness import services

        try:
            self.stack.stop()
        finally:
            for db in self.databases:
                services.drop_database(db)


class Sender:
    """One user sending into one room over a kept-alive HTTP connection."""

    def __init__(self, stack: RunningStack, room_members: int = 2):
        self.stack = stack
        self.http = requests.Session()
        self.user = stack.register_user()
        self.http.headers["Authorization"] = f"Bearer {self.user['access_token']}"
        r = self.http.post(f"{stack.url}/_matrix/client/v3/createRoom", json={"preset": "public_chat"}, timeout=60)
        r.raise_for_status()
        self.room_id = r.json()["room_id"]
        for _ in range(room_members - 1):
            other = stack.register_user()
            self.http.post(
                f"{stack.url}/_matrix/client/v3/rooms/{self.room_id}/join",
                headers={"Authorization": f"Bearer {other['access_token']}"},
                json={},
                timeout=60,
            ).raise_for_status()
        self.n = 0

    def send_once(self) -> float:
        self.n += 1
        started = time.perf_counter()
        r = self.http.put(
            f"{self.stack.url}/_matrix/client/v3/rooms/{self.room_id}/send/m.room.message/b{self.n}",
            json={"msgtype": "m.text", "body": f"benchmark message {self.n}"},
            timeout=60,
        )
        elapsed = time.perf_counter() - started
        r.raise_for_status()
        return elapsed


def interleaved(a: Sender, b: Sender, total: int, batch: int = 10, warmup: int = 20) -> tuple[list[float], list[float]]:
    for _ in range(warmup):
        a.send_once()
        b.send_once()
    sa: list[float] = []
    sb: list[float] = []
    while len(sa) < total:
        sa += [a.send_once() for _ in range(batch)]
        sb += [b.send_once() for _ in range(batch)]
    return sa, sb


def run(messages: int = 300, postgres: bool = False) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="wx-bench-") as tmp:
        stock = BenchStack(os.path.join(tmp, "stock"), ["--stock"], postgres)
        try:
            wangxin = BenchStack(os.path.join(tmp, "wangxin"), [], postgres)
            try:
                both(stock.settle, wangxin.settle)
                a, b = Sender(wangxin.stack), Sender(stock.stack)
                wx_samples, stock_samples = interleaved(a, b, messages)
            finally:
                wangxin.stop()
        finally:
            stock.stop()
        stock_start, wangxin_start = stock.startup_s, wangxin.startup_s
    wx, st = summary_ms(wx_samples), summary_ms(stock_samples)
    return {
        "database": "postgres" if postgres else "sqlite",
        "cold_start_s": {"wangxin_full_stack": round(wangxin_start, 2), "stock_synapse": round(stock_start, 2),
                         "ratio": ratio(wangxin_start, stock_start)},
        "message_send": {"wangxin": wx, "stock": st, "p50_ratio": ratio(wx["p50_ms"], st["p50_ms"]),
                         "p50_ratio_95pct_interval": p50_ratio_interval(wx_samples, stock_samples),
                         "p95_ratio": ratio(wx["p95_ms"], st["p95_ms"])},
    }
