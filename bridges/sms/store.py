"""Every SQL statement of the SMS service, each in a small ``*_txn`` function.

Tables: ``bridges/database.py``, migrations 4 and 7. The outbound queue is the SMS service's
journal: a row is ``sending`` in the database before its gateway request starts, so a crash
leaves evidence, and a row that may have reached the gateway is marked ``uncertain`` until the
gateway has been asked about it. ``sms_bindings`` say which of our numbers each user texts each
remote number from, and with which reply code (``bridges/sms/routing.py``); a binding is made in
the transaction that queues the SMS, so a refused SMS leaves none.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from typing import Any

import attrs

from bridges.database import Database, Txn
from bridges.sms.api import OutboundSms, Route, SmsKind, SmsState
from bridges.sms.routing import Binding
from bridges.store import now_ms

FINAL_STATES = frozenset({"delivered", "undelivered", "failed"})
# A state only moves to a higher rank; final states never move.
STATE_RANK = {"queued": 0, "sending": 1, "sent": 2, "delivered": 3, "undelivered": 3, "failed": 3}


class Refusal(Exception):
    """Raised inside the enqueue transaction (rolling it back); ``reason`` as in SmsRefused."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@attrs.frozen
class NewSms:
    kind: SmsKind
    to: str  # E.164
    body: str
    segments: int
    sender: str | None = None
    room_id: str | None = None
    event_id: str | None = None
    dedup_key: str | None = None
    from_number: str | None = None  # send from this number of ours (an answer goes out from the number texted)
    bind_to: str | None = None  # send from this user's number for ``to``, binding one if need be
    throttle_key: str | None = None  # refuse ("throttled") if one with this key was queued
    throttle_ms: int = 0  # ... less than this long ago


@attrs.frozen
class Routing:
    pool: tuple[str, ...]  # our sender numbers, in order of preference ("" = the provider's own pick)
    reply_codes: bool  # share a number, with reply codes, when every one is taken for a remote number


# Makes the body once the route is known (it may name the reply code): (body, segments); raises to refuse.
Composer = Callable[[Route], tuple[str, int]]


@attrs.frozen
class DailyCaps:
    day: str  # UTC, YYYY-MM-DD
    per_user: int
    per_destination: int


@attrs.frozen
class QueuedRow:
    """An outbound SMS as the sender loop sees it."""

    sms: OutboundSms
    uncertain: bool
    first_attempt_ts: int | None
    created_ts: int


@attrs.frozen
class Outcome:
    """What one gateway attempt (or lookup) ended in; applied by :func:`_finish_txn`.

    ``state`` is ``sent``, ``queued`` (retry at ``next_attempt_ts``) or ``failed``.
    """

    sms_id: int
    state: SmsState
    provider_id: str | None = None
    error: str | None = None
    next_attempt_ts: int = 0
    uncertain: bool = False


@attrs.frozen
class InboundRow:
    message_sid: str
    from_number: str
    to_number: str
    body: str
    media_urls: tuple[str, ...]


_COLUMNS = ("sms_id, kind, to_number, body, state, sender, room_id, event_id, dedup_key, provider_id, attempts,"
            " error, uncertain, first_attempt_ts, created_ts, segments, from_number")


def _row(r: Sequence[Any]) -> QueuedRow:
    sms = OutboundSms(sms_id=int(r[0]), kind=r[1], to=r[2], body=r[3], state=r[4], sender=r[5], room_id=r[6],
                      event_id=r[7], dedup_key=r[8], provider_id=r[9], attempts=int(r[10]), error=r[11],
                      from_number=r[16])
    return QueuedRow(sms, bool(r[12]), None if r[13] is None else int(r[13]), int(r[14]))


