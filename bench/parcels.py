"""Parcels: shipment webhooks against the same cards and edits sent by a client, in the same rooms.

One Wangxin stack (no bots: nothing else reads or writes the rooms). ``people`` people
(admin-made accounts) each get ``updates`` shipment updates (``bench/parcels_plan.py``:
parcels walking the statuses in order, 5 % replays, 5 % out of order), through
``POST /_synapse/client/wangxin/v1/shipments`` with the platform secret: the **webhook arm**.

The **direct arm** does by hand what the module does for each update, as a client: the parcels
bot (its token from the admin API's login-as-user) posts into the **same person's Parcels
room** a card of its own (a mirror parcel with the same statuses and times, its content built
by the module's own ``cards`` functions, so the events are the same size) as an ``m.notice``,
edits it with ``m.replace`` where the module edits, sends the notifying ``m.text`` reply where
the module sends one, and repeats a transaction id where the platform replays an update (Synapse
answers a repeated ``PUT …/send/…/{txnId}`` with the event it made, as the module answers a
replay by changing nothing). So both arms write the same number of events of the same kinds and
sizes, by the same sender, into the same rooms, seen by the same person.

**What runs at the same time, what alternately.** Setup first, alone and not compared: the
accounts, and each person's first shipment, which makes their Parcels room (timed on its own:
``first_shipment_makes_room``). Then the measured phase runs the two arms **alternately, one
request in flight at a time**: for each planned update the webhook and its direct counterpart
go back to back, the webhook first for even updates and second for odd ones. Neither arm ever
queues behind the other's request (concurrent arms would make each one's latency the other's
too and pull the ratio towards 1), and drift in the machine's load (this 2-core machine is
shared) hits both arms alike, as in ``bench core``.

**Update → visible.** A sample of people (``SYNC_SAMPLE``) long-poll ``/sync`` during the whole
phase, each in a thread; every update carries a token in its ``detail``, which the card shows.
For a sampled person's update the benchmark waits until the token shows in their ``/sync`` (the
card, or its edit) before it sends anything else, so each visibility sample is measured with
nothing else in flight: from just before the request to the ``/sync`` answer that carried it.
Replays change nothing and are left out of visibility.

Reported: webhook and direct-send latency (all updates; those that changed something; replays),
update → visible for both, p50 ratios with 95 % bootstrap intervals, responses by status (5xx
must be 0), and Synapse's RSS before setup, before and after the measured phase (sampled every
second).
"""

from __future__ import annotations

import os
import random
import re
import secrets
import tempfile
import threading
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from typing import Any
from urllib.parse import quote
from zoneinfo import ZoneInfo

import requests

from bench.core import BenchStack
from bench.merchant_circle import create_users
from bench.parcels_plan import CARRIERS, Effect, Mirror, Plan, Send, make_plan, update_of
from bench.processes import RssSampler, synapse_pids
from bench.progress import Progress
from bench.provenance import machine
from bench.stats import p50_ratio_interval, ratio, summary_ms
from synapse_modules.parcels.cards import Parcel, alert_content, card_content, edit_content
from synapse_modules.parcels.carriers import CarrierRegistry
from synapse_modules.parcels.rules import parcel_state

API = "/_synapse/client/wangxin/v1"
CLIENT = "/_matrix/client/v3"
SYNC_SAMPLE = 50  # people whose /sync is watched
VISIBLE_TIMEOUT_S = 30.0
SETUP_CONCURRENCY = 4
GOAL_P50_RATIO = 1.2
TOKEN_RE = re.compile(r"scan ([WD]\d+)")
TIME_ZONE = ZoneInfo("Asia/Shanghai")  # the module's default ``time_zone``


def _session(token: str | None = None) -> requests.Session:
    s = requests.Session()
    adapter = requests.adapters.HTTPAdapter(pool_connections=16, pool_maxsize=16)
    s.mount("http://", adapter)
    if token:
        s.headers["Authorization"] = f"Bearer {token}"
    return s


