"""SQL of chat requests (``wangxin_discovery_requests``): every pairing is one, and only an
accept of all its parties makes a room.

A request is directed (``hi``, ``bottle``: the sender asked, so has accepted; the recipient
answers) or mutual (``shake``: paired by the server, both answer). Its other party must still be
visible and unblocked for the request to exist for anyone: otherwise it answers "no such
request", exactly as for an id that never existed.
"""

from __future__ import annotations

from typing import Any

import attrs

from synapse_modules.discovery.config import RateLimit
from synapse_modules.discovery.store.limits import Limited, take_rate_txn
from synapse_modules.discovery.store.people import NOT_HELD, nearby_target_txn, unblocked_sql, visible_sql

OPEN = ("pending", "accepting")
# A room being made for longer than this (its process died) may be made again by a new accept.
STALE_ACCEPTING_MS = 60_000


@attrs.frozen
class Request:
    request_id: str
    kind: str
    sender: str
    recipient: str
    mutual: bool
    sender_accepted: bool
    recipient_accepted: bool
    state: str
    text: str | None
    created_ts: int
    updated_ts: int
    room_id: str | None

    def other(self, user_id: str) -> str:
        return self.recipient if user_id == self.sender else self.sender

    def accepted_by(self, user_id: str) -> bool:
        return self.sender_accepted if user_id == self.sender else self.recipient_accepted


_COLUMNS = ("request_id, kind, sender, recipient, mutual, sender_accepted, recipient_accepted, state, text,"
            " created_ts, updated_ts, room_id")


def _request(row: Any) -> Request:
    return Request(row[0], row[1], row[2], row[3], bool(row[4]), bool(row[5]), bool(row[6]), row[7], row[8],
                   int(row[9]), int(row[10]), row[11])


def insert_request_txn(txn: Any, request_id: str, kind: str, sender: str, recipient: str, mutual: bool,
                       text: str | None, bottle_id: str | None, now: int) -> None:
    txn.execute(
        f"INSERT INTO wangxin_discovery_requests ({_COLUMNS.replace(', room_id', '')}, bottle_id)"
        " VALUES (?, ?, ?, ?, ?, ?, ?, 'pending', ?, ?, ?, ?)",
        (request_id, kind, sender, recipient, int(mutual), int(not mutual), 0, text, now, now, bottle_id),
    )


def _open_between_txn(txn: Any, a: str, b: str) -> str | None:
    txn.execute(
        "SELECT request_id FROM wangxin_discovery_requests WHERE state IN ('pending', 'accepting')"
        " AND ((sender = ? AND recipient = ?) OR (sender = ? AND recipient = ?))",
        (a, b, b, a),
    )
    row = txn.fetchone()
    return row[0] if row else None


def recent_pairs_txn(txn: Any, kind: str, user_ids: list[str], since_ts: int) -> list[tuple[str, str]]:
    """The pairs among ``user_ids`` with a request of ``kind`` made since ``since_ts`` (kept a
    day at least: ``cleanup``), whatever became of it."""
    wanted = set(user_ids)
    found = []
    for start in range(0, len(user_ids), 500):
        chunk = user_ids[start:start + 500]
        marks = ", ".join("?" for _ in chunk)
        txn.execute(f"SELECT sender, recipient FROM wangxin_discovery_requests WHERE sender IN ({marks})"
                    " AND kind = ? AND created_ts > ?", (*chunk, kind, since_ts))
        found += [(r[0], r[1]) for r in txn.fetchall() if r[1] in wanted]
    return found


@attrs.frozen
class HiOutcome:
    """``request_id`` of the new request, or why there is none: ``not_found`` (not someone the
    sender would see nearby), ``existing`` (an open request between the two: its id)."""

    request_id: str | None = None
    not_found: bool = False
    existing: str | None = None


def hi_txn(txn: Any, sender: str, sender_cell: str, target: str, text: str | None, now: int, location_ttl_ms: int,
           cooldown_ms: int, rate: RateLimit, request_id: str) -> Limited | HiOutcome:
    """Say hi to someone nearby: a chat request they see and answer."""
    limited = take_rate_txn(txn, sender, "hi", now, rate)
    if limited:
        return limited
    if not nearby_target_txn(txn, sender, sender_cell, target, now, location_ttl_ms):
        return HiOutcome(not_found=True)
    existing = _open_between_txn(txn, sender, target)
    if existing:
        return HiOutcome(existing=existing)
    if cooldown_ms:
        txn.execute(
            "SELECT MAX(updated_ts) FROM wangxin_discovery_requests WHERE sender = ? AND recipient = ?"
            " AND state = 'declined' AND updated_ts > ?",
            (sender, target, now - cooldown_ms),
        )
        row = txn.fetchone()
        if row and row[0] is not None:
            return Limited("decline_cooldown_hours", "This person declined your last request",
                           int(row[0]) + cooldown_ms - now)
    insert_request_txn(txn, request_id, "hi", sender, target, False, text, None, now)
    return HiOutcome(request_id=request_id)


