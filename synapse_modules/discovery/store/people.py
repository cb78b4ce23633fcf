"""SQL of people: profiles (opt-in), locations (a cell and a time), standing (held, banned),
blocks; opting out; who is visible to whom; the nearby query.

Someone is *visible* in discovery when they have a profile (opted in) and no standing row
(neither held for review nor banned). Every pool reads through that rule, so opting out,
a report or a ban takes effect in the same transaction that records it.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

import attrs

from synapse_modules.discovery.cells import band_between, neighbourhood
from synapse_modules.discovery.config import RateLimit
from synapse_modules.discovery.store.limits import Limited, take_rate_txn

PROFILE_FIELDS = ("name", "gender", "age_range")
# The subqueries' aliases (vp_, vs_, nb_) are their own, so they never hide the outer query's.
_VISIBLE = (
    "EXISTS (SELECT 1 FROM wangxin_discovery_profiles AS vp_ WHERE vp_.user_id = {u})"
    " AND NOT EXISTS (SELECT 1 FROM wangxin_discovery_standing AS vs_ WHERE vs_.user_id = {u})"
)
_NOT_BLOCKED = (
    "NOT EXISTS (SELECT 1 FROM wangxin_discovery_blocks AS nb_ WHERE nb_.blocker = {a} AND nb_.blocked = {b})"
    " AND NOT EXISTS (SELECT 1 FROM wangxin_discovery_blocks AS nb_ WHERE nb_.blocker = {b} AND nb_.blocked = {a})"
)
NOT_HELD = "NOT EXISTS (SELECT 1 FROM wangxin_discovery_standing AS ns_ WHERE ns_.user_id = {u})"


def visible_sql(column: str) -> str:
    """SQL: ``column`` (or a ``?``, given twice) names someone visible in discovery."""
    return _VISIBLE.format(u=column)


def unblocked_sql(a: str, b: str) -> str:
    """SQL: neither of ``a`` and ``b`` (columns or ``?``) blocked the other. Each of them appears
    twice (``a``, ``b``, ``b``, ``a``): a ``?`` needs its value twice."""
    return _NOT_BLOCKED.format(a=a, b=b)


@attrs.frozen
class Profile:
    user_id: str
    name: str
    gender: str | None
    age_range: str | None


@attrs.frozen
class Me:
    """The caller's own state, which every pool action checks first."""

    profile: Profile | None
    standing: str | None  # 'held' | 'banned' | None
    cell: str | None  # fresh location only
    location_ts: int | None
    merchant: bool = False  # only when ``me_txn`` was asked to look


# The merchant circle's query of which of some users are merchants (``merchant_ids_among_txn``).
MerchantsAmongTxn = Callable[[Any, list[str]], set[str]]


def me_txn(txn: Any, user_id: str, now: int, ttl_ms: int, merchants_among: MerchantsAmongTxn | None = None) -> Me:
    """The caller's state; with ``merchants_among``, also whether they are a merchant, in the
    same transaction (every pool action checks that, and a separate lookup would double its
    transactions)."""
    txn.execute("SELECT name, gender, age_range FROM wangxin_discovery_profiles WHERE user_id = ?", (user_id,))
    row = txn.fetchone()
    profile = Profile(user_id, row[0], row[1], row[2]) if row else None
    txn.execute("SELECT state FROM wangxin_discovery_standing WHERE user_id = ?", (user_id,))
    standing = txn.fetchone()
    txn.execute("SELECT cell, updated_ts FROM wangxin_discovery_locations WHERE user_id = ? AND updated_ts > ?",
                (user_id, now - ttl_ms))
    location = txn.fetchone()
    merchant = bool(merchants_among(txn, [user_id])) if merchants_among is not None and profile else False
    return Me(profile, standing[0] if standing else None, location[0] if location else None,
              int(location[1]) if location else None, merchant)


