"""Config validation names the key at fault and what it expected."""

from __future__ import annotations

import pytest

from bridges.config import parse_config
from synapse_modules.server_info import ServerInfo
from wangxin_common.config_errors import ConfigError, Section


def _bridge(**overrides):
    data = {
        "homeserver": {"url": "http://127.0.0.1:8008", "server_name": "example.org"},
        "appservice": {"id": "wangxin", "as_token": "a" * 20, "hs_token": "h" * 20, "port": 29330},
    }
    for path, value in overrides.items():
        section, key = path.split("__")
        data.setdefault(section, {})[key] = value
    return Section(data, (), "bridge.yaml")


def test_a_valid_bridge_config_gets_defaults() -> None:
    config = parse_config(_bridge())
    assert config.bot_user_id == "@wangxin:example.org"
    assert config.database.kind == "sqlite"
    assert config.is_ghost("@wx_abc:example.org")
    assert not config.is_ghost("@wx_abc:other.org")
    assert not config.is_ghost("@alice:example.org")


@pytest.mark.parametrize(
    "overrides, message",
    [
        ({"appservice__port": "29330"}, "key 'appservice.port': expected an integer"),
        ({"appservice__port": 70000}, "key 'appservice.port': expected a TCP port"),
        ({"appservice__hs_token": "a" * 20}, "key 'appservice.hs_token': must differ from as_token"),
        ({"homeserver__url": "localhost:8008"}, "key 'homeserver.url': expected an http(s) URL"),
        ({"appservice__bot_localpart": "Bad Name"}, "key 'appservice.bot_localpart'"),
        ({"database__kind": "mysql"}, "key 'database.kind': expected one of sqlite, postgres"),
        ({"database__kind": "postgres"}, "key 'database.dsn': is missing"),
        ({"appservice__hs_tokn": "x"}, "key 'appservice.hs_tokn': is not a known option"),
    ],
)
def test_bridge_config_errors_name_the_key(overrides, message) -> None:
    with pytest.raises(ConfigError) as e:
        parse_config(_bridge(**overrides))
    assert message in str(e.value)
    assert str(e.value).startswith("bridge.yaml: ")


def test_server_info_module_rejects_bad_options() -> None:
    from synapse.config import ConfigError as SynapseConfigError

    assert ServerInfo.parse_config({"bridge_bot": "@b:x"}).bridge_bot == "@b:x"
    assert ServerInfo.parse_config(None).merchant_bot is None
    with pytest.raises(SynapseConfigError) as e:
        ServerInfo.parse_config({"merchant_bot": "bot"})
    assert e.value.path == ("merchant_bot",)
    with pytest.raises(SynapseConfigError) as e:
        ServerInfo.parse_config({"merchantbot": "@b:x"})
    assert e.value.path == ("merchantbot",)
