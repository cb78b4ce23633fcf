"""Discovery with a city of opted-in people: nearby, the shake engine, shakes over HTTP.

One Wangxin stack (no bots), shakes in ``SHAKE_WINDOW_MS`` windows (``--discovery-options``).

**The city.** ``people`` synthetic people, opted in and with a fresh location (so every real
viewer near them sees them: nearby lists only opted-in people with a location younger than its
expiry), are written in bulk straight into the module's tables, ``wangxin_discovery_profiles``
and ``wangxin_discovery_locations`` (the columns of ``store/schema.py``, the cell from the
module's own ``cells.cell_of``), spread over a city (``bench/discovery_plan.py``). They have no
account: nothing in nearby joins Synapse's users.

**Real users** (admin-made accounts, their own access tokens):

- ``VIEWERS`` viewers opt in and share a location through the API, from the city centre to its
  edge, then call ``GET /nearby``; each call alternates, one request in flight, with a call to
  the **plain endpoint**, ``GET /discovery/profile``, by the same viewer. That endpoint is the
  module's cheapest authenticated one: the same access-token check and the same JSON resource,
  and one transaction that reads the caller's profile, standing and location (``me_txn``), which
  is the first thing ``/nearby`` and ``/shake`` do too. So the ratio is what the pool itself
  adds: the nearby query over nine cells, its rate-limit write, the merchant check of the people
  shown. Viewers stay inside the per-user rate limit's burst (no 429 is expected).
- ``shakers`` (``SHAKERS_PER_CLIENT`` per client) shake over HTTP: ``SHAKE_CLIENTS`` clients in
  a closed loop (each sends its next request when its last one is answered, taking its users in
  turn, so nobody passes the per-user shake limit), in phases of ``PHASE_S`` seconds, alternating
  with phases in which the same clients call the plain endpoint as the same users, in the order
  plain, shake, shake, plain, so drift hits both arms alike. A phase's rate is its answered
  requests over the time from its start to its last answer (the last window's wait, idle time
  for the server, counts against shakes: at most a window and its settling time per phase). A
  shake is answered only when its window has closed, so a client's shakes cannot come faster
  than one per window: the clients are chosen so that this ceiling (``shake_ceiling_per_s``) is
  above the plain rate, which makes the shake rate the server's, not the clients'. Before each
  shake a client waits a random part of the window (``spread_s``): all of a window's answers come
  at its close, and clients sending again in that same instant would, once the server needs longer
  than the rest of the window to take them, all slip to every other window (the rate then
  measures the window: about 300/s with 600 clients, as every run before 2026-12-07 04:00 did). Each phase
  also records Synapse's CPU time: CPU per answered request does not move with the load of
  other processes on this shared machine as a rate does (on SQLite it includes the database's
  work, which runs in Synapse's threads). Shakers' discovery rows are bulk-written like the
  city's (opted in, a location in the city for most).

**The engine**: ``pairing.pair_at_random`` fed ``ENGINE_ENTRANTS`` entrants directly, in this
process (regions from the city, some without a location, a few blocks among them), timed over
``ENGINE_RUNS`` runs.

Memory: Synapse's RSS, sampled every second from the end of the bulk load.
"""

from __future__ import annotations

import asyncio
import os
import random
import secrets
import sys
import tempfile
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import aiohttp
import requests
import yaml

from bench.core import BenchStack
from bench.discovery_plan import city_positions, rate, synthetic_rows, viewer_positions
from bench.merchant_circle import create_users
from bench.parcels import login_as
from bench.processes import RssSampler, cpu_s, synapse_pids
from bench.provenance import machine
from bench.stats import p50_ratio_interval, percentile, ratio, summary_ms
from synapse_modules.discovery.cells import cell_of, region_of
from synapse_modules.discovery.config import DiscoveryConfig
from synapse_modules.discovery.pairing import Entrant, blocked_predicate, pair_at_random
from synapse_modules.discovery.store.schema import SCHEMA