def login_as(stack: Any, user_id: str) -> str:
    """An access token for ``user_id`` from the admin API (no password needed)."""
    r = requests.post(f"{stack.info['main_process_url']}/_synapse/admin/v1/users/{quote(user_id)}/login",
                      json={}, headers=stack.admin_headers(), timeout=120)
    r.raise_for_status()
    return str(r.json()["access_token"])


class SyncWatcher(threading.Thread):
    """Long-polls one person's /sync and notes when each update token first shows in their
    Parcels room (in a card, an edit or a reply)."""

    def __init__(self, stack_url: str, user_id: str, token: str, room_id: str):
        super().__init__(daemon=True)
        self.http = _session(token)
        self.url, self.user_id, self.room_id = stack_url, user_id, room_id
        self.seen: dict[str, float] = {}
        self.changed = threading.Condition()
        self.stop = threading.Event()
        self.ready = threading.Event()
        self.error: BaseException | None = None

    def _filter_id(self) -> str:
        body: dict[str, Any] = {
            "room": {"rooms": [self.room_id], "timeline": {"limit": 100, "types": ["m.room.message"]},
                     "state": {"lazy_load_members": True, "types": []}, "ephemeral": {"types": []},
                     "account_data": {"types": []}},
            "presence": {"types": []}, "account_data": {"types": []}}
        r = self.http.post(f"{self.url}{CLIENT}/user/{quote(self.user_id)}/filter", json=body, timeout=60)
        r.raise_for_status()
        return str(r.json()["filter_id"])

    def run(self) -> None:
        try:
            filter_id = self._filter_id()
            since = None
            while not self.stop.is_set():
                params = {"filter": filter_id, "timeout": "30000" if since else "0"}
                if since:
                    params["since"] = since
                try:
                    r = self.http.get(f"{self.url}{CLIENT}/sync", params=params, timeout=90)
                except requests.RequestException:
                    if self.stop.is_set():  # the stack is stopping under the last long-poll
                        return
                    raise
                now = time.monotonic()
                r.raise_for_status()
                data = r.json()
                since = data["next_batch"]
                room = data.get("rooms", {}).get("join", {}).get(self.room_id, {})
                with self.changed:
                    for event in room.get("timeline", {}).get("events", []):
                        body = event.get("content", {}).get("body")
                        if isinstance(body, str):
                            for token in TOKEN_RE.findall(body):
                                # Tokens already there at the first sync are history, not news.
                                self.seen.setdefault(token, now if self.ready.is_set() else 0.0)
                    self.changed.notify_all()
                self.ready.set()
        except BaseException as e:  # reported by wait()
            self.error = e
            self.ready.set()
            with self.changed:
                self.changed.notify_all()

    def wait(self, token: str, timeout: float = VISIBLE_TIMEOUT_S) -> float | None:
        """When ``token`` first showed (``time.monotonic``), or None if it did not in ``timeout``."""
        deadline = time.monotonic() + timeout
        with self.changed:
            while token not in self.seen:
                if self.error is not None:
                    raise RuntimeError(f"the /sync of {self.user_id} failed") from self.error
                left = deadline - time.monotonic()
                if left <= 0:
                    return None
                self.changed.wait(left)
            return self.seen[token]


