"""Account stats, pure and in the store: days in the stats time zone, followers per day from the
daily counts and the follow records, reads of each post from read receipts (the latest public
receipt at the post or after it), and a CSV that parses and cannot start a formula."""

from __future__ import annotations

import csv
import io
import sqlite3
from collections.abc import Iterator
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from synapse.api.errors import SynapseError

from synapse_modules._config import ModuleConfigError
from synapse_modules.accounts.config import AccountsConfig
from synapse_modules.accounts.stats import (
    FOLLOWER_COLUMNS,
    POST_COLUMNS,
    csv_cell,
    day_start_ms,
    follower_days,
    local_day,
    read_rate,
    to_csv,
    unfollows_by_day,
    validate_days,
    validate_format,
    validate_table,
    window,
)
from synapse_modules.accounts.store.schema import SCHEMA
from synapse_modules.accounts.store.stats import (
    channel_posts_txn,
    channels_after_txn,
    follower_days_txn,
    post_reads_txn,
    record_post_audience_txn,
    set_follower_days_txn,
    unfollows_txn,
)
from synapse_modules.accounts.store.support import (
    autoreply_if_changed_txn,
    claim_menu_txn,
    get_autoreply_txn,
    get_support_room_txn,
    insert_support_room_txn,
    set_autoreply_txn,
    set_person_wrote_txn,
    support_room_count_txn,
    support_room_of_txn,
)
from synapse_modules.merchant_circle.store.follows import set_follow_state_txn
from synapse_modules.merchant_circle.store.merchants import Merchant, insert_merchant_txn
from synapse_modules.merchant_circle.store.schema import create_schema_txn

SHANGHAI = ZoneInfo("Asia/Shanghai")
DAY = 86_400_000
# 2023-11-15 06:13:20 in Shanghai (22:13:20 UTC the day before)
NOW = 1_700_000_000_000


# -- pure ---------------------------------------------------------------------------------------

def test_query_parameters_name_themselves() -> None:
    assert validate_format(None) == "json" and validate_format("csv") == "csv"
    assert validate_days(None) == 30 and validate_days("366") == 366
    assert validate_table(None) == "all" and validate_table("posts") == "posts"
    for check, value, name in ((validate_format, "xlsx", "format"), (validate_days, "0", "days"),
                               (validate_days, "367", "days"), (validate_days, "٣", "days"),
                               (validate_table, "x", "table")):
        with pytest.raises(SynapseError) as e:
            check(value)  # type: ignore[operator]
        assert e.value.code == 400 and f"'{name}'" in e.value.msg


def test_days_are_days_of_the_stats_time_zone() -> None:
    assert local_day(NOW, SHANGHAI) == "2023-11-15"
    assert local_day(NOW, ZoneInfo("UTC")) == "2023-11-14"
    assert window(NOW, 3, SHANGHAI) == ["2023-11-12", "2023-11-13", "2023-11-14", "2023-11-15"]
    start = day_start_ms("2023-11-15", SHANGHAI)
    assert local_day(start, SHANGHAI) == "2023-11-15" and local_day(start - 1, SHANGHAI) == "2023-11-14"
    quarter = 15 * 60 * 1000
    assert unfollows_by_day([(start, 2), (start - quarter, 1), (start + quarter, 3)], SHANGHAI) == \
        {"2023-11-15": 5, "2023-11-14": 1}


def test_followers_per_day_count_new_unfollowed_and_net() -> None:
    days = ["d0", "d1", "d2", "d3", "d4"]
    ends = {"d0": 10, "d1": 12, "d3": 9}  # no count of d2 (the server did not run); d4 is today
    rows = follower_days(days, ends, 11, {"d1": 1, "d3": 4})
    assert [(r.date, r.followers, r.new, r.unfollowed, r.net) for r in rows] == [
        ("d1", 12, 3, 1, 2),
        ("d2", None, None, 0, None),
        ("d3", 9, None, 4, None),
        ("d4", 11, 2, 0, 2),
    ]
    # Someone kicked out (no unfollow record) makes the net lower than the unfollows: never negative new.
    assert follower_days(["a", "b"], {"a": 5}, 3, {})[0].new == 0
    assert read_rate(3, 4) == 0.75 and read_rate(None, 4) is None and read_rate(0, 0) is None


@pytest.mark.parametrize("text", ["=1+2", "+1", "-1", "@SUM(A1)", "\tx", "\rx", "=HYPERLINK(\"http://x\")"])
def test_cells_that_would_start_a_formula_are_quoted(text: str) -> None:
    assert csv_cell(text) == "'" + text
    assert csv_cell(-3) == -3  # our own numbers stay numbers
    assert csv_cell("Green tea") == "Green tea" and csv_cell(None) == ""