def put_profile_txn(txn: Any, user_id: str, fields: Mapping[str, str | None], default_name: str, now: int,
                    rate: RateLimit) -> Limited | Profile | str:
    """Opt in, or change the profile; ``'banned'`` if the person may no longer use discovery."""
    limited = take_rate_txn(txn, user_id, "profile", now, rate)
    if limited:
        return limited
    txn.execute("SELECT state FROM wangxin_discovery_standing WHERE user_id = ?", (user_id,))
    standing = txn.fetchone()
    if standing and standing[0] == "banned":
        return "banned"
    txn.execute("SELECT name, gender, age_range FROM wangxin_discovery_profiles WHERE user_id = ?", (user_id,))
    row = txn.fetchone()
    current: dict[str, str | None] = dict(zip(PROFILE_FIELDS, row, strict=True)) if row else {
        "name": None, "gender": None, "age_range": None}
    current.update(fields)
    name = current["name"] or default_name
    txn.execute(
        "INSERT INTO wangxin_discovery_profiles (user_id, name, gender, age_range, updated_ts) VALUES (?, ?, ?, ?, ?)"
        " ON CONFLICT (user_id) DO UPDATE SET name = excluded.name, gender = excluded.gender,"
        " age_range = excluded.age_range, updated_ts = excluded.updated_ts",
        (user_id, name, current["gender"], current["age_range"], now),
    )
    return Profile(user_id, name, current["gender"], current["age_range"])


def opt_out_txn(txn: Any, user_id: str, now: int, rate: RateLimit) -> Limited | None:
    """Out of every pool, list and pending pairing at once, location deleted: the profile, the
    location, the person's bottles (thrown or picked), window entries, their place in the
    face-to-face queue and open requests go. Coupons already earned stay theirs.
    Blocks, reports and the limits' counters stay (they are not the person's discovery data,
    and opting out and in again must not reset a limit)."""
    limited = take_rate_txn(txn, user_id, "profile", now, rate)
    if limited:
        return limited
    forget_person_txn(txn, user_id)
    return None


def forget_person_txn(txn: Any, user_id: str) -> None:
    for statement in (
        "DELETE FROM wangxin_discovery_profiles WHERE user_id = ?",
        "DELETE FROM wangxin_discovery_locations WHERE user_id = ?",
        "DELETE FROM wangxin_discovery_bottles WHERE thrower = ? OR picker = ?",
        "DELETE FROM wangxin_discovery_window_entries WHERE user_id = ?",
        "DELETE FROM wangxin_discovery_video_queue WHERE user_id = ?",
        "DELETE FROM wangxin_discovery_requests WHERE (sender = ? OR recipient = ?) AND state <> 'accepted'",
    ):
        txn.execute(statement, (user_id,) * statement.count("?"))


def set_location_txn(txn: Any, user_id: str, cell: str, now: int, rate: RateLimit) -> Limited | None:
    limited = take_rate_txn(txn, user_id, "location", now, rate)
    if limited:
        return limited
    txn.execute(
        "INSERT INTO wangxin_discovery_locations (user_id, cell, updated_ts) VALUES (?, ?, ?)"
        " ON CONFLICT (user_id) DO UPDATE SET cell = excluded.cell, updated_ts = excluded.updated_ts",
        (user_id, cell, now),
    )
    return None


def delete_location_txn(txn: Any, user_id: str) -> None:
    txn.execute("DELETE FROM wangxin_discovery_locations WHERE user_id = ?", (user_id,))


@attrs.frozen
class NearbyPerson:
    user_id: str
    name: str
    gender: str | None
    age_range: str | None
    band: str


def nearby_txn(txn: Any, user_id: str, cell: str, now: int, ttl_ms: int, limit: int,
               rate: RateLimit) -> Limited | list[NearbyPerson]:
    """Visible people with a fresh location in ``cell`` or around it, nearest band first and
    at random within a band (the order says nothing finer than the band), at most ``limit``."""
    limited = take_rate_txn(txn, user_id, "nearby", now, rate)
    if limited:
        return limited
    cells = neighbourhood(cell)
    bands = {c: band_between(cell, c) for c in cells}
    order = " ".join(f"WHEN ? THEN {bands[c].index}" for c in cells)
    marks = ", ".join("?" for _ in cells)
    txn.execute(
        "SELECT l.user_id, l.cell, p.name, p.gender, p.age_range"
        " FROM wangxin_discovery_locations AS l JOIN wangxin_discovery_profiles AS p ON p.user_id = l.user_id"
        f" WHERE l.cell IN ({marks}) AND l.updated_ts > ? AND l.user_id <> ?"
        f" AND {NOT_HELD.format(u='l.user_id')} AND {unblocked_sql('?', 'l.user_id')}"
        f" ORDER BY CASE l.cell {order} END, random() LIMIT ?",
        (*cells, now - ttl_ms, user_id, user_id, user_id, *cells, limit),
    )
    return [NearbyPerson(r[0], r[2], r[3], r[4], bands[r[1]].label) for r in txn.fetchall()]