class Arms:
    """The two arms' requests for one planned update, with their latencies and status codes."""

    def __init__(self, stack: Any, plan: Plan, people: list[str], rooms: list[str], bot_token: str, base_ms: int):
        self.stack, self.plan, self.people, self.rooms, self.base_ms = stack, plan, people, rooms, base_ms
        self.tag = secrets.token_hex(3)
        self.hook = _session(stack.info["parcels"]["platform_secret"])
        self.bot = _session(bot_token)
        self.registry = CarrierRegistry.with_defaults()
        self.mirror = Mirror()
        self.cards: dict[tuple[int, int], str] = {}  # the direct arm's card per parcel
        self.sent: dict[int, tuple[str, dict[str, Any]]] = {}  # token -> first event's txn id and content
        self.codes: dict[str, Counter[int]] = {"webhook": Counter(), "direct": Counter()}

    def carrier(self, send: Send) -> str:
        return CARRIERS[(send.person + send.parcel) % len(CARRIERS)]

    def tracking_number(self, send: Send, arm: str) -> str:
        return f"{self.carrier(send).upper()}{arm}{self.tag}{send.person:06d}{send.parcel:02d}"

    def shipment_id(self, send: Send, arm: str) -> str:
        return f"{arm}{self.tag}-{send.person}-{send.parcel}"

    def webhook(self, send: Send) -> tuple[float, int]:
        update = update_of(send, "W", self.base_ms)
        body: dict[str, Any] = {
            "shipment_id": self.shipment_id(send, "W"), "order_id": f"O{self.tag}-{send.person}-{send.parcel}",
            "buyer": self.people[send.person], "carrier": self.carrier(send),
            "tracking_number": self.tracking_number(send, "W"), "status": update.status, "at": update.at,
            "location": update.location, "eta": update.eta, "detail": update.detail}
        started = time.monotonic()
        r = self.hook.post(f"{self.stack.url}{API}/shipments", json=body, timeout=120)
        elapsed = time.monotonic() - started
        self.codes["webhook"][r.status_code] += 1
        return elapsed, r.status_code

    def _put(self, room_id: str, txn_id: str, content: dict[str, Any]) -> tuple[str | None, int]:
        r = self.bot.put(f"{self.stack.url}{CLIENT}/rooms/{quote(room_id)}/send/m.room.message/{txn_id}",
                         json=content, timeout=120)
        self.codes["direct"][r.status_code] += 1
        return (r.json().get("event_id") if r.status_code == 200 else None), r.status_code

    def direct(self, send: Send) -> tuple[float, int, Effect]:
        """What the module would do with ``send``, done by the bot as a client."""
        update = update_of(send, "D", self.base_ms)
        effect = self.mirror.apply(send, update)
        room_id = self.rooms[send.person]
        parcel = Parcel(self.shipment_id(send, "D"), self.carrier(send), self.tracking_number(send, "D"),
                        parcel_state(self.mirror.updates(send)), f"O{self.tag}-{send.person}-{send.parcel}")
        started = time.monotonic()
        code = 200
        if effect.action == "none":  # a replay: the same transaction again
            txn_id, content = self.sent[send.token]
            _, code = self._put(room_id, txn_id, content)
        else:
            content = card_content(parcel, self.registry, TIME_ZONE)
            txn_id = f"d{self.tag}{send.token}"
            if effect.action == "edit":
                content = edit_content(self.cards[send.shipment_key], content)
            self.sent[send.token] = (txn_id, content)
            event_id, code = self._put(room_id, txn_id, content)
            if effect.action == "card" and event_id:
                self.cards[send.shipment_key] = event_id
            if effect.alert and code == 200:
                _, code = self._put(room_id, f"a{self.tag}{send.token}",
                                    alert_content(parcel, self.registry, self.cards[send.shipment_key]))
        return time.monotonic() - started, code, effect


def _first_shipments(stack: Any, people: list[str], tag: str, progress: Progress) -> list[float]:
    """Each person's first shipment, which makes their Parcels room (setup; timed on its own)."""
    local = threading.local()

    def one(i: int) -> float:
        if not hasattr(local, "http"):
            local.http = _session(stack.info["parcels"]["platform_secret"])
        body = {"shipment_id": f"S{tag}-{i}", "buyer": people[i], "carrier": "sf",
                "tracking_number": f"SFS{tag}{i:06d}", "status": "created", "at": int(time.time() * 1000),
                "detail": "first parcel"}
        started = time.monotonic()
        r = local.http.post(f"{stack.url}{API}/shipments", json=body, timeout=300)
        elapsed = time.monotonic() - started
        r.raise_for_status()
        progress.tick("rooms")
        return elapsed

    with ThreadPoolExecutor(SETUP_CONCURRENCY) as pool:
        return list(pool.map(one, range(len(people))))


