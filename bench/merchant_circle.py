"""Merchant circle at scale: follow throughput, and posting into a big circle vs stock Synapse.

Two stacks side by side (stock Synapse, and Wangxin with every module), each with one room of
``followers`` members:

- **follows**: on Wangxin, ``followers`` purchase webhooks (sent ``concurrency`` at a time) until
  the circle has that many joined followers; on stock, the same number of admin-API joins
  (``POST /_synapse/admin/v1/join``, no rate limit) into its room, same concurrency. Ratio of
  rates: Wangxin / stock (the target is >= 0.8).
- **follow control** (``follow_control``): during the wave, as many other users are admin-joined
  (same concurrency) into a plain public room on the Wangxin server itself. Follows against those
  joins is the follow machinery against raw admin joins into a room of the same size on the same
  server, at the same time: same process, database, caches and registered bridge.
- **real user**: right after the bulk follows, a new user joins the circle through the client
  API; with stock's ``rc_joins_per_room`` (1/s, burst 10) a room that just took thousands of
  joins would answer 429.
- **message send**: the merchant posts into the circle, a member posts into the stock room,
  alternating in batches; p50/p95 ratio (the target p50 ratio is <= 1.05).
- **same data** (``same_data``): last, the Wangxin stack is stopped, its database copied, and
  stock Synapse started on the copy under the same server name while Wangxin starts again; the
  merchant posts into the same circle on both. Same followers, spaces, push rules and history,
  both processes fresh: the ratio is what the modules cost per post, nothing else.
- **control room** (``control_room``): the same followers are also admin-joined to a plain room
  on the Wangxin server and muted alike, and a plain user posts there in the same rotation. The
  circle against it is what a post costs the modules alone; it against stock is what the rest
  of the Wangxin server (modules idle, followers' spaces, more rooms in its caches) costs every
  room's sends.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any
from urllib.parse import quote

import requests

from bench.core import BenchStack, registration_without_url
from bench.progress import Progress, together
from bench.progress import both as _both
from bench.stats import p50_ratio_interval, ratio, summary_ms

API = "/_synapse/client/wangxin/v1"


def _session(token: str) -> requests.Session:
    s = requests.Session()
    s.headers["Authorization"] = f"Bearer {token}"
    adapter = requests.adapters.HTTPAdapter(pool_connections=32, pool_maxsize=32)
    s.mount("http://", adapter)
    return s


def create_users(stack: Any, n: int, concurrency: int) -> list[str]:
    """Users without a password (no bcrypt): ``PUT /_synapse/admin/v2/users``."""
    admin = _session(stack.info["admin"]["access_token"])
    base = stack.info["main_process_url"]
    prefix = f"f{secrets.token_hex(3)}"
    ids = [f"@{prefix}_{i}:{stack.server_name}" for i in range(n)]

    def make(user_id: str) -> None:
        admin.put(f"{base}/_synapse/admin/v2/users/{quote(user_id)}", json={"displayname": user_id},
                  timeout=120).raise_for_status()

    with ThreadPoolExecutor(concurrency) as pool:
        list(pool.map(make, ids))
    return ids


def _run_all(fn: Any, items: list[Any], concurrency: int, progress: Progress | None = None,
             side: str = "") -> float:
    def one(item: Any) -> None:
        fn(item)
        if progress:
            progress.tick(side)

    started = time.perf_counter()
    with ThreadPoolExecutor(concurrency) as pool:
        list(pool.map(one, items))
    return time.perf_counter() - started


def admin_joins(stack: Any, room_id: str, users: list[str], concurrency: int,
                progress: Progress | None = None, side: str = "stock admin joins") -> float:
    admin = _session(stack.info["admin"]["access_token"])
    base = stack.info["main_process_url"]

    def join(user_id: str) -> None:
        admin.post(f"{base}/_synapse/admin/v1/join/{quote(room_id)}", json={"user_id": user_id},
                   timeout=600).raise_for_status()

    return _run_all(join, users, concurrency, progress, side)


def _admin_join_arm(stack: Any, n: int, concurrency: int, label: str) -> tuple[str, Any]:
    """A plain public room and ``n`` new users on ``stack``, and the arm that admin-joins them."""
    owner = stack.register_user()
    r = requests.post(f"{stack.url}/_matrix/client/v3/createRoom", json={"preset": "public_chat"},
                      headers={"Authorization": f"Bearer {owner['access_token']}"}, timeout=60)
    r.raise_for_status()
    room_id = r.json()["room_id"]
    print(f"[circle] creating {n} users for the {label}", file=sys.stderr, flush=True)
    users = create_users(stack, n, concurrency)
    return label, lambda progress: admin_joins(stack, room_id, users, concurrency, progress, label)


def wangxin_purchase_follows(stack: Any, merchant: str, users: list[str], concurrency: int,
                             progress: Progress | None = None, wait_for_filing: bool = True
                             ) -> tuple[float, float, float | None]:
    """Seconds until every webhook was answered, until every buyer follows, and until the circle
    is filed in every follower's space (the follow queue is empty; ``None`` if not waited for)."""
    platform = _session(stack.info["merchant_circle"]["platform_secret"])
    admin = _session(stack.info["admin"]["access_token"])
    started = time.perf_counter()

    def buy(user_id: str) -> None:
        platform.post(f"{stack.url}{API}/purchases",
                      json={"order_id": f"bench-{user_id}", "buyer": user_id, "merchant": merchant,
                            "items": [{"sku": "tea", "qty": 1}]}, timeout=600).raise_for_status()

    _run_all(buy, users, concurrency)
    answered = time.perf_counter() - started
    followed = None
    while True:
        got = admin.get(f"{stack.url}{API}/merchants/{quote(merchant)}", timeout=120).json()
        if progress:
            progress.set("wangxin follows", got["followers"])
        if followed is None and got["followers"] >= len(users):
            followed = time.perf_counter() - started
            if not wait_for_filing:
                return answered, followed, None
        if followed is not None and got["follows_queued"] == 0 and got["filings_queued"] == 0:
            return answered, followed, time.perf_counter() - started
        time.sleep(1.0)


