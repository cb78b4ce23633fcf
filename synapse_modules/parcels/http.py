"""The parcels HTTP API (``/_synapse/client/wangxin/v1``); see docs/parcels.md.

- ``POST /shipments``, ``GET /shipments/{shipment_id}``: the shop platform, by its secret;
- ``GET /parcels``: a person's own parcels (their access token, or the modules' service secret
  with ``?user_id=`` for a bot acting for them);
- ``GET /parcels/merchant``: the shipments a merchant sent (``?order_id=`` for one order), same
  authentication, without who bought them.

Every handler checks all its input (``rules``) before it writes anything, so a refused request
changes nothing. Phone-addressed shipments never tell the platform or the merchant which
account holds the number.
"""

from __future__ import annotations

from typing import Any

from synapse.module_api import ModuleApi, SynapseRequest, errors

from synapse_modules._http import RoutedJsonResource, acting_user, bearer_matches, parse_json_object
from synapse_modules._internals import keyed_lock
from synapse_modules.parcels.accounts import Accounts
from synapse_modules.parcels.cards import parcel_json
from synapse_modules.parcels.config import ParcelsConfig
from synapse_modules.parcels.delivery import Delivery, parcel_of
from synapse_modules.parcels.rooms import RECENT_MS, ParcelRooms
from synapse_modules.parcels.rules import MAX_TEXT_CHARS, MAX_UPDATES_PER_SHIPMENT, parse_shipment
from synapse_modules.parcels.store import ParcelsStore
from synapse_modules.parcels.store.shipments import (
    Shipment,
    get_shipment_txn,
    recent_of_merchant_txn,
    recent_of_user_txn,
    record_update_txn,
)

API_PREFIX = "/_synapse/client/wangxin/v1"
MERCHANT_LIST_LIMIT = 100

Response = tuple[int, Any]


def _history(shipment: Shipment) -> list[dict[str, Any]]:
    return [u.to_json() for u in parcel_of(shipment).state.history]