def _tokens_and_rooms(stack: Any, people: list[str]) -> tuple[list[str], list[str]]:
    def one(user_id: str) -> tuple[str, str]:
        token = login_as(stack, user_id)
        r = requests.get(f"{stack.url}{API}/parcels", headers={"Authorization": f"Bearer {token}"}, timeout=120)
        r.raise_for_status()
        room_id = r.json()["room_id"]
        if not room_id:
            raise RuntimeError(f"{user_id} has no Parcels room after their first shipment")
        return token, str(room_id)

    with ThreadPoolExecutor(8) as pool:
        found = list(pool.map(one, people))
    return [t for t, _ in found], [r for _, r in found]


def _summary(samples: list[float]) -> dict[str, float] | None:
    return summary_ms(samples) if samples else None


def _compare(a: list[float], b: list[float]) -> dict[str, Any]:
    if not a or not b:
        return {"p50_ratio": None}
    sa, sb = summary_ms(a), summary_ms(b)
    return {"p50_ratio": ratio(sa["p50_ms"], sb["p50_ms"]), "p50_ratio_95pct_interval": p50_ratio_interval(a, b),
            "p95_ratio": ratio(sa["p95_ms"], sb["p95_ms"])}


def measure(arms: Arms, plan: Plan, watchers: dict[int, SyncWatcher]) -> dict[str, Any]:
    """The measured phase (see the module docstring)."""
    latency: dict[str, dict[str, list[float]]] = {arm: {"changed": [], "replay": []} for arm in ("webhook", "direct")}
    visible: dict[str, dict[str, list[float]]] = {arm: {"card": [], "edit": []} for arm in ("webhook", "direct")}
    missing = Counter[str]()
    sends = plan.sends()
    effects = planned_effects(sends, arms.base_ms)
    with Progress("parcels", {"webhook": len(sends), "direct": len(sends)}) as progress:
        for n, send in enumerate(sends):
            watcher = watchers.get(send.person)
            order = ("webhook", "direct") if n % 2 == 0 else ("direct", "webhook")
            for arm in order:
                started = time.monotonic()
                if arm == "webhook":
                    elapsed, code = arms.webhook(send)
                    kind = effects[n].action
                else:
                    elapsed, code, effect = arms.direct(send)
                    kind = effect.action
                progress.tick(arm)
                latency[arm]["replay" if send.replay else "changed"].append(elapsed)
                if watcher is None or send.replay or code != 200:
                    continue
                token = f"{'W' if arm == 'webhook' else 'D'}{send.token}"
                seen = watcher.wait(token)
                if seen is None:
                    missing[arm] += 1
                else:
                    visible[arm][kind].append(seen - started)
    return {"latency": latency, "visible": visible, "missing": missing}


def planned_effects(sends: list[Send], base_ms: int) -> list[Effect]:
    """What the module does with each webhook update (the same as the direct arm does)."""
    mirror = Mirror()
    return [mirror.apply(send, update_of(send, "W", base_ms)) for send in sends]