D = "/_synapse/client/wangxin/v1/discovery"
VIEWERS = 20
NEARBY_WARMUP = 2  # per viewer, not counted
NEARBY_SAMPLES = 15  # per viewer; with the warm-up, inside the nearby limit's burst (20)
SHAKE_WINDOW_MS = 1000
SHAKE_CLIENTS = 600
SHAKERS_PER_CLIENT = 3
PHASE_S = 30.0
SHAKE_PHASES = ("profile", "shake", "shake", "profile")  # ABBA: drift hits both arms alike
ENGINE_ENTRANTS = 10_000
ENGINE_RUNS = 21
ENGINE_BLOCKS = 100
NO_LOCATION_SHARE = 0.1  # shakers and engine entrants who shared no location
INSERT_CHUNK = 10_000


def _stage(text: str) -> None:
    print(f"[discovery] {time.strftime('%H:%M:%S')} {text}", file=sys.stderr, flush=True)


GOALS = {"nearby_p50_ms": 20.0, "engine_10000_ms": 100.0, "shake_rate_ratio": 0.8}


# -- the database, written directly ----------------------------------------------------------------


def _connect(stack: Any) -> tuple[Any, str]:
    """A writable connection to the stack's Synapse database, and its placeholder."""
    with open(stack.info["homeserver_config"], encoding="utf-8") as f:
        config = yaml.safe_load(f)["database"]
    if config["name"] == "sqlite3":
        import sqlite3

        return sqlite3.connect(config["args"]["database"], timeout=120), "?"
    import psycopg2

    args = {k: v for k, v in config["args"].items() if k in ("dbname", "user", "password", "host", "port")}
    return psycopg2.connect(**args), "%s"


def bulk_opt_in(stack: Any, rows: Any, now_ms: int) -> int:
    """Profiles and fresh locations for ``(user_id, name, gender, age_range, cell)`` rows, in
    transactions of ``INSERT_CHUNK``; the module's tables are made first if need be (its own
    ``CREATE … IF NOT EXISTS`` statements)."""
    conn, mark = _connect(stack)
    n = 0
    try:
        cur = conn.cursor()
        for statement in SCHEMA.statements:
            cur.execute(statement)
        conn.commit()
        profile_sql = ("INSERT INTO wangxin_discovery_profiles (user_id, name, gender, age_range, updated_ts)"
                       f" VALUES ({', '.join([mark] * 5)})")
        location_sql = (f"INSERT INTO wangxin_discovery_locations (user_id, cell, updated_ts) VALUES ({mark}, {mark},"
                        f" {mark})")
        chunk: list[tuple[str, str, str | None, str | None, str | None]] = []

        def flush() -> None:
            cur.executemany(profile_sql, [(u, name, g, a, now_ms) for u, name, g, a, _ in chunk])
            cur.executemany(location_sql, [(u, cell, now_ms) for u, _, _, _, cell in chunk if cell is not None])
            conn.commit()
            chunk.clear()

        for row in rows:
            chunk.append(row)
            n += 1
            if len(chunk) >= INSERT_CHUNK:
                flush()
        if chunk:
            flush()
        if mark == "%s":  # PostgreSQL: the planner's statistics, as autovacuum would soon make them
            conn.autocommit = True
            cur.execute("ANALYZE wangxin_discovery_profiles")
            cur.execute("ANALYZE wangxin_discovery_locations")
    finally:
        conn.close()
    return n


# -- real users -------------------------------------------------------------------------------------


def _tokens(stack: Any, user_ids: list[str]) -> list[str]:
    with ThreadPoolExecutor(8) as pool:
        return list(pool.map(lambda u: login_as(stack, u), user_ids))


def _session(token: str) -> requests.Session:
    s = requests.Session()
    s.headers["Authorization"] = f"Bearer {token}"
    return s


def _call(http: requests.Session, method: str, url: str, body: Any = None) -> requests.Response:
    r = http.request(method, url, json=body, timeout=120)
    if r.status_code != 200:
        raise RuntimeError(f"{method} {url}: {r.status_code} {r.text[:300]}")
    return r


