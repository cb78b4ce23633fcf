"""A user's avatar set by the server (used by the accounts module).

An organisation's or a platform's own user (``@acct.<id>``) posts under the account's name and
avatar. The module API sets display names (``set_displayname``) but not avatars; this does what
the admin API's ``PUT /_matrix/client/v3/profile/{userId}/avatar_url`` does for an admin, through
Synapse's profile handler: the profile changes and, as for any profile change, the user's member
event in each room it is in follows (one event per room).
"""

from __future__ import annotations

from synapse.module_api import ModuleApi
from synapse.types import UserID, create_requester

from synapse_modules._internals.version import check_synapse_version


class ProfileInternals:
    def __init__(self, api: ModuleApi):
        check_synapse_version()
        self._hs = api._hs  # the private homeserver object: used only in this adapter

    async def set_avatar_url(self, user_id: str, avatar_url: str | None) -> None:
        """``user_id``'s avatar (an ``mxc://`` URI, or none), set as a server admin would."""
        await self._hs.get_profile_handler().set_avatar_url(
            target_user=UserID.from_string(user_id), requester=create_requester(user_id),
            new_avatar_url=avatar_url or "", by_admin=True,
        )
