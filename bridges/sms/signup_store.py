"""Every SQL statement of phone-number sign-up (``bridges/sms/identity.py``), each in a ``*_txn`` function.

Tables: ``signup_sessions`` and ``signup_code_sends`` (``bridges/database.py``, migration 5).
Times are passed in by the caller, so tests can move the clock.
"""

from __future__ import annotations

from typing import Any

import attrs

from bridges.database import Database, Txn

HOUR_MS = 3600 * 1000


@attrs.frozen
class Session:
    sid: str
    client_secret: str
    phone: str  # E.164 digits without +
    send_attempt: int
    code_salt: str
    code_hash: str
    attempts: int  # codes submitted against the current code
    sms_id: int | None  # the SMS carrying the current code, once queued
    created_ts: int
    expires_ts: int  # the current code stops working here
    validated_ts: int | None


@attrs.frozen
class NewCode:
    """A code for a session's ``send_attempt``, as written before its SMS is queued."""

    send_attempt: int
    code_salt: str
    code_hash: str
    expires_ts: int


_COLUMNS = ("sid, client_secret, phone, send_attempt, code_salt, code_hash, attempts, sms_id, created_ts,"
            " expires_ts, validated_ts")


class SignupStore:
    def __init__(self, db: Database):
        self.db = db

    async def session(self, sid: str) -> Session | None:
        return await self.db.run("signup_session", _session_txn, sid)

    async def session_for(self, client_secret: str, phone: str) -> Session | None:
        return await self.db.run("signup_session_for", _session_for_txn, client_secret, phone)

    async def create_session(self, sid: str, client_secret: str, phone: str, code: NewCode, now: int) -> Session:
        """The new session, or the one a concurrent identical request created first."""
        return await self.db.run("signup_create", _create_session_txn, sid, client_secret, phone, code, now)

    async def start_attempt(self, sid: str, code: NewCode) -> bool:
        """Move the session to a higher ``send_attempt`` with a new code; False if another request
        already moved it as far."""
        return await self.db.run("signup_start_attempt", _start_attempt_txn, sid, code)

    async def code_queued(self, sid: str, send_attempt: int, sms_id: int, phone: str, *, created: bool,
                          replacement: NewCode | None, now: int) -> None:
        """Record the SMS of ``send_attempt`` (``created``: queued by this call, not an earlier one).
        ``replacement`` is the code it carries when that differs from the stored one (a retried
        attempt whose first SMS was never queued)."""
        await self.db.run("signup_code_queued", _code_queued_txn, sid, send_attempt, sms_id, phone, created,
                          replacement, now)

    async def count_attempt(self, sid: str, max_attempts: int) -> int | None:
        """Use one try of the session's current code: the tries used so far, or None if none was left."""
        return await self.db.run("signup_count_attempt", _count_attempt_txn, sid, max_attempts)

    async def mark_validated(self, sid: str, now: int) -> int:
        """Set the validation time (kept if it was set before); returns it."""
        return await self.db.run("signup_validated", _mark_validated_txn, sid, now)

    async def codes_sent_since(self, phone: str, since: int) -> list[int]:
        """When code SMS to ``phone`` were queued since ``since``, oldest first."""
        return await self.db.run("signup_codes_sent", _codes_sent_since_txn, phone, since)

    async def prune(self, now: int, keep_unvalidated_ms: int, keep_validated_ms: int) -> int:
        return await self.db.run("signup_prune", _prune_txn, now, keep_unvalidated_ms, keep_validated_ms)


def _from_row(row: Any) -> Session:
    return Session(str(row[0]), str(row[1]), str(row[2]), int(row[3]), str(row[4]), str(row[5]), int(row[6]),
                   None if row[7] is None else int(row[7]), int(row[8]), int(row[9]),
                   None if row[10] is None else int(row[10]))


def _session_txn(txn: Txn, sid: str) -> Session | None:
    row = txn.execute(f"SELECT {_COLUMNS} FROM signup_sessions WHERE sid = ?", (sid,)).fetchone()
    return _from_row(row) if row else None


