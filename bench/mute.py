"""Mute exemptions at scale: a 1,000-member room where every member muted it with 3 exemptions.

Message-send latency there is compared with the same stack's second room, where the same
members muted nothing, and a third where they muted with the client's button only (sends
alternate between the rooms in small batches). Muted members store no notification, so a
muted room is cheaper than an unmuted one; the third room isolates what the exemption rules
themselves cost. Push evaluation
runs inside the send path, so the cost of the extra rules shows up in the send latency.
Repair latency: after an Element-style re-mute, time until the server has put the
exemptions back above the mute rule (polled every 20 ms).
"""

from __future__ import annotations

import os
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any
from urllib.parse import quote

from bench.core import BenchStack
from bench.stats import ratio, summary_ms
from tests.harness.http import HttpUser


def _q(v: str) -> str:
    return quote(v, safe="")


def run(members: int = 1000, messages: int = 200, repairs: int = 30, postgres: bool = False) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="wx-bench-mute-") as tmp:
        bench = BenchStack(os.path.join(tmp, "wangxin"), ["--no-bot"], postgres)
        try:
            return _measure(bench, members, messages, repairs) | {"database": "postgres" if postgres else "sqlite"}
        finally:
            bench.stop()


def _measure(bench: BenchStack, members: int, messages: int, repairs: int) -> dict[str, Any]:
    stack = bench.stack
    owner = HttpUser(stack)
    muted_room = owner.create_room(preset="public_chat")
    plain_room = owner.create_room(preset="public_chat")
    # Muted with the client's own button only: isolates what the exemption rules themselves cost.
    element_room = owner.create_room(preset="public_chat")
    exempt = [HttpUser(stack) for _ in range(3)]
    t0 = time.monotonic()
    with ThreadPoolExecutor(8) as pool:
        people = list(pool.map(lambda _: HttpUser(stack), range(members - 1 - len(exempt))))
        everyone = people + exempt
        list(pool.map(lambda u: (u.join(muted_room), u.join(plain_room), u.join(element_room)), everyone))
        list(pool.map(lambda u: u.element_mute(element_room), people))
        exempt_ids = [u.user_id for u in exempt]
        list(pool.map(
            lambda u: u.call("PUT", f"/_synapse/client/wangxin/v1/rooms/{_q(muted_room)}/mute",
                             {"exempt_users": exempt_ids}),
            people,
        ))
    setup_s = time.monotonic() - t0

    sender = people[0]  # not exempted: every muted member evaluates its rules and stays silent
    for _ in range(20):
        for room in (muted_room, plain_room, element_room):
            sender.say(room, "warm-up")
    muted: list[float] = []
    plain: list[float] = []
    element: list[float] = []
    while len(muted) < messages:
        for room, samples in ((muted_room, muted), (plain_room, plain), (element_room, element)):
            for _ in range(10):
                started = time.perf_counter()
                sender.say(room, "benchmark")
                samples.append(time.perf_counter() - started)

    latencies = []
    subject = people[1]
    for _ in range(repairs):
        subject.element_mute(muted_room)
        started = time.perf_counter()
        while True:
            ids = [r["rule_id"] for r in subject.override_rules() if r["enabled"]]
            ours = [i for i, rid in enumerate(ids) if rid.startswith("org.wangxin.mute.")]
            if ours and muted_room in ids and max(ours) < ids.index(muted_room):
                break
            if time.perf_counter() - started > 30:
                raise RuntimeError("no repair within 30 s")
            time.sleep(0.02)
        latencies.append(time.perf_counter() - started)

    m, p, e = summary_ms(muted), summary_ms(plain), summary_ms(element)
    return {
        "members": members,
        "exemptions_per_member": len(exempt),
        "setup_s": round(setup_s, 1),
        "message_send": {
            "muted_with_exemptions": m,
            "no_mutes": p,
            "client_mute_only": e,
            "p50_ratio_vs_no_mutes": ratio(m["p50_ms"], p["p50_ms"]),
            "p95_ratio_vs_no_mutes": ratio(m["p95_ms"], p["p95_ms"]),
            "p50_ratio_vs_client_mute_only": ratio(m["p50_ms"], e["p50_ms"]),
            "p95_ratio_vs_client_mute_only": ratio(m["p95_ms"], e["p95_ms"]),
        },
        "repair_after_element_remute": summary_ms(latencies),
    }