def nearby_vs_plain(stack: Any, viewers: list[requests.Session]) -> dict[str, Any]:
    """``GET /nearby`` against ``GET /profile``, alternating, one request in flight."""
    nearby_s: list[float] = []
    plain_s: list[float] = []
    shown: list[int] = []
    codes: Counter[int] = Counter()
    url = stack.url + D
    for _ in range(NEARBY_WARMUP):
        for http in viewers:
            _call(http, "GET", f"{url}/nearby")
            _call(http, "GET", f"{url}/profile")
    n = 0
    for _ in range(NEARBY_SAMPLES):
        for http in viewers:
            order = ("nearby", "profile") if n % 2 == 0 else ("profile", "nearby")
            n += 1
            for what in order:
                started = time.perf_counter()
                r = http.get(f"{url}/{what}", timeout=120)
                elapsed = time.perf_counter() - started
                codes[r.status_code] += 1
                if r.status_code != 200:
                    continue
                if what == "nearby":
                    nearby_s.append(elapsed)
                    shown.append(len(r.json()["people"]))
                else:
                    plain_s.append(elapsed)
    nearby, plain = summary_ms(nearby_s), summary_ms(plain_s)
    return {
        "nearby_ms": nearby, "plain_profile_ms": plain,
        "p50_ratio": ratio(nearby["p50_ms"], plain["p50_ms"]),
        "p50_ratio_95pct_interval": p50_ratio_interval(nearby_s, plain_s),
        "p95_ratio": ratio(nearby["p95_ms"], plain["p95_ms"]),
        "module_cost_p50_ms": round(nearby["p50_ms"] - plain["p50_ms"], 2),
        "people_shown": {"min": min(shown), "p50": percentile(shown, 50), "max": max(shown)},
        "responses": dict(sorted(codes.items())),
    }


# -- the engine -------------------------------------------------------------------------------------


def engine(seed: int = 0) -> dict[str, Any]:
    rng = random.Random(seed)
    config = DiscoveryConfig()
    entrants = []
    for i, (lat, lon) in enumerate(city_positions(ENGINE_ENTRANTS, seed + 7)):
        region = None if rng.random() < NO_LOCATION_SHARE else region_of(
            cell_of(lat, lon, config.cell_precision), config.region_precision)
        entrants.append(Entrant(f"@e{i}:bench", region))
    blocks = [(f"@e{rng.randrange(ENGINE_ENTRANTS)}:bench", f"@e{rng.randrange(ENGINE_ENTRANTS)}:bench")
              for _ in range(ENGINE_BLOCKS)]
    times: list[float] = []
    cpu: list[float] = []
    paired = 0
    for _ in range(ENGINE_RUNS):
        started, cpu_started = time.perf_counter(), time.thread_time()
        pairs = pair_at_random(entrants, blocked_predicate(blocks))  # what the module's shake pairer does
        times.append(time.perf_counter() - started)
        cpu.append(time.thread_time() - cpu_started)
        paired = 2 * len(pairs)
    return {"entrants": ENGINE_ENTRANTS, "regions": len({e.region for e in entrants if e.region}),
            "without_location": sum(e.region is None for e in entrants), "blocks": ENGINE_BLOCKS,
            "runs": ENGINE_RUNS, "ms": summary_ms(times), "max_ms": round(max(times) * 1000, 2),
            # CPU time of this thread: what the pairing costs, whatever else the machine runs.
            "cpu_ms": summary_ms(cpu), "paired_last_run": paired}


# -- shakes over HTTP -------------------------------------------------------------------------------