def _session_for_txn(txn: Txn, client_secret: str, phone: str) -> Session | None:
    row = txn.execute(
        f"SELECT {_COLUMNS} FROM signup_sessions WHERE client_secret = ? AND phone = ?", (client_secret, phone)
    ).fetchone()
    return _from_row(row) if row else None


def _create_session_txn(txn: Txn, sid: str, client_secret: str, phone: str, code: NewCode, now: int) -> Session:
    txn.execute(
        "INSERT INTO signup_sessions (sid, client_secret, phone, send_attempt, code_salt, code_hash, attempts,"
        " sms_id, created_ts, expires_ts, validated_ts) VALUES (?, ?, ?, ?, ?, ?, 0, NULL, ?, ?, NULL)"
        " ON CONFLICT (client_secret, phone) DO NOTHING",
        (sid, client_secret, phone, code.send_attempt, code.code_salt, code.code_hash, now, code.expires_ts),
    )
    session = _session_for_txn(txn, client_secret, phone)
    assert session is not None
    return session


def _start_attempt_txn(txn: Txn, sid: str, code: NewCode) -> bool:
    txn.execute(
        "UPDATE signup_sessions SET send_attempt = ?, code_salt = ?, code_hash = ?, attempts = 0, sms_id = NULL,"
        " expires_ts = ? WHERE sid = ? AND send_attempt < ? AND validated_ts IS NULL",
        (code.send_attempt, code.code_salt, code.code_hash, code.expires_ts, sid, code.send_attempt),
    )
    return txn.rowcount == 1


def _code_queued_txn(txn: Txn, sid: str, send_attempt: int, sms_id: int, phone: str, created: bool,
                     replacement: NewCode | None, now: int) -> None:
    if replacement is None:
        txn.execute("UPDATE signup_sessions SET sms_id = ? WHERE sid = ? AND send_attempt = ?",
                    (sms_id, sid, send_attempt))
    else:
        txn.execute(
            "UPDATE signup_sessions SET sms_id = ?, code_salt = ?, code_hash = ?, attempts = 0, expires_ts = ?"
            " WHERE sid = ? AND send_attempt = ?",
            (sms_id, replacement.code_salt, replacement.code_hash, replacement.expires_ts, sid, send_attempt),
        )
    if created:
        txn.execute("INSERT INTO signup_code_sends (phone, sent_ts) VALUES (?, ?)", (phone, now))


def _count_attempt_txn(txn: Txn, sid: str, max_attempts: int) -> int | None:
    txn.execute("UPDATE signup_sessions SET attempts = attempts + 1 WHERE sid = ? AND attempts < ?",
                (sid, max_attempts))
    if txn.rowcount != 1:
        return None
    row = txn.execute("SELECT attempts FROM signup_sessions WHERE sid = ?", (sid,)).fetchone()
    return int(row[0])


def _mark_validated_txn(txn: Txn, sid: str, now: int) -> int:
    txn.execute("UPDATE signup_sessions SET validated_ts = ? WHERE sid = ? AND validated_ts IS NULL", (now, sid))
    row = txn.execute("SELECT validated_ts FROM signup_sessions WHERE sid = ?", (sid,)).fetchone()
    return int(row[0])


def _codes_sent_since_txn(txn: Txn, phone: str, since: int) -> list[int]:
    rows = txn.execute(
        "SELECT sent_ts FROM signup_code_sends WHERE phone = ? AND sent_ts > ? ORDER BY sent_ts", (phone, since)
    ).fetchall()
    return [int(r[0]) for r in rows]


def _prune_txn(txn: Txn, now: int, keep_unvalidated_ms: int, keep_validated_ms: int) -> int:
    txn.execute(
        "DELETE FROM signup_sessions WHERE (validated_ts IS NULL AND expires_ts < ?)"
        " OR (validated_ts IS NOT NULL AND validated_ts < ?)",
        (now - keep_unvalidated_ms, now - keep_validated_ms),
    )
    deleted = txn.rowcount
    txn.execute("DELETE FROM signup_code_sends WHERE sent_ts <= ?", (now - HOUR_MS,))
    return deleted