class SmsStore:
    def __init__(self, db: Database) -> None:
        self.db = db

    # -- outbound ------------------------------------------------------------------------

    async def enqueue(self, new: NewSms, caps: DailyCaps, routing: Routing,
                      compose: Composer | None = None) -> tuple[int, int, bool]:
        """Check opt-out and daily caps, choose the number it goes out from (binding the user's,
        if ``new.bind_to``), make the body and queue the SMS, in one transaction: ``(sms_id,
        segments, created)``. Raises :class:`Refusal`, or what ``compose`` raises (nothing
        stored, counted or bound)."""
        return await self.db.run("sms_enqueue", _enqueue_txn, new, caps, routing, compose)

    async def bindings_for(self, phone: str, our_number: str) -> list[Binding]:
        """The users who text ``phone`` from ``our_number`` (or from before the pool)."""
        return await self.db.run("sms_bindings_for", _bindings_for_txn, phone, our_number)

    async def by_dedup_key(self, key: str) -> tuple[int, int] | None:
        return await self.db.run("sms_by_dedup_key", _by_dedup_key_txn, key)

    async def get(self, sms_id: int) -> OutboundSms | None:
        row = await self.db.run("sms_get", _get_txn, sms_id)
        return row.sms if row else None

    async def segments_of(self, sms_id: int) -> int | None:
        return await self.db.run("sms_segments", _segments_txn, sms_id)

    async def claim_due(self, limit: int) -> list[QueuedRow]:
        """Up to ``limit`` due queued SMS, oldest first, now marked ``sending`` with one more attempt."""
        return await self.db.run("sms_claim_due", _claim_due_txn, limit, now_ms())

    async def unclaim(self, sms_ids: list[int]) -> None:
        """Claimed SMS that were not attempted after all (the bridge is stopping): queued again."""
        await self.db.run("sms_unclaim", _unclaim_txn, sms_ids)

    async def next_due_ts(self) -> int | None:
        return await self.db.run("sms_next_due", _next_due_txn)

    async def finish(self, outcomes: list[Outcome]) -> list[OutboundSms]:
        """Apply attempt outcomes in one transaction; returns the SMS whose state changed."""
        return await self.db.run("sms_finish", _finish_txn, outcomes, now_ms())

    async def apply_status(self, provider_id: str, sms_id: int | None, state: SmsState,
                           error: str | None) -> OutboundSms | None:
        """A gateway status report; returns the SMS if its state changed (never backwards)."""
        return await self.db.run("sms_apply_status", _apply_status_txn, provider_id, sms_id, state, error, now_ms())

    async def resume_interrupted(self) -> int:
        """SMS left ``sending`` by a crash: queued again, uncertain, due now. Returns how many."""
        return await self.db.run("sms_resume", _resume_txn, now_ms())

    async def owned_provider_ids(self, provider_ids: list[str]) -> set[str]:
        return await self.db.run("sms_owned_ids", _owned_provider_ids_txn, provider_ids)

    async def count_states(self) -> dict[str, int]:
        return await self.db.run("sms_count_states", _count_states_txn)

    # -- opt-outs ------------------------------------------------------------------------

    async def opt_out(self, phone: str, keyword: str) -> bool:
        """True if ``phone`` was subscribed until now."""
        return await self.db.run("sms_opt_out", _opt_out_txn, phone, keyword)

    async def opt_in(self, phone: str) -> bool:
        """True if ``phone`` was opted out until now."""
        return await self.db.run("sms_opt_in", _opt_in_txn, phone)

    async def is_opted_out(self, phone: str) -> bool:
        return await self.db.run("sms_is_opted_out", _is_opted_out_txn, phone)

    # -- inbound -------------------------------------------------------------------------

    async def record_inbound(self, row: InboundRow) -> bool:
        """Store an inbound SMS for handling; False if this MessageSid was stored before."""
        return await self.db.run("sms_record_inbound", _record_inbound_txn, row, now_ms())

    async def pending_inbound(self, limit: int = 100) -> list[InboundRow]:
        return await self.db.run("sms_pending_inbound", _pending_inbound_txn, limit)

    async def inbound_done(self, message_sid: str, error: str | None = None) -> None:
        await self.db.run("sms_inbound_done", _inbound_done_txn, message_sid, error, now_ms())

    # -- housekeeping --------------------------------------------------------------------

    async def prune_counters(self, before_day: str) -> None:
        await self.db.run("sms_prune_counters", _prune_counters_txn, before_day)


# -- outbound ------------------------------------------------------------------------------


def _by_dedup_key_txn(txn: Txn, key: str) -> tuple[int, int] | None:
    row = txn.execute("SELECT sms_id, segments FROM sms_outbound WHERE dedup_key = ?", (key,)).fetchone()
    return (int(row[0]), int(row[1])) if row else None


def _count_txn(txn: Txn, scope: str, subject: str, day: str, cap: int) -> bool:
    """Count one SMS against a daily cap; False (nothing counted) when the cap is reached.

    The conditional UPDATE takes the row lock, so concurrent transactions cannot both pass.
    """
    txn.execute(
        "INSERT INTO sms_daily_counts (scope, subject, day, count) VALUES (?, ?, ?, 0)"
        " ON CONFLICT (scope, subject, day) DO NOTHING",
        (scope, subject, day),
    )
    txn.execute(
        "UPDATE sms_daily_counts SET count = count + 1 WHERE scope = ? AND subject = ? AND day = ? AND count < ?",
        (scope, subject, day, cap),
    )
    return txn.rowcount > 0


