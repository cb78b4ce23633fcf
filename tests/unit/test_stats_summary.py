"""The merchant bot's ``stats`` answer: the week's figures in a few lines, days not yet counted
said so, reads against the audience of each post."""

from __future__ import annotations

from typing import Any

from bots.merchant.stats_commands import summary

NOW = 1_700_000_000_000  # 2023-11-15 06:13 in Shanghai


def report(**extra: Any) -> dict[str, Any]:
    return {
        "account_id": "tea", "name": "Tea House", "time_zone": "Asia/Shanghai", "followers": 1234,
        "support_rooms": 3,
        "followers_per_day": [
            {"date": "2023-11-14", "followers": 1200, "new": 10, "unfollowed": 2, "net": 8},
            {"date": "2023-11-15", "followers": 1234, "new": 36, "unfollowed": 2, "net": 34},
        ],
        "posts": [{"event_id": "$a", "posted_at": NOW, "title": "Green tea", "followers_at_post": 1200, "reads": 600,
                   "read_rate": 0.5},
                  {"event_id": "$b", "posted_at": NOW - 3_600_000, "title": None, "followers_at_post": None,
                   "reads": 3, "read_rate": None}],
        **extra,
    }


def test_the_summary_has_the_weeks_figures_and_the_latest_posts() -> None:
    text = summary(report())
    lines = text.splitlines()
    assert lines[0] == "Tea House (#tea): 1,234 followers · 关注 1,234"
    assert lines[1] == "Last 2 days: 46 new, 4 unfollowed, net +42"
    assert lines[2] == "Support chats · 客服会话: 3"
    assert "11-15 06:13  Green tea: 600 / 1,200 (50%)" in text
    assert "11-15 05:13  post: 3 / ?" in text
    assert text.endswith("/_synapse/client/wangxin/v1/accounts/tea/stats?format=csv")


def test_days_before_counting_began_are_said_so() -> None:
    days = [{"date": "2023-11-14", "followers": None, "new": None, "unfollowed": 1, "net": None},
            {"date": "2023-11-15", "followers": 1, "new": None, "unfollowed": 0, "net": None}]
    text = summary(report(followers=1, followers_per_day=days, posts=[]))
    assert "1 follower ·" in text
    assert "0 new, 1 unfollowed, net 0 (new and net: days counted since counting began)" in text
    assert "No posts in the last 2 days." in text
