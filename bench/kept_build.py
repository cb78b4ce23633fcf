"""Keeping a built heavy account, to measure it again without building it again.

The build of ``bench first_screen`` at its default size takes many minutes; measuring before
and after a change (or on PostgreSQL and then on workers) needs the same account each time.
``save`` copies the Wangxin server's database (SQLite file, or a PostgreSQL copy), its saved
secrets, signing key and media store into a directory, with what the measurements need to know
about the account. ``restore`` starts a Wangxin stack on a copy of that, so the kept account
itself is never written to. A kept PostgreSQL database is named in ``kept.json`` and stays
until you drop it; the bridge starts with a new database of its own (its state holds nothing
the account needs).
"""

from __future__ import annotations

import json
import os
import shutil
import time
from typing import Any

import attrs

from bench.core import BenchStack, free_base_port
from bench.first_screen_plan import Sizes
from bench.heavy_account import Account

KEPT = "kept.json"


def _stack_files(source: str, target: str) -> None:
    """The files that make a stack's homeserver: saved secrets and admin, signing key, SQLite
    database, media."""
    os.makedirs(target, exist_ok=True)
    for name in os.listdir(source):
        if name == "state.json" or name.startswith("homeserver.db") or name.endswith(".signing.key"):
            shutil.copy2(os.path.join(source, name), target)
    shutil.copytree(os.path.join(source, "media_store"), os.path.join(target, "media_store"), dirs_exist_ok=True)


def save(directory: str, wangxin: BenchStack, account: Account, sizes: Sizes, postgres: bool) -> None:
    """Copy the (stopped) Wangxin stack's homeserver into ``directory``, which must not exist."""
    from tests.harness import services

    if os.path.exists(directory):
        raise ValueError(f"--keep-build: {directory} exists; name a new directory")
    _stack_files(wangxin.directory, os.path.join(directory, "homeserver"))
    kept_db = services.create_database("wx_kept", copy_of=wangxin.databases[0]) if postgres else None
    with open(os.path.join(directory, KEPT), "w", encoding="utf-8") as f:
        json.dump({"kept_at": time.strftime("%Y-%m-%dT%H:%M:%S"), "server_name": wangxin.stack.server_name,
                   "database": "postgres" if postgres else "sqlite",
                   "postgres_database": attrs.asdict(kept_db) if kept_db else None,
                   "sizes": attrs.asdict(sizes), "account": attrs.asdict(account)}, f, indent=2, ensure_ascii=False)


def load(directory: str, postgres: bool) -> tuple[dict[str, Any], Sizes, Account]:
    try:
        with open(os.path.join(directory, KEPT), encoding="utf-8") as f:
            kept = json.load(f)
    except FileNotFoundError:
        raise ValueError(f"--reuse-build: no {KEPT} in {directory} (make one with --keep-build)") from None
    wanted = "postgres" if postgres else "sqlite"
    if kept["database"] != wanted:
        raise ValueError(f"--reuse-build: {directory} holds a {kept['database']} account; this run is on {wanted}")
    return kept, Sizes(**kept["sizes"]), Account(**kept["account"])


def restore(directory: str, kept: dict[str, Any], target: str, extra: list[str], redis: str | None) -> BenchStack:
    """A Wangxin stack in ``target`` on a copy of the kept homeserver (and, on PostgreSQL, of
    the kept database), with a new bridge database."""
    from tests.harness import services

    _stack_files(os.path.join(directory, "homeserver"), target)
    args = ["--port", str(free_base_port()), "--server-name", kept["server_name"], "--relaxed-rate-limits", *extra]
    databases = []
    try:
        if kept["postgres_database"]:
            source = services.FreshDatabase(**kept["postgres_database"])
            databases = [services.create_database("wx_bench", copy_of=source),
                         services.create_database("wx_bench_bridge")]
            args += ["--postgres", databases[0].dsn, "--bridge-postgres", databases[1].dsn]
        if redis:
            args += ["--workers", "--redis", redis]
        stack = BenchStack.__new__(BenchStack)
        stack.directory, stack.args, stack.databases = target, args, databases
        from wangxin_stack.running import RunningStack

        started = time.monotonic()
        stack.stack = RunningStack(target, args).start()
        stack.startup_s = time.monotonic() - started
        return stack
    except BaseException:
        for db in databases:
            services.drop_database(db)
        raise
