"""The keys every bot's config file has: where the homeserver is, the bot's account, where it
keeps its session; and the checks of the optional ones the bots share."""

from __future__ import annotations

from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from bots.common.matrix_bot import BotAccount
from wangxin_common.config_errors import ConfigError, Section

ACCOUNT_KEYS = ("homeserver_url", "user_id", "password", "store_dir", "device_name")
DEFAULT_TIME_ZONE = "Asia/Shanghai"


def parse_account(root: Section, default_device_name: str) -> tuple[BotAccount, str]:
    """The bot's account, and its ``store_dir``."""
    url = root.get("homeserver_url", str)
    if not url.startswith(("http://", "https://")):
        raise ConfigError(f"expected an http(s) URL, found {url!r}", ("homeserver_url",), root.source)
    user_id = root.get("user_id", str)
    if not user_id.startswith("@") or ":" not in user_id:
        raise ConfigError(f"expected a Matrix user id like @bot:example.org, found {user_id!r}", ("user_id",),
                          root.source)
    account = BotAccount(
        homeserver_url=url.rstrip("/"),
        user_id=user_id,
        password=root.get("password", str),
        device_name=root.get("device_name", str, default_device_name),
    )
    return account, root.get("store_dir", str)


def parse_time_zone(root: Section, key: str = "time_zone") -> ZoneInfo:
    name = root.get(key, str, DEFAULT_TIME_ZONE)
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise ConfigError(f"expected an IANA time zone like Asia/Shanghai, found {name!r}", (key,),
                          root.source) from None


def parse_service_secret(root: Section, *, required: bool) -> str | None:
    """The modules' ``service_secret`` (``None`` when optional and absent)."""
    secret: str | None = root.get("service_secret", str, ... if required else None)
    return secret
