"""Discovery for clients and bots: which Wangxin features and bots this server runs.

``GET /_synapse/client/wangxin/v1/info`` (no auth) answers
``{"version", "server_name", "bridge_bot", "merchant_bot", "features": [...]}`` so a client
or a bot can find the Wangxin bots without hard-coding their ids.
"""

from __future__ import annotations

from typing import Any

import attrs
from synapse.module_api import ModuleApi

from synapse_modules._config import (
    ModuleConfigError,
    get_user_id,
    reject_unknown,
    require_mapping,
    to_synapse_config_error,
)
from synapse_modules._features import loaded_features
from synapse_modules._http import RoutedJsonResource
from wangxin_common import WANGXIN_VERSION

INFO_PATH = "/_synapse/client/wangxin/v1/info"


@attrs.frozen
class ServerInfoConfig:
    bridge_bot: str | None
    merchant_bot: str | None

    @staticmethod
    def from_dict(raw: Any) -> ServerInfoConfig:
        config = require_mapping(raw)
        reject_unknown(config, ("bridge_bot", "merchant_bot"))
        return ServerInfoConfig(
            bridge_bot=get_user_id(config, "bridge_bot", None),
            merchant_bot=get_user_id(config, "merchant_bot", None),
        )


class ServerInfo:
    """Synapse module: ``synapse_modules.server_info.ServerInfo``."""

    def __init__(self, config: ServerInfoConfig, api: ModuleApi):
        self._config = config
        self._api = api
        resource = RoutedJsonResource()
        resource.route("GET", "/", self._get_info)
        api.register_web_resource(INFO_PATH, resource)

    @staticmethod
    def parse_config(config: Any) -> ServerInfoConfig:
        try:
            return ServerInfoConfig.from_dict(config)
        except ModuleConfigError as e:
            raise to_synapse_config_error(e) from None

    async def _get_info(self, request: Any) -> tuple[int, Any]:
        return 200, {
            "version": WANGXIN_VERSION,
            "server_name": self._api.server_name,
            "bridge_bot": self._config.bridge_bot,
            "merchant_bot": self._config.merchant_bot,
            "features": loaded_features(),
        }
