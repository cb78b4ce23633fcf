"""The merchant circle module's config and post validation, without a homeserver."""

from __future__ import annotations

import pytest
from synapse.api.errors import SynapseError
from synapse.config import ConfigError

from synapse_modules.merchant_circle import MerchantCircle
from synapse_modules.merchant_circle.queue import chat_confirm_delays
from synapse_modules.merchant_circle.rules import validate_product

SECRET = "s" * 32


def test_defaults_follow_wechat_subscription_accounts() -> None:
    config = MerchantCircle.parse_config({"platform_secret": SECRET})
    assert config.posts_per_day == 3
    assert config.repost_cooldown_hours == 7 * 24
    assert config.space_name == "Merchant Circle / 商家圈"
    assert config.merchant_bot is None
    assert config.chat_follow_wait_s == 30
    assert config.edits_per_post_per_day == 5


def test_a_chat_follow_waits_in_growing_steps_adding_up_to_the_setting() -> None:
    assert chat_confirm_delays(30) == (1, 1, 2, 2, 4, 4, 8, 8)
    assert chat_confirm_delays(8) == (1, 1, 2, 2, 2)
    assert chat_confirm_delays(1) == (1,)


@pytest.mark.parametrize(
    "config, path",
    [
        ({}, ("platform_secret",)),
        ({"platform_secret": "short"}, ("platform_secret",)),
        ({"platform_secret": SECRET, "posts_per_day": 0}, ("posts_per_day",)),
        ({"platform_secret": SECRET, "repost_cooldown_hours": "7d"}, ("repost_cooldown_hours",)),
        ({"platform_secret": SECRET, "merchant_bot": "merchantbot"}, ("merchant_bot",)),
        ({"platform_secret": SECRET, "owner_localpart": "Circles Owner"}, ("owner_localpart",)),
        ({"platform_secret": SECRET, "post_per_day": 3}, ("post_per_day",)),
        ({"platform_secret": SECRET, "chat_follow_wait_s": 0}, ("chat_follow_wait_s",)),
        ({"platform_secret": SECRET, "edits_per_post_per_day": -1}, ("edits_per_post_per_day",)),
        ({"platform_secret": SECRET, "shard_size": -1}, ("shard_size",)),
        ({"platform_secret": SECRET, "fanout_concurrency": 0}, ("fanout_concurrency",)),
    ],
)
def test_config_errors_name_the_key(config, path) -> None:
    with pytest.raises(ConfigError) as e:
        MerchantCircle.parse_config(config)
    assert e.value.path == path


def test_product_validation_names_the_field() -> None:
    good = {"id": "p1", "title": "Tea", "price": "9.90", "currency": "CNY", "url": "https://shop.example/p1"}
    assert validate_product(good) == good
    for field, value in (("id", ""), ("title", None), ("price", True), ("currency", 3), ("url", "ftp://x")):
        with pytest.raises(SynapseError) as e:
            validate_product({**good, field: value})
        assert e.value.errcode == "M_BAD_JSON" and f"org.wangxin.product.{field}" in e.value.msg


def test_the_membership_poll_interval_defaults_to_a_second_and_names_its_key() -> None:
    assert MerchantCircle.parse_config({"platform_secret": SECRET}).membership_poll_ms == 1000
    assert MerchantCircle.parse_config({"platform_secret": SECRET, "membership_poll_ms": 100}).membership_poll_ms == 100
    for bad in (0, 49, "1s", True):
        with pytest.raises(ConfigError) as e:
            MerchantCircle.parse_config({"platform_secret": SECRET, "membership_poll_ms": bad})
        assert e.value.path == ("membership_poll_ms",)


def test_circles_take_10000_followers_per_room_unless_told_otherwise() -> None:
    assert MerchantCircle.parse_config({"platform_secret": SECRET}).shard_size == 10000
    one_room = MerchantCircle.parse_config({"platform_secret": SECRET, "shard_size": 0, "fanout_concurrency": 8})
    assert (one_room.shard_size, one_room.fanout_concurrency) == (0, 8)