class ParcelsHttp:
    def __init__(self, api: ModuleApi, config: ParcelsConfig, store: ParcelsStore, accounts: Accounts,
                 rooms: ParcelRooms, delivery: Delivery):
        self._api = api
        self._config = config
        self._store = store
        self._accounts = accounts
        self._rooms = rooms
        self._delivery = delivery
        # Updates of one shipment are stored one at a time in this process (on PostgreSQL,
        # concurrent ones from several processes are retried by Synapse on a conflict).
        self._shipments = keyed_lock(api, "wangxin_parcels_shipment")

    def register(self) -> None:
        shipments = RoutedJsonResource()
        shipments.route("POST", r"/", self._post_shipment)
        shipments.route("GET", r"/(?P<shipment_id>[^/]+)", self._get_shipment)
        parcels = RoutedJsonResource()
        parcels.route("GET", r"/", self._get_parcels)
        parcels.route("GET", r"/merchant", self._get_merchant_shipments)
        self._api.register_web_resource(f"{API_PREFIX}/shipments", shipments)
        self._api.register_web_resource(f"{API_PREFIX}/parcels", parcels)

    def _require_platform(self, request: SynapseRequest) -> None:
        if not bearer_matches(request, self._config.platform_secret):
            raise errors.SynapseError(403, "Wrong or missing platform secret", errors.Codes.FORBIDDEN)

    async def _check_person(self, field: str, user_id: str) -> None:
        if not await self._accounts.is_active_local_user(user_id):
            raise errors.SynapseError(404, f"'{field}': no user {user_id} on this server", errors.Codes.NOT_FOUND)
        if await self._accounts.is_service_account(user_id):
            raise errors.SynapseError(400, f"'{field}': {user_id} is a service account, not a person",
                                      errors.Codes.INVALID_PARAM)

    # -- the platform -------------------------------------------------------------------------

    async def _post_shipment(self, request: SynapseRequest) -> Response:
        self._require_platform(request)
        shipment = parse_shipment(parse_json_object(request))
        if shipment.buyer is not None:
            await self._check_person("buyer", shipment.buyer)
            user_id: str | None = shipment.buyer
        else:
            assert shipment.buyer_phone is not None
            user_id = await self._accounts.owner_of_phone(shipment.buyer_phone)
            if user_id is not None and await self._accounts.is_service_account(user_id):
                raise errors.SynapseError(400, "'buyer_phone' belongs to a service account, not a person",
                                          errors.Codes.INVALID_PARAM)
        if shipment.merchant is not None:
            await self._check_person("merchant", shipment.merchant)
        async with self._shipments.queue(shipment.shipment_id):
            recorded = await self._store.run(record_update_txn, shipment, user_id, self._api.get_current_time_msec())
        if recorded.conflict is not None:
            raise errors.SynapseError(
                409, f"'{recorded.conflict}' differs from what earlier updates of shipment {shipment.shipment_id} "
                "said; a shipment's buyer, carrier and tracking number never change (use a new shipment_id)",
                errors.Codes.INVALID_PARAM)
        if recorded.full:
            raise errors.SynapseError(
                400, f"'shipment_id': shipment {shipment.shipment_id} has {MAX_UPDATES_PER_SHIPMENT} updates already",
                errors.Codes.INVALID_PARAM)
        if recorded.changed and recorded.user_id is not None:
            # The card is brought up to date before the answer; if that fails, the update is
            # stored and the background drain finishes the card.
            await self._delivery.bring_up_to_date(recorded.user_id, wait=True)
        return 200, {"shipment_id": shipment.shipment_id, "status": recorded.status, "changed": recorded.changed}

    async def _get_shipment(self, request: SynapseRequest, shipment_id: str) -> Response:
        self._require_platform(request)
        if len(shipment_id) > MAX_TEXT_CHARS:
            raise errors.SynapseError(400, f"'shipment_id' is longer than {MAX_TEXT_CHARS} characters",
                                      errors.Codes.TOO_LARGE)
        shipment = await self._store.run(get_shipment_txn, shipment_id)
        if shipment is None:
            raise errors.SynapseError(404, f"No shipment {shipment_id}", errors.Codes.NOT_FOUND)
        view = parcel_json(parcel_of(shipment), self._config.carriers)
        view.update(
            buyer=shipment.buyer,
            buyer_phone=f"+{shipment.buyer_phone}" if shipment.buyer_phone else None,
            merchant=shipment.merchant,
            history=_history(shipment),
        )
        return 200, view

    # -- people and merchants ----------------------------------------------------------------

    async def _get_parcels(self, request: SynapseRequest) -> Response:
        """The person's parcels on their way, and those delivered or returned in the last 30 days."""
        user_id = await acting_user(request, self._api, self._config.service_secret)
        since = self._api.get_current_time_msec() - RECENT_MS
        room_id = await self._rooms.current(user_id)
        parcels = []
        for shipment in await self._store.run(recent_of_user_txn, user_id, since):
            view = parcel_json(parcel_of(shipment), self._config.carriers)
            view.update(
                merchant=shipment.merchant,
                event_id=shipment.card_event_id if shipment.card_room_id == room_id else None,
                history=_history(shipment),
            )
            parcels.append(view)
        return 200, {"room_id": room_id, "parcels": parcels}

    async def _get_merchant_shipments(self, request: SynapseRequest) -> Response:
        """What a merchant shipped (recent, as above), never who bought it."""
        merchant = await acting_user(request, self._api, self._config.service_secret)
        args = request.args.get(b"order_id")
        order_id = args[0].decode("utf-8", "replace") if args else None
        if order_id is not None and not 0 < len(order_id) <= MAX_TEXT_CHARS:
            raise errors.SynapseError(400, f"'order_id' must be 1 to {MAX_TEXT_CHARS} characters",
                                      errors.Codes.INVALID_PARAM)
        since = self._api.get_current_time_msec() - RECENT_MS
        shipments = await self._store.run(recent_of_merchant_txn, merchant, since, order_id, MERCHANT_LIST_LIMIT)
        views = []
        for shipment in shipments:
            view = parcel_json(parcel_of(shipment), self._config.carriers)
            view["history"] = _history(shipment)
            views.append(view)
        return 200, {"merchant": merchant, "shipments": views}
