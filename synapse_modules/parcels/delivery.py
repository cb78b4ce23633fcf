"""Bringing a person's cards up to date: their room made if need be, a card posted for each new
shipment, edited in place (``m.replace``) when it changed, and an alert sent for the statuses
that notify.

**One writer per person, across processes.** The webhook may be answered by any process, so
two updates for one person can be rendered at the same time in two processes: both could make
a room, post a card twice, or send their edits in the wrong order. A lease in the database
(``wangxin_parcels_leases``, one per person, with an expiry for a holder that crashed) lets one
process at a time write a person's room and cards; within a process, Synapse's ``Linearizer``
queues the person's renders so they do not poll the lease. A render reads the person's cards
that are behind *after* taking the lease, so the last render after the last update always shows
the last state, whatever order the requests ran in.

**Nothing is lost or sent twice.** Each change of a shipment moves its ``version`` on, in the
transaction that stores it; its card is up to date once a render recorded that version. A new card's
event id, and each alert, is recorded as soon as it is sent, so a retry edits that card rather
than posting another and does not notify again. A render that failed or never ran (an error, a
crash) is done by the background drain once the mark is due.
"""

from __future__ import annotations

import logging
import secrets

from synapse.module_api import ModuleApi

from synapse_modules._internals import keyed_lock
from synapse_modules.parcels.cards import Parcel, alert_content, card_content, content_hash, edit_content
from synapse_modules.parcels.config import ParcelsConfig
from synapse_modules.parcels.rooms import ParcelRooms
from synapse_modules.parcels.rules import parcel_state
from synapse_modules.parcels.store import ParcelsStore
from synapse_modules.parcels.store.shipments import (
    Rendered,
    Shipment,
    set_alerted_txn,
    set_card_txn,
    stale_cards_txn,
)
from synapse_modules.parcels.store.work import RenderWork, begin_render_txn, postpone_render_txn, render_done_txn

logger = logging.getLogger(__name__)

# A render takes well under a second; a holder that has not finished after this is gone.
LEASE_TTL_MS = 60_000
# How long a request waits for another process's render of the same person, at most (then the
# background drain finishes the job).
LEASE_WAIT_S = 10.0
RETRY_AFTER_FAILURE_MS = 60_000


def parcel_of(shipment: Shipment) -> Parcel:
    return Parcel(shipment.shipment_id, shipment.carrier, shipment.tracking_number,
                  parcel_state(shipment.history), shipment.order_id)


class Delivery:
    def __init__(self, api: ModuleApi, config: ParcelsConfig, store: ParcelsStore, rooms: ParcelRooms):
        self._api = api
        self._config = config
        self._store = store
        self._rooms = rooms
        self._people = keyed_lock(api, "wangxin_parcels_person")

    async def bring_up_to_date(self, user_id: str, *, wait: bool) -> bool:
        """Render the person's cards that are behind. ``wait``: wait (a while) for another
        process's render of the same person; else give up at once. Returns whether it rendered;
        a failure is logged and left to the drain (the webhook has stored the update already)."""
        async with self._people.queue(user_id):
            lease, holder = f"person:{user_id}", secrets.token_hex(8)
            work = await self._take(user_id, lease, holder, wait)
            if work is None:
                logger.info("Cards of %s are being written by another process; left to it", user_id)
                return False
            rendered: list[Rendered] = []
            try:
                await self._render(user_id, work, rendered)
                return True
            except Exception as e:
                logger.warning("Could not bring the parcel cards of %s up to date (retried later): %r", user_id, e)
                await self._store.run(postpone_render_txn, user_id,
                                      self._api.get_current_time_msec() + RETRY_AFTER_FAILURE_MS)
                return False
            finally:
                await self._store.run(render_done_txn, lease, holder, rendered)

    async def _take(self, user_id: str, lease: str, holder: str, wait: bool) -> RenderWork | None:
        deadline = self._api.get_current_time_msec() + (LEASE_WAIT_S * 1000 if wait else 0)
        delay = 0.02
        while True:
            now = self._api.get_current_time_msec()
            work = await self._store.run(begin_render_txn, user_id, lease, holder, now, LEASE_TTL_MS)
            if work is not None or now >= deadline:
                return work
            await self._api.sleep(delay)
            delay = min(delay * 2, 0.25)

    async def _render(self, user_id: str, work: RenderWork, rendered: list[Rendered]) -> None:
        stale = work.stale
        if not stale:
            return  # another render caught up with this update already
        room_id, made = await self._rooms.room_of(user_id, work.room)
        if made:  # a new room: the person's recent parcels get a card there too
            stale = await self._store.run(stale_cards_txn, user_id)
        for shipment in stale:
            rendered.append(await self._render_card(room_id, shipment))

    async def _render_card(self, room_id: str, shipment: Shipment) -> Rendered:
        registry = self._config.carriers
        parcel = parcel_of(shipment)
        content = card_content(parcel, registry, self._config.time_zone)
        digest = content_hash(content)
        card_id = shipment.card_event_id if shipment.card_room_id == room_id else None
        if card_id is None:
            card_id = await self._send(room_id, content)
            await self._store.run(set_card_txn, shipment.shipment_id, room_id, card_id, digest)
        elif digest != shipment.card_hash:
            await self._send(room_id, edit_content(card_id, content))
        current = parcel.state.current
        if shipment.alert_key == current.key and shipment.alerted_key != current.key:
            await self._send(room_id, alert_content(parcel, registry, card_id))
            await self._store.run(set_alerted_txn, shipment.shipment_id, current.key)
        return Rendered(shipment.shipment_id, shipment.version, digest)

    async def _send(self, room_id: str, content: dict) -> str:
        event = await self._api.create_and_send_event_into_room(
            {"type": "m.room.message", "room_id": room_id, "sender": self._config.bot_user_id, "content": content}
        )
        return str(event.event_id)
