"""Arrivals and placeholder claims.

When a discoverable user binds a number (module hook, ``POST /_wangxin/v1/arrivals``), every
placeholder with that number leaves its rooms, they are invited instead and get each
importer's direct-chat invitation. An export naming its owner's own id (e.g. a WeChat wxid) is
only a claim: the importers holding placeholders with that id are asked to confirm it
(``import accept``) before anything changes, because anyone can write any id into a file.

Arrivals are queued durably (``import_arrivals``) and handled in order by one drain loop; when
handling one fails (the homeserver is unwell), the drain stops and tries again later, so the
arrival is not lost.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Awaitable, Callable
from typing import Any

from twisted.internet import reactor

from bridges.config import BridgeConfig
from bridges.contact_import.rooms import RoomActions
from bridges.contact_import.store import ImportStore
from bridges.contact_import.store.arrivals import Arrival
from bridges.contact_import.store.rooms import Placeholder
from bridges.drain import DrainLoop
from bridges.matrix_client import MatrixClient, MatrixRequestError, txn_id_for
from bridges.wangxin_api import WangxinApi

logger = logging.getLogger(__name__)

RETRY_AFTER_S = 30.0
USER_ID_RE = re.compile(r"^@[^:\s]+:[^\s]+$")
# Called with (user_id, phone) after an arrival was handled (SMS invitations: joined).
ArrivalListener = Callable[[str, str], Awaitable[None]]


class Arrivals:
    def __init__(self, config: BridgeConfig, store: ImportStore, client: MatrixClient, wangxin: WangxinApi,
                 rooms: RoomActions, clock: Any = reactor) -> None:
        self.config = config
        self.store = store
        self.client = client
        self.wangxin = wangxin
        self.rooms = rooms
        self.listeners: list[ArrivalListener] = []
        self._loop = DrainLoop(self._drain_once, log=logger,
                               failed=f"Handling arrivals stopped; retrying in {RETRY_AFTER_S:.0f}s",
                               retry_after_s=RETRY_AFTER_S, clock=clock)

    def wake(self) -> None:
        self._loop.wake()

    async def add(self, arrivals: list[Arrival]) -> None:
        """Queue arrivals durably (``ImportStore.add_arrivals``) and handle them."""
        await self.store.add_arrivals(arrivals)
        self.wake()

    async def _drain_once(self) -> bool:
        # No item is skipped: a failure is the homeserver's, and the arrival is retried.
        batch = await self.store.pending_arrivals()
        for seq, user_id, phone, source_key, only in batch:
            if phone:
                await self._arrive(user_id, phone, only)
            elif source_key:
                await self._claim(seq, user_id, source_key)
            await self.store.arrival_done(seq)
        return bool(batch)

    async def _arrive(self, user_id: str, phone: str, only: list[str] | None = None) -> None:
        """``user_id`` bound ``phone`` (verified by the homeserver): they are the person behind the
        placeholders and invitable contacts with that number; with ``only``, for those importers
        alone (the people who invited that number by SMS)."""
        notes: dict[str, tuple[str, str]] = {}
        for p in await self.store.placeholders_for(phone, None):
            if p.importer == user_id or (only is not None and p.importer not in only):
                continue
            await self._replace_placeholder(p, user_id)
            notes.setdefault(p.importer, (p.name, p.source_label))
        for inv in await self.store.invitable_for(phone):
            if inv.importer != user_id and (only is None or inv.importer in only):
                notes.setdefault(inv.importer, (inv.name, inv.source_label))
        for importer, (name, label) in notes.items():
            if not await self.store.dm_room(importer, user_id):
                await self.rooms.open_dm(importer, user_id, name, label)
            await self.store.remove_invitable(importer, phone)
        for listener in self.listeners:
            await listener(user_id, phone)

    async def _replace_placeholder(self, p: Placeholder, user_id: str) -> int:
        """Invite ``user_id`` to every room holding the placeholder, which leaves; how many rooms."""
        rooms = await self.store.rooms_of(p.ghost_id, ("invited", "joined"))
        for room_id, importer in rooms:
            members = await self.store.room_members(room_id)
            if user_id not in members:
                await self.rooms.invite(room_id, user_id)
                await self.store.set_member(room_id, user_id, importer, "member", "invited")
            try:
                await self.client.leave_room(room_id, as_user=p.ghost_id)
            except MatrixRequestError as e:
                logger.info("Placeholder %s could not leave %s: %s", p.ghost_id, room_id, e)
            await self.store.set_member(room_id, p.ghost_id, importer, "placeholder", "left")
        await self.store.mark_arrived(p.ghost_id, user_id)
        return len(rooms)

    async def _claim(self, seq: int, claimant: str, source_key: str) -> None:
        """``claimant``'s own export names them as ``source_key`` (e.g. their WeChat id).

        A file proves nothing: anyone can write someone else's id into one, and would otherwise be
        invited into every group that person was a placeholder in. So no placeholder is replaced
        here: each importer holding one with that id is asked, in their chat with the bot, to
        confirm with ``import accept``. Only discoverable claimants are announced, once per id.
        """
        if await self.store.claimed_before(claimant, source_key, seq):
            return
        if not await self.is_discoverable(claimant):
            return
        by_importer: dict[str, list[Placeholder]] = {}
        for p in await self.store.placeholders_for(None, source_key):
            if p.importer != claimant:
                by_importer.setdefault(p.importer, []).append(p)
        source_id = source_key.split(":", 1)[-1]
        for importer, placeholders in sorted(by_importer.items()):
            room_id = await self.store.management_room(importer)
            if room_id is None:
                continue
            rooms: set[str] = set()
            for p in placeholders:
                rooms.update(r for r, _ in await self.store.rooms_of(p.ghost_id, ("invited", "joined")))
            p = placeholders[0]
            text = (f"{claimant} says they are “{p.name}” from {p.source_label} ({source_id}), who is a placeholder "
                    f"in {len(rooms)} of your imported rooms. If you know that account is them (ask them on "
                    f"{p.source_label} if unsure), send “import accept {claimant}” and they take the "
                    "placeholder's place; otherwise ignore this message.")
            await self.client.send_notice(room_id, text, txn_id_for("import-claim", str(seq), importer))

    async def accept_claim(self, importer: str, claimant: str) -> str:
        """The importer confirms that ``claimant`` is the person behind the placeholders they claimed."""
        if not USER_ID_RE.match(claimant) or not claimant.endswith(":" + self.config.homeserver.server_name):
            return "Send “import accept @name:server” with the account named in my message."
        placeholders = await self.store.claimed_placeholders(importer, claimant)
        if not placeholders:
            return f"{claimant} has not asked to take anyone's place in your imported rooms (or already has)."
        if not await self.is_discoverable(claimant):
            return f"{claimant} no longer lets imports find them, so nothing was changed."
        rooms = 0
        for p in placeholders:
            rooms += await self._replace_placeholder(p, claimant)
        first = placeholders[0]
        dm = ""
        if not await self.store.dm_room(importer, claimant) and await self.rooms.open_dm(
            importer, claimant, first.name, first.source_label
        ):
            dm = " and got a direct-chat invitation from you"
        return f"Done: {claimant} took the place of “{first.name}” in {rooms} rooms{dm}."

    async def is_discoverable(self, user_id: str) -> bool:
        answer = await self.wangxin.call("GET", "/import/discoverable", user_id)
        return bool(answer.get("discoverable"))
