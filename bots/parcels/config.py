"""The parcels bot's configuration file (``parcels-bot.yaml``)."""

from __future__ import annotations

from zoneinfo import ZoneInfo

import attrs

from bots.common.config import ACCOUNT_KEYS, parse_account, parse_service_secret, parse_time_zone
from bots.common.matrix_bot import BotAccount
from wangxin_common.config_errors import Section, load_yaml_file


@attrs.frozen
class ParcelsBotConfig:
    account: BotAccount  # the parcels module's bot_user_id, with a password
    store_dir: str
    service_secret: str  # the modules' service_secret: reads GET /parcels for the sender of a command
    time_zone: ZoneInfo  # how answers show times (as the module's cards: its time_zone)


def parse_config(root: Section) -> ParcelsBotConfig:
    root.reject_unknown((*ACCOUNT_KEYS, "service_secret", "time_zone"))
    account, store_dir = parse_account(root, "Wangxin parcels bot")
    secret = parse_service_secret(root, required=True)
    assert secret is not None
    return ParcelsBotConfig(account, store_dir, secret, parse_time_zone(root))


def load_config(path: str) -> ParcelsBotConfig:
    return parse_config(load_yaml_file(path))
