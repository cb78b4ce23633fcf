"""The discovery bot's configuration file (``discovery-bot.yaml``)."""

from __future__ import annotations

import attrs

from bots.common.config import ACCOUNT_KEYS, parse_account, parse_service_secret
from bots.common.matrix_bot import BotAccount
from wangxin_common.config_errors import ConfigError, Section, load_yaml_file

MIN_POLL_MS, MAX_POLL_MS = 100, 60_000


@attrs.frozen
class DiscoveryBotConfig:
    account: BotAccount  # named in the discovery module's service_accounts: it never appears in discovery
    store_dir: str
    # The discovery module's service_secret: the bot acts with it for the sender of a command
    # (?user_id=), and reads the feed of changed requests to tell people about theirs.
    service_secret: str
    poll_interval_ms: int = 1000  # how often the feed of changed requests is read


def parse_config(root: Section) -> DiscoveryBotConfig:
    root.reject_unknown((*ACCOUNT_KEYS, "service_secret", "poll_interval_ms"))
    account, store_dir = parse_account(root, "Wangxin discovery bot")
    secret = parse_service_secret(root, required=True)
    assert secret is not None
    poll = root.get("poll_interval_ms", int, 1000)
    if not MIN_POLL_MS <= poll <= MAX_POLL_MS:
        raise ConfigError(f"expected {MIN_POLL_MS}..{MAX_POLL_MS} milliseconds, found {poll}",
                          ("poll_interval_ms",), root.source)
    return DiscoveryBotConfig(account, store_dir, secret, poll)


def load_config(path: str) -> DiscoveryBotConfig:
    return parse_config(load_yaml_file(path))