def _enqueue_txn(txn: Txn, new: NewSms, caps: DailyCaps, routing: Routing | None = None,
                 compose: Composer | None = None) -> tuple[int, int, bool]:
    if new.dedup_key is not None:
        found = _by_dedup_key_txn(txn, new.dedup_key)
        if found:
            return found[0], found[1], False
    if new.kind != "system":
        if _is_opted_out_txn(txn, new.to):
            raise Refusal("opted_out")
        if new.kind in ("chat", "invite") and new.sender and not _count_txn(
            txn, "user", new.sender, caps.day, caps.per_user
        ):
            raise Refusal("user_daily_cap")
        if not _count_txn(txn, "to", new.to, caps.day, caps.per_destination):
            raise Refusal("destination_daily_cap")
    if new.throttle_key is not None and not _throttle_txn(txn, new.throttle_key, new.throttle_ms):
        raise Refusal("throttled")
    if routing is None or new.from_number is not None:
        route = Route(new.from_number or "", None)
    elif new.bind_to is not None:
        route = _bind_txn(txn, new.to, new.bind_to, routing)
    else:
        route = Route(_free_number_txn(txn, new.to, routing.pool), None)
    body, segments = compose(route) if compose is not None else (new.body, new.segments)
    now = now_ms()
    row = txn.execute(
        "INSERT INTO sms_outbound (kind, to_number, body, segments, state, sender, room_id, event_id, dedup_key,"
        " attempts, uncertain, next_attempt_ts, created_ts, updated_ts, from_number)"
        " VALUES (?, ?, ?, ?, 'queued', ?, ?, ?, ?, 0, 0, ?, ?, ?, ?) RETURNING sms_id",
        (new.kind, new.to, body, segments, new.sender, new.room_id, new.event_id, new.dedup_key,
         now, now, now, route.number or None),
    ).fetchone()
    return int(row[0]), segments, True


# -- routing -------------------------------------------------------------------------------


def _bind_txn(txn: Txn, phone: str, user_id: str, routing: Routing) -> Route:
    """The number (and reply code) ``user_id`` texts ``phone`` from: kept once chosen."""
    row = txn.execute("SELECT pool_number, reply_code FROM sms_bindings WHERE phone = ? AND user_id = ?",
                      (phone, user_id)).fetchone()
    if row is not None and row[0] in routing.pool:
        return Route(row[0], int(row[1]) or None)
    if row is not None:  # its number has left the pool, or it is from before the pool: choose again
        txn.execute("DELETE FROM sms_bindings WHERE phone = ? AND user_id = ?", (phone, user_id))
    taken: dict[str, list[tuple[str, int]]] = {number: [] for number in routing.pool}
    for number, other, code in txn.execute(
            "SELECT pool_number, user_id, reply_code FROM sms_bindings WHERE phone = ? ORDER BY created_ts, user_id",
            (phone,)).fetchall():
        if number in taken:
            taken[number].append((other, int(code)))
    free = [number for number in routing.pool if not taken[number]]
    if free:
        number, code = free[0], 0
    elif not routing.reply_codes:
        raise Refusal("no_route")
    else:
        # Share the least shared number. Whoever had it alone gets a code first: from now on a
        # reply without one could be for either of them.
        number = min(routing.pool, key=lambda n: (len(taken[n]), routing.pool.index(n)))
        codes = {c for _, c in taken[number] if c}
        for other, c in taken[number]:
            if not c:
                c = _smallest_free(codes)
                codes.add(c)
                txn.execute("UPDATE sms_bindings SET reply_code = ? WHERE phone = ? AND user_id = ?",
                            (c, phone, other))
        code = _smallest_free(codes)
    txn.execute("INSERT INTO sms_bindings (phone, user_id, pool_number, reply_code, created_ts) VALUES (?, ?, ?, ?, ?)",
                (phone, user_id, number, code, now_ms()))
    return Route(number, code or None)


def _smallest_free(codes: set[int]) -> int:
    code = 1
    while code in codes:
        code += 1
    return code


def _free_number_txn(txn: Txn, phone: str, pool: tuple[str, ...]) -> str:
    """For an SMS that belongs to no user: a number nobody texts ``phone`` from, so that a reply
    to it reaches nobody rather than the wrong person; else the first."""
    used = {r[0] for r in txn.execute("SELECT pool_number FROM sms_bindings WHERE phone = ?", (phone,)).fetchall()}
    return next((number for number in pool if number not in used), pool[0] if pool else "")