async def _phase(session: aiohttp.ClientSession, url: str, what: str, tokens: list[list[str]],
                 seconds: float, pids: list[int], spread_s: float = 0.0) -> dict[str, Any]:
    """One closed-loop phase: each client sends ``what`` as its users in turn until ``seconds``
    have passed, then waits for its last answer. Also Synapse's CPU time over the phase.

    ``spread_s`` (window arms): each client waits a random time up to it before each request.
    Every answer of a window comes at its close; without the wait, all clients would send their
    next request in the same instant, and a server that cannot take them all before the next
    window closes pushes every client to every other window, so the arm would measure the
    window (clients / 2 windows), not the server. Spread over the window's first part, each
    request still enters the window it was sent in: the ceiling stays one per window per client."""
    codes: Counter[int] = Counter()
    paired = 0
    cpu_started = cpu_s(pids)
    started = time.monotonic()
    deadline = started + seconds
    last = started

    async def client(mine: list[str]) -> None:
        nonlocal paired, last
        k = 0
        while time.monotonic() < deadline:
            if spread_s:
                await asyncio.sleep(random.uniform(0, spread_s))
            headers = {"Authorization": f"Bearer {mine[k % len(mine)]}"}
            k += 1
            if what == "shake":
                request = session.post(f"{url}/shake", json={}, headers=headers)
            elif what == "angle":  # 你我36.8度 (bench/angle.py): within the tolerance, so it enters the window
                request = session.post(f"{url}/angle", json={"angle": 36.8}, headers=headers)
            else:
                request = session.get(f"{url}/profile", headers=headers)
            async with request as r:
                body = await r.json(content_type=None)
                codes[r.status] += 1
                if r.status == 200 and (body.get("paired_with") or body.get("paired") is True):
                    paired += 1
            last = max(last, time.monotonic())

    await asyncio.gather(*(client(mine) for mine in tokens))
    elapsed = last - started
    cpu = cpu_s(pids) - cpu_started
    return {"arm": what, "seconds": round(elapsed, 2), "answered_200": codes[200],
            "rate_per_s": rate(codes[200], elapsed), "synapse_cpu_s": round(cpu, 2),
            "responses": dict(sorted(codes.items())), **({"paired": paired} if what != "profile" else {})}


async def _shakes_vs_plain(url: str, tokens: list[list[str]], pids: list[int], arm: str,
                           spread_s: float) -> list[dict[str, Any]]:
    connector = aiohttp.TCPConnector(limit=len(tokens) + 10, limit_per_host=len(tokens) + 10)
    timeout = aiohttp.ClientTimeout(total=300)
    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:
        await _phase(session, url, "profile", tokens, 3.0, pids)  # warm-up: connections, caches
        return [await _phase(session, url, arm if what == "shake" else what, tokens, PHASE_S, pids,
                             spread_s if what == "shake" else 0.0)
                for what in SHAKE_PHASES]