def run(people: int = 1000, updates: int = 10, postgres: bool = False) -> dict[str, Any]:
    base_ms = int(time.time() * 1000) - 2 * 24 * 3600 * 1000
    plan = make_plan(people, updates, base_ms)
    result: dict[str, Any] = {"database": "postgres" if postgres else "sqlite", "machine": machine(),
                              "people": people, "updates_per_person": updates, "updates": len(plan.sends()),
                              "replays": plan.replays, "out_of_order": plan.late}
    with tempfile.TemporaryDirectory(prefix="wx-bench-parcels-") as tmp:
        bench = BenchStack(os.path.join(tmp, "wangxin"), ["--no-bot", "--bcrypt-rounds", "4"], postgres)
        watchers: dict[int, SyncWatcher] = {}
        sampler = RssSampler(synapse_pids(bench.stack))
        try:
            bench.settle()
            stack = bench.stack
            result["synapse_rss_mb_before_setup"] = sampler.now()
            setup_started = time.monotonic()
            user_ids = create_users(stack, people, 8)
            with Progress("parcels setup", {"rooms": people}) as progress:
                first = _first_shipments(stack, user_ids, secrets.token_hex(3), progress)
            tokens, rooms = _tokens_and_rooms(stack, user_ids)
            bot_token = login_as(stack, stack.info["parcels"]["bot_user_id"])
            result["setup"] = {"seconds": round(time.monotonic() - setup_started, 1),
                               "first_shipment_makes_room": summary_ms(first),
                               "concurrency": SETUP_CONCURRENCY}
            for p in random.Random(1).sample(range(people), min(SYNC_SAMPLE, people)):
                watchers[p] = SyncWatcher(stack.url, user_ids[p], tokens[p], rooms[p])
                watchers[p].start()
            for w in watchers.values():
                if not w.ready.wait(120) or w.error:
                    raise RuntimeError(f"the /sync of {w.user_id} did not start") from w.error
            arms = Arms(stack, plan, user_ids, rooms, bot_token, base_ms)
            start_rss = sampler.now()
            sampler.start()
            started = time.monotonic()
            measured = measure(arms, plan, watchers)
            result["measured_seconds"] = round(time.monotonic() - started, 1)
            end_rss = sampler.now()
            sampler.stop.set()
            result["synapse_rss_mb"] = sampler.report(start_rss, end_rss)
        finally:
            sampler.stop.set()
            for w in watchers.values():
                w.stop.set()
            bench.stop()
    lat, vis = measured["latency"], measured["visible"]
    codes = {arm: dict(sorted(c.items())) for arm, c in arms.codes.items()}
    fivexx = {arm: sum(n for code, n in c.items() if code >= 500) for arm, c in arms.codes.items()}
    vis_all = {arm: vis[arm]["card"] + vis[arm]["edit"] for arm in vis}
    result.update({
        "sync_sample_people": len(watchers),
        "webhook_ms": {"changed": _summary(lat["webhook"]["changed"]), "replays": _summary(lat["webhook"]["replay"]),
                       "all": _summary(lat["webhook"]["changed"] + lat["webhook"]["replay"])},
        "direct_send_ms": {"changed": _summary(lat["direct"]["changed"]), "replays": _summary(lat["direct"]["replay"]),
                           "all": _summary(lat["direct"]["changed"] + lat["direct"]["replay"])},
        # Like for like: updates that wrote something against the direct arm's sends that did.
        "webhook_vs_direct": _compare(lat["webhook"]["changed"], lat["direct"]["changed"]),
        "visible_ms": {arm: {"all": _summary(vis_all[arm]), "card": _summary(vis[arm]["card"]),
                             "edit": _summary(vis[arm]["edit"])} for arm in vis},
        "visible_webhook_vs_direct": _compare(vis_all["webhook"], vis_all["direct"]),
        "visible_missing": dict(measured["missing"]),
        "responses": codes,
        "responses_5xx": fivexx,
    })
    rss = result["synapse_rss_mb"]
    result["goals"] = {
        f"webhook_p50_le_{GOAL_P50_RATIO}x_direct": _at_most(result["webhook_vs_direct"]["p50_ratio"]),
        f"visible_p50_le_{GOAL_P50_RATIO}x_direct": _at_most(result["visible_webhook_vs_direct"]["p50_ratio"]),
        "no_5xx": fivexx["webhook"] == 0,
        "rss_growth_pct": round(100 * rss["growth"] / rss["at_start"], 1) if rss["at_start"] else None,
    }
    return result


def _at_most(value: float | None) -> bool | None:
    return None if value is None else value <= GOAL_P50_RATIO
