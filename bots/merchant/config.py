"""The merchant bot's configuration file (``merchant-bot.yaml``)."""

from __future__ import annotations

from zoneinfo import ZoneInfo

import attrs

from bots.common.config import ACCOUNT_KEYS, parse_account, parse_service_secret, parse_time_zone
from bots.common.matrix_bot import BotAccount
from wangxin_common.config_errors import Section, load_yaml_file


@attrs.frozen
class MerchantBotConfig:
    account: BotAccount
    store_dir: str
    # The modules' service_secret: lets `orders` read GET /parcels/merchant for the merchant who
    # asks. Without it the merchant circle commands still work and `orders` says it cannot.
    service_secret: str | None = None
    time_zone: ZoneInfo = ZoneInfo("Asia/Shanghai")  # how `orders` shows times


def parse_config(root: Section) -> MerchantBotConfig:
    root.reject_unknown((*ACCOUNT_KEYS, "service_secret", "time_zone"))
    account, store_dir = parse_account(root, "Wangxin merchant bot")
    return MerchantBotConfig(account, store_dir, parse_service_secret(root, required=False), parse_time_zone(root))


def load_config(path: str) -> MerchantBotConfig:
    return parse_config(load_yaml_file(path))
