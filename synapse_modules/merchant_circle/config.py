"""The merchant circle's options (its ``config:`` under ``modules:``): pure, no Synapse import.

Errors are :class:`ModuleConfigError` naming the key; ``MerchantCircle.parse_config`` hands them
to Synapse, which prints the whole path (``modules.<item N>.config.<key>``).
"""

from __future__ import annotations

import re
from typing import Any

import attrs

from synapse_modules._config import (
    ModuleConfigError,
    get_bool,
    get_int,
    get_secret,
    get_str,
    get_user_id,
    reject_unknown,
    require_mapping,
)

DEFAULT_SPACE_NAME = "Merchant Circle / 商家圈"
# A follow started by a chat waits for the invite to be persisted (it is queued from
# user_may_invite, before Synapse's own checks): ``chat_follow_wait_s`` in growing steps
# (``queue.chat_confirm_delays``), then the invite never happened.
DEFAULT_CHAT_FOLLOW_WAIT_S = 30
# How often the membership watcher reads the delta stream: how soon a leave is an unfollow and a
# merchant that got into a moments room is removed.
DEFAULT_MEMBERSHIP_POLL_MS = 1000
_LOCALPART_RE = re.compile(r"^[a-z0-9._=/+-]+$")

KNOWN_OPTIONS = (
    "platform_secret", "merchant_bot", "owner_localpart", "posts_per_day", "repost_cooldown_hours",
    "space_name", "follow_batch_size", "chat_follow_wait_s", "follow_concurrency",
    "edits_per_post_per_day", "membership_poll_ms", "shard_size", "fanout_concurrency",
    "space_filing",
)
# Followers per room of a circle before the next follower goes into a further room (a shard):
# docs/merchant-circle.md, "Circles past one room".
DEFAULT_SHARD_SIZE = 10000


@attrs.frozen
class MerchantCircleConfig:
    platform_secret: str
    merchant_bot: str | None
    owner_localpart: str
    posts_per_day: int
    repost_cooldown_hours: int
    space_name: str
    follow_batch_size: int
    chat_follow_wait_s: int = DEFAULT_CHAT_FOLLOW_WAIT_S
    follow_concurrency: int = 16
    edits_per_post_per_day: int = 5
    membership_poll_ms: int = DEFAULT_MEMBERSHIP_POLL_MS
    shard_size: int = DEFAULT_SHARD_SIZE  # 0: one room, however many follow
    fanout_concurrency: int = 4  # rooms a post is mirrored into at once
    space_filing: bool = True  # circles and merchant chats are filed in each follower's 商家圈 space

    @staticmethod
    def from_dict(raw: Any) -> MerchantCircleConfig:
        config = require_mapping(raw)
        reject_unknown(config, KNOWN_OPTIONS)
        secret = get_secret(config, "platform_secret")
        owner = get_str(config, "owner_localpart", "wangxin-circles")
        if not _LOCALPART_RE.match(owner):
            raise ModuleConfigError(f"expected a lower-case Matrix localpart, found {owner!r}", ("owner_localpart",))
        return MerchantCircleConfig(
            platform_secret=secret,
            merchant_bot=get_user_id(config, "merchant_bot", None),
            owner_localpart=owner,
            posts_per_day=get_int(config, "posts_per_day", 3, minimum=1),
            repost_cooldown_hours=get_int(config, "repost_cooldown_hours", 7 * 24, minimum=0),
            space_name=get_str(config, "space_name", DEFAULT_SPACE_NAME),
            follow_batch_size=get_int(config, "follow_batch_size", 200, minimum=1),
            chat_follow_wait_s=get_int(config, "chat_follow_wait_s", DEFAULT_CHAT_FOLLOW_WAIT_S, minimum=1),
            follow_concurrency=get_int(config, "follow_concurrency", 16, minimum=1),
            edits_per_post_per_day=get_int(config, "edits_per_post_per_day", 5, minimum=0),
            membership_poll_ms=get_int(config, "membership_poll_ms", DEFAULT_MEMBERSHIP_POLL_MS, minimum=50),
            shard_size=get_int(config, "shard_size", DEFAULT_SHARD_SIZE, minimum=0),
            fanout_concurrency=get_int(config, "fanout_concurrency", 4, minimum=1),
            space_filing=get_bool(config, "space_filing", True),
        )

    @property
    def cooldown_ms(self) -> int:
        return self.repost_cooldown_hours * 3600 * 1000