def mute_for_everyone(stack: Any, room_id: str, users: list[str], concurrency: int) -> None:
    """Give each member the rule a follow gives a follower (Element's "Mute room"), via admin login."""
    admin = _session(stack.info["admin"]["access_token"])
    base = stack.info["main_process_url"]

    def mute(user_id: str) -> None:
        r = admin.post(f"{base}/_synapse/admin/v1/users/{quote(user_id)}/login", json={}, timeout=120)
        r.raise_for_status()
        token = r.json()["access_token"]
        requests.put(f"{base}/_matrix/client/v3/pushrules/global/override/{quote(room_id, safe='')}",
                     json={"conditions": [{"kind": "event_match", "key": "room_id", "pattern": room_id}],
                           "actions": ["dont_notify"]},
                     headers={"Authorization": f"Bearer {token}"}, timeout=120).raise_for_status()

    _run_all(mute, users, concurrency)


def run(followers: int = 10000, messages: int = 300, concurrency: int = 8, postgres: bool = False,
        follows_only: bool = False, control_room: bool = False, same_data: bool = False,
        follow_control: bool = False, registered_stock: bool = False) -> dict[str, Any]:
    """``follows_only``: stop after the follow wave (no filing wait, no sends); ``control_room``:
    also send into a plain room with the same members on the Wangxin server; ``same_data``: at the
    end, stock Synapse on a copy of the Wangxin server's database against Wangxin restarted;
    ``follow_control``: admin joins into a plain room on the Wangxin server during the wave;
    ``registered_stock``: admin joins on a third server, stock Synapse carrying the bridge's
    registration, during the wave (``follows_only`` only)."""
    if registered_stock and not follows_only:
        raise ValueError("the registered stock arm is for the follow wave only (use it with follows_only)")
    with tempfile.TemporaryDirectory(prefix="wx-bench-circle-") as tmp:
        stacks: list[BenchStack] = []
        with contextlib.ExitStack() as stopping:  # every stack started is stopped, last first
            stock = BenchStack(os.path.join(tmp, "stock"), ["--stock"], postgres)
            stacks.append(stock)
            stopping.callback(stock.stop)
            # A quota high enough for the benchmark's posts; the quota check itself still runs.
            wangxin = BenchStack(os.path.join(tmp, "wangxin"),
                                 ["--no-bot", "--circle-posts-per-day", str(10 * messages + 100)], postgres)
            stacks.append(wangxin)
            stopping.callback(wangxin.stop)
            registered = None
            if registered_stock:
                path = os.path.join(tmp, "bridge-registration.yaml")
                registration_without_url(os.path.join(wangxin.directory, "appservice-registration.yaml"), path)
                registered = BenchStack(os.path.join(tmp, "stock-registered"),
                                        ["--stock", "--appservice-registration", path], postgres)
                stacks.append(registered)
                stopping.callback(registered.stop)
            together(*[s.settle for s in stacks])
            after = None
            if same_data:
                def after(merchant_token: str, circle: str) -> dict[str, Any]:
                    stock.stop()  # the machine's second core goes to the copy
                    return _same_data(wangxin, os.path.join(tmp, "copy"), merchant_token, circle, messages)
            return _measure(stock.stack, wangxin.stack, followers, messages, concurrency, postgres,
                            follows_only, control_room, after, follow_control,
                            registered.stack if registered else None)