def nearby_target_txn(txn: Any, user_id: str, cell: str, target: str, now: int, ttl_ms: int) -> bool:
    """Whether ``target`` is someone ``user_id`` (in ``cell``) would see in ``GET /nearby``."""
    cells = neighbourhood(cell)
    marks = ", ".join("?" for _ in cells)
    txn.execute(
        "SELECT 1 FROM wangxin_discovery_locations AS l"
        f" WHERE l.user_id = ? AND l.user_id <> ? AND l.cell IN ({marks}) AND l.updated_ts > ?"
        f" AND {visible_sql('l.user_id')} AND {unblocked_sql('?', 'l.user_id')}",
        (target, user_id, *cells, now - ttl_ms, user_id, user_id),
    )
    return txn.fetchone() is not None


def block_txn(txn: Any, blocker: str, blocked: str, now: int, rate: RateLimit) -> Limited | None:
    """A block for good; open requests between the two go (an answered one stays answered)."""
    limited = take_rate_txn(txn, blocker, "block", now, rate)
    if limited:
        return limited
    add_block_txn(txn, blocker, blocked, now)
    return None


def add_block_txn(txn: Any, blocker: str, blocked: str, now: int) -> None:
    txn.execute(
        "INSERT INTO wangxin_discovery_blocks (blocker, blocked, ts) VALUES (?, ?, ?)"
        " ON CONFLICT (blocker, blocked) DO NOTHING",
        (blocker, blocked, now),
    )
    txn.execute(
        "DELETE FROM wangxin_discovery_requests WHERE state IN ('pending', 'accepting')"
        " AND ((sender = ? AND recipient = ?) OR (sender = ? AND recipient = ?))",
        (blocker, blocked, blocked, blocker),
    )


def blocks_among_txn(txn: Any, user_ids: Sequence[str]) -> list[tuple[str, str]]:
    """The blocks between any two of ``user_ids``."""
    wanted = set(user_ids)
    found = []
    for start in range(0, len(user_ids), 500):
        chunk = list(user_ids[start:start + 500])
        marks = ", ".join("?" for _ in chunk)
        txn.execute(f"SELECT blocker, blocked FROM wangxin_discovery_blocks WHERE blocker IN ({marks})", chunk)
        found += [(r[0], r[1]) for r in txn.fetchall() if r[1] in wanted]
    return found


def display_names_txn(txn: Any, user_ids: Sequence[str]) -> dict[str, str]:
    """Discovery names of visible people among ``user_ids``."""
    names: dict[str, str] = {}
    for start in range(0, len(user_ids), 500):
        chunk = list(user_ids[start:start + 500])
        marks = ", ".join("?" for _ in chunk)
        txn.execute(
            f"SELECT p.user_id, p.name FROM wangxin_discovery_profiles AS p WHERE p.user_id IN ({marks})"
            f" AND {NOT_HELD.format(u='p.user_id')}",
            chunk,
        )
        names.update((r[0], r[1]) for r in txn.fetchall())
    return names


def profiles_among_txn(txn: Any, user_ids: Sequence[str]) -> list[str]:
    """Who among ``user_ids`` has a discovery profile."""
    found: list[str] = []
    for start in range(0, len(user_ids), 500):
        chunk = list(user_ids[start:start + 500])
        marks = ", ".join("?" for _ in chunk)
        txn.execute(f"SELECT user_id FROM wangxin_discovery_profiles WHERE user_id IN ({marks})", chunk)
        found += [r[0] for r in txn.fetchall()]
    return found
