"""The SMS service's SQL, run against SQLite directly (the e2e tests run it on PostgreSQL too)."""

from __future__ import annotations

import sqlite3

import pytest

from bridges.database import Txn, _migrate_txn
from bridges.sms import store as s
from bridges.sms.store import DailyCaps, InboundRow, NewSms, Outcome, Refusal

CAPS = DailyCaps("2026-03-01", per_user=2, per_destination=3)
TO = "+8613800138000"


@pytest.fixture
def conn() -> sqlite3.Connection:
    c = sqlite3.connect(":memory:")
    with c:
        _migrate_txn(Txn(c.cursor(), "sqlite"))
    return c


def run(conn: sqlite3.Connection, func, *args):  # type: ignore[no-untyped-def]
    """One transaction, rolled back when ``func`` raises, as Database.run does."""
    with conn:
        return func(Txn(conn.cursor(), "sqlite"), *args)


def sms(**overrides: object) -> NewSms:
    values: dict = {"kind": "chat", "to": TO, "body": "hi", "segments": 1, "sender": "@a:x"}
    values.update(overrides)
    return NewSms(**values)


def refused(conn: sqlite3.Connection, new: NewSms, caps: DailyCaps = CAPS) -> str:
    with pytest.raises(Refusal) as e:
        run(conn, s._enqueue_txn, new, caps)
    return e.value.reason


def test_caps_count_per_user_and_destination_and_a_refusal_counts_nothing(conn: sqlite3.Connection) -> None:
    assert run(conn, s._enqueue_txn, sms(), CAPS)[2] is True
    assert run(conn, s._enqueue_txn, sms(to="+8613800138001"), CAPS)[2] is True
    # The user's third SMS of the day is refused, and the refused attempt used nothing up.
    assert refused(conn, sms(to="+8613800138002")) == "user_daily_cap"
    assert run(conn, s._enqueue_txn, sms(sender="@b:x"), CAPS)[2] is True
    assert run(conn, s._enqueue_txn, sms(sender="@c:x"), CAPS)[2] is True
    assert refused(conn, sms(sender="@d:x")) == "destination_daily_cap"
    counts = dict(((r[0], r[1]), r[3]) for r in conn.execute("SELECT * FROM sms_daily_counts"))
    assert counts[("to", TO)] == 3 and counts[("user", "@a:x")] == 2
    assert ("user", "@d:x") not in counts  # the whole transaction was rolled back
    # Codes count per destination only; system answers are never capped; a new day starts afresh.
    assert refused(conn, sms(kind="code", sender=None)) == "destination_daily_cap"
    assert run(conn, s._enqueue_txn, sms(kind="system", sender=None), CAPS)[2] is True
    assert run(conn, s._enqueue_txn, sms(sender="@d:x"), DailyCaps("2026-03-02", 2, 3))[2] is True
    run(conn, s._prune_counters_txn, "2026-03-02")
    assert {r[2] for r in conn.execute("SELECT * FROM sms_daily_counts")} == {"2026-03-02"}


def test_opted_out_numbers_get_system_answers_only(conn: sqlite3.Connection) -> None:
    assert run(conn, s._opt_out_txn, TO, "STOP") is True
    assert run(conn, s._opt_out_txn, TO, "STOP") is False  # already opted out
    assert refused(conn, sms()) == "opted_out"
    assert refused(conn, sms(kind="code")) == "opted_out"
    assert run(conn, s._enqueue_txn, sms(kind="system"), CAPS)[2] is True
    assert run(conn, s._opt_in_txn, TO) is True
    assert run(conn, s._opt_in_txn, TO) is False
    assert run(conn, s._enqueue_txn, sms(), CAPS)[2] is True


def test_a_dedup_key_returns_the_first_sms(conn: sqlite3.Connection) -> None:
    first = run(conn, s._enqueue_txn, sms(dedup_key="k", segments=2), CAPS)
    again = run(conn, s._enqueue_txn, sms(dedup_key="k", body="other"), CAPS)
    assert again == (first[0], 2, False)
    assert conn.execute("SELECT COUNT(*) FROM sms_outbound").fetchone()[0] == 1
    with pytest.raises(sqlite3.IntegrityError):  # what a concurrent insert with the same key meets
        conn.execute("INSERT INTO sms_outbound (kind, to_number, body, segments, state, dedup_key, attempts,"
                     " uncertain, next_attempt_ts, created_ts, updated_ts) VALUES ('chat', ?, 'x', 1, 'queued', 'k',"
                     " 0, 0, 0, 0, 0)", (TO,))


