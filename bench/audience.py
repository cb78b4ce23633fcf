"""An account's audience past one room, against stock Synapse with one room of the same size.

Two stacks side by side:

- **stock**: one public room of ``followers`` members (admin joins, ``concurrency`` at a time),
  each with Element's "Mute room" rule for it, as a follower has; a user who made the room posts.
- **Wangxin**: a merchant account whose ``followers`` buyers follow it through the purchase
  webhook (the follow queue places them: ``shard_size`` per room, further rooms made by the
  module); ``--no-circle-space-filing``, so that filing 20,000 spaces in the background (measured
  by ``bench merchant_circle``) does not run during the measurement. ``targeted`` of the buyers
  bought in the category ``tea``, the others in ``other``.

Measured, ``samples`` posts per side, alternating:

- **delivery**: from just before the post's request until the post (or its copy) is in a sample
  follower's ``/sync`` (a long poll started before the post, filtered to the follower's room).
  Stock: a member of its one room. Wangxin: a follower of the first room and one of the last room
  (the copy comes after the first room's event is persisted). The ratio is Wangxin's last room
  against stock (the goal: at most 1.2).
- **CPU per post**: the Synapse processes' CPU seconds from the post until the last sample saw it
  plus ``SETTLE_S`` (the fan-out's last rooms), less the idle rate measured before; per 1,000
  followers and per room.
- **targeted posts**: a platform account posts twice with the segment ``{"category": "tea"}``:
  the time until the post is ``sent`` (every targeted person has it) and the CPU, per person. The
  first post makes each person's room with the platform; the second is one event per room.
"""

from __future__ import annotations

import json
import os
import secrets
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any
from urllib.parse import quote

import requests

from bench.core import BenchStack
from bench.merchant_circle import _run_all, _session, admin_joins, create_users, mute_for_everyone
from bench.processes import cpu_s, synapse_pids
from bench.provenance import machine
from bench.stats import p50_ratio_interval, ratio, summary_ms

API = "/_synapse/client/wangxin/v1"
CLIENT = "/_matrix/client/v3"
SETTLE_S = 0.5
IDLE_S = 10.0
GOALS = {"delivery_p50_ratio_last_room_vs_stock": 1.2}


def _stage(text: str) -> None:
    print(f"[audience] {time.strftime('%H:%M:%S')} {text}", file=sys.stderr, flush=True)


def _login(stack: Any, user_id: str) -> str:
    admin = _session(stack.info["admin"]["access_token"])
    r = admin.post(f"{stack.info['main_process_url']}/_synapse/admin/v1/users/{quote(user_id)}/login", json={},
                   timeout=120)
    r.raise_for_status()
    return str(r.json()["access_token"])


class SyncWatch:
    """A follower's incremental ``/sync`` on one room: :meth:`arm` before a post, :meth:`wait`
    for the event whose ``event_id`` or ``org.wangxin.mirror_of`` the predicate accepts."""

    def __init__(self, stack: Any, user_id: str, room_id: str):
        self.url = stack.url
        self.room_id = room_id
        self.user_id = user_id
        self.session = _session(_login(stack, user_id))
        nothing = {"not_types": ["*"]}
        self.filter = json.dumps({"room": {"rooms": [room_id], "timeline": {"limit": 10},
                                           "state": {"lazy_load_members": True}, "ephemeral": nothing,
                                           "account_data": nothing},
                                  "presence": nothing, "account_data": nothing})
        self.since = self._sync(None, 0)["next_batch"]
        self._seen: dict[str, float] = {}
        self._thread: threading.Thread | None = None

    def _sync(self, since: str | None, timeout_ms: int) -> dict[str, Any]:
        params = {"filter": self.filter, "timeout": str(timeout_ms)}
        if since:
            params["since"] = since
        r = self.session.get(f"{self.url}{CLIENT}/sync", params=params, timeout=120)
        r.raise_for_status()
        return dict(r.json())

    def arm(self, marker: str) -> None:
        """Poll until a message whose body carries ``marker`` arrives; the time is kept."""
        def run() -> None:
            deadline = time.monotonic() + 300
            while time.monotonic() < deadline:
                body = self._sync(self.since, 30_000)
                self.since = body["next_batch"]
                room = body.get("rooms", {}).get("join", {}).get(self.room_id, {})
                for event in room.get("timeline", {}).get("events", []):
                    if marker in str((event.get("content") or {}).get("body", "")):
                        self._seen[marker] = time.perf_counter()
                        return
        self._thread = threading.Thread(target=run, daemon=True)
        self._thread.start()

    def wait(self, marker: str) -> float:
        assert self._thread is not None
        self._thread.join(320)
        if marker not in self._seen:
            raise RuntimeError(f"{self.user_id} never saw {marker} in {self.room_id}")
        return self._seen.pop(marker)


