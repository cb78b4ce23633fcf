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
    get_secret,
    get_str,
    get_user_id,
    reject_unknown,
    require_mapping,
)

# Every action that touches a pool, each with its own per-user rate limit.
ACTIONS = ("profile", "location", "nearby", "hi", "shake", "throw", "pick", "reply", "answer", "block", "report",
           "angle", "video")


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
    # An angle try waits for its window (3 s): a burst of tries, then one every 2 s.
    "angle": RateLimit(10, 30),
    "video": RateLimit(10, 10),
}

# Geohash cells: precision 6 is about 1.2 km x 0.6 km, 5 about 4.9 km square, 7 about 150 m.
MIN_CELL_PRECISION = 4
MAX_CELL_PRECISION = 8

KNOWN_OPTIONS = (
    "cell_precision", "region_precision", "location_ttl_s", "shake_window_ms", "throws_per_day",
    "picks_per_day", "bottle_max_chars", "bottle_ttl_hours", "request_ttl_hours", "decline_cooldown_hours",
    "nearby_limit", "dm_encrypted", "service_accounts", "service_secret", "cleanup_interval_ms", "rate_limits",
    "angle", "coupons", "video_queue_ttl_s",
)
# The options that are plain integers (what the dev stack's ``--discovery-options`` may set).
INT_OPTIONS = (
    "cell_precision", "region_precision", "location_ttl_s", "shake_window_ms", "throws_per_day",
    "picks_per_day", "bottle_max_chars", "bottle_ttl_hours", "request_ttl_hours", "decline_cooldown_hours",
    "nearby_limit", "cleanup_interval_ms", "video_queue_ttl_s",
)
# The plain integers of the ``angle:`` and ``coupons:`` sections (the dev stack may set them too,
# as ``angle.window_ms=1500``).
ANGLE_INT_OPTIONS = ("window_ms",)
COUPON_INT_OPTIONS = ("rewards_per_day", "timeout_s", "retry_base_ms", "retry_max_ms", "give_up_hours", "poll_ms")


@attrs.frozen
class AngleConfig:
    """你我36.8度: two people whose phones are held within ``tolerance`` degrees of ``target`` in the
    same window are paired; the same two at most once a day."""

    target: float = 36.8
    tolerance: float = 0.2
    window_ms: int = 3000

    def matches(self, angle: float) -> bool:
        # A hair of slack, so that 37.0 counts for 36.8 ± 0.2 despite binary floating point.
        return abs(angle - self.target) <= self.tolerance + 1e-9

    @property
    def settle_ms(self) -> int:
        return min(500, max(100, self.window_ms // 5))


@attrs.frozen
class CouponConfig:
    """The platform's coupon for both people of an accepted 36.8° pairing (docs/discovery.md,
    "Coupons"). Without ``url``, pairings earn no coupon."""

    url: str | None = None
    secret: str | None = None
    rewards_per_day: int = 3  # rewarded pairings per person in any 24 hours
    timeout_s: int = 10
    retry_base_ms: int = 1000  # the first retry's delay, doubled after each failure ...
    retry_max_ms: int = 300_000  # ... up to this
    give_up_hours: int = 24  # then the people are told there is no coupon
    poll_ms: int = 1000  # how often the background process looks for coupons due


def _angle(raw: Any) -> AngleConfig:
    try:
        section = require_mapping(raw)
        reject_unknown(section, ("target", "tolerance", "window_ms"))
        target = _degrees(section, "target", 36.8, 0.0, 180.0)
        tolerance = _degrees(section, "tolerance", 0.2, 0.0, 10.0)
        window = get_int(section, "window_ms", 3000, minimum=200)
        if window > 60_000:
            raise ModuleConfigError(f"expected 200..60000 milliseconds, found {window}", ("window_ms",))
    except ModuleConfigError as e:
        raise ModuleConfigError(e.message, ("angle", *e.path)) from None
    return AngleConfig(target, tolerance, window)


def _degrees(section: Mapping[str, Any], key: str, default: float, low: float, high: float) -> float:
    value = section.get(key, default)
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not low <= value <= high:
        raise ModuleConfigError(f"expected a number of degrees from {low:g} to {high:g}, found {value!r}", (key,))
    return float(value)


def _coupons(raw: Any) -> CouponConfig:
    try:
        section = require_mapping(raw)
        reject_unknown(section, ("url", "secret", *COUPON_INT_OPTIONS))
        url = get_str(section, "url", None)
        secret = None
        if url is not None:
            if not url.startswith(("https://", "http://")):
                raise ModuleConfigError(f"expected an http(s) URL, found {url!r}", ("url",))
            secret = get_secret(section, "secret")
        elif section.get("secret") is not None:
            raise ModuleConfigError("a secret without a url: set url too, or remove the secret", ("secret",))
        base = get_int(section, "retry_base_ms", 1000, minimum=50)
        most = get_int(section, "retry_max_ms", 300_000, minimum=base)
        config = CouponConfig(
            url=url, secret=secret,
            rewards_per_day=get_int(section, "rewards_per_day", 3, minimum=0),
            timeout_s=get_int(section, "timeout_s", 10, minimum=1),
            retry_base_ms=base, retry_max_ms=most,
            give_up_hours=get_int(section, "give_up_hours", 24, minimum=1),
            poll_ms=get_int(section, "poll_ms", 1000, minimum=50),
        )
    except ModuleConfigError as e:
        raise ModuleConfigError(e.message, ("coupons", *e.path)) from None
    return config


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
    angle: AngleConfig = AngleConfig()
    coupons: CouponConfig = CouponConfig()
    video_queue_ttl_s: int = 600  # how long someone waits in the face-to-face queue

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
            angle=_angle(config.get("angle")),
            coupons=_coupons(config.get("coupons")),
            video_queue_ttl_s=get_int(config, "video_queue_ttl_s", 600, minimum=10),
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