def test_claim_marks_sending_and_outcomes_move_forward_only(conn: sqlite3.Connection) -> None:
    ids = [run(conn, s._enqueue_txn, sms(sender=None, to=f"+861380013800{i}"), DailyCaps("d", 9, 9))[0]
           for i in range(3)]
    claimed = run(conn, s._claim_due_txn, 2, 10**15)
    assert [r.sms.sms_id for r in claimed] == ids[:2]
    assert all(r.sms.state == "sending" and r.sms.attempts == 1 and r.first_attempt_ts for r in claimed)
    assert [r.sms.sms_id for r in run(conn, s._claim_due_txn, 5, 10**15)] == ids[2:]
    assert run(conn, s._claim_due_txn, 5, 10**15) == []

    changed = run(conn, s._finish_txn, [
        Outcome(ids[0], "sent", provider_id="SM0"),
        Outcome(ids[1], "queued", error="Twilio error 20500", next_attempt_ts=5000, uncertain=True),
        Outcome(ids[2], "failed", error="Twilio error 21211"),
    ], 1)
    assert [(c.sms_id, c.state) for c in changed] == [(ids[0], "sent"), (ids[1], "queued"), (ids[2], "failed")]
    assert run(conn, s._next_due_txn) == 5000
    assert run(conn, s._claim_due_txn, 5, 4999) == []
    (retry,) = run(conn, s._claim_due_txn, 5, 5000)
    assert retry.uncertain and retry.sms.attempts == 2 and retry.sms.error == "Twilio error 20500"

    # Status reports: forward only, final states stay, unknown ids are ignored.
    assert run(conn, s._apply_status_txn, "SM0", None, "sent", None, 2) is None
    assert run(conn, s._apply_status_txn, "SM0", None, "delivered", None, 2).state == "delivered"
    assert run(conn, s._apply_status_txn, "SM0", None, "undelivered", "x", 3) is None
    assert run(conn, s._apply_status_txn, "SMx", None, "delivered", None, 3) is None
    assert run(conn, s._apply_status_txn, "SMf", ids[2], "delivered", None, 3) is None  # failed is final
    # A report for an SMS whose request is still out (found by the id in the callback URL)...
    early = run(conn, s._apply_status_txn, "SM1", ids[1], "sent", None, 4)
    assert early.state == "sent" and early.provider_id == "SM1"
    # ... and the request's own answer afterwards keeps the reported state.
    assert run(conn, s._finish_txn, [Outcome(ids[1], "sent", provider_id="SM1")], 5) == []
    assert run(conn, s._get_txn, ids[1]).sms.state == "sent"
    assert run(conn, s._owned_provider_ids_txn, ["SM0", "SM9"]) == {"SM0"}


def test_sms_left_sending_by_a_crash_come_back_uncertain(conn: sqlite3.Connection) -> None:
    sms_id = run(conn, s._enqueue_txn, sms(), CAPS)[0]
    run(conn, s._claim_due_txn, 1, 10**15)
    assert run(conn, s._resume_txn, 7) == 1
    row = run(conn, s._get_txn, sms_id)
    assert row.sms.state == "queued" and row.uncertain
    assert run(conn, s._next_due_txn) == 7


def test_inbound_texts_are_stored_once_and_handled_in_order(conn: sqlite3.Connection) -> None:
    a = InboundRow("SMa", TO, "+15005550006", "hello", ("https://media/1",))
    assert run(conn, s._record_inbound_txn, a, 1) is True
    assert run(conn, s._record_inbound_txn, a, 2) is False
    assert run(conn, s._record_inbound_txn, InboundRow("SMb", TO, "+15005550006", "STOP", ()), 3) is True
    assert [r.message_sid for r in run(conn, s._pending_inbound_txn, 10)] == ["SMa", "SMb"]
    assert run(conn, s._pending_inbound_txn, 10)[0].media_urls == ("https://media/1",)
    run(conn, s._inbound_done_txn, "SMa", None, 4)
    assert [r.message_sid for r in run(conn, s._pending_inbound_txn, 10)] == ["SMb"]
    assert run(conn, s._record_inbound_txn, a, 5) is False  # a replay after handling: still once