def _idle_cpu_rate(pids: list[int]) -> float:
    before = cpu_s(pids)
    time.sleep(IDLE_S)
    return (cpu_s(pids) - before) / IDLE_S


def _build_stock(stack: Any, followers: int, concurrency: int) -> tuple[dict[str, Any], str, list[str]]:
    poster = stack.register_user()
    r = requests.post(f"{stack.url}{CLIENT}/createRoom", json={"preset": "public_chat", "name": "Big shop"},
                      headers={"Authorization": f"Bearer {poster['access_token']}"}, timeout=60)
    r.raise_for_status()
    room_id = r.json()["room_id"]
    _stage(f"stock: {followers} users")
    users = create_users(stack, followers, concurrency)
    _stage(f"stock: {followers} admin joins into one room")
    joined_s = admin_joins(stack, room_id, users, concurrency)
    _stage(f"stock: joined in {joined_s:.0f} s; muting")
    mute_for_everyone(stack, room_id, users, concurrency)
    return poster, room_id, users


def _purchase_follows(stack: Any, merchant: str, users: list[str], targeted: int, concurrency: int) -> float:
    platform = _session(stack.info["merchant_circle"]["platform_secret"])
    admin = _session(stack.info["admin"]["access_token"])
    tea = set(users[:: max(1, len(users) // targeted)][:targeted])
    started = time.perf_counter()

    def buy(user_id: str) -> None:
        category = "tea" if user_id in tea else "other"
        platform.post(f"{stack.url}{API}/purchases",
                      json={"order_id": f"bench-{user_id}", "buyer": user_id, "merchant": merchant,
                            "items": [{"sku": category, "qty": 1, "category": category}]},
                      timeout=600).raise_for_status()

    _run_all(buy, users, concurrency)
    while True:
        got = admin.get(f"{stack.url}{API}/merchants/{quote(merchant)}", timeout=120).json()
        if got["followers"] >= len(users) and got["follows_queued"] == 0:
            return time.perf_counter() - started
        time.sleep(2.0)


def _build_wangxin(stack: Any, followers: int, targeted: int, concurrency: int
                   ) -> tuple[str, dict[str, Any], list[str], dict[str, Any]]:
    admin = stack.admin_headers()
    owner = stack.register_user()
    account_id = f"shop{secrets.token_hex(3)}"
    r = requests.put(f"{stack.url}{API}/accounts/{account_id}", json={
        "kind": "merchant", "owner": owner["user_id"], "name": "Big shop", "verified": True},
        headers=admin, timeout=120)
    r.raise_for_status()
    _stage(f"wangxin: {followers} users")
    users = create_users(stack, followers, concurrency)
    _stage(f"wangxin: {followers} purchases ({targeted} of them tea) and their follows")
    follow_s = _purchase_follows(stack, owner["user_id"], users, targeted, concurrency)
    info = requests.get(f"{stack.url}{API}/merchants/{quote(owner['user_id'])}", headers=admin, timeout=60).json()
    _stage(f"wangxin: {info['followers']} followers in {info['circle_rooms']} rooms after {follow_s:.0f} s")
    return account_id, owner, users, {"follow_s": round(follow_s, 1), **info}


def _room_of(stack: Any, user_id: str, merchant: str) -> str:
    r = requests.get(f"{stack.url}{API}/circle", headers={"Authorization": f"Bearer {_login(stack, user_id)}"},
                     timeout=60)
    r.raise_for_status()
    return str(next(m["circle_room_id"] for m in r.json()["merchants"] if m["merchant"] == merchant))


def _measure_posts(stock: Any, wangxin: Any, poster: dict[str, Any], stock_room: str, stock_users: list[str],
                   account_id: str, owner: dict[str, Any], users: list[str], samples: int) -> dict[str, Any]:
    merchant = owner["user_id"]
    first_room = requests.get(f"{wangxin.url}{API}/accounts/{account_id}", headers=wangxin.admin_headers(),
                              timeout=60).json()["channel_room_id"]
    last_room = _room_of(wangxin, users[-1], merchant)
    stock_watch = SyncWatch(stock, stock_users[-1], stock_room)
    first_watch = SyncWatch(wangxin, users[0], _room_of(wangxin, users[0], merchant))
    last_watch = SyncWatch(wangxin, users[-1], last_room)
    stock_pids, wangxin_pids = synapse_pids(stock), synapse_pids(wangxin)
    _stage("idle CPU of both sides")
    stock_idle, wangxin_idle = _idle_cpu_rate(stock_pids), _idle_cpu_rate(wangxin_pids)
    times: dict[str, list[float]] = {"stock": [], "wangxin_first_room": [], "wangxin_last_room": []}
    cpu: dict[str, list[float]] = {"stock": [], "wangxin": []}
    stock_poster = _session(poster["access_token"])
    owner_session = _session(owner["access_token"])
    for i in range(samples):
        marker = f"bench-{secrets.token_hex(4)}"
        # stock
        stock_watch.arm(marker)
        time.sleep(0.2)  # the long poll is in
        c0, t0 = cpu_s(stock_pids), time.perf_counter()
        stock_poster.put(f"{stock.url}{CLIENT}/rooms/{quote(stock_room)}/send/m.room.message/{marker}",
                         json={"msgtype": "m.text", "body": f"New arrivals {marker}"}, timeout=300).raise_for_status()
        seen = stock_watch.wait(marker)
        time.sleep(SETTLE_S)
        times["stock"].append(seen - t0)
        cpu["stock"].append(cpu_s(stock_pids) - c0 - stock_idle * (time.perf_counter() - t0))
        # Wangxin
        marker = f"bench-{secrets.token_hex(4)}"
        first_watch.arm(marker)
        last_watch.arm(marker)
        time.sleep(0.2)
        c0, t0 = cpu_s(wangxin_pids), time.perf_counter()
        owner_session.post(f"{wangxin.url}{API}/accounts/{account_id}/posts",
                           json={"body": f"New arrivals {marker}"}, timeout=300).raise_for_status()
        first_seen, last_seen = first_watch.wait(marker), last_watch.wait(marker)
        time.sleep(SETTLE_S)
        times["wangxin_first_room"].append(first_seen - t0)
        times["wangxin_last_room"].append(last_seen - t0)
        cpu["wangxin"].append(cpu_s(wangxin_pids) - c0 - wangxin_idle * (time.perf_counter() - t0))
        _stage(f"post {i + 1}/{samples}: stock {times['stock'][-1] * 1000:.0f} ms, wangxin first room "
               f"{times['wangxin_first_room'][-1] * 1000:.0f} ms, "
               f"last room {times['wangxin_last_room'][-1] * 1000:.0f} ms")
    return {
        "rooms": {"stock": stock_room, "wangxin_first": first_room, "wangxin_last_sampled": last_room},
        "delivery_ms": {k: summary_ms(v) for k, v in times.items()},
        "delivery_p50_ratio_last_room_vs_stock": ratio(summary_ms(times["wangxin_last_room"])["p50_ms"],
                                                       summary_ms(times["stock"])["p50_ms"]),
        "delivery_p50_ratio_interval": p50_ratio_interval(times["wangxin_last_room"], times["stock"]),
        "delivery_p50_ratio_first_room_vs_stock": ratio(summary_ms(times["wangxin_first_room"])["p50_ms"],
                                                        summary_ms(times["stock"])["p50_ms"]),
        "cpu_ms_per_post": {k: summary_ms(v) for k, v in cpu.items()},
        "idle_cpu_per_s": {"stock": round(stock_idle, 4), "wangxin": round(wangxin_idle, 4)},
    }


def _targeted(stack: Any, targeted: int) -> dict[str, Any]:
    owner = stack.register_user()
    account_id = f"platform{secrets.token_hex(3)}"
    r = requests.put(f"{stack.url}{API}/accounts/{account_id}", json={
        "kind": "platform", "owner": owner["user_id"], "name": "Big platform", "verified": True},
        headers=stack.admin_headers(), timeout=120)
    r.raise_for_status()
    session = _session(owner["access_token"])
    pids = synapse_pids(stack)
    idle = _idle_cpu_rate(pids)
    runs = []
    for label in ("first (makes each person's room)", "second (one event per room)"):
        c0, t0 = cpu_s(pids), time.perf_counter()
        r = session.post(f"{stack.url}{API}/accounts/{account_id}/posts",
                         json={"body": f"Tea festival {secrets.token_hex(3)}", "segment": {"category": "tea"}},
                         timeout=600)
        r.raise_for_status()
        answer = r.json()
        post_id = answer["post_id"]
        while True:
            posts = session.get(f"{stack.url}{API}/accounts/{account_id}/posts", params={"state": "all"},
                                timeout=120).json()["posts"]
            post = next(p for p in posts if p["post_id"] == post_id)
            if post["state"] in ("sent", "failed"):
                break
            time.sleep(0.5)
        elapsed = time.perf_counter() - t0
        used = cpu_s(pids) - c0 - idle * elapsed
        people = answer.get("targeted") or targeted
        runs.append({"post": label, "state": post["state"], "targeted": people, "deliver_s": round(elapsed, 1),
                     "ms_per_person": round(elapsed * 1000 / people, 2),
                     "cpu_ms_per_person": round(used * 1000 / people, 2)})
        _stage(f"targeted post {label}: {people} people in {elapsed:.1f} s")
    return {"account_id": account_id, "posts": runs}


def run(followers: int = 20000, shard_size: int = 10000, targeted: int = 2000, samples: int = 20,
        concurrency: int = 8, postgres: bool = False) -> dict[str, Any]:
    if not 0 < targeted <= followers:
        raise ValueError(f"--targeted: between 1 and --followers ({followers}), found {targeted}")
    with tempfile.TemporaryDirectory(prefix="wx-bench-audience-") as tmp:
        stock = BenchStack(os.path.join(tmp, "stock"), ["--stock"], postgres)
        try:
            wangxin = BenchStack(os.path.join(tmp, "wangxin"), [
                "--no-bot", "--circle-shard-size", str(shard_size), "--no-circle-space-filing",
                "--circle-posts-per-day", str(2 * samples + 10)], postgres)
            try:
                stock.settle()
                wangxin.settle()
                started = time.perf_counter()
                with ThreadPoolExecutor(2) as pool:
                    stock_build = pool.submit(_build_stock, stock.stack, followers, concurrency)
                    wangxin_build = pool.submit(_build_wangxin, wangxin.stack, followers, targeted, concurrency)
                    poster, stock_room, stock_users = stock_build.result()
                    account_id, owner, users, built = wangxin_build.result()
                build_s = time.perf_counter() - started
                posts = _measure_posts(stock.stack, wangxin.stack, poster, stock_room, stock_users, account_id,
                                       owner, users, samples)
                rooms = int(built["circle_rooms"])
                _stage("posts measured: " + json.dumps(posts))
                wx_cpu = posts["cpu_ms_per_post"]["wangxin"]["p50_ms"]
                st_cpu = posts["cpu_ms_per_post"]["stock"]["p50_ms"]
                per_1000 = {
                    "wangxin_cpu_ms_per_post_per_1000_followers": round(wx_cpu * 1000 / followers, 2),
                    "stock_cpu_ms_per_post_per_1000_members": round(st_cpu * 1000 / followers, 2),
                    "wangxin_cpu_ms_per_post_per_room": round(wx_cpu / rooms, 1),
                    "wangxin_fanout_ms_per_1000_followers": round(
                        (posts["delivery_ms"]["wangxin_last_room"]["p50_ms"]
                         - posts["delivery_ms"]["wangxin_first_room"]["p50_ms"])
                        * 1000 / max(1, followers - shard_size), 2),
                }
                _stage("targeted posts")
                try:
                    targeting = _targeted(wangxin.stack, targeted)
                except Exception as e:  # the figures above are kept
                    targeting = {"error": repr(e)}
            finally:
                wangxin.stop()
        finally:
            stock.stop()
    return {
        "database": "postgres" if postgres else "sqlite",
        "machine": machine(),
        "followers": followers, "shard_size": shard_size, "rooms": rooms, "targeted": targeted,
        "samples": samples, "build_s": round(build_s, 1), "wangxin_build": built,
        **posts, "per_1000": per_1000, "targeted_posts": targeting, "goals": GOALS,
    }