def open_requests_txn(txn: Any, user_id: str, now: int, ttl_ms: int) -> list[tuple[Request, str]]:
    """The caller's open requests whose other party is still there for them, with that party's
    discovery name; newest first."""
    txn.execute(
        f"SELECT {', '.join('r.' + c for c in _COLUMNS.split(', '))}, p.name"
        " FROM wangxin_discovery_requests AS r"
        " JOIN wangxin_discovery_profiles AS p"
        " ON p.user_id = CASE WHEN r.sender = ? THEN r.recipient ELSE r.sender END"
        " WHERE (r.sender = ? OR r.recipient = ?) AND r.state IN ('pending', 'accepting') AND r.created_ts > ?"
        f" AND {NOT_HELD.format(u='p.user_id')}"
        f" AND {unblocked_sql('?', 'p.user_id')}"
        " ORDER BY r.created_ts DESC LIMIT 200",
        (user_id, user_id, user_id, now - ttl_ms, user_id, user_id),
    )
    return [(_request(r[:12]), r[12]) for r in txn.fetchall()]


@attrs.frozen
class Answer:
    """What answering a request did.

    ``outcome``: ``not_found`` (no such request for the caller: also one whose other party left,
    blocked, is held or banned), ``forbidden`` (someone else's request, or the caller's own
    directed one), ``answered`` (already accepted or declined: ``request.state``), ``declined``,
    ``waiting`` (the caller accepted; the other party has not yet), ``make_room`` (everyone
    accepted: the caller makes the room, then ``finish_request_txn``), ``accepting`` (another
    accept is making the room right now)."""

    outcome: str
    request: Request | None = None


def answer_txn(txn: Any, request_id: str, user_id: str, accept: bool, now: int, ttl_ms: int,
               rate: RateLimit) -> Limited | Answer:
    limited = take_rate_txn(txn, user_id, "answer", now, rate)
    if limited:
        return limited
    txn.execute(f"SELECT {_COLUMNS} FROM wangxin_discovery_requests WHERE request_id = ?", (request_id,))
    row = txn.fetchone()
    if row is None:
        return Answer("not_found")
    request = _request(row)
    if user_id not in (request.sender, request.recipient):
        return Answer("forbidden", request)
    other = request.other(user_id)
    txn.execute(f"SELECT 1 WHERE {visible_sql('?')} AND {unblocked_sql('?', '?')}",
                (other, other, user_id, other, other, user_id))
    if txn.fetchone() is None or (request.state in OPEN and request.created_ts <= now - ttl_ms):
        return Answer("not_found")
    if not request.mutual and user_id == request.sender:
        return Answer("forbidden", request)
    if request.state in ("accepted", "declined"):
        return Answer("answered", request)
    if request.state == "accepting" and request.updated_ts > now - STALE_ACCEPTING_MS:
        return Answer("accepting", request)
    if not accept:
        txn.execute("UPDATE wangxin_discovery_requests SET state = 'declined', text = NULL, updated_ts = ?"
                    " WHERE request_id = ?", (now, request_id))
        return Answer("declined", attrs.evolve(request, state="declined"))
    if request.accepted_by(user_id) and request.state == "pending":
        return Answer("waiting", request)
    column = "sender_accepted" if user_id == request.sender else "recipient_accepted"
    everyone = request.accepted_by(request.other(user_id))
    state = "accepting" if everyone else "pending"
    txn.execute(f"UPDATE wangxin_discovery_requests SET {column} = 1, state = ?, updated_ts = ? WHERE request_id = ?",
                (state, now, request_id))
    if user_id == request.sender:
        request = attrs.evolve(request, state=state, sender_accepted=True)
    else:
        request = attrs.evolve(request, state=state, recipient_accepted=True)
    return Answer("make_room" if everyone else "waiting", request)


def finish_request_txn(txn: Any, request_id: str, room_id: str, now: int) -> None:
    """The room is made: the request is accepted for good (its text is no longer needed)."""
    txn.execute(
        "UPDATE wangxin_discovery_requests SET state = 'accepted', room_id = ?, text = NULL, updated_ts = ?"
        " WHERE request_id = ?",
        (room_id, now, request_id),
    )


def release_request_txn(txn: Any, request_id: str, now: int) -> None:
    """Making the room failed: the request is open again (the acceptances stay)."""
    txn.execute("UPDATE wangxin_discovery_requests SET state = 'pending', updated_ts = ?"
                " WHERE request_id = ? AND state = 'accepting'", (now, request_id))


@attrs.frozen
class Change:
    """A request as the feed of changes shows it: the request, its parties' discovery names
    (None for someone who has left discovery since), no text."""

    request: Request
    sender_name: str | None
    recipient_name: str | None


def changes_txn(txn: Any, since_ts: int, after_id: str, until_ts: int, limit: int) -> list[Change]:
    """Requests last changed after the cursor ``(since_ts, after_id)`` and at or before
    ``until_ts``, in cursor order (``updated_ts``, ``request_id``): the discovery bot's feed.
    One range of the ``updated_ts`` index, whoever the people are."""
    txn.execute(
        f"SELECT {', '.join('r.' + c for c in _COLUMNS.split(', '))}, ps.name, pr.name"
        " FROM wangxin_discovery_requests AS r"
        " LEFT JOIN wangxin_discovery_profiles AS ps ON ps.user_id = r.sender"
        " LEFT JOIN wangxin_discovery_profiles AS pr ON pr.user_id = r.recipient"
        " WHERE r.updated_ts >= ? AND r.updated_ts <= ? AND (r.updated_ts > ? OR r.request_id > ?)"
        " ORDER BY r.updated_ts, r.request_id LIMIT ?",
        (since_ts, until_ts, since_ts, after_id, limit),
    )
    return [Change(_request(r[:12]), r[12], r[13]) for r in txn.fetchall()]
