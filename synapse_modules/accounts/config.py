"""The accounts module's options (its ``config:`` under ``modules:``): pure, no Synapse import.

Errors are :class:`ModuleConfigError` naming the key; ``Accounts.parse_config`` hands them to
Synapse, which prints the whole path (``modules.<item N>.config.<key>``).
"""

from __future__ import annotations

import re
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import attrs

from synapse_modules._config import ModuleConfigError, get_bool, get_int, get_str, reject_unknown, require_mapping
from synapse_modules.accounts.posting_config import PostingConfig

# The campaign's promise: no membership, verification or transfer fees for this long after an
# account registers (recorded with the account when it registers; the product bills nothing).
DEFAULT_FEE_WAIVER_MONTHS = 36
# Organisation and platform accounts stand in their channel as a Matrix user of their own,
# ``@<prefix><account_id>:<server>``; nobody else may register a name with this prefix.
DEFAULT_IDENTITY_PREFIX = "acct."
DEFAULT_SEARCH_LIMIT = 20
MAX_SEARCH_LIMIT = 50
# Merchants made without the accounts API (``PUT /merchants``, or before this module ran) are made
# accounts as they are made, and by a sweep at start-up and this often after.
DEFAULT_SWEEP_INTERVAL_MS = 600_000
_PREFIX_RE = re.compile(r"^[a-z0-9._=/+-]{1,16}$")
DEFAULT_STATS_TIME_ZONE = "Asia/Shanghai"
# Staff (PUT /accounts/{id}/staff) are seated in every support room of the account.
DEFAULT_MAX_STAFF = 20
MAX_MAX_STAFF = 100

KNOWN_OPTIONS = (
    "fee_waiver_months", "identity_prefix", "search_limit", "storefront_allow_http_loopback", "sweep_interval_ms",
    "posting", "stats_time_zone", "max_staff", "list_verified_in_directory",
)


@attrs.frozen
class AccountsConfig:
    fee_waiver_months: int = DEFAULT_FEE_WAIVER_MONTHS
    identity_prefix: str = DEFAULT_IDENTITY_PREFIX
    search_limit: int = DEFAULT_SEARCH_LIMIT
    # Development only: a storefront at http://127.0.0.1/… (or localhost, ::1). Production: https only.
    storefront_allow_http_loopback: bool = False
    sweep_interval_ms: int = DEFAULT_SWEEP_INTERVAL_MS
    posting: PostingConfig = PostingConfig()  # limits per kind, scheduling, targeted posts (posting_config)
    # The days of an account's stats (followers per day) are days of this zone.
    stats_time_zone: str = DEFAULT_STATS_TIME_ZONE
    max_staff: int = DEFAULT_MAX_STAFF  # people of an account (besides its owner) in its support rooms
    # The first room of a verified account's channel is in the public room directory, and only
    # while the account is verified; false: the module never touches the directory.
    list_verified_in_directory: bool = True

    @staticmethod
    def from_dict(raw: Any) -> AccountsConfig:
        config = require_mapping(raw)
        reject_unknown(config, KNOWN_OPTIONS)
        prefix = get_str(config, "identity_prefix", DEFAULT_IDENTITY_PREFIX)
        if not _PREFIX_RE.match(prefix) or prefix.startswith("_"):
            raise ModuleConfigError(f"expected 1 to 16 characters of a lower-case Matrix localpart, not starting "
                                    f"with '_', found {prefix!r}", ("identity_prefix",))
        search_limit = get_int(config, "search_limit", DEFAULT_SEARCH_LIMIT, minimum=1)
        if search_limit > MAX_SEARCH_LIMIT:
            raise ModuleConfigError(f"expected at most {MAX_SEARCH_LIMIT}, found {search_limit}", ("search_limit",))
        allow_http = config.get("storefront_allow_http_loopback", False)
        if not isinstance(allow_http, bool):
            raise ModuleConfigError(f"expected true or false, found {allow_http!r}",
                                    ("storefront_allow_http_loopback",))
        max_staff = get_int(config, "max_staff", DEFAULT_MAX_STAFF, minimum=0)
        if max_staff > MAX_MAX_STAFF:
            raise ModuleConfigError(f"expected at most {MAX_MAX_STAFF}, found {max_staff}", ("max_staff",))
        return AccountsConfig(
            fee_waiver_months=get_int(config, "fee_waiver_months", DEFAULT_FEE_WAIVER_MONTHS, minimum=0),
            identity_prefix=prefix,
            search_limit=search_limit,
            storefront_allow_http_loopback=allow_http,
            sweep_interval_ms=get_int(config, "sweep_interval_ms", DEFAULT_SWEEP_INTERVAL_MS, minimum=1000),
            posting=PostingConfig.from_dict(config.get("posting")),
            stats_time_zone=_time_zone(config),
            max_staff=max_staff,
            list_verified_in_directory=get_bool(config, "list_verified_in_directory", True),
        )


def _time_zone(config: Any) -> str:
    name = get_str(config, "stats_time_zone", DEFAULT_STATS_TIME_ZONE)
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise ModuleConfigError(f"expected an IANA time zone like Asia/Shanghai, found {name!r}",
                                ("stats_time_zone",)) from None
    return str(name)
