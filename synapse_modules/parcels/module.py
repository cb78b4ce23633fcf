"""``Parcels``, the Synapse module: it makes the parts, hands each what it needs, registers the
callbacks and the HTTP resources, and starts the drain. What each part does is in its file."""

from __future__ import annotations

from typing import Any

from synapse.module_api import NOT_SPAM, JsonDict, ModuleApi, errors

from synapse_modules import _features
from synapse_modules._config import ModuleConfigError, to_synapse_config_error
from synapse_modules._internals import MembershipInternals
from synapse_modules.parcels.accounts import Accounts
from synapse_modules.parcels.claims import Drain
from synapse_modules.parcels.config import ParcelsConfig
from synapse_modules.parcels.delivery import Delivery
from synapse_modules.parcels.http import ParcelsHttp
from synapse_modules.parcels.rooms import ParcelRooms
from synapse_modules.parcels.rules import PARCELS_ROOM_TYPE
from synapse_modules.parcels.store import ParcelsStore


class Parcels:
    """Synapse module: ``synapse_modules.parcels.Parcels``."""

    def __init__(self, config: ParcelsConfig, api: ModuleApi):
        _features.loaded("parcels")
        if not api.is_mine(config.bot_user_id):
            raise RuntimeError(f"synapse_modules.parcels: bot_user_id {config.bot_user_id} is not a user of this "
                               f"server ({api.server_name})")
        self._config = config
        store = ParcelsStore(api)
        accounts = Accounts(api, config)
        rooms = ParcelRooms(api, config, store, MembershipInternals(api), accounts)
        delivery = Delivery(api, config, store, rooms)
        # Phone claims and left-behind cards are drained where background tasks run (the main
        # process unless run_background_tasks_on names a worker); the webhook renders its own
        # update's card in whichever process answers it.
        drain = Drain(api, store, accounts, delivery, runs_here=api.should_run_background_tasks())
        ParcelsHttp(api, config, store, accounts, rooms, delivery).register()
        api.register_third_party_rules_callbacks(on_add_user_third_party_identifier=drain.on_bind)
        api.register_spam_checker_callbacks(user_may_create_room=self.user_may_create_room)
        api.looping_background_call(drain.drain, config.drain_interval_ms, desc="wangxin_parcels_drain")

    @staticmethod
    def parse_config(config: Any) -> ParcelsConfig:
        try:
            return ParcelsConfig.from_dict(config)
        except ModuleConfigError as e:
            raise to_synapse_config_error(e) from None

    async def user_may_create_room(self, user_id: str, room_config: JsonDict) -> Any:
        """Parcels rooms are made by the server: a client cannot make one that looks like it."""
        creation = room_config.get("creation_content") or {}
        if isinstance(creation, dict) and creation.get("type") == PARCELS_ROOM_TYPE \
                and user_id != self._config.bot_user_id:
            return errors.Codes.FORBIDDEN, {"error": "Parcels rooms are made by the server, not by clients"}
        return NOT_SPAM