def _report() -> dict[str, Any]:
    return {
        "account_id": "tea", "name": "=Tea, \"House\"",
        "followers_per_day": [{"date": "2023-11-14", "followers": 2, "new": 2, "unfollowed": 0, "net": 2},
                              {"date": "2023-11-15", "followers": 1, "new": 0, "unfollowed": 1, "net": -1}],
        "posts": [{"posted_at": NOW, "event_id": "$p1", "title": "-cmd|' /C calc'!A0, \"quoted\"\nline",
                   "followers_at_post": 2, "reads": 1, "read_rate": 0.5}],
    }


def test_the_csv_parses_and_is_safe_to_open() -> None:
    text = to_csv(_report(), "all", SHANGHAI)
    assert text.startswith("\ufeff")
    rows = list(csv.reader(io.StringIO(text.removeprefix("\ufeff"))))
    assert rows[0] == ["'=Tea, \"House\" (tea): followers per day (Asia/Shanghai)"]
    assert rows[1] == list(FOLLOWER_COLUMNS)
    assert rows[2] == ["2023-11-14", "2", "2", "0", "2"] and rows[3] == ["2023-11-15", "1", "0", "1", "-1"]
    assert rows[4] == []
    assert rows[5] == ["'=Tea, \"House\" (tea): posts"] and rows[6] == list(POST_COLUMNS)
    assert rows[7] == ["2023-11-15 06:13", "$p1", "'-cmd|' /C calc'!A0, \"quoted\"\nline", "2", "1", "0.5"]
    posts_only = list(csv.reader(io.StringIO(to_csv(_report(), "posts", SHANGHAI).removeprefix("\ufeff"))))
    assert posts_only[0] == list(POST_COLUMNS) and len(posts_only) == 2
    followers_only = list(csv.reader(io.StringIO(to_csv(_report(), "followers", SHANGHAI).removeprefix("\ufeff"))))
    assert followers_only[0] == list(FOLLOWER_COLUMNS) and len(followers_only) == 3


# -- the store, on SQLite beside the merchant circle's tables and Synapse's own two ---------------

@pytest.fixture
def txn() -> Iterator[Any]:
    conn = sqlite3.connect(":memory:")
    cur: Any = conn.cursor()
    create_schema_txn(cur)
    SCHEMA.create_txn(cur)
    SCHEMA.create_txn(cur)  # idempotent: every process runs it
    # The two Synapse tables the adapter reads here, with the columns it names.
    cur.execute("CREATE TABLE events (event_id TEXT PRIMARY KEY, stream_ordering BIGINT)")
    cur.execute("CREATE TABLE receipts_linearized (room_id TEXT, receipt_type TEXT, user_id TEXT, thread_id TEXT,"
                " event_stream_ordering BIGINT)")
    yield cur
    conn.close()


def test_reads_count_each_reader_once_at_their_latest_public_receipt(txn: Any) -> None:
    for event_id, position in (("$p1", 10), ("$x", 15), ("$p2", 20)):
        txn.execute("INSERT INTO events VALUES (?, ?)", (event_id, position))
    receipts = [
        ("@a:hs", "m.read", None, 20),  # read both posts
        ("@a:hs", "m.read", "main", 10),  # an older receipt of the main thread: the latest counts
        ("@b:hs", "m.read", "main", 15),  # read p1 only
        ("@c:hs", "m.read.private", None, 20),  # private: not counted
        ("@d:hs", "m.read", "$thread", 20),  # in a thread: not the channel's timeline
        ("@merchant:hs", "m.read", None, 20),  # the account's own user is no reader
        ("@e:hs", "m.read", None, 5),  # read only what came before
    ]
    for user_id, kind, thread, position in receipts:
        txn.execute("INSERT INTO receipts_linearized VALUES ('!c', ?, ?, ?, ?)", (kind, user_id, thread, position))
    txn.execute("INSERT INTO receipts_linearized VALUES ('!other', 'm.read', '@f:hs', NULL, 20)")
    reads = post_reads_txn(txn, "!c", ["$p1", "$p2", "$unknown"], ["@merchant:hs", "@circles:hs"])
    assert reads == {"$p1": 2, "$p2": 1}
    assert post_reads_txn(txn, "!c", ["$p1"], []) == {"$p1": 3}


def test_channel_posts_come_with_their_audience_newest_first(txn: Any) -> None:
    insert_merchant_txn(txn, Merchant("@m:hs", "Tea", None, "!c"), NOW)
    for event_id, ts, product in (("$old", NOW - 40 * DAY, None), ("$a", NOW - 2 * DAY, '{"title": "Green tea"}'),
                                  ("$b", NOW - DAY, None), ("segment:p1", NOW - DAY, None)):
        txn.execute("INSERT INTO wangxin_circle_posts (event_id, merchant_id, sender, product, ts, persisted)"
                    " VALUES (?, '@m:hs', '@m:hs', ?, ?, 1)", (event_id, product, ts))
    record_post_audience_txn(txn, "$a", "!c", 7, NOW - 2 * DAY)
    record_post_audience_txn(txn, "$a", "!c", 99, NOW)  # recorded once
    posts = channel_posts_txn(txn, "@m:hs", NOW - 30 * DAY, 10, NOW)
    assert [(p.event_id, p.title, p.followers) for p in posts] == [("$b", None, None), ("$a", "Green tea", 7)]
    assert [p.event_id for p in channel_posts_txn(txn, "@m:hs", NOW - 30 * DAY, 1, NOW)] == ["$b"]


