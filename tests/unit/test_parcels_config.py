"""The parcels module's options and carrier registry, without a homeserver: defaults, overrides,
and errors that name the key."""

from __future__ import annotations

from typing import Any

import pytest
from synapse.config import ConfigError

from synapse_modules.parcels import Parcels
from synapse_modules.parcels.config import DEFAULT_ROOM_NAME

SECRET = "p" * 32
BASE = {"platform_secret": SECRET, "bot_user_id": "@parcels:hs"}


def test_defaults() -> None:
    config = Parcels.parse_config(BASE)
    assert config.bot_user_id == "@parcels:hs"
    assert config.room_name == DEFAULT_ROOM_NAME == "Parcels · 快递"
    assert str(config.time_zone) == "Asia/Shanghai"
    assert config.service_secret is None and config.service_users == frozenset()
    assert set(config.carriers.carriers) == {"sf", "zto", "yto", "sto", "yunda", "jd", "ems"}


def test_carriers_can_be_added_replaced_and_removed() -> None:
    config = Parcels.parse_config({**BASE, "carriers": {
        "sto": {"name": "STO Express", "name_zh": "申通快递", "tracking_url": "https://track.example/sto/{number}"},
        "dbl": {"name": "Deppon", "name_zh": "德邦快递"},
        "ems": None,
    }})
    registry = config.carriers
    assert registry.link("sto", "77") == "https://track.example/sto/77"
    assert registry.display("dbl") == ("Deppon", "德邦快递") and registry.link("dbl", "1") is None
    assert registry.get("ems") is None and registry.display("ems") == ("ems", None)
    assert registry.get("sf") is not None  # the others keep their defaults


def test_service_users_and_secret() -> None:
    config = Parcels.parse_config({**BASE, "service_secret": "s" * 20,
                                   "service_users": ["@merchantbot:hs", "@wangxin-circles:hs"]})
    assert config.service_users == {"@merchantbot:hs", "@wangxin-circles:hs"}


@pytest.mark.parametrize(("extra", "path", "words"), [
    ({"platform_secret": "short"}, ("platform_secret",), "16 characters"),
    ({"bot_user_id": "parcels"}, ("bot_user_id",), "user id"),
    ({"service_secret": ""}, ("service_secret",), "non-empty"),
    ({"service_users": "@a:hs"}, ("service_users",), "list"),
    ({"service_users": ["@a:hs", "b"]}, ("service_users", "1"), "user id"),
    ({"time_zone": "Mars/Olympus"}, ("time_zone",), "time zone"),
    ({"drain_interval_ms": 10}, ("drain_interval_ms",), "at least 50"),
    ({"carriers": ["sf"]}, ("carriers",), "mapping"),
    ({"carriers": {"S F": {"name": "x", "name_zh": "y"}}}, ("carriers", "S F"), "code"),
    ({"carriers": {"x": {"name": "x"}}}, ("carriers", "x", "name_zh"), "missing"),
    ({"carriers": {"x": {"name": "x", "name_zh": "y", "url": "z"}}}, ("carriers", "x", "url"), "unknown"),
    ({"carriers": {"x": {"name": "x", "name_zh": "y", "tracking_url": "ftp://t/{number}"}}},
     ("carriers", "x", "tracking_url"), "http"),
    ({"carriers": {"x": {"name": "x", "name_zh": "y", "tracking_url": "https://t/"}}},
     ("carriers", "x", "tracking_url"), "{number}"),
    ({"colour": "red"}, ("colour",), "unknown option"),
])
def test_errors_name_the_key(extra: dict[str, Any], path: tuple[str, ...], words: str) -> None:
    with pytest.raises(ConfigError) as e:
        Parcels.parse_config({**BASE, **extra})
    assert tuple(e.value.path or ()) == path, e.value.path
    assert words in e.value.msg, e.value.msg


def test_the_platform_secret_and_bot_are_required() -> None:
    for missing in ("platform_secret", "bot_user_id"):
        with pytest.raises(ConfigError) as e:
            Parcels.parse_config({k: v for k, v in BASE.items() if k != missing})
        assert tuple(e.value.path or ()) == (missing,)
