"""Contact import at scale: a synthetic Telegram export (5,000 contacts, 300 groups, ≈15,000
memberships; ``bench/synthetic_export.py``) imported through the bridge, against the floor.

The floor is the same work made directly with the client-server API and the appservice token,
as fast as Synapse allows with the same concurrency: register and name one ghost per absent
member, create each group's room with everyone invited and the importer at power level 100,
and join every ghost. The import is timed from the operator request (download-free: the file is
posted) to the end of the job, so parsing, lookups and the journal are all in it.
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
from bench.synthetic_export import build_export
from bridges.import_plan import build_plan
from bridges.importers import parse_export
from tests.harness.http import HttpUser


def _q(v: str) -> str:
    return quote(v, safe="")


def run(contacts: int = 5000, groups: int = 300, concurrency: int = 8, postgres: bool = False) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="wx-bench-import-") as tmp:
        bench = BenchStack(os.path.join(tmp, "wangxin"), ["--no-bot"], postgres)
        try:
            return _measure(bench, contacts, groups, concurrency) | {"database": "postgres" if postgres else "sqlite"}
        finally:
            bench.stop()


def _measure(bench: BenchStack, contacts: int, groups: int, concurrency: int) -> dict[str, Any]:
    stack = bench.stack
    doc, stats = build_export(contacts, groups)
    data = json.dumps(doc, ensure_ascii=False).encode()
    plan = build_plan(parse_export(data, "result.json"))
    floor_s = _floor(stack, plan, concurrency)
    # The floor's events still reach the bridge as appservice transactions: let that settle first.
    _wait_quiet(stack)

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
        if job["state"] != "running":
            break
        time.sleep(0.2)
    import_s = time.monotonic() - started
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
    }


def _floor(stack: Any, plan: Any, concurrency: int) -> float:
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

    started = time.monotonic()
    with ThreadPoolExecutor(concurrency) as pool:
        list(pool.map(make_ghost, absent))
        joins = [j for room in pool.map(make_room, plan.groups) for j in room]
        list(pool.map(lambda j: call("POST", f"/_matrix/client/v3/rooms/{_q(j[0])}/join", {}, as_user=j[1]), joins))
    return time.monotonic() - started


def _wait_quiet(stack: Any, still_s: float = 3.0, timeout: float = 600) -> None:
    """Until the bridge has received and handled no new transaction for ``still_s`` seconds."""
    url = stack.info["bridge"]["url"] + "/health"
    last, since, deadline = None, time.monotonic(), time.monotonic() + timeout
    while time.monotonic() < deadline:
        now = requests.get(url, timeout=10).json()
        seen = (now.get("transactions"), now.get("processed"))
        if seen != last:
            last, since = seen, time.monotonic()
        elif time.monotonic() - since >= still_s:
            return
        time.sleep(0.5)
