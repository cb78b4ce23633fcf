"""The discovery service's options (its ``config:`` under ``modules:``): pure, no Synapse import.

Errors are :class:`ModuleConfigError` naming the key path (``rate_limits.nearby.burst``);
``Discovery.parse_config`` hands them to Synapse, which prints the whole path.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import attrs

from synapse_modules._config import (
    ModuleConfigError,
    get_int,
    get_str,
    get_user_id,
    reject_unknown,
    require_mapping,
)

# Every action that touches a pool, each with its own per-user rate limit.
ACTIONS = ("profile", "location", "nearby", "hi", "shake", "throw", "pick", "reply", "answer", "block", "report")


@attrs.frozen
class RateLimit:
    """A leaky bucket: ``burst`` calls at once, then one every ``60 / per_minute`` seconds."""

    burst: int
    per_minute: int

    @property
    def interval_ms(self) -> int:
        return max(1, 60_000 // self.per_minute)


DEFAULT_RATE_LIMITS: dict[str, RateLimit] = {
    "profile": RateLimit(10, 10),
    # Moving one's reported location and reading the bands is how someone would try to narrow
    # another person down to their cell: a few moves a minute.
    "location": RateLimit(10, 6),
    "nearby": RateLimit(20, 30),
    "hi": RateLimit(10, 5),
    "shake": RateLimit(10, 12),
    "throw": RateLimit(5, 5),
    "pick": RateLimit(10, 10),
    "reply": RateLimit(10, 5),
    "answer": RateLimit(30, 30),
    "block": RateLimit(20, 10),
    "report": RateLimit(5, 2),
}

# Geohash cells: precision 6 is about 1.2 km x 0.6 km, 5 about 4.9 km square, 7 about 150 m.
MIN_CELL_PRECISION = 4
MAX_CELL_PRECISION = 8

KNOWN_OPTIONS = (
    "cell_precision", "region_precision", "location_ttl_s", "shake_window_ms", "throws_per_day",
    "picks_per_day", "bottle_max_chars", "bottle_ttl_hours", "request_ttl_hours", "decline_cooldown_hours",
    "nearby_limit", "dm_encrypted", "service_accounts", "service_secret", "cleanup_interval_ms", "rate_limits",
)
# The options that are plain integers (what the dev stack's ``--discovery-options`` may set).
INT_OPTIONS = (
    "cell_precision", "region_precision", "location_ttl_s", "shake_window_ms", "throws_per_day",
    "picks_per_day", "bottle_max_chars", "bottle_ttl_hours", "request_ttl_hours", "decline_cooldown_hours",
    "nearby_limit", "cleanup_interval_ms",
)


@attrs.frozen
class DiscoveryConfig:
    cell_precision: int = 6
    region_precision: int = 4  # shakes pair people of the same region (about 39 km x 20 km)
    location_ttl_s: int = 2 * 3600
    shake_window_ms: int = 5000
    throws_per_day: int = 10
    picks_per_day: int = 20
    bottle_max_chars: int = 1000  # bottles, their replies and greetings
    bottle_ttl_hours: int = 7 * 24
    request_ttl_hours: int = 72
    decline_cooldown_hours: int = 24
    nearby_limit: int = 50
    dm_encrypted: bool = True
    service_accounts: tuple[str, ...] = ()
    service_secret: str | None = None
    cleanup_interval_ms: int = 60_000
    rate_limits: Mapping[str, RateLimit] = attrs.field(factory=lambda: dict(DEFAULT_RATE_LIMITS))

    @staticmethod
    def from_dict(raw: Any) -> DiscoveryConfig:
        config = require_mapping(raw)
        reject_unknown(config, KNOWN_OPTIONS)
        cell = get_int(config, "cell_precision", 6, minimum=MIN_CELL_PRECISION)
        if cell > MAX_CELL_PRECISION:
            raise ModuleConfigError(f"expected {MIN_CELL_PRECISION}..{MAX_CELL_PRECISION} (6 is about 1 km), "
                                    f"found {cell}", ("cell_precision",))
        region = get_int(config, "region_precision", min(4, cell), minimum=1)
        if region > cell:
            raise ModuleConfigError(f"expected at most cell_precision ({cell}), found {region}", ("region_precision",))
        window = get_int(config, "shake_window_ms", 5000, minimum=200)
        if window > 60_000:
            raise ModuleConfigError(f"expected 200..60000 milliseconds, found {window}", ("shake_window_ms",))
        bottle_max = get_int(config, "bottle_max_chars", 1000, minimum=1)
        if bottle_max > 10_000:
            raise ModuleConfigError(f"expected at most 10000, found {bottle_max}", ("bottle_max_chars",))
        nearby_limit = get_int(config, "nearby_limit", 50, minimum=1)
        if nearby_limit > 500:
            raise ModuleConfigError(f"expected at most 500, found {nearby_limit}", ("nearby_limit",))
        encrypted = config.get("dm_encrypted", True)
        if not isinstance(encrypted, bool):
            raise ModuleConfigError(f"expected true or false, found {encrypted!r}", ("dm_encrypted",))
        return DiscoveryConfig(
            cell_precision=cell,
            region_precision=region,
            location_ttl_s=get_int(config, "location_ttl_s", 2 * 3600, minimum=10),
            shake_window_ms=window,
            throws_per_day=get_int(config, "throws_per_day", 10, minimum=1),
            picks_per_day=get_int(config, "picks_per_day", 20, minimum=1),
            bottle_max_chars=bottle_max,
            bottle_ttl_hours=get_int(config, "bottle_ttl_hours", 7 * 24, minimum=1),
            request_ttl_hours=get_int(config, "request_ttl_hours", 72, minimum=1),
            decline_cooldown_hours=get_int(config, "decline_cooldown_hours", 24, minimum=0),
            nearby_limit=nearby_limit,
            dm_encrypted=encrypted,
            service_accounts=_user_ids(config, "service_accounts"),
            service_secret=get_str(config, "service_secret", None),
            cleanup_interval_ms=get_int(config, "cleanup_interval_ms", 60_000, minimum=50),
            rate_limits=_rate_limits(config.get("rate_limits")),
        )

    @property
    def location_ttl_ms(self) -> int:
        return self.location_ttl_s * 1000

    @property
    def shake_settle_ms(self) -> int:
        """How long after a window closes its pairing is decided: shakes that arrived on other
        processes just before the close have committed by then."""
        return min(500, max(100, self.shake_window_ms // 5))


def _user_ids(config: Mapping[str, Any], key: str) -> tuple[str, ...]:
    value = config.get(key)
    if value is None:
        return ()
    if not isinstance(value, list):
        raise ModuleConfigError("expected a list of Matrix user ids", (key,))
    found = []
    for i, item in enumerate(value):
        try:
            found.append(get_user_id({"item": item}, "item"))
        except ModuleConfigError as e:
            raise ModuleConfigError(e.message, (key, f"<item {i}>")) from None
    return tuple(found)


def _rate_limits(raw: Any) -> dict[str, RateLimit]:
    limits = dict(DEFAULT_RATE_LIMITS)
    if raw is None:
        return limits
    try:
        section = require_mapping(raw)
        reject_unknown(section, ACTIONS)
    except ModuleConfigError as e:
        raise ModuleConfigError(e.message, ("rate_limits", *e.path)) from None
    for action, value in section.items():
        try:
            entry = require_mapping(value)
            reject_unknown(entry, ("burst", "per_minute"))
            default = DEFAULT_RATE_LIMITS[action]
            limits[action] = RateLimit(
                burst=get_int(entry, "burst", default.burst, minimum=1),
                per_minute=get_int(entry, "per_minute", default.per_minute, minimum=1),
            )
        except ModuleConfigError as e:
            raise ModuleConfigError(e.message, ("rate_limits", action, *e.path)) from None
    return limits