def _bindings_for_txn(txn: Txn, phone: str, our_number: str) -> list[Binding]:
    rows = txn.execute(
        "SELECT user_id, pool_number, reply_code FROM sms_bindings WHERE phone = ? AND pool_number IN (?, '')"
        " ORDER BY created_ts, user_id",
        (phone, our_number),
    ).fetchall()
    return [Binding(r[0], r[1], int(r[2]) or None) for r in rows]


def _throttle_txn(txn: Txn, key: str, interval_ms: int) -> bool:
    """Take the slot of ``key`` for ``interval_ms``; False if it is taken."""
    now = now_ms()
    txn.execute(
        "INSERT INTO sms_throttle (throttle_key, until_ts) VALUES (?, ?) ON CONFLICT (throttle_key)"
        " DO UPDATE SET until_ts = excluded.until_ts WHERE sms_throttle.until_ts <= ?",
        (key, now + interval_ms, now),
    )
    return txn.rowcount > 0


def _get_txn(txn: Txn, sms_id: int) -> QueuedRow | None:
    row = txn.execute(f"SELECT {_COLUMNS} FROM sms_outbound WHERE sms_id = ?", (sms_id,)).fetchone()
    return _row(row) if row else None


def _segments_txn(txn: Txn, sms_id: int) -> int | None:
    row = txn.execute("SELECT segments FROM sms_outbound WHERE sms_id = ?", (sms_id,)).fetchone()
    return int(row[0]) if row else None


def _claim_due_txn(txn: Txn, limit: int, now: int) -> list[QueuedRow]:
    ids = [int(r[0]) for r in txn.execute(
        "SELECT sms_id FROM sms_outbound WHERE state = 'queued' AND next_attempt_ts <= ?"
        " ORDER BY next_attempt_ts, sms_id LIMIT ?",
        (now, limit),
    ).fetchall()]
    if not ids:
        return []
    marks = ", ".join("?" for _ in ids)
    txn.execute(
        "UPDATE sms_outbound SET state = 'sending', attempts = attempts + 1,"
        f" first_attempt_ts = COALESCE(first_attempt_ts, ?), updated_ts = ? WHERE sms_id IN ({marks})",
        (now, now, *ids),
    )
    rows = txn.execute(f"SELECT {_COLUMNS} FROM sms_outbound WHERE sms_id IN ({marks}) ORDER BY sms_id", ids)
    return [_row(r) for r in rows.fetchall()]


def _unclaim_txn(txn: Txn, sms_ids: list[int]) -> None:
    if sms_ids:
        marks = ", ".join("?" for _ in sms_ids)
        txn.execute(f"UPDATE sms_outbound SET state = 'queued', attempts = attempts - 1"
                    f" WHERE state = 'sending' AND sms_id IN ({marks})", sms_ids)


def _next_due_txn(txn: Txn) -> int | None:
    row = txn.execute("SELECT MIN(next_attempt_ts) FROM sms_outbound WHERE state = 'queued'").fetchone()
    return int(row[0]) if row and row[0] is not None else None


def _finish_txn(txn: Txn, outcomes: list[Outcome], now: int) -> list[OutboundSms]:
    changed = []
    for o in outcomes:
        if o.state == "sent":
            txn.execute(
                "UPDATE sms_outbound SET state = 'sent', provider_id = ?, uncertain = 0, error = NULL, updated_ts = ?"
                " WHERE sms_id = ? AND state IN ('queued', 'sending')",
                (o.provider_id, now, o.sms_id),
            )
            if txn.rowcount == 0:  # a status callback got there first; keep its (later) state
                txn.execute(
                    "UPDATE sms_outbound SET provider_id = COALESCE(provider_id, ?), uncertain = 0 WHERE sms_id = ?",
                    (o.provider_id, o.sms_id),
                )
                continue
        elif o.state == "queued":
            txn.execute(
                "UPDATE sms_outbound SET state = 'queued', next_attempt_ts = ?, error = ?, uncertain = ?,"
                " updated_ts = ? WHERE sms_id = ? AND state = 'sending'",
                (o.next_attempt_ts, o.error, int(o.uncertain), now, o.sms_id),
            )
        else:
            txn.execute(
                "UPDATE sms_outbound SET state = ?, error = ?, uncertain = 0, updated_ts = ?"
                " WHERE sms_id = ? AND state IN ('queued', 'sending')",
                (o.state, o.error, now, o.sms_id),
            )
        if txn.rowcount:
            row = _get_txn(txn, o.sms_id)
            if row:
                changed.append(row.sms)
    return changed