def test_unfollows_and_daily_counts(txn: Any) -> None:
    set_follow_state_txn(txn, "@m:hs", "@a:hs", "unfollowed", NOW - 1000)
    set_follow_state_txn(txn, "@m:hs", "@b:hs", "unfollowed", NOW - 2 * DAY)
    set_follow_state_txn(txn, "@m:hs", "@c:hs", "following", NOW - 1000)
    set_follow_state_txn(txn, "@other:hs", "@a:hs", "unfollowed", NOW - 1000)
    buckets = unfollows_txn(txn, "@m:hs", NOW - DAY, 900_000)
    assert sum(count for _, count in buckets) == 1 and all(start % 900_000 == 0 for start, _ in buckets)

    assert set_follower_days_txn(txn, [("tea", "2023-11-14", 5), ("tea", "2023-11-15", 6)], NOW) == 2
    assert set_follower_days_txn(txn, [("tea", "2023-11-15", 6)], NOW + 1) == 0  # unchanged: nothing written
    assert set_follower_days_txn(txn, [("tea", "2023-11-15", 7)], NOW + 2) == 1
    assert follower_days_txn(txn, "tea", "2023-11-15") == {"2023-11-15": 7}
    assert follower_days_txn(txn, "tea", "2023-11-01") == {"2023-11-14": 5, "2023-11-15": 7}


def test_channels_are_walked_by_account_id(txn: Any) -> None:
    for account_id, merchant_id in (("b-shop", "@b:hs"), ("a-shop", "@a:hs"), ("c-none", "@c:hs")):
        txn.execute("INSERT INTO wangxin_accounts (account_id, kind, owner, merchant_id, name, registered_ts,"
                    " fees_waived_until_ts) VALUES (?, 'merchant', ?, ?, 'x', 0, 0)", (account_id, merchant_id,
                                                                                      merchant_id))
    insert_merchant_txn(txn, Merchant("@a:hs", "A", None, "!a"), NOW)
    insert_merchant_txn(txn, Merchant("@b:hs", "B", None, "!b"), NOW)
    assert channels_after_txn(txn, "", 1) == [("a-shop", "@a:hs", "!a")]
    assert channels_after_txn(txn, "a-shop", 10) == [("b-shop", "@b:hs", "!b")]  # c has no channel yet


def test_autoreply_settings_and_support_rooms(txn: Any) -> None:
    assert get_autoreply_txn(txn, "tea") is None and autoreply_if_changed_txn(txn, "tea", None) is None
    first = set_autoreply_txn(txn, "tea", '{"keywords": {}}', NOW)
    second = set_autoreply_txn(txn, "tea", '{"keywords": {"a": "b"}}', NOW)  # same millisecond: still newer
    assert second > first
    assert autoreply_if_changed_txn(txn, "tea", first) == (second, '{"keywords": {"a": "b"}}')
    assert autoreply_if_changed_txn(txn, "tea", second) == (second, None)  # unchanged: not read again

    assert insert_support_room_txn(txn, "!s1", "tea", "@f:hs", NOW) == "!s1"
    assert insert_support_room_txn(txn, "!s2", "tea", "@f:hs", NOW) == "!s1"  # one per follower: the first stays
    assert insert_support_room_txn(txn, "!s3", "tea", "@g:hs", NOW) == "!s3"
    assert support_room_of_txn(txn, "tea", "@f:hs") == "!s1" and support_room_count_txn(txn, "tea") == 2
    room = get_support_room_txn(txn, "!s1")
    assert room is not None and (room.account_id, room.user_id, room.menu_ts, room.person_ts) == ("tea", "@f:hs", 0, 0)
    assert claim_menu_txn(txn, "!s1", NOW, 600_000) is True
    assert claim_menu_txn(txn, "!s1", NOW + 1, 600_000) is False  # once per quiet period
    assert claim_menu_txn(txn, "!s1", NOW + 600_000, 600_000) is True
    set_person_wrote_txn(txn, "!s1", NOW)
    set_person_wrote_txn(txn, "!s1", NOW - 5)  # never back in time
    room = get_support_room_txn(txn, "!s1")
    assert room is not None and room.person_ts == NOW


def test_the_stats_time_zone_is_an_iana_zone() -> None:
    assert AccountsConfig.from_dict(None).stats_time_zone == "Asia/Shanghai"
    assert AccountsConfig.from_dict({"stats_time_zone": "Europe/Paris"}).stats_time_zone == "Europe/Paris"
    for bad in ("Mars/Olympus", "", 8):
        with pytest.raises(ModuleConfigError) as e:
            AccountsConfig.from_dict({"stats_time_zone": bad})
        assert e.value.path == ("stats_time_zone",)
