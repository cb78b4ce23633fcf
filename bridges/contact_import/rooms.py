"""What an import does to rooms it did not create itself, shared by the run and by arrivals:
invite someone, open a direct chat from the importer, take placeholders out."""

from __future__ import annotations

import logging

from bridges.contact_import.store.rooms import RoomStore
from bridges.matrix_client import MatrixClient, MatrixRequestError, q
from bridges.wangxin_api import WangxinApi

logger = logging.getLogger(__name__)


class RoomActions:
    def __init__(self, client: MatrixClient, wangxin: WangxinApi, store: RoomStore) -> None:
        self.client = client
        self.wangxin = wangxin
        self.store = store

    async def invite(self, room_id: str, user_id: str) -> None:
        try:
            await self.client.request("POST", f"/_matrix/client/v3/rooms/{q(room_id)}/invite", {"user_id": user_id})
        except MatrixRequestError as e:
            if e.status == 403 and e.error and ("already in the room" in e.error or "is banned" in e.error):
                return
            raise

    async def open_dm(self, importer: str, invitee: str, name: str, source_label: str) -> bool:
        """A direct chat from the importer to the invitee, through the module (only it may act as
        a local user); False if the invitee may no longer be invited (not discoverable)."""
        note = f"You are in my contacts from {source_label} as “{name[:80]}”. (Moved over with Wangxin.)"
        try:
            answer = await self.wangxin.call("POST", "/import/dm", importer, {"invitee": invitee, "note": note})
        except MatrixRequestError as e:
            if e.status == 403:
                return False
            raise
        await self.store.add_dm(importer, invitee, str(answer["room_id"]))
        return True

    async def remove_placeholders(self, ghosts: list[str], memberships: list[tuple[str, str]]) -> None:
        for room_id, ghost in memberships:
            try:
                await self.client.leave_room(room_id, as_user=ghost)
            except MatrixRequestError as e:
                logger.info("Placeholder %s could not leave %s: %s", ghost, room_id, e)
        for ghost in ghosts:
            try:
                await self.client.set_displayname(ghost, "")
            except MatrixRequestError:
                pass
