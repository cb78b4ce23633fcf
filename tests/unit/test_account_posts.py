"""Accounts' posts, the pure parts and the SQL (issue 24, items 3 and 5): the times people type,
the ``posting`` options, what ``POST /accounts/{id}/posts`` accepts, a limit over more than a day,
purchase categories, and the posts' transactions on SQLite beside the merchant circle's tables
(scheduling, cancelling, claiming, and who a segment reaches). The e2e tests run the same SQL on
PostgreSQL."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterator
from typing import Any

import pytest
from synapse.module_api import errors

from bots.merchant.post_commands import named_account, rest_of
from synapse_modules._config import ModuleConfigError
from synapse_modules.accounts.post_rules import (
    INBOX_ROOM_TYPE,
    Segment,
    inbox_room_config,
    validate_at,
    validate_post,
    validate_segment,
    validate_state_filter,
)
from synapse_modules.accounts.posting_config import DEFAULT_LIMITS, KindLimit, PostingConfig
from synapse_modules.accounts.rules import add_months
from synapse_modules.accounts.store.accounts import NewAccount, insert_account_txn
from synapse_modules.accounts.store.posts import (
    Audience,
    Post,
    begin_targeting_txn,
    cancel_post_txn,
    claim_post_txn,
    count_audience_txn,
    due_posts_txn,
    finish_delivery_txn,
    get_inbox_txn,
    get_post_txn,
    insert_post_txn,
    list_posts_txn,
    mark_sent_txn,
    owned_accounts_txn,
    pending_recipients_txn,
    recipient_counts_txn,
    reschedule_txn,
    resume_interrupted_txn,
    set_inbox_txn,
    set_recipients_txn,
)
from synapse_modules.accounts.store.posts_schema import POSTS_SCHEMA
from synapse_modules.accounts.store.schema import SCHEMA as ACCOUNTS_SCHEMA
from synapse_modules.merchant_circle.quota import DAY_MS, PostRow, post_decision
from synapse_modules.merchant_circle.rules import normal_category, purchase_categories, validate_items
from synapse_modules.merchant_circle.store.follows import record_purchase_txn, unfollow_txn
from synapse_modules.merchant_circle.store.merchants import Merchant, insert_merchant_txn
from synapse_modules.merchant_circle.store.posts import quota_view_txn
from synapse_modules.merchant_circle.store.schema import create_schema_txn
from wangxin_common.when import duration_ms, format_utc, parse_instant, parse_when

NOW = 1_800_000_000_000  # 2027-01-15 08:00 UTC
H = 3_600_000


def field_error(call: Any, status: int, field: str) -> None:
    with pytest.raises(errors.SynapseError) as caught:
        call()
    assert caught.value.code == status and f"'{field}'" in caught.value.msg, caught.value.msg


# -- the times people type -----------------------------------------------------------------------

def test_instants_are_utc_unless_they_carry_an_offset() -> None:
    utc = parse_instant("2026-12-24 18:00")
    assert utc == parse_instant("2026-12-24T18:00:00Z") == parse_instant("2026-12-24 18:00 UTC")
    assert utc is not None and parse_instant("2026-12-24 18:00+08:00") == utc - 8 * H
    assert parse_instant("2026-12-24T18:00-0500") == utc + 5 * H
    for bad in ("2026-02-30 10:00", "2026-12-24 25:00", "2026-12-24", "tomorrow", "2026-12-24 18:00+15:00",
                "2026-12-24 18:00x", ""):
        assert parse_instant(bad) is None, bad
    assert format_utc(parse_instant("2026-12-24 18:00+08:00") or 0) == "2026-12-24 10:00 UTC"


def test_a_command_starts_with_when_and_the_rest_is_the_post() -> None:
    assert parse_when("in 2h Doors open", NOW) == (NOW + 2 * H, "Doors open")
    assert parse_when("in 1h30m  Two\nlines", NOW) == (NOW + 90 * 60_000, "Two\nlines")
    assert parse_when("IN 1d x", NOW) == (NOW + 24 * H, "x")
    assert parse_when("2026-12-24 18:00+08:00 Merry Christmas", NOW) == (parse_instant("2026-12-24T10:00Z"),
                                                                         "Merry Christmas")
    # Text that looks like an offset is text: the time ends at the minutes.
    assert parse_when("2026-12-24 18:00 -50% today", NOW) == (parse_instant("2026-12-24 18:00"), "-50% today")
    for bad in ("in 2 h x", "in 2hx", "in 0m x", "someday x", "2026-13-01 10:00 x"):
        assert parse_when(bad, NOW) is None, bad
    assert duration_ms("1d2h") == 26 * H and duration_ms("90min") == 90 * 60_000 and duration_ms("2x") is None


# -- options -------------------------------------------------------------------------------------

def test_posting_defaults_follow_wechats_subscription_and_service_accounts() -> None:
    config = PostingConfig.from_dict(None)
    assert config.limits == {"organisation": KindLimit(1, 1), "platform": KindLimit(4, 30)} == DEFAULT_LIMITS
    changed = PostingConfig.from_dict({"limits": {"platform": {"posts": 10, "days": 7}}, "schedule_poll_ms": 100})
    assert changed.limits["platform"].window_ms == 7 * DAY_MS and changed.limits["organisation"] == KindLimit(1, 1)
    assert changed.schedule_poll_ms == 100


@pytest.mark.parametrize(("raw", "path"), [
    ({"limits": {"merchant": {"posts": 9, "days": 1}}}, ("posting", "limits", "merchant")),
    ({"limits": {"shop": {"posts": 1, "days": 1}}}, ("posting", "limits", "shop")),
    ({"limits": {"platform": {"posts": 0, "days": 1}}}, ("posting", "limits", "platform", "posts")),
    ({"limits": {"platform": {"posts": 1}}}, ("posting", "limits", "platform", "days")),
    ({"limits": {"platform": {"posts": 1, "days": 1, "hours": 2}}}, ("posting", "limits", "platform", "hours")),
    ({"schedule_poll_ms": 10}, ("posting", "schedule_poll_ms")),
    ({"segment_max_recipients": "many"}, ("posting", "segment_max_recipients")),
    ({"whatever": 1}, ("posting", "whatever")),
])
def test_bad_posting_options_name_their_path(raw: dict[str, Any], path: tuple[str, ...]) -> None:
    with pytest.raises(ModuleConfigError) as caught:
        PostingConfig.from_dict(raw)
    assert caught.value.path == path


# -- what a post may be --------------------------------------------------------------------------

def test_a_post_is_checked_field_by_field() -> None:
    wanted = validate_post({"body": "Hi", "at": NOW + H}, "organisation", NOW, 365)
    assert wanted.body == "Hi" and wanted.at == NOW + H and wanted.segment is None
    assert validate_post({"body": "Hi"}, "organisation", NOW, 365).at is None
    assert validate_at("2027-01-15T17:00+08:00", NOW, 365) == NOW + H
    field_error(lambda: validate_post({"body": " "}, "organisation", NOW, 365), 400, "body")
    field_error(lambda: validate_post({"body": 5}, "organisation", NOW, 365), 400, "body")
    field_error(lambda: validate_post({"body": "x" * 4001}, "organisation", NOW, 365), 413, "body")
    for at in (NOW, NOW - 1, "2020-01-01 10:00", "soon", True, 1.5, {}, "9" * 100):
        field_error(lambda at=at: validate_at(at, NOW, 365), 400, "at")
    field_error(lambda: validate_at(NOW + 366 * DAY_MS, NOW, 365), 400, "at")


def test_a_segment_needs_a_criterion_and_a_platform() -> None:
    assert validate_segment({"category": " Tea "}, "platform") == Segment("tea")
    assert validate_segment({"merchant": "@shop:hs", "purchased_within_days": 30}, "platform") == \
        Segment(None, "@shop:hs", 30)
    assert validate_segment({"merchant": "tea-house"}, "platform") == Segment(None, "tea-house")
    assert validate_segment(None, "organisation") is None
    field_error(lambda: validate_segment({"category": "tea"}, "organisation"), 400, "segment")
    field_error(lambda: validate_segment({}, "platform"), 400, "segment")
    field_error(lambda: validate_segment({"category": None}, "platform"), 400, "segment")
    field_error(lambda: validate_segment([], "platform"), 400, "segment")
    field_error(lambda: validate_segment({"categroy": "tea"}, "platform"), 400, "segment.categroy")
    field_error(lambda: validate_segment({"category": ""}, "platform"), 400, "segment.category")
    field_error(lambda: validate_segment({"category": "x" * 65}, "platform"), 413, "segment.category")
    field_error(lambda: validate_segment({"merchant": "Not An Id"}, "platform"), 400, "segment.merchant")
    for days in (0, 3651, True, "7", 1.5):
        field_error(lambda days=days: validate_segment({"purchased_within_days": days}, "platform"), 400,
                    "segment.purchased_within_days")
    assert validate_state_filter("scheduled") == "scheduled" and validate_state_filter("all") is None
    field_error(lambda: validate_state_filter("pending"), 400, "state")


def test_a_platforms_room_with_one_person_is_closed_to_everyone_else() -> None:
    config = inbox_room_config("mall", "Big Mall", "mxc://hs/a", "@acct.mall:hs", "@buyer:hs")
    assert config["creation_content"]["type"] == INBOX_ROOM_TYPE and config["visibility"] == "private"
    state = {s["type"]: s["content"] for s in config["initial_state"]}
    assert state["m.room.join_rules"] == {"join_rule": "invite"}
    assert state["m.room.history_visibility"] == {"history_visibility": "shared"}
    assert state["m.room.guest_access"] == {"guest_access": "forbidden"}
    levels = config["power_level_content_override"]
    assert levels["users"] == {"@acct.mall:hs": 50} and levels["events_default"] == 50
    assert levels["users_default"] == 0 and levels["state_default"] == 100 and levels["invite"] == 100
    assert config["invite"] == ["@acct.mall:hs", "@buyer:hs"]


def test_the_limit_may_span_several_days_and_merchants_keep_their_words() -> None:
    month = 30 * DAY_MS
    rows = [PostRow(NOW - 20 * DAY_MS, True, None, None), PostRow(NOW - 2 * DAY_MS, True, None, None)]
    refused = post_decision(rows, None, None, None, NOW, 2, 0, month)
    assert refused.retry_after_ms == 10 * DAY_MS and refused.reason == "the limit of 2 posts in 30 days is reached"
    assert post_decision(rows, None, None, None, NOW, 3, 0, month).retry_after_ms is None
    assert post_decision(rows, None, None, None, NOW, 1, 0).retry_after_ms is None  # a day: both are older
    daily = post_decision([PostRow(NOW - H, True, None, None)], None, None, None, NOW, 1, 0)
    assert daily.reason == "the daily limit of 1 posts is reached"


def test_purchase_items_may_carry_a_category() -> None:
    items = [{"sku": "a", "category": " Tea "}, {"sku": "b", "category": "tea"}, {"sku": "c"}, {"category": "茶"}]
    assert validate_items(items) == items  # stored as sent
    assert purchase_categories(items) == ["tea", "茶"]
    assert normal_category("GREEN Tea") == "green tea"
    field_error(lambda: validate_items([{"category": 7}]), 400, "items[0].category")
    field_error(lambda: validate_items([{}, {"category": "  "}]), 400, "items[1].category")
    field_error(lambda: validate_items([{"category": "x" * 65}]), 413, "items[0].category")


def test_the_bot_reads_the_text_after_the_command_and_an_account_before_it() -> None:
    assert rest_of("post  Hello\nworld ") == "Hello\nworld" and rest_of("!schedule in 2h x") == "in 2h x"
    assert named_account("#city-lib Hello") == ("city-lib", "Hello")
    assert named_account("#city-lib:example.org Hello") == ("city-lib", "Hello")
    assert named_account("#1 in our hearts") == (None, "#1 in our hearts")
    assert named_account("Hello #city-lib") == (None, "Hello #city-lib")


# -- the store -----------------------------------------------------------------------------------

@pytest.fixture
def txn() -> Iterator[Any]:
    conn = sqlite3.connect(":memory:")
    cur: Any = conn.cursor()
    for create in (create_schema_txn, ACCOUNTS_SCHEMA.create_txn, POSTS_SCHEMA.create_txn, POSTS_SCHEMA.create_txn):
        create(cur)
    insert_merchant_txn(cur, Merchant("@acct.mall:hs", "Big Mall", None, "!mall"), NOW)
    insert_account_txn(cur, NewAccount("mall", "platform", "@owner:hs", "@acct.mall:hs", "Big Mall", None, None, True,
                                       NOW, add_months(NOW, 36)))
    for shop in ("@tea:hs", "@other:hs"):
        insert_merchant_txn(cur, Merchant(shop, shop, None, f"!{shop}"), NOW)
    yield cur
    conn.close()


def new_post(post_id: str, due: int, state: str = "scheduled", segment: Segment | None = None) -> Post:
    return Post(post_id, "mall", "@owner:hs", f"body of {post_id}", segment, state, due, NOW, None, None, None, None,
                0, None)


def test_scheduled_posts_are_listed_claimed_once_and_cancelled_only_while_waiting(txn: Any) -> None:
    assert insert_post_txn(txn, new_post("p2", NOW + 2 * H), 2)
    assert insert_post_txn(txn, new_post("p1", NOW + H, segment=Segment("tea")), 2)
    assert not insert_post_txn(txn, new_post("p3", NOW + 3 * H), 2)  # two wait already: nothing written
    assert get_post_txn(txn, "p3") is None
    assert [p.post_id for p in list_posts_txn(txn, "mall", "scheduled", 10)] == ["p1", "p2"]
    assert get_post_txn(txn, "p1").segment == Segment("tea")  # type: ignore[union-attr]
    assert due_posts_txn(txn, NOW + H, 10)[0].post_id == "p1" and len(due_posts_txn(txn, NOW + H, 10)) == 1
    assert claim_post_txn(txn, "p1") and not claim_post_txn(txn, "p1")
    assert cancel_post_txn(txn, "mall", "p1") == "sending"  # on its way: too late
    assert cancel_post_txn(txn, "mall", "p2") == "cancelled" and not claim_post_txn(txn, "p2")
    assert cancel_post_txn(txn, "mall", "nope") is None and cancel_post_txn(txn, "other", "p2") is None
    # Synapse stopped while p1 was being sent: it waits again, and goes out.
    assert resume_interrupted_txn(txn) == 1 and get_post_txn(txn, "p1").state == "scheduled"  # type: ignore[union-attr]
    reschedule_txn(txn, "p1", NOW + 5 * H, "waiting for the limit")
    held = get_post_txn(txn, "p1")
    assert held is not None and held.due_ts == NOW + 5 * H and held.last_error == "waiting for the limit"
    assert claim_post_txn(txn, "p1")
    mark_sent_txn(txn, "p1", "$e", "!mall", NOW + 5 * H)
    sent = get_post_txn(txn, "p1")
    assert sent is not None and (sent.state, sent.event_id, sent.attempts, sent.last_error) == ("sent", "$e", 2, None)
    assert [p.post_id for p in list_posts_txn(txn, "mall", None, 10)] == ["p1", "p2"]
    assert [a.account_id for a in owned_accounts_txn(txn, "@owner:hs")] == ["mall"]


def _buy(txn: Any, order: str, buyer: str, merchant: str, ts: int, *categories: str) -> None:
    record_purchase_txn(txn, order, buyer, merchant, [{"sku": order, "category": c} for c in categories], ts)


def test_a_segment_reaches_the_buyers_of_its_purchases_each_once(txn: Any) -> None:
    _buy(txn, "o1", "@a:hs", "@tea:hs", NOW - 2 * DAY_MS, "Tea", "cups")
    _buy(txn, "o2", "@a:hs", "@tea:hs", NOW - DAY_MS, "tea")
    _buy(txn, "o3", "@b:hs", "@tea:hs", NOW - 40 * DAY_MS, "tea")
    _buy(txn, "o4", "@c:hs", "@other:hs", NOW - DAY_MS, "tea")
    _buy(txn, "o5", "@d:hs", "@tea:hs", NOW - DAY_MS, "coffee")
    _buy(txn, "o6", "@e:hs", "@tea:hs", NOW - DAY_MS)
    replay = json.dumps(txn.execute("SELECT COUNT(*) FROM wangxin_purchase_categories").fetchone())
    record_purchase_txn(txn, "o1", "@a:hs", "@tea:hs", [{"category": "other"}], NOW)  # a replay adds nothing
    assert json.dumps(txn.execute("SELECT COUNT(*) FROM wangxin_purchase_categories").fetchone()) == replay

    def count(category: str | None = None, merchant: str | None = None, days: int | None = None) -> int:
        since = NOW - days * DAY_MS if days else None
        return count_audience_txn(txn, Audience("@acct.mall:hs", category, merchant, since))

    assert count("tea") == 3  # a, b, c; a once
    assert count("tea", "@tea:hs") == 2 and count("tea", "@tea:hs", 30) == 1 and count("tea", days=30) == 2
    assert count(merchant="@tea:hs") == 4 and count(days=30) == 4 and count("kites") == 0
    unfollow_txn(txn, "@acct.mall:hs", "@c:hs", NOW)  # unfollowed the platform: never targeted
    assert count("tea") == 2


def test_a_targeted_post_fixes_its_people_takes_a_slot_and_ends_when_all_are_served(txn: Any) -> None:
    for n, buyer in enumerate(("@a:hs", "@b:hs", "@c:hs")):
        _buy(txn, f"o{n}", buyer, "@tea:hs", NOW - DAY_MS, "tea")
    tea = Audience("@acct.mall:hs", "tea", None, None)
    month = 30 * DAY_MS
    post = new_post("pt1", NOW, "delivering", Segment("tea"))
    too_many = begin_targeting_txn(txn, post, True, tea, 2, "@acct.mall:hs", 4, month, NOW)
    assert too_many.too_many and too_many.targeted == 3 and get_post_txn(txn, "pt1") is None
    started = begin_targeting_txn(txn, post, True, tea, 10, "@acct.mall:hs", 4, month, NOW)
    assert started.targeted == 3 and not started.too_many and started.limit is None
    assert get_post_txn(txn, "pt1").state == "delivering"  # type: ignore[union-attr]
    assert quota_view_txn(txn, "@acct.mall:hs", NOW, 4, month)[0] == 1  # the targeted post took a slot
    assert pending_recipients_txn(txn, "pt1", 2) == ["@a:hs", "@b:hs"]
    set_recipients_txn(txn, "pt1", [("@a:hs", "sent", "$1", None), ("@b:hs", "skipped", None, "left")])
    assert not finish_delivery_txn(txn, "pt1", NOW)
    set_recipients_txn(txn, "pt1", [("@c:hs", "failed", None, "deactivated")])
    assert finish_delivery_txn(txn, "pt1", NOW + 1)
    done = get_post_txn(txn, "pt1")
    assert done is not None and (done.state, done.targeted, done.sent_ts) == ("sent", 3, NOW + 1)
    assert recipient_counts_txn(txn, ["pt1"]) == {"pt1": {"sent": 1, "skipped": 1, "failed": 1}}

    # A scheduled targeted post claimed by the loop, over the limit: nothing written, it waits.
    one = Audience("@acct.mall:hs", "tea", None, None)
    for n in range(3):
        assert begin_targeting_txn(txn, new_post(f"fill{n}", NOW, "delivering", Segment("tea")), True, one, 10,
                                   "@acct.mall:hs", 4, month, NOW).limit is None
    insert_post_txn(txn, new_post("late", NOW, segment=Segment("tea")), 10)
    claim_post_txn(txn, "late")
    held = begin_targeting_txn(txn, get_post_txn(txn, "late"), False, one, 10, "@acct.mall:hs", 4, month, NOW)  # type: ignore[arg-type]
    assert held.limit is not None and held.limit.retry_after_ms == month
    assert get_post_txn(txn, "late").state == "sending" and pending_recipients_txn(txn, "late", 10) == []  # type: ignore[union-attr]
    # Nobody matching: sent at once, reaching nobody, and no slot taken.
    nobody = begin_targeting_txn(txn, new_post("none", NOW, "delivering", Segment("kites")), True,
                                 Audience("@acct.mall:hs", "kites", None, None), 10, "@acct.mall:hs", 4, month, NOW)
    assert nobody.targeted == 0 and get_post_txn(txn, "none").state == "sent"  # type: ignore[union-attr]


def test_one_room_per_platform_and_person(txn: Any) -> None:
    assert get_inbox_txn(txn, "mall", "@a:hs") is None
    assert set_inbox_txn(txn, "mall", "@a:hs", "!one", NOW) == "!one"
    assert set_inbox_txn(txn, "mall", "@a:hs", "!two", NOW) == "!one"  # the first recorded stays
    assert get_inbox_txn(txn, "mall", "@a:hs") == "!one" and get_inbox_txn(txn, "mall", "@b:hs") is None