def _apply_status_txn(txn: Txn, provider_id: str, sms_id: int | None, state: SmsState, error: str | None,
                      now: int) -> OutboundSms | None:
    row = txn.execute(f"SELECT {_COLUMNS} FROM sms_outbound WHERE provider_id = ?", (provider_id,)).fetchone()
    if row is None and sms_id is not None:
        # Not known by its id yet: the callback came before our request returned, or the request
        # timed out although the gateway accepted it. The id in the callback URL says which SMS.
        row = txn.execute(
            f"SELECT {_COLUMNS} FROM sms_outbound WHERE sms_id = ? AND (provider_id IS NULL OR provider_id = ?)",
            (sms_id, provider_id),
        ).fetchone()
    if row is None:
        return None
    current = _row(row).sms
    if current.state in FINAL_STATES or STATE_RANK[state] <= STATE_RANK[current.state]:
        if current.provider_id is None:
            txn.execute("UPDATE sms_outbound SET provider_id = ? WHERE sms_id = ?", (provider_id, current.sms_id))
        return None
    txn.execute(
        "UPDATE sms_outbound SET state = ?, provider_id = ?, error = COALESCE(?, error), uncertain = 0,"
        " updated_ts = ? WHERE sms_id = ?",
        (state, provider_id, error, now, current.sms_id),
    )
    found = _get_txn(txn, current.sms_id)
    return found.sms if found else None


def _resume_txn(txn: Txn, now: int) -> int:
    txn.execute(
        "UPDATE sms_outbound SET state = 'queued', uncertain = 1, next_attempt_ts = ?, updated_ts = ?"
        " WHERE state = 'sending'",
        (now, now),
    )
    return txn.rowcount


def _owned_provider_ids_txn(txn: Txn, provider_ids: list[str]) -> set[str]:
    if not provider_ids:
        return set()
    marks = ", ".join("?" for _ in provider_ids)
    rows = txn.execute(f"SELECT provider_id FROM sms_outbound WHERE provider_id IN ({marks})", provider_ids)
    return {r[0] for r in rows.fetchall()}


def _count_states_txn(txn: Txn) -> dict[str, int]:
    rows = txn.execute("SELECT state, COUNT(*) FROM sms_outbound GROUP BY state").fetchall()
    return {r[0]: int(r[1]) for r in rows}


# -- opt-outs ------------------------------------------------------------------------------


def _opt_out_txn(txn: Txn, phone: str, keyword: str) -> bool:
    txn.execute(
        "INSERT INTO sms_opt_outs (phone, keyword, opted_out_ts) VALUES (?, ?, ?) ON CONFLICT (phone) DO NOTHING",
        (phone, keyword, now_ms()),
    )
    return txn.rowcount > 0


def _opt_in_txn(txn: Txn, phone: str) -> bool:
    txn.execute("DELETE FROM sms_opt_outs WHERE phone = ?", (phone,))
    return txn.rowcount > 0


def _is_opted_out_txn(txn: Txn, phone: str) -> bool:
    return txn.execute("SELECT 1 FROM sms_opt_outs WHERE phone = ?", (phone,)).fetchone() is not None


# -- inbound -------------------------------------------------------------------------------


def _record_inbound_txn(txn: Txn, row: InboundRow, now: int) -> bool:
    txn.execute(
        "INSERT INTO sms_inbound (message_sid, from_number, to_number, body, media_urls, received_ts)"
        " VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (message_sid) DO NOTHING",
        (row.message_sid, row.from_number, row.to_number, row.body, json.dumps(list(row.media_urls)), now),
    )
    return txn.rowcount > 0


def _pending_inbound_txn(txn: Txn, limit: int) -> list[InboundRow]:
    rows = txn.execute(
        "SELECT message_sid, from_number, to_number, body, media_urls FROM sms_inbound"
        " WHERE processed_ts IS NULL ORDER BY received_ts, message_sid LIMIT ?",
        (limit,),
    ).fetchall()
    return [InboundRow(r[0], r[1], r[2], r[3], tuple(json.loads(r[4]))) for r in rows]


def _inbound_done_txn(txn: Txn, message_sid: str, error: str | None, now: int) -> None:
    txn.execute("UPDATE sms_inbound SET processed_ts = ?, error = ? WHERE message_sid = ?",
                (now, error, message_sid))


# -- housekeeping --------------------------------------------------------------------------


def _prune_counters_txn(txn: Txn, before_day: str, now: int | None = None) -> None:
    txn.execute("DELETE FROM sms_daily_counts WHERE day < ?", (before_day,))
    txn.execute("DELETE FROM sms_throttle WHERE until_ts < ?", (now if now is not None else now_ms(),))
