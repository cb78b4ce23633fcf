"""Room aliases for rooms that already exist (used by the accounts module).

An account's channel is a merchant-circle room made before its account had a name people type
(merchants adopted as accounts), so its alias ``#<account_id>:<server>`` is added afterwards. The
module API can give a room an alias only when it creates it (``room_alias_name`` in
``create_room``); adding one later is what the client's ``PUT /directory/room/{alias}`` does,
through Synapse's directory handler, which this calls for the service account that owns the room.
"""

from __future__ import annotations

from synapse.module_api import ModuleApi
from synapse.types import RoomAlias, create_requester

from synapse_modules._internals.version import check_synapse_version


class DirectoryInternals:
    def __init__(self, api: ModuleApi):
        check_synapse_version()
        self._hs = api._hs  # the private homeserver object: used only in this adapter

    async def create_alias(self, alias: str, room_id: str, creator: str) -> None:
        """``alias`` -> ``room_id`` in the room directory, made by ``creator`` (a local user), as
        ``PUT /_matrix/client/v3/directory/room/{alias}`` would: the same checks (application
        services' exclusive namespaces, the alias creation rules, ``user_may_create_room_alias``)
        except membership. An alias that exists already is a 409 ``SynapseError``."""
        await self._hs.get_directory_handler().create_association(
            create_requester(creator), RoomAlias.from_string(alias), room_id, servers=None,
            check_membership=False,
        )
