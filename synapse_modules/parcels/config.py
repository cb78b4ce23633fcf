"""The parcels module's options (its ``config:`` under ``modules:``): pure, no Synapse import.

Errors are :class:`ModuleConfigError` naming the key; ``Parcels.parse_config`` hands them to
Synapse, which prints the whole path (``modules.<item N>.config.<key>``).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

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
from synapse_modules.parcels.carriers import (
    CARRIER_CODE_RE,
    MAX_NAME_CHARS,
    Carrier,
    CarrierRegistry,
    template_error,
)

DEFAULT_ROOM_NAME = "Parcels · 快递"
DEFAULT_TIME_ZONE = "Asia/Shanghai"
# How often the background-tasks process looks for phone numbers just bound to an account and
# for cards a failed or interrupted update left behind.
DEFAULT_DRAIN_INTERVAL_MS = 1000

KNOWN_OPTIONS = (
    "platform_secret", "bot_user_id", "service_secret", "service_users", "carriers", "room_name", "time_zone",
    "drain_interval_ms",
)
CARRIER_OPTIONS = ("name", "name_zh", "tracking_url")


@attrs.frozen
class ParcelsConfig:
    platform_secret: str
    bot_user_id: str
    carriers: CarrierRegistry
    service_secret: str | None = None
    service_users: frozenset[str] = frozenset()
    room_name: str = DEFAULT_ROOM_NAME
    time_zone: ZoneInfo = attrs.field(factory=lambda: ZoneInfo(DEFAULT_TIME_ZONE))
    drain_interval_ms: int = DEFAULT_DRAIN_INTERVAL_MS

    @staticmethod
    def from_dict(raw: Any) -> ParcelsConfig:
        config = require_mapping(raw)
        reject_unknown(config, KNOWN_OPTIONS)
        secret = get_secret(config, "platform_secret")
        # The modules' shared service secret, checked like the other modules check it.
        service_secret = get_str(config, "service_secret", None)
        zone_name = get_str(config, "time_zone", DEFAULT_TIME_ZONE)
        try:
            zone = ZoneInfo(zone_name)
        except (ZoneInfoNotFoundError, ValueError):
            raise ModuleConfigError(
                f"unknown time zone {zone_name!r}: expected an IANA name such as 'Asia/Shanghai' (where the "
                "system has no time-zone database, `pip install tzdata` into Synapse's environment)",
                ("time_zone",),
            ) from None
        room_name = get_str(config, "room_name", DEFAULT_ROOM_NAME)
        if len(room_name) > 255:
            raise ModuleConfigError("expected at most 255 characters", ("room_name",))
        return ParcelsConfig(
            platform_secret=secret,
            bot_user_id=get_user_id(config, "bot_user_id"),
            carriers=CarrierRegistry.with_defaults(_carriers(config.get("carriers"))),
            service_secret=service_secret,
            service_users=_user_ids(config.get("service_users"), "service_users"),
            room_name=room_name,
            time_zone=zone,
            drain_interval_ms=get_int(config, "drain_interval_ms", DEFAULT_DRAIN_INTERVAL_MS, minimum=50),
        )


def _user_ids(raw: Any, key: str) -> frozenset[str]:
    if raw is None:
        return frozenset()
    if not isinstance(raw, list):
        raise ModuleConfigError("expected a list of Matrix user ids", (key,))
    found = set()
    for n, value in enumerate(raw):
        try:
            found.add(get_user_id({"entry": value}, "entry"))
        except ModuleConfigError as e:
            raise ModuleConfigError(e.message, (key, str(n))) from None
    return frozenset(found)


def _carriers(raw: Any) -> dict[str, Carrier | None]:
    """``carriers:`` maps a code to ``{name, name_zh, tracking_url}`` (replacing a default of
    that code, or adding one) or to ``null`` (removing a default)."""
    if raw is None:
        return {}
    if not isinstance(raw, Mapping):
        raise ModuleConfigError("expected a mapping of carrier codes to {name, name_zh, tracking_url}", ("carriers",))
    found: dict[str, Carrier | None] = {}
    for code, entry in raw.items():
        path = ("carriers", str(code))
        if not isinstance(code, str) or not CARRIER_CODE_RE.match(code):
            raise ModuleConfigError("expected a lower-case code of 1 to 32 letters, digits or . _ -", path)
        if entry is None:
            found[code] = None
            continue
        if not isinstance(entry, Mapping):
            raise ModuleConfigError("expected {name, name_zh, tracking_url} or null (no such carrier)", path)
        try:
            reject_unknown(entry, CARRIER_OPTIONS)
            name = get_str(entry, "name")
            name_zh = get_str(entry, "name_zh")
            template = get_str(entry, "tracking_url", None)
        except ModuleConfigError as e:
            raise ModuleConfigError(e.message, path + e.path) from None
        for key, value in (("name", name), ("name_zh", name_zh)):
            if len(value) > MAX_NAME_CHARS:
                raise ModuleConfigError(f"expected at most {MAX_NAME_CHARS} characters", path + (key,))
        if template is not None and (problem := template_error(template)):
            raise ModuleConfigError(problem, path + ("tracking_url",))
        found[code] = Carrier(code, name, name_zh, template)
    return found
