"""Which accounts act for the service rather than for a person, as every module tells them.

Accounts that must never be a buyer, a follower or a parcel's owner: the ones a module's
configuration names (its bots, the circles' owner), every user an application service
registered (Synapse records which service in ``UserInfo.appservice_id``: the bridge bot and its
ghosts), and Synapse's own ``support`` and ``bot`` user types. The merchant circle applies the
same test in ``merchant_circle/lookups.py``.
"""

from __future__ import annotations

from collections.abc import Collection

from synapse.module_api import ModuleApi

SERVICE_USER_TYPES = ("support", "bot")


async def is_service_account(api: ModuleApi, user_id: str, configured: Collection[str]) -> bool:
    if user_id in configured:
        return True
    info = await api.get_userinfo_by_id(user_id)
    return info is not None and (info.appservice_id is not None or info.user_type in SERVICE_USER_TYPES)
