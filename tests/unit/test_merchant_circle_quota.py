"""The post quota counts posts that reached the database, and posts still on their way from
another device; an attempt refused after the quota check stops counting."""

from __future__ import annotations

from synapse_modules.merchant_circle.quota import DAY_MS, IN_FLIGHT_MS, PostRow, counted_posts, post_decision

NOW = 10 * DAY_MS
WEEK = 7 * DAY_MS


def row(age_ms: int, persisted: bool = True, device: str | None = "PHONE", product: str | None = None) -> PostRow:
    return PostRow(NOW - age_ms, persisted, device, product)


def test_persisted_posts_count_for_a_day() -> None:
    rows = [row(1000), row(DAY_MS - 1), row(DAY_MS + 1)]
    assert [until for until, _ in counted_posts(rows, NOW, "PHONE")] == [NOW + 1, NOW + DAY_MS - 1000]


def test_an_unpersisted_attempt_from_the_sending_device_is_over_and_does_not_count() -> None:
    refused = [row(500, persisted=False), row(200, persisted=False)]
    assert counted_posts(refused, NOW, "PHONE") == []
    assert post_decision(refused + [row(1000)], None, None, "PHONE", NOW, 2, WEEK).retry_after_ms is None


def test_a_post_in_flight_from_another_device_holds_its_slot_briefly() -> None:
    in_flight = row(1000, persisted=False, device="BOT")
    decision = post_decision([row(5000), in_flight], None, None, "PHONE", NOW, 2, WEEK)
    assert decision.retry_after_ms == IN_FLIGHT_MS - 1000
    # Later it either reached the database (and counts for a day) or it never will.
    assert counted_posts([row(IN_FLIGHT_MS + 1, persisted=False, device="BOT")], NOW, "PHONE") == []


def test_the_quota_frees_when_the_oldest_counted_post_expires() -> None:
    rows = [row(DAY_MS - 60_000), row(3600_000), row(60_000)]
    decision = post_decision(rows, None, None, "PHONE", NOW, 3, WEEK)
    assert decision.retry_after_ms == 60_000 and "daily limit" in (decision.reason or "")
    assert post_decision(rows, None, None, "PHONE", NOW, 4, WEEK).retry_after_ms is None


def test_the_repost_cooldown_uses_the_last_persisted_post_of_the_product() -> None:
    decision = post_decision([], NOW - DAY_MS, "tea", "PHONE", NOW, 3, WEEK)
    assert decision.retry_after_ms == WEEK - DAY_MS and "tea" in (decision.reason or "")
    assert post_decision([], NOW - WEEK, "tea", "PHONE", NOW, 3, WEEK).retry_after_ms is None
    assert post_decision([], None, "tea", "PHONE", NOW, 3, WEEK).retry_after_ms is None
    # The same product on its way from another device.
    decision = post_decision([row(100, persisted=False, device="BOT", product="tea")], None, "tea", "PHONE", NOW,
                             3, WEEK)
    assert decision.retry_after_ms == IN_FLIGHT_MS - 100


# -- the same rules through the store's SQL, on a real SQLite database -------------------------

def _store_db():  # type: ignore[no-untyped-def]
    import sqlite3

    from synapse_modules.merchant_circle.store.schema import create_schema_txn

    db = sqlite3.connect(":memory:")
    txn = db.cursor()
    create_schema_txn(txn)
    txn.execute("CREATE TABLE events (event_id TEXT PRIMARY KEY)")  # Synapse's, as far as it is read
    txn.execute("INSERT INTO wangxin_merchants (user_id, name, circle_room_id, created_ts)"
                " VALUES ('@shop:hs', 'Shop', '!circle', 0)")
    return txn


def _post(txn, event_id: str, at: int, per_day: int = 1):  # type: ignore[no-untyped-def]
    from synapse_modules.merchant_circle.store.posts import record_post_txn

    return record_post_txn(txn, "@shop:hs", event_id, "@shop:hs", "PHONE", None, None, at, per_day, 0)


def test_a_persisted_post_still_counts_when_the_next_comes_hours_later() -> None:
    txn = _store_db()
    assert _post(txn, "$first", NOW).retry_after_ms is None
    txn.execute("INSERT INTO events (event_id) VALUES ('$first')")
    two_hours = 2 * 3600 * 1000
    assert _post(txn, "$second", NOW + two_hours).retry_after_ms == DAY_MS - two_hours


def test_a_post_that_never_reached_the_database_is_forgotten_after_the_recheck_time() -> None:
    from synapse_modules.merchant_circle.quota import RECHECK_MS

    txn = _store_db()
    assert _post(txn, "$refused", NOW).retry_after_ms is None  # admitted, then refused by auth
    assert _post(txn, "$next", NOW + RECHECK_MS + 1).retry_after_ms is None
    txn.execute("SELECT event_id FROM wangxin_circle_posts ORDER BY ts")
    assert [r[0] for r in txn.fetchall()] == ["$next"]