def shakes_vs_plain(stack: Any, tokens: list[list[str]], arm: str = "shake",
                    window_ms: int = SHAKE_WINDOW_MS) -> dict[str, Any]:
    """Closed-loop phases of ``arm`` (shakes; ``angle`` for bench/angle.py) against the plain endpoint."""
    # Requests spread over the window up to its settle time (the module's rule) and a margin.
    settle_ms = min(500, max(100, window_ms // 5))
    spread_s = max(0.0, (window_ms - settle_ms - 100) / 1000)
    phases = asyncio.run(_shakes_vs_plain(stack.url + D, tokens, synapse_pids(stack), arm, spread_s))
    shake = [p for p in phases if p["arm"] == arm]
    plain = [p for p in phases if p["arm"] == "profile"]
    shake_n, plain_n = sum(p["answered_200"] for p in shake), sum(p["answered_200"] for p in plain)
    shake_rate = rate(shake_n, sum(p["seconds"] for p in shake))
    plain_rate = rate(plain_n, sum(p["seconds"] for p in plain))
    shake_cpu = sum(p["synapse_cpu_s"] for p in shake) * 1000 / max(1, shake_n)
    plain_cpu = sum(p["synapse_cpu_s"] for p in plain) * 1000 / max(1, plain_n)
    return {
        "arm": arm, "spread_s": round(spread_s, 2), "clients": len(tokens), "users": sum(len(t) for t in tokens),
        "window_ms": window_ms,
        # A client's next shake goes into the next window: at most one answer per window each.
        "shake_ceiling_per_s": round(len(tokens) / (window_ms / 1000), 1),
        "phases": phases, "shake_rate_per_s": shake_rate, "plain_rate_per_s": plain_rate,
        "ratio": ratio(shake_rate, plain_rate),
        # Synapse's CPU per answered request: what the rates would be on a machine where Synapse
        # had its cores to itself and was CPU-bound (this one is shared).
        "synapse_cpu_ms_per_request": {"shake": round(shake_cpu, 2), "plain": round(plain_cpu, 2)},
        "cpu_rate_ratio": ratio(plain_cpu, shake_cpu),
    }


# -- the run ----------------------------------------------------------------------------------------


def run(people: int = 100_000, postgres: bool = False, shake_clients: int = SHAKE_CLIENTS) -> dict[str, Any]:
    result: dict[str, Any] = {"database": "postgres" if postgres else "sqlite", "machine": machine(),
                              "people": people, "plain_endpoint": f"GET {D}/profile"}
    result["engine"] = engine()  # before the stack starts: the machine as quiet as it gets here
    config = DiscoveryConfig()
    with tempfile.TemporaryDirectory(prefix="wx-bench-discovery-") as tmp:
        bench = BenchStack(os.path.join(tmp, "wangxin"),
                           ["--no-bot", "--bcrypt-rounds", "4", "--discovery-options",
                            f"shake_window_ms={SHAKE_WINDOW_MS}"], postgres)
        sampler = RssSampler(synapse_pids(bench.stack))
        try:
            bench.settle()
            stack = bench.stack
            result["synapse_rss_mb_at_startup"] = sampler.now()
            started = time.monotonic()
            shakers = shake_clients * SHAKERS_PER_CLIENT
            _stage(f"making {VIEWERS + shakers} accounts")
            user_ids = create_users(stack, VIEWERS + shakers, 8)
            tokens = _tokens(stack, user_ids)
            viewers = [_session(t) for t in tokens[:VIEWERS]]
            for http, (lat, lon) in zip(viewers, viewer_positions(VIEWERS), strict=True):
                _call(http, "PUT", f"{stack.url}{D}/profile", {"enabled": True})
                _call(http, "PUT", f"{stack.url}{D}/location", {"latitude": lat, "longitude": lon})
            rng = random.Random(3)
            tag = secrets.token_hex(3)
            shaker_rows = [
                (u, f"摇一摇{i}", None, None,
                 None if rng.random() < NO_LOCATION_SHARE else cell_of(lat, lon, config.cell_precision))
                for i, (u, (lat, lon)) in enumerate(zip(user_ids[VIEWERS:], city_positions(shakers, 11), strict=True))
            ]
            now = int(time.time() * 1000)
            _stage(f"writing {people} synthetic people")
            load_started = time.monotonic()
            inserted = bulk_opt_in(stack, synthetic_rows(people, stack.server_name, tag, config.cell_precision), now)
            inserted += bulk_opt_in(stack, shaker_rows, now)
            result["setup"] = {"bulk_rows": inserted, "bulk_seconds": round(time.monotonic() - load_started, 1),
                               "seconds": round(time.monotonic() - started, 1)}
            start_rss = sampler.now()
            sampler.start()
            _stage("nearby against the plain endpoint")
            result["nearby"] = nearby_vs_plain(stack, viewers)
            _stage(f"shakes against the plain endpoint, {len(SHAKE_PHASES)} phases of {PHASE_S:.0f} s")
            per_client = [tokens[VIEWERS + c::shake_clients] for c in range(shake_clients)]
            result["shakes_over_http"] = shakes_vs_plain(stack, per_client)
            result["synapse_rss_mb"] = sampler.report(start_rss, sampler.now())
        finally:
            sampler.stop.set()
            bench.stop()
    shakes = result["shakes_over_http"]
    result["goals"] = {
        "nearby_p50_le_20ms": result["nearby"]["nearby_ms"]["p50_ms"] <= GOALS["nearby_p50_ms"],
        "engine_10000_under_100ms": result["engine"]["ms"]["p50_ms"] < GOALS["engine_10000_ms"],
        "shake_rate_ge_0.8x_plain": shakes["ratio"] >= GOALS["shake_rate_ratio"],
        "shake_rate_was_server_bound": shakes["shake_ceiling_per_s"] > shakes["plain_rate_per_s"],
    }
    return result
