"""Contact import at scale: a synthetic Telegram export (5,000 contacts, 300 groups, ≈15,000
memberships; ``bench/synthetic_export.py``) imported through the bridge, against the floor.

The floor is the same work made directly with the client-server API and the appservice token,
as fast as Synapse allows with the same concurrency: register and name one ghost per absent
member, create each group's room with everyone invited and the importer at power level 100,
and join every ghost. The import is timed from the operator request (download-free: the file is
posted) to the end of the job, so parsing, lookups and the journal are all in it.

The floor and the import run at the same time on two identical Wangxin stacks (each with its
bridge), so both sides share the machine alike and drift in its load hits both; progress goes
to stderr every 30 s.
"""

from __future__ import annotations

import json
import os
import secrets
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any
from urllib.parse import quote

import requests

from bench.core import BenchStack
from bench.progress import Progress
from bench.progress import both as _both
from bench.synthetic_export import build_export
from bridges.contact_import.plan import build_plan
from bridges.importers import parse_export
from tests.harness.http import HttpUser


def _q(v: str) -> str:
    return quote(v, safe="")


def run(contacts: int = 5000, groups: int = 300, concurrency: int = 8, postgres: bool = False) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="wx-bench-import-") as tmp:
        floor = BenchStack(os.path.join(tmp, "floor"), ["--no-bot"], postgres)
        try:
            bench = BenchStack(os.path.join(tmp, "wangxin"), ["--no-bot"], postgres)
            try:
                result = _measure(floor, bench, contacts, groups, concurrency)
                return result | {"database": "postgres" if postgres else "sqlite"}
            finally:
                bench.stop()
        finally:
            floor.stop()


def _measure(floor: BenchStack, bench: BenchStack, contacts: int, groups: int, concurrency: int) -> dict[str, Any]:
    doc, stats = build_export(contacts, groups)
    data = json.dumps(doc, ensure_ascii=False).encode()
    plan = build_plan(parse_export(data, "result.json"))
    progress = Progress("import", {"floor": 0, "import": 0})
    with progress:
        floor_s, (import_s, preview_s, job) = _both(
            lambda: _floor(floor.stack, plan, concurrency, progress),
            lambda: _import(bench.stack, data, progress),
        )
    assert job["state"] == "done", job
    return {
        "contacts": stats.contacts,
        "groups": stats.groups,
        "memberships": stats.memberships,
        "summary": job["counts"],
        "concurrency": concurrency,
        "floor_s": round(floor_s, 2),
        "import_s": round(import_s, 2),
        "of_which_parse_and_lookup_s": round(preview_s, 2),
        "ratio": round(import_s / floor_s, 3),
        "measured": "floor and import at the same time on two identical stacks, one run",
    }


def _import(stack: Any, data: bytes, progress: Progress) -> tuple[float, float, dict[str, Any]]:
    importer = HttpUser(stack)
    bridge = stack.info["bridge"]["url"] + "/_wangxin/v1/imports"
    headers = {"Authorization": f"Bearer {stack.info['bridge']['as_token']}"}
    started = time.monotonic()
    r = requests.post(bridge, params={"user_id": importer.user_id, "filename": "result.json"}, data=data,
                      headers=headers, timeout=600)
    r.raise_for_status()
    preview_s = time.monotonic() - started
    job_id = r.json()["job_id"]
    while True:
        job = requests.get(f"{bridge}/{job_id}", headers=headers, timeout=60).json()
        step = job.get("progress") or {}
        progress.set("import", f"{step.get('phase', job['state'])} {step.get('done', 0)}/{step.get('total', 0)}")
        if job["state"] != "running":
            return time.monotonic() - started, preview_s, job
        time.sleep(0.5)


def _floor(stack: Any, plan: Any, concurrency: int, progress: Progress) -> float:
    """The import's Synapse work, made directly with the appservice token."""
    token = stack.info["bridge"]["as_token"]
    importer = HttpUser(stack)
    session = requests.Session()
    session.headers["Authorization"] = f"Bearer {token}"
    base = stack.url
    tag = secrets.token_hex(3)
    absent = plan.absent_members({}, importer.user_id)
    ghost = {p.key: f"@wx_floor{tag}_{i}:{stack.server_name}" for i, p in enumerate(absent)}

    def call(method: str, path: str, body: Any, as_user: str | None = None) -> Any:
        r = session.request(method, base + path, json=body, params={"user_id": as_user} if as_user else None,
                            timeout=600)
        r.raise_for_status()
        return r.json()

    def make_ghost(person: Any) -> None:
        user_id = ghost[person.key]
        call("POST", "/_matrix/client/v3/register",
             {"type": "m.login.application_service", "username": user_id[1:].split(":")[0], "inhibit_login": True})
        call("PUT", f"/_matrix/client/v3/profile/{_q(user_id)}/displayname",
             {"displayname": person.name + " (not on Wangxin yet)"}, as_user=user_id)

    def make_room(group: Any) -> list[tuple[str, str]]:
        invite = [importer.user_id] + [ghost[p.key] for p in group.members]
        room_id = call("POST", "/_matrix/client/v3/createRoom", {
            "preset": "private_chat", "name": group.name, "invite": invite,
            "power_level_content_override": {"users": {importer.user_id: 100}},
        })["room_id"]
        return [(room_id, ghost[p.key]) for p in group.members]

    def counted(phase: str, fn: Any, items: list[Any]) -> list[Any]:
        done = [0]

        def one(item: Any) -> Any:
            out = fn(item)
            done[0] += 1
            progress.set("floor", f"{phase} {done[0]}/{len(items)}")
            return out

        return list(pool.map(one, items))

    started = time.monotonic()
    with ThreadPoolExecutor(concurrency) as pool:
        counted("ghosts", make_ghost, absent)
        joins = [j for room in counted("rooms", make_room, plan.groups) for j in room]
        counted("joins", lambda j: call("POST", f"/_matrix/client/v3/rooms/{_q(j[0])}/join", {}, as_user=j[1]),
                joins)
    return time.monotonic() - started
