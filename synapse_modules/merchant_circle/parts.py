"""The merchant circle's running parts, for the modules built on it (the accounts module).

Synapse builds each entry of ``modules:`` once per process, in order, and gives modules no way to
find each other. An account's channel *is* a circle (docs/accounts.md): the accounts module, listed
after ``MerchantCircle``, takes the parts that make circles, follow, mute and file from here, rather
than building a second follow queue over the same tables.
"""

from __future__ import annotations

import attrs
from synapse.module_api import ModuleApi

from synapse_modules._internals import MembershipInternals
from synapse_modules.merchant_circle.circles import Circles
from synapse_modules.merchant_circle.config import MerchantCircleConfig
from synapse_modules.merchant_circle.lookups import CircleLookups
from synapse_modules.merchant_circle.mirrors import Mirrors
from synapse_modules.merchant_circle.moments import Moments
from synapse_modules.merchant_circle.mutes import Mutes
from synapse_modules.merchant_circle.queue import FollowQueue
from synapse_modules.merchant_circle.shards import Shards
from synapse_modules.merchant_circle.spaces import Spaces
from synapse_modules.merchant_circle.store import MerchantCircleStore


@attrs.frozen
class CircleParts:
    api: ModuleApi
    config: MerchantCircleConfig
    store: MerchantCircleStore
    lookups: CircleLookups
    members: MembershipInternals
    mutes: Mutes
    queue: FollowQueue
    circles: Circles
    moments: Moments
    spaces: Spaces
    shards: Shards
    mirrors: Mirrors


_running: dict[str, CircleParts] = {}  # server name -> the parts this process built


def publish(parts: CircleParts) -> None:
    _running[parts.api.server_name] = parts


def running(server_name: str) -> CircleParts | None:
    """The merchant circle this process built for ``server_name``, if it was built (before)."""
    return _running.get(server_name)
