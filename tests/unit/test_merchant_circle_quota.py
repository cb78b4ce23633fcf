"""The post quota counts posts that reached the database, and posts still on their way from
another device; an attempt refused after the quota check stops counting."""

from __future__ import annotations

from synapse_modules.merchant_circle_store import DAY_MS, IN_FLIGHT_MS, PostRow, counted_posts, post_decision

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
