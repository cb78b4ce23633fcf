"""The post quota, the repost cooldown and the edit limit, decided: pure, no I/O.

The store (``store/posts.py``) reads a merchant's recent posts and records what these functions
admit, in one transaction.
"""

from __future__ import annotations

import attrs

DAY_MS = 24 * 3600 * 1000

# A post admitted but not (yet) persisted counts against the quota for this long: it may still
# be on its way to the database. Posts that are still not persisted after RECHECK_MS never will be.
IN_FLIGHT_MS = 30_000
RECHECK_MS = 10 * 60_000


@attrs.frozen
class PostDecision:
    """``retry_after_ms`` is ``None`` when the post is allowed (and recorded); otherwise
    ``reason`` says why and ``limit`` names the configuration option that sets the limit."""

    retry_after_ms: int | None
    reason: str | None = None
    limit: str | None = None


@attrs.frozen
class EditDecision:
    """``not_a_post``: the target is no persisted post of this sender in this circle (so the
    event is a new post); otherwise ``post_product_id`` is the edited post's product, and
    ``retry_after_ms`` is set when the post's edits of the day are used up."""

    not_a_post: bool
    post_product_id: str | None = None
    retry_after_ms: int | None = None


@attrs.frozen
class PostRow:
    ts: int
    persisted: bool
    device_id: str | None
    product_id: str | None


def counted_posts(rows: list[PostRow], now: int, device_id: str | None,
                  window_ms: int = DAY_MS) -> list[tuple[int, PostRow]]:
    """The posts that use up quota now, each with the time it stops counting.

    A persisted post counts for a day (``window_ms``: an account's limit may span more days). A
    post admitted but not persisted may still be on its way (it counts for ``IN_FLIGHT_MS``, so
    two concurrent posts cannot both take the last slot), unless it came from the device sending
    now: a client sends one event at a time, so that earlier attempt is over, and it failed
    (refused after the quota check).
    """
    counted = []
    for row in rows:
        if row.persisted:
            if row.ts > now - window_ms:
                counted.append((row.ts + window_ms, row))
        elif row.ts > now - IN_FLIGHT_MS and (device_id is None or row.device_id != device_id):
            counted.append((row.ts + IN_FLIGHT_MS, row))
    return sorted(counted, key=lambda c: c[0])


def post_decision(
    rows: list[PostRow],
    last_product_ts: int | None,
    product_id: str | None,
    device_id: str | None,
    now: int,
    posts_per_day: int,
    cooldown_ms: int,
    window_ms: int = DAY_MS,
) -> PostDecision:
    """Whether a new post is allowed: ``rows`` are the merchant's admitted posts of the last day
    (of the last ``window_ms``: at most ``posts_per_day`` posts in any such window),
    ``last_product_ts`` the last persisted post of ``product_id``."""
    counted = counted_posts(rows, now, device_id, window_ms)
    waits: list[tuple[int, str, str]] = []
    if len(counted) >= posts_per_day:
        frees_at = counted[len(counted) - posts_per_day][0]
        waits.append((frees_at - now, _limit_reached(posts_per_day, window_ms), "posts_per_day"))
    if product_id is not None and cooldown_ms > 0:
        if last_product_ts is not None and last_product_ts + cooldown_ms > now:
            waits.append((last_product_ts + cooldown_ms - now, f"product {product_id} was posted recently",
                          "repost_cooldown_hours"))
        for until, row in counted:
            if not row.persisted and row.product_id == product_id:
                waits.append((until - now, f"product {product_id} is being posted", "repost_cooldown_hours"))
    if waits:
        wait, reason, limit = max(waits)
        return PostDecision(max(1, wait), reason, limit)
    return PostDecision(None)


def _limit_reached(posts: int, window_ms: int) -> str:
    if window_ms == DAY_MS:
        return f"the daily limit of {posts} posts is reached"
    days = window_ms / DAY_MS
    span = f"{days:g} days" if days >= 1 else f"{window_ms // 3_600_000} h"
    return f"the limit of {posts} post{'s' if posts != 1 else ''} in {span} is reached"
