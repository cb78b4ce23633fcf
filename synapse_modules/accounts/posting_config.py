"""The ``posting:`` section of the accounts module's options: how often each kind of account may
post, scheduling and targeted posts. Pure, no Synapse import; errors name the key under
``posting`` (Synapse prints the whole path).

The defaults follow WeChat's two kinds of official account: a subscription account (订阅号; our
organisations) sends one mass message a day, a service account (服务号; our platforms, which also
send targeted posts) four a month. Merchants keep the merchant circle's ``posts_per_day``
(docs/merchant-circle.md), unchanged.
"""

from __future__ import annotations

from typing import Any

import attrs

from synapse_modules._config import ModuleConfigError, get_int, reject_unknown, require_mapping

DAY_MS = 24 * 3600 * 1000
LIMITED_KINDS = ("organisation", "platform")
KNOWN_POSTING_OPTIONS = (
    "limits", "schedule_poll_ms", "max_scheduled", "max_schedule_days", "segment_max_recipients",
    "delivery_concurrency",
)


@attrs.frozen
class KindLimit:
    """At most ``posts`` posts (channel and targeted together) in any ``days`` days."""

    posts: int
    days: int

    @property
    def window_ms(self) -> int:
        return self.days * DAY_MS


DEFAULT_LIMITS = {"organisation": KindLimit(1, 1), "platform": KindLimit(4, 30)}


@attrs.frozen
class PostingConfig:
    limits: dict[str, KindLimit] = attrs.field(factory=lambda: dict(DEFAULT_LIMITS))
    # How often the background-tasks process looks for scheduled posts that are due, and for
    # targeted posts still being delivered.
    schedule_poll_ms: int = 1000
    max_scheduled: int = 50  # posts waiting at once, per account
    max_schedule_days: int = 365  # how far ahead a post may be scheduled
    # Targeted posts: a segment matching more people than this is refused (narrow it).
    segment_max_recipients: int = 100_000
    # Targeted posts: people served at once (each a room made the first time, then one event).
    delivery_concurrency: int = 8

    @staticmethod
    def from_dict(raw: Any) -> PostingConfig:
        try:
            return PostingConfig._parse(raw)
        except ModuleConfigError as e:
            raise ModuleConfigError(e.message, ("posting", *e.path)) from None

    @staticmethod
    def _parse(raw: Any) -> PostingConfig:
        config = require_mapping(raw)
        reject_unknown(config, KNOWN_POSTING_OPTIONS)
        limits = dict(DEFAULT_LIMITS)
        raw_limits = require_mapping(config.get("limits"))
        for kind, value in raw_limits.items():
            if kind == "merchant":
                raise ModuleConfigError("merchants keep the merchant circle's posts_per_day; set it there",
                                        ("limits", kind))
            if kind not in LIMITED_KINDS:
                raise ModuleConfigError(f"expected one of {', '.join(LIMITED_KINDS)}", ("limits", str(kind)))
            try:
                entry = require_mapping(value)
                reject_unknown(entry, ("posts", "days"))
                limits[kind] = KindLimit(get_int(entry, "posts", minimum=1), get_int(entry, "days", minimum=1))
            except ModuleConfigError as e:
                raise ModuleConfigError(e.message, ("limits", kind, *e.path)) from None
        return PostingConfig(
            limits=limits,
            schedule_poll_ms=get_int(config, "schedule_poll_ms", 1000, minimum=50),
            max_scheduled=get_int(config, "max_scheduled", 50, minimum=1),
            max_schedule_days=get_int(config, "max_schedule_days", 365, minimum=1),
            segment_max_recipients=get_int(config, "segment_max_recipients", 100_000, minimum=1),
            delivery_concurrency=get_int(config, "delivery_concurrency", 8, minimum=1),
        )