def _same_data(wangxin: BenchStack, directory: str, merchant_token: str, circle: str,
               messages: int) -> dict[str, Any]:
    """The merchant posts into the same circle, with the same followers, spaces and rules, on
    three servers started afresh from one database: Wangxin with every module; stock Synapse;
    and stock Synapse with the bridge's application-service registration (no modules). Wangxin
    vs the last is what the modules cost per post; the last vs stock is what a registered bridge
    costs every message on the server."""
    print("[circle] copying the Wangxin database for two stock Synapses; restarting all", file=sys.stderr,
          flush=True)
    copy, copy_as = wangxin.stock_copies([(directory, False, None), (directory + "-appservice", True, None)])
    try:
        wx_send = _sender(_session(merchant_token), wangxin.stack.url, circle, True)
        copy_send = _sender(_session(merchant_token), copy.stack.url, circle, True)
        copy_as_send = _sender(_session(merchant_token), copy_as.stack.url, circle, True)
        print("[circle] sending: the circle on Wangxin vs the same circle on stock Synapse, without and with "
              "the bridge registered", file=sys.stderr, flush=True)
        wx_samples, copy_samples, copy_as_samples = _interleave(wx_send, copy_send, copy_as_send, messages=messages)
    finally:
        try:
            copy.stop()
        finally:
            copy_as.stop()

    return {"wangxin": summary_ms(wx_samples), "stock_on_a_copy": summary_ms(copy_samples),
            "stock_with_the_bridge_registered_on_a_copy": summary_ms(copy_as_samples),
            # The comparison: all modules (and the bridge) vs stock Synapse.
            **_ratios(wx_samples, copy_samples),
            # The modules alone: both servers carry the bridge's registration.
            "modules_only": _ratios(wx_samples, copy_as_samples),
            # What a registered bridge costs a message, without any module.
            "bridge_registration_only": _ratios(copy_as_samples, copy_samples)}


def _ratios(a: list[float], b: list[float]) -> dict[str, Any]:
    """p50 and p95 of ``a`` over ``b``, with the p50 ratio's 95 % bootstrap interval."""
    sa, sb = summary_ms(a), summary_ms(b)
    return {"p50_ratio": ratio(sa["p50_ms"], sb["p50_ms"]), "p50_ratio_95pct_interval": p50_ratio_interval(a, b),
            "p95_ratio": ratio(sa["p95_ms"], sb["p95_ms"])}


def _sender(http: requests.Session, url: str, room_id: str, product: bool) -> Any:
    counter = [0]
    tag = secrets.token_hex(3)  # a user's senders must share neither transaction ids nor product ids

    def send_once() -> float:
        counter[0] += 1
        n = counter[0]
        content: dict[str, Any] = {"msgtype": "m.text", "body": f"benchmark post {n}"}
        if product:
            content["org.wangxin.product"] = {"id": f"bench-{tag}-{n}", "title": f"Item {n}", "price": "1.00",
                                              "currency": "CNY", "url": f"https://shop.example/{n}"}
        started = time.perf_counter()
        r = http.put(f"{url}/_matrix/client/v3/rooms/{quote(room_id)}/send/m.room.message/b{tag}-{n}",
                     json=content, timeout=120)
        elapsed = time.perf_counter() - started
        r.raise_for_status()
        return elapsed

    return send_once


