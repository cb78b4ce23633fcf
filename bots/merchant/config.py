"""The merchant bot's configuration file (``merchant-bot.yaml``)."""

from __future__ import annotations

import attrs

from wangxin_common.config_errors import ConfigError, Section, load_yaml_file


@attrs.frozen
class MerchantBotConfig:
    homeserver_url: str
    user_id: str
    password: str
    store_dir: str
    device_name: str


def parse_config(root: Section) -> MerchantBotConfig:
    root.reject_unknown(("homeserver_url", "user_id", "password", "store_dir", "device_name"))
    url = root.get("homeserver_url", str)
    if not url.startswith(("http://", "https://")):
        raise ConfigError(f"expected an http(s) URL, found {url!r}", ("homeserver_url",), root.source)
    user_id = root.get("user_id", str)
    if not user_id.startswith("@") or ":" not in user_id:
        raise ConfigError(f"expected a Matrix user id like @bot:example.org, found {user_id!r}", ("user_id",),
                          root.source)
    return MerchantBotConfig(
        homeserver_url=url.rstrip("/"),
        user_id=user_id,
        password=root.get("password", str),
        store_dir=root.get("store_dir", str),
        device_name=root.get("device_name", str, "Wangxin merchant bot"),
    )


def load_config(path: str) -> MerchantBotConfig:
    return parse_config(load_yaml_file(path))
