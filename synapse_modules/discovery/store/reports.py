"""SQL of reports and their review (``wangxin_discovery_reports``, ``wangxin_discovery_standing``).

A report blocks the reported person for the reporter and holds them out of every pool until a
server admin resolves it: ``restore`` (back in, unless another report is still open) or ``ban``
(every open report about them is resolved with it; they leave discovery for good).
"""

from __future__ import annotations

from typing import Any

import attrs

from synapse_modules.discovery.config import RateLimit
from synapse_modules.discovery.store.limits import Limited, take_rate_txn
from synapse_modules.discovery.store.people import add_block_txn, forget_person_txn


@attrs.frozen
class Report:
    report_id: str
    reporter: str
    reported: str
    reason: str
    created_ts: int
    state: str
    resolved_by: str | None
    resolved_ts: int | None


_COLUMNS = "report_id, reporter, reported, reason, created_ts, state, resolved_by, resolved_ts"


def _report(row: Any) -> Report:
    return Report(row[0], row[1], row[2], row[3], int(row[4]), row[5], row[6],
                  int(row[7]) if row[7] is not None else None)


def report_txn(txn: Any, reporter: str, reported: str, reason: str, report_id: str, now: int,
               rate: RateLimit) -> Limited | None:
    """The same writes whoever ``reported`` is (opted in or not, existing or not): the answer
    must not tell the reporter anything about them."""
    limited = take_rate_txn(txn, reporter, "report", now, rate)
    if limited:
        return limited
    txn.execute(
        f"INSERT INTO wangxin_discovery_reports ({_COLUMNS}) VALUES (?, ?, ?, ?, ?, 'open', NULL, NULL)",
        (report_id, reporter, reported, reason, now),
    )
    add_block_txn(txn, reporter, reported, now)
    txn.execute(
        "INSERT INTO wangxin_discovery_standing (user_id, state, since_ts) VALUES (?, 'held', ?)"
        " ON CONFLICT (user_id) DO NOTHING",
        (reported, now),
    )
    return None


def reports_txn(txn: Any, state: str | None, limit: int) -> list[Report]:
    """Reports, oldest open first (the review queue), or of one ``state``, newest first."""
    if state == "open":
        txn.execute(f"SELECT {_COLUMNS} FROM wangxin_discovery_reports WHERE state = 'open'"
                    " ORDER BY created_ts LIMIT ?", (limit,))
    elif state is not None:
        txn.execute(f"SELECT {_COLUMNS} FROM wangxin_discovery_reports WHERE state = ?"
                    " ORDER BY created_ts DESC LIMIT ?", (state, limit))
    else:
        txn.execute(f"SELECT {_COLUMNS} FROM wangxin_discovery_reports ORDER BY created_ts DESC LIMIT ?", (limit,))
    return [_report(r) for r in txn.fetchall()]


@attrs.frozen
class Resolution:
    """``not_found``, ``resolved`` (already: ``report``), or done (``report`` as it is now)."""

    outcome: str
    report: Report | None = None


def resolve_txn(txn: Any, report_id: str, admin: str, action: str, now: int) -> Resolution:
    txn.execute(f"SELECT {_COLUMNS} FROM wangxin_discovery_reports WHERE report_id = ?", (report_id,))
    row = txn.fetchone()
    if row is None:
        return Resolution("not_found")
    report = _report(row)
    if report.state != "open":
        return Resolution("resolved", report)
    state = "restored" if action == "restore" else "banned"
    if action == "restore":
        txn.execute("UPDATE wangxin_discovery_reports SET state = ?, resolved_by = ?, resolved_ts = ?"
                    " WHERE report_id = ?", (state, admin, now, report_id))
        txn.execute("SELECT 1 FROM wangxin_discovery_reports WHERE reported = ? AND state = 'open'",
                    (report.reported,))
        if txn.fetchone() is None:
            txn.execute("DELETE FROM wangxin_discovery_standing WHERE user_id = ? AND state = 'held'",
                        (report.reported,))
    else:
        txn.execute("UPDATE wangxin_discovery_reports SET state = ?, resolved_by = ?, resolved_ts = ?"
                    " WHERE reported = ? AND state = 'open'", (state, admin, now, report.reported))
        txn.execute(
            "INSERT INTO wangxin_discovery_standing (user_id, state, since_ts) VALUES (?, 'banned', ?)"
            " ON CONFLICT (user_id) DO UPDATE SET state = 'banned', since_ts = excluded.since_ts",
            (report.reported, now),
        )
        forget_person_txn(txn, report.reported)
    return Resolution("done", attrs.evolve(report, state=state, resolved_by=admin, resolved_ts=now))
