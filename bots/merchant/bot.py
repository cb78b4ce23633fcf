"""The merchant bot's composition root: the circle API client, the parcels API client, the
publisher, the registry of commands (``commands.py``) and the dispatcher that answers them, on
the bots' shared Matrix machinery (``bots/common/matrix_bot.py``: login, sync, invitations,
replies that wait out rate limits, the notice for encrypted chats)."""

from __future__ import annotations

from typing import cast

from nio import MatrixRoom, RoomMessageImage

from bots.common.matrix_bot import SOMETHING_WRONG, MatrixBot, main_loop
from bots.merchant import commands, post_commands, stats_commands
from bots.merchant.circle_api import CircleApi, CircleApiError, NotAMerchant
from bots.merchant.config import MerchantBotConfig
from bots.merchant.posts_api import PostsApi, PostsApiError
from bots.merchant.publisher import Publisher
from bots.merchant.stats_api import StatsApi
from bots.merchant.storage import MerchantStorage
from bots.parcels.api import ParcelsApi, ParcelsApiError
from wangxin_common.commands import CommandRegistry, Dispatcher

WELCOME = "Hi! I'm the Wangxin merchant bot. Send “help” to see what I can do."


def merchant_commands(services: commands.MerchantServices) -> CommandRegistry:
    """Every command the merchant bot answers, in ``help``'s order."""
    registry = CommandRegistry("Wangxin merchant bot", commands.INTRO)
    registry.include(commands.GENERAL, None)
    registry.include(commands.CIRCLE, services)
    registry.include(commands.SHIPMENTS, services)
    # Help lists these even for a registry built without services (the unit tests build it so).
    posts = post_commands.PostServices(services.posts, services.storage) if services and services.posts else None
    registry.include(post_commands.ACCOUNTS, cast(post_commands.PostServices, posts))
    return registry


class MerchantBot(MatrixBot):
    name = "Merchant bot"
    welcome = WELCOME
    txn_prefix = "mb-"

    def __init__(self, config: MerchantBotConfig):
        self.storage: MerchantStorage = MerchantStorage(config.store_dir)
        super().__init__(config.account, self.storage)
        self.config = config
        self.circle = CircleApi(config.account.homeserver_url)
        self.posts = PostsApi(config.account.homeserver_url)
        parcels = ParcelsApi(config.account.homeserver_url, config.service_secret) if config.service_secret else None
        services = commands.MerchantServices(self.circle, self.storage, Publisher(self.client, self.circle, self.posts),
                                             parcels, config.time_zone, self.posts)
        registry = merchant_commands(services)
        # Official accounts' stats (数据统计), for their owners (stats_commands).
        self.stats = StatsApi(config.account.homeserver_url)
        registry.include(stats_commands.STATS, stats_commands.StatsServices(self.stats, self.posts))
        self.dispatcher = Dispatcher(
            registry, self.answer, fallback=SOMETHING_WRONG,
            errors={NotAMerchant: lambda e: commands.NOT_A_MERCHANT, CircleApiError: lambda e: SOMETHING_WRONG,
                    ParcelsApiError: lambda e: SOMETHING_WRONG, PostsApiError: lambda e: SOMETHING_WRONG},
        )

    def on_login(self, access_token: str) -> None:
        self.circle.use_token(access_token)
        self.posts.use_token(access_token)
        self.stats.use_token(access_token)

    def add_callbacks(self) -> None:
        self.client.add_event_callback(self._on_image, RoomMessageImage)  # type: ignore[arg-type]

    async def _on_image(self, room: MatrixRoom, event: RoomMessageImage) -> None:
        # The photo for the merchant's next post. In a merchant circle (where the bot may post)
        # every message is a post, never a command or a photo for the bot.
        if event.sender != self.client.user_id and self.answers_in(room):
            self.storage.save_last_image(event.sender, event.url)


def run(config: MerchantBotConfig) -> int:
    return main_loop(lambda: MerchantBot(config))