def _interleave(*senders: Any, messages: int) -> list[list[float]]:
    """Each sender in turn, ten sends at a time, until each has ``messages`` samples (after ten
    unmeasured warm-up sends each)."""
    for _ in range(10):
        for send in senders:
            send()
    samples: list[list[float]] = [[] for _ in senders]
    while len(samples[0]) < messages:
        for send, got in zip(senders, samples, strict=True):
            got += [send() for _ in range(10)]
    return samples


def _measure(stock: Any, wangxin: Any, followers: int, messages: int, concurrency: int,
             postgres: bool, follows_only: bool = False, control_room: bool = False,
             after: Any = None, follow_control: bool = False, registered_stock: Any = None) -> dict[str, Any]:
    # Stock: a public room, a poster, N members joined by the admin API.
    poster = stock.register_user()
    poster_http = _session(poster["access_token"])
    r = poster_http.post(f"{stock.url}/_matrix/client/v3/createRoom", json={"preset": "public_chat"}, timeout=60)
    r.raise_for_status()
    stock_room = r.json()["room_id"]
    # Wangxin: a merchant, N buyers whose purchases make them follow.
    merchant = wangxin.register_user()
    merchant_http = _session(merchant["access_token"])
    r = requests.put(f"{wangxin.url}{API}/merchants/{quote(merchant['user_id'])}", json={"name": "Bench"},
                     headers=wangxin.admin_headers(), timeout=60)
    r.raise_for_status()
    circle = r.json()["circle_room_id"]

    print(f"[circle] creating {followers} users on each stack", file=sys.stderr, flush=True)
    stock_users, buyers = _both(lambda: create_users(stock, followers, concurrency),
                                lambda: create_users(wangxin, followers, concurrency))
    # The wave, every arm at once: each Synapse has a core of the two, and drift hits all alike.
    # An arm is (progress label, callable(progress) -> seconds until its room has everyone).
    arms: list[tuple[str, Any]] = [("stock admin joins", lambda p: admin_joins(stock, stock_room, stock_users,
                                                                                concurrency, p))]
    follow_times: list[Any] = []

    def follow_arm(progress: Progress) -> float:
        follow_times.extend(wangxin_purchase_follows(wangxin, merchant["user_id"], buyers, concurrency, progress,
                                                     wait_for_filing=not follows_only))
        return follow_times[1]

    arms.append(("wangxin follows", follow_arm))
    if registered_stock is not None:
        arms.append(_admin_join_arm(registered_stock, followers, concurrency, "stock+bridge admin joins"))
    if follow_control:
        arms.append(_admin_join_arm(wangxin, followers, concurrency, "wangxin admin joins"))
    with Progress("circle", {label: followers for label, _ in arms}) as progress:
        seconds = dict(zip([label for label, _ in arms],
                           together(*[lambda fn=fn: fn(progress) for _, fn in arms]), strict=True))
    answered_s, follow_s, filed_s = follow_times
    stock_join_s = seconds["stock admin joins"]
    # Whichever side finished first gave the machine to the others: the counts at that moment
    # compare them while they shared it.
    shared = progress.at_first_completion or progress.done

    newcomer = wangxin.register_user()
    real_join = requests.post(f"{wangxin.url}/_matrix/client/v3/join/{quote(circle)}", json={},
                              headers={"Authorization": f"Bearer {newcomer['access_token']}"}, timeout=60)

    stock_rate = followers / stock_join_s
    follow_rate = followers / follow_s
    follows = {
        "stock_admin_api_joins_per_s": round(stock_rate, 1),
        "wangxin_purchase_follows_per_s": round(follow_rate, 1),
        "webhooks_answered_s": round(answered_s, 2),
        "all_followed_s": round(follow_s, 2),
        "all_filed_in_spaces_s": None if filed_s is None else round(filed_s, 2),
        "stock_all_joined_s": round(stock_join_s, 2),
        "rate_ratio": ratio(follow_rate, stock_rate),
        "measured": f"{len(arms)} arms at the same time, one run",
        # Done on each side when the first finished: the rate ratio while they shared the machine.
        "done_when_first_side_finished": shared,
        "rate_ratio_while_both_ran": ratio(int(shared["wangxin follows"]), int(shared["stock admin joins"])),
    }
    for label, key in (("stock+bridge admin joins", "stock_with_the_bridge_registered"),
                       ("wangxin admin joins", "control_room_on_wangxin")):
        if label in seconds:
            rate = followers / seconds[label]
            follows[key] = {
                "admin_api_joins_per_s": round(rate, 1),
                "all_joined_s": round(seconds[label], 2),
                "follow_rate_ratio": ratio(follow_rate, rate),
                "follow_rate_ratio_while_all_ran": ratio(int(shared["wangxin follows"]), int(shared[label])),
                "vs_stock_rate_ratio": ratio(rate, stock_rate),
            }
    result: dict[str, Any] = {
        "database": "postgres" if postgres else "sqlite",
        "followers": followers,
        "concurrency": concurrency,
        "follows": follows,
        "real_user_join_after_bulk_follows": real_join.status_code,
    }
    if follows_only:
        return result

    wx_send = _sender(merchant_http, wangxin.url, circle, True)
    st_send = _sender(poster_http, stock.url, stock_room, False)
    print("[circle] sending: circle vs stock room with default push rules", file=sys.stderr, flush=True)
    wx_default, st_default = _interleave(wx_send, st_send, messages=messages)
    if control_room:
        control_poster = wangxin.register_user()
        control_http = _session(control_poster["access_token"])
        r = control_http.post(f"{wangxin.url}/_matrix/client/v3/createRoom", json={"preset": "public_chat"},
                              timeout=60)
        r.raise_for_status()
        control = r.json()["room_id"]
        print("[circle] muting the stock room for its members, as a follow mutes the circle; joining the"
              " followers to a control room on Wangxin, muted alike", file=sys.stderr, flush=True)

        def join_and_mute_control() -> None:
            admin_joins(wangxin, control, buyers, concurrency)
            mute_for_everyone(wangxin, control, buyers, concurrency)

        _both(lambda: mute_for_everyone(stock, stock_room, stock_users, concurrency), join_and_mute_control)
        print("[circle] sending: circle vs control room vs stock room, muted alike", file=sys.stderr, flush=True)
        wx_alike, ctl_alike, st_alike = _interleave(
            wx_send, _sender(control_http, wangxin.url, control, False), st_send, messages=messages)
    else:
        print("[circle] muting the stock room for its members, as a follow mutes the circle", file=sys.stderr,
              flush=True)
        mute_for_everyone(stock, stock_room, stock_users, concurrency)
        print("[circle] sending: circle vs stock room muted alike", file=sys.stderr, flush=True)
        wx_alike, st_alike = _interleave(wx_send, st_send, messages=messages)

    def compare(wx_samples: list[float], st_samples: list[float]) -> dict[str, Any]:
        return {"wangxin": summary_ms(wx_samples), "stock": summary_ms(st_samples),
                **_ratios(wx_samples, st_samples)}

    if control_room:
        control_vs_stock = compare(ctl_alike, st_alike)
        result["control_room"] = {
            # The modules' own cost per post: circle vs a plain room on the same server and members.
            "circle_vs_control_p50_ratio": ratio(summary_ms(wx_alike)["p50_ms"], control_vs_stock["wangxin"]["p50_ms"]),
            # The rest of the server's cost for every room: plain room on Wangxin vs stock.
            "control_vs_stock": control_vs_stock,
        }
    if after is not None:
        # Same followers, spaces and rules on both sides, both processes fresh (see _same_data).
        result["same_data_modules_on_vs_stock"] = after(merchant["access_token"], circle)
    return {
        **result,
        # Like for like: the stock room's members carry the same per-room mute rule a follow gives.
        "message_send_in_circle": compare(wx_alike, st_alike),
        # For reference: stock members notified by default (push actions written for each).
        "message_send_vs_stock_default_push_rules": compare(wx_default, st_default),
    }