def test_the_quota_reads_a_bounded_number_of_posts_however_many_the_merchant_made() -> None:
    from synapse_modules.merchant_circle.store.posts import recent_posts_txn

    txn = _store_db()
    # 50 posts spread over the last day, all persisted; plus a week of older history.
    for i in range(200):
        at = NOW - 7 * DAY_MS + i * 60_000 if i < 150 else NOW - DAY_MS + (i - 149) * 60_000
        assert _post(txn, f"$p{i}", at, per_day=1000).retry_after_ms is None
        txn.execute("INSERT INTO events (event_id) VALUES (?)", (f"$p{i}",))
    assert _post(txn, "$in-flight", NOW, per_day=1000).retry_after_ms is None  # not persisted yet

    count, rows = recent_posts_txn(txn, "@shop:hs", NOW + 1, 100)
    assert count == 50 and [r.persisted for r in rows] == [False]  # under the quota: pending only
    count, rows = recent_posts_txn(txn, "@shop:hs", NOW + 1, 3)
    assert count == 50 and len(rows) == 1 + 3
    # At the quota the decision still frees when the third-latest persisted post expires (the
    # unpersisted attempt came from the device sending now, so it is over and does not count).
    decision = _post(txn, "$over", NOW + 1, per_day=3)
    assert decision.retry_after_ms == (NOW - DAY_MS + 48 * 60_000) + DAY_MS - (NOW + 1)


def test_the_quota_queries_use_indexes() -> None:
    txn = _store_db()
    plans = {}
    for name, sql in {
        "pending": "SELECT event_id FROM wangxin_circle_posts WHERE merchant_id = ? AND persisted = 0",
        "count": "SELECT COUNT(*) FROM wangxin_circle_posts WHERE merchant_id = ? AND persisted = 1 AND ts > ?",
        "product": "SELECT MAX(ts) FROM wangxin_circle_posts WHERE merchant_id = ? AND product_id = ?"
                   " AND persisted = 1",
    }.items():
        txn.execute("EXPLAIN QUERY PLAN " + sql, ("@shop:hs",) + (("x",) if "?" in sql.split("?", 1)[1] else ()))
        plans[name] = " ".join(str(r[-1]) for r in txn.fetchall())
    assert "wangxin_circle_posts_state" in plans["pending"] and "wangxin_circle_posts_state" in plans["count"]
    assert "wangxin_circle_posts_product" in plans["product"]


# -- edits: no quota slot, but a bounded number per post and day -----------------------------------

def _edit(txn, event_id: str, post: str, at: int, sender: str = "@shop:hs", device: str = "PHONE"):  # type: ignore[no-untyped-def]
    from synapse_modules.merchant_circle.store.posts import record_edit_txn

    return record_edit_txn(txn, "@shop:hs", event_id, sender, device, post, at, 2)


def test_an_edit_of_a_persisted_post_takes_no_slot_and_edits_are_bounded_per_post() -> None:
    txn = _store_db()
    assert _post(txn, "$post", NOW).retry_after_ms is None
    txn.execute("INSERT INTO events (event_id) VALUES ('$post')")
    assert _post(txn, "$next", NOW + 1).retry_after_ms is not None  # the day's one post is used
    for n in range(2):
        decision = _edit(txn, f"$e{n}", "$post", NOW + 10 + n)
        assert not decision.not_a_post and decision.retry_after_ms is None
        txn.execute("INSERT INTO events (event_id) VALUES (?)", (f"$e{n}",))
    third = _edit(txn, "$e2", "$post", NOW + 20)
    assert third.retry_after_ms == DAY_MS - 10  # when the first edit stops counting
    assert _edit(txn, "$e3", "$post", NOW + DAY_MS + 11).retry_after_ms is None


def test_an_edit_refused_after_the_check_does_not_use_up_the_posts_edits() -> None:
    txn = _store_db()
    assert _post(txn, "$post", NOW).retry_after_ms is None
    txn.execute("INSERT INTO events (event_id) VALUES ('$post')")
    for n in range(3):  # never persisted, each retried from the same device
        assert _edit(txn, f"$refused{n}", "$post", NOW + n).retry_after_ms is None


def test_only_an_edit_of_the_senders_own_persisted_post_is_an_edit() -> None:
    txn = _store_db()
    assert _post(txn, "$pending", NOW).retry_after_ms is None  # admitted, not (yet) persisted
    assert _edit(txn, "$e", "$pending", NOW + 1).not_a_post
    assert _edit(txn, "$e", "$unknown", NOW + 1).not_a_post
    txn.execute("INSERT INTO events (event_id) VALUES ('$pending')")
    assert _edit(txn, "$e", "$pending", NOW + 1, sender="@bot:hs").not_a_post
    decision = _edit(txn, "$e", "$pending", NOW + 1)
    assert not decision.not_a_post and decision.post_product_id is None
