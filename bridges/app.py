"""Assembles the bridge: database, homeserver client, bot, HTTP surface; starts and stops them."""

from __future__ import annotations

import logging
import os
from typing import Any

from twisted.internet import defer, reactor, task
from twisted.internet.error import CannotListenError
from twisted.web import server

from bridges import import_commands, mute_commands, sms_commands
from bridges.appservice import AppserviceApi
from bridges.config import BridgeConfig
from bridges.contact_import import ContactImporter, ImportHttp
from bridges.contact_import.store import ImportStore
from bridges.database import Database
from bridges.http import Router
from bridges.inbox import InboxProcessor
from bridges.management import GENERAL, INTRO, BridgeBot
from bridges.matrix_client import MatrixClient, MatrixRequestError
from bridges.sms.chat import SmsChat
from bridges.sms.chat_store import ChatStore
from bridges.sms.http_api import SmsHttpApi
from bridges.sms.identity import PhoneVerifier
from bridges.sms.invites import SmsInvites
from bridges.sms.service import SmsServiceImpl
from bridges.sms.signup_store import SignupStore
from bridges.store import BridgeStore
from bridges.wangxin_api import WangxinApi
from wangxin_common.commands import CommandRegistry

logger = logging.getLogger(__name__)

# Transaction ids and handled events are kept this long, far beyond Synapse's retry back-off.
KEEP_HISTORY_MS = 7 * 24 * 3600 * 1000


class StartupError(Exception):
    """The bridge cannot start; the message says why in one sentence."""


def bridge_commands(server_name: str, imports: import_commands.ContactImports, wangxin: WangxinApi,
                    sms: sms_commands.SmsFeatures) -> CommandRegistry:
    """Every command the bridge bot answers, each feature's with what it works on, in ``help``'s order."""
    registry = CommandRegistry("Wangxin bridge", INTRO)
    registry.include(GENERAL, server_name)
    registry.include(import_commands.COMMANDS, imports)
    registry.include(mute_commands.COMMANDS, wangxin)
    registry.include(sms_commands.COMMANDS, sms)
    return registry


class Bridge:
    def __init__(self, config: BridgeConfig, base_dir: str = "."):
        self.config = config
        self.db = Database(config.database, base_dir)
        self.store = BridgeStore(self.db)
        self.client = MatrixClient(config.homeserver.url, config.appservice.as_token)
        self.wangxin = WangxinApi(self.client, config.homeserver.service_secret)
        self.imports = ContactImporter(config, self.store, ImportStore(self.db), self.client, self.wangxin)
        self.sms = SmsServiceImpl(config, self.db, base_dir)
        chat_store = ChatStore(self.db)
        self.sms_chat = SmsChat(config, self.client, self.store, chat_store, self.sms)
        self.sms_invites = SmsInvites(config, chat_store, ImportStore(self.db), self.sms, self.client, self.wangxin)
        commands = bridge_commands(config.homeserver.server_name, self.imports, self.wangxin,
                                   sms_commands.SmsFeatures(self.sms_chat, self.sms_invites))
        self.bot = BridgeBot(config, self.store, self.client, commands,
                             intercept=self.sms_chat.handle_event, on_file=self.imports.remember_upload)
        self.inbox = InboxProcessor(self.store, self.bot.handle_event)
        self.api = AppserviceApi(config, self.store, self.inbox.wake, self.resolve_ghost)
        self.imports.arrival_listeners.append(self.sms_invites.on_arrival)
        # Synapse's msisdn delegate: phone-number sign-up codes (its URL carries a secret; docs/sms.md).
        self.phone_signup = PhoneVerifier(SignupStore(self.db), self.sms, config.sms.verification,
                                          config.sms.default_region,
                                          delegate_secret=config.sms.verification.delegate_secret)
        self.router = Router()
        self.router.add("GET", "/health", self._health)
        self.api.install(self.router)
        ImportHttp(self.imports).install(self.router)
        SmsHttpApi(self.sms).install(self.router)
        self.sms_invites.install(self.router)
        self.phone_signup.install(self.router)
        self._port: Any = None
        self._pruner: task.LoopingCall | None = None

    async def start(self) -> None:
        try:
            await self.db.migrate()
        except Exception as e:
            raise StartupError(f"cannot open the bridge database ({self.db.description}): {e}") from e
        site = server.Site(self.router)
        site.noisy = False
        a = self.config.appservice
        try:
            self._port = reactor.listenTCP(a.port, site, interface=a.bind_address)  # type: ignore[arg-type]
        except CannotListenError as e:
            raise StartupError(
                f"cannot listen on {a.bind_address}:{a.port}: the port is already in use"
                if "Address already in use" in str(e)
                else f"cannot listen on {a.bind_address}:{a.port}: {e.socketError}"
            ) from e
        logger.info("Bridge listening on http://%s:%d", a.bind_address, a.port)
        await self._ensure_bot()
        # Events that were stored but not handled before a crash or stop are handled now.
        self.inbox.wake()
        await self.imports.start()  # resumes imports interrupted by a crash or stop
        await self.sms.start()  # resumes SMS queued or interrupted while sending, and inbound texts
        self._pruner = task.LoopingCall(lambda: defer.ensureDeferred(self._prune()))
        self._pruner.start(3600, now=True)
        # A successful ping makes Synapse retry its stored transactions at once
        # (docs/synapse.md, "Application services").
        try:
            ms = await self.client.ping_appservice(a.id)
            logger.info("Homeserver ping round trip: %d ms", ms)
        except MatrixRequestError as e:
            logger.warning("Homeserver could not ping the bridge: %s", e)

    async def _prune(self) -> None:
        await self.store.prune_old(KEEP_HISTORY_MS)
        try:
            await self.phone_signup.prune()
        except Exception:  # the next hour tries again; the loop must not stop
            logger.exception("Could not prune phone sign-up sessions")

    async def _ensure_bot(self) -> None:
        try:
            created = await self.client.register_user(self.config.appservice.bot_localpart)
        except MatrixRequestError as e:
            raise StartupError(
                f"the homeserver at {self.config.homeserver.url} refused to register the bridge bot: {e}. "
                "Is the appservice registration loaded by Synapse (app_service_config_files) and are the "
                "tokens the same in both files?"
            ) from e
        if created:
            await self.client.set_displayname(self.config.bot_user_id, self.config.appservice.bot_displayname)

    async def resolve_ghost(self, user_id: str) -> bool:
        """Whether a ghost exists; SMS ghosts are created on demand (bridges/sms/chat.py)."""
        if self.sms_chat.is_sms_ghost(user_id):
            return await self.sms_chat.resolve_ghost(user_id)
        return await self.store.is_ghost_registered(user_id)

    async def _health(self, request: Any) -> tuple[int, Any]:
        return 200, {"status": "ok", "transactions": self.api.transactions_received, "processed": self.inbox.processed}

    async def stop(self) -> None:
        await self.imports.stop()
        await self.sms.stop()
        if self._pruner and self._pruner.running:
            self._pruner.stop()
        if self._port is not None:
            await self._port.stopListening()
        await self.client.close()
        self.db.close()


def base_dir_of(config_path: str) -> str:
    return os.path.dirname(os.path.abspath(config_path))
