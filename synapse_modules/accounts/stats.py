"""An account's stats (数据统计) as a report and as a spreadsheet: pure, no I/O.

Per day (in the server's ``stats_time_zone``), as WeChat's official accounts count them:
``followers`` at the end of the day (累积关注: the last hourly count of the day; today, now),
``unfollowed`` (取消关注: follows that ended that day and were not taken up again, from the
merchant circle's follow records), ``net`` (净增: the change since the day before) and ``new``
(新关注: ``net + unfollowed``). A day before counting began, or on which the server never ran,
has ``followers`` ``null`` (and so ``net`` and ``new``).

Per post: when, its product's title, ``followers_at_post`` (recorded as it was sent; ``null`` for
posts from before that was recorded), ``reads`` (people whose public read receipt is at the post
or after it) and ``read_rate``. A reader whose client sends no read receipts, or only private ones,
is not counted: ``reads`` is a lower bound.

The CSV is UTF-8 with a byte-order mark (so spreadsheets show Chinese), quoted where needed
(``csv`` module), and safe to open: a text cell that a spreadsheet would take for a formula
(starting ``=``, ``+``, ``-``, ``@``, a tab or a carriage return) starts with ``'``.
"""

from __future__ import annotations

import csv
import datetime
import io
from collections.abc import Iterable, Mapping, Sequence
from typing import Any
from zoneinfo import ZoneInfo

import attrs
from synapse.module_api import errors

DEFAULT_DAYS = 30
MAX_DAYS = 366
MAX_POSTS = 100  # newest posts of the window in a report
BUCKET_MS = 15 * 60 * 1000  # unfollows are counted in quarter hours, then put in local days
FORMATS = ("json", "csv")
TABLES = ("all", "followers", "posts")
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")
FOLLOWER_COLUMNS = ("date", "followers", "new", "unfollowed", "net")
POST_COLUMNS = ("posted_at", "event_id", "title", "followers_at_post", "reads", "read_rate")


def _invalid(message: str) -> Exception:
    return errors.SynapseError(400, message, errors.Codes.INVALID_PARAM)


def validate_format(value: str | None) -> str:
    if value is None:
        return "json"
    if value not in FORMATS:
        raise _invalid(f"'format' must be one of {', '.join(FORMATS)}")
    return value


def validate_days(value: str | None) -> int:
    if value is None:
        return DEFAULT_DAYS
    if not value.isascii() or not value.isdigit() or not 1 <= int(value) <= MAX_DAYS:
        raise _invalid(f"'days' must be a whole number from 1 to {MAX_DAYS}")
    return int(value)


def validate_table(value: str | None) -> str:
    if value is None:
        return "all"
    if value not in TABLES:
        raise _invalid(f"'table' must be one of {', '.join(TABLES)}")
    return value


# -- days --------------------------------------------------------------------------------------

def local_day(ms: int, zone: ZoneInfo) -> str:
    return datetime.datetime.fromtimestamp(ms / 1000, tz=zone).date().isoformat()


def local_time(ms: int, zone: ZoneInfo) -> str:
    return datetime.datetime.fromtimestamp(ms / 1000, tz=zone).strftime("%Y-%m-%d %H:%M")


def day_start_ms(day: str, zone: ZoneInfo) -> int:
    start = datetime.datetime.combine(datetime.date.fromisoformat(day), datetime.time(), tzinfo=zone)
    return int(start.timestamp() * 1000)


def window(now: int, days: int, zone: ZoneInfo) -> list[str]:
    """The ``days`` local days ending today, and the day before them first: ``[before, …, today]``."""
    today = datetime.date.fromisoformat(local_day(now, zone))
    return [(today - datetime.timedelta(days=n)).isoformat() for n in range(days, -1, -1)]


def unfollows_by_day(buckets: Iterable[tuple[int, int]], zone: ZoneInfo) -> dict[str, int]:
    out: dict[str, int] = {}
    for start, count in buckets:
        day = local_day(start, zone)
        out[day] = out.get(day, 0) + count
    return out


@attrs.frozen
class FollowerDay:
    date: str
    followers: int | None
    new: int | None
    unfollowed: int
    net: int | None


def follower_days(days: Sequence[str], ends: Mapping[str, int], followers_now: int,
                  unfollowed: Mapping[str, int]) -> list[FollowerDay]:
    """One row per day of ``days[1:]`` (``days[0]`` is the day before the first: its count gives
    the first day's change); the last day is today, whose count is ``followers_now``."""
    counts = {**ends, days[-1]: followers_now}
    rows = []
    for before, day in zip(days, days[1:], strict=False):
        followers, previous = counts.get(day), counts.get(before)
        net = followers - previous if followers is not None and previous is not None else None
        left = unfollowed.get(day, 0)
        rows.append(FollowerDay(day, followers, None if net is None else max(0, net + left), left, net))
    return rows


# -- posts -------------------------------------------------------------------------------------

def read_rate(reads: int | None, followers: int | None) -> float | None:
    if reads is None or not followers:
        return None
    return round(reads / followers, 3)


# -- the spreadsheet ---------------------------------------------------------------------------

def csv_cell(value: Any) -> Any:
    """A value as a spreadsheet may show it: text that would start a formula gets a ``'`` first;
    numbers (ours, never text) and empty cells stay as they are."""
    if value is None:
        return ""
    if isinstance(value, str) and value.startswith(FORMULA_STARTS):
        return "'" + value
    return value


def to_csv(report: Mapping[str, Any], table: str, zone: ZoneInfo) -> str:
    """The report as CSV: ``table`` ``followers`` or ``posts`` alone (a header row, then one row
    each), or ``all``: both, each under a title row, a blank row between."""
    out = io.StringIO()
    out.write("\ufeff")
    writer = csv.writer(out, lineterminator="\r\n")

    def rows(title: str, columns: Sequence[str], data: Iterable[Sequence[Any]]) -> None:
        if table == "all":
            writer.writerow([csv_cell(title)])
        writer.writerow(columns)
        writer.writerows([csv_cell(v) for v in row] for row in data)

    name = f"{report['name']} ({report['account_id']})"
    if table in ("all", "followers"):
        rows(f"{name}: followers per day ({zone.key})", FOLLOWER_COLUMNS,
             ([d[c] for c in FOLLOWER_COLUMNS] for d in report["followers_per_day"]))
    if table == "all":
        writer.writerow([])
    if table in ("all", "posts"):
        rows(f"{name}: posts", POST_COLUMNS,
             ([local_time(p["posted_at"], zone), p["event_id"], p["title"], p["followers_at_post"], p["reads"],
               p["read_rate"]] for p in report["posts"]))
    return out.getvalue()
