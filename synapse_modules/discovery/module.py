"""``Discovery``, the Synapse module: it makes the parts, hands each what it needs, registers
the HTTP resource, and starts the cleanup loop. What each part does is in its file."""

from __future__ import annotations

import logging
from typing import Any

from synapse.module_api import ModuleApi

from synapse_modules import _features
from synapse_modules._config import ModuleConfigError, to_synapse_config_error
from synapse_modules._internals import MembershipInternals
from synapse_modules.discovery.config import DiscoveryConfig
from synapse_modules.discovery.coupons import CouponDesk
from synapse_modules.discovery.directory import Directory
from synapse_modules.discovery.http import DiscoveryHttp
from synapse_modules.discovery.pairing import Entrant, blocked_predicate, pair_at_random
from synapse_modules.discovery.pairings import Pairings
from synapse_modules.discovery.rendezvous import Rendezvous
from synapse_modules.discovery.rules import DAY_MS
from synapse_modules.discovery.store import DiscoveryStore
from synapse_modules.discovery.store.cleanup import cleanup_txn
from synapse_modules.discovery.store.people import forget_person_txn, profiles_among_txn

logger = logging.getLogger(__name__)


def pair_shakes(entrants: list[Entrant], blocks: list[tuple[str, str]]) -> list[tuple[str, str]]:
    return pair_at_random(entrants, blocked_predicate(blocks))


def pair_angles(entrants: list[Entrant], excluded: list[tuple[str, str]]) -> list[tuple[str, str]]:
    """36.8°: everyone in the window held the phone at the angle; any two may pair (no region:
    the moment is what they share), except blocked pairs and pairs made today."""
    return pair_at_random([Entrant(e.user_id) for e in entrants], blocked_predicate(excluded))


class Discovery:
    """Synapse module: ``synapse_modules.discovery.Discovery``."""

    def __init__(self, config: DiscoveryConfig, api: ModuleApi):
        _features.loaded("discovery")
        self._config = config
        self._api = api
        self._store = DiscoveryStore(api)
        self._directory = Directory(api, config)
        # Every process serves the API: shakes meet in the database (store/windows.py).
        shake = Rendezvous(api, self._store, "shake", config.shake_window_ms, config.shake_settle_ms,
                           config.rate_limits["shake"], pair_shakes)
        angle = Rendezvous(api, self._store, "angle", config.angle.window_ms, config.angle.settle_ms,
                           config.rate_limits["angle"], pair_angles, repeat_after_ms=DAY_MS)
        coupons = CouponDesk(api, config.coupons, self._store)
        pairings = Pairings(api, config, self._store, MembershipInternals(api), coupons)
        DiscoveryHttp(api, config, self._store, self._directory, shake, angle, pairings).register()
        # On the background-tasks instance only (docs/synapse.md, "Where module work runs").
        api.looping_background_call(self._cleanup, config.cleanup_interval_ms, desc="wangxin_discovery_cleanup")
        if coupons.enabled:  # coupons due again after a failure, or left by a process that stopped
            api.looping_background_call(coupons.poll, config.coupons.poll_ms, desc="wangxin_discovery_coupons")
        self._cleaning = False

    @staticmethod
    def parse_config(config: Any) -> DiscoveryConfig:
        try:
            return DiscoveryConfig.from_dict(config)
        except ModuleConfigError as e:
            raise to_synapse_config_error(e) from None

    async def _cleanup(self) -> None:
        if self._cleaning:  # a slow pass is still running
            return
        self._cleaning = True
        try:
            c = self._config
            now = self._api.get_current_time_msec()
            await self._store.run(cleanup_txn, now, c.location_ttl_ms, c.bottle_ttl_hours * 3600_000,
                                  c.request_ttl_hours * 3600_000, c.decline_cooldown_hours * 3600_000)
            # People who became merchants after they opted in leave discovery.
            merchants = await self._directory.all_merchants()
            if merchants:
                for user_id in await self._store.run(profiles_among_txn, sorted(merchants)):
                    await self._store.run(forget_person_txn, user_id)
        except Exception:
            logger.exception("Discovery cleanup failed; retrying on the next tick")
        finally:
            self._cleaning = False
