"""Contact import, the homeserver side (通讯录转移): who is here, DM invitations, arrivals.

The bridge (``bridges/contact_import/``) does the import; this module answers what only the
homeserver knows or may do. HTTP, all under ``/_synapse/client/wangxin/v1/import``:

- ``GET|PUT /discoverable`` ``{"discoverable": bool}`` (the user's own token, or the service
  secret with ``?user_id=``): whether other people's imports may find the user by phone number.
  Off by default.
- ``POST /lookup`` ``{"msisdns": ["8613800138000", ...]}`` (service secret, ``?user_id=`` the
  importer) -> ``{"matches": {msisdn: user_id}}``: only discoverable, active users (and the
  importer's own numbers, mapped to the importer); at most
  ``lookups_per_day`` numbers per importer per UTC day (429 ``M_LIMIT_EXCEEDED`` beyond).
- ``POST /dm`` ``{"invitee": "@b:hs", "note": "..."}`` (service secret, ``?user_id=`` the
  importer): a direct chat created *as the importer* with the invitee invited, the note as the
  invite reason; idempotent (the room carries a marker state event it is found by again).
- ``POST /invited`` ``{"msisdn": digits, "invited": bool}`` (service secret, ``?user_id=`` the
  inviter): the inviter texted that number a personal SMS invitation (or withdrew it). The
  number's sign-up is then told to the bridge for that inviter even if the new user is not
  discoverable, and ``/dm`` may invite them.
- ``GET /quota`` (service secret with ``?user_id=``, or the user's own token) ->
  ``{"lookups_per_day", "used_today", "remaining_today", "resets_in_ms"}``; ``DELETE /quota?user_id=``
  (a server admin's token): that user may look up a full day's numbers again today.
- ``POST /find_room`` ``{"marker": key}`` (service secret, ``?user_id=`` a member): the room
  holding ``org.wangxin.import.marker`` with that state key, for crash recovery of the bridge.

``on_add_user_third_party_identifier`` queues every bound phone number in a table (durable);
a loop on the background-tasks process tells the bridge (``POST {bridge_url}/_wangxin/v1/arrivals``
with the service secret) and retries until it answers 200. Arrivals of users who are not
discoverable are never told: the bridge learns nothing about them.
"""

from __future__ import annotations

import hashlib
import logging
import re
from typing import Any

import attrs
from synapse.module_api import ModuleApi, errors, parse_json_object_from_request

from synapse_modules import _features, _internals
from synapse_modules import contact_import_store as store
from synapse_modules._config import (
    ModuleConfigError,
    get_int,
    get_str,
    reject_unknown,
    require_mapping,
    to_synapse_config_error,
)
from synapse_modules._http import USER_ID_RE, RoutedJsonResource, acting_user
from synapse_modules._store import ModuleStore

logger = logging.getLogger(__name__)

API_PREFIX = "/_synapse/client/wangxin/v1/import"
MARKER_TYPE = "org.wangxin.import.marker"
MSISDN_RE = re.compile(r"^[1-9][0-9]{5,15}$")
MAX_LOOKUP_BATCH = 1000


@attrs.frozen
class ContactImportConfig:
    service_secret: str
    bridge_url: str | None = None
    lookups_per_day: int = 50_000
    delivery_interval_ms: int = 1000

    @staticmethod
    def from_dict(raw: Any) -> ContactImportConfig:
        config = require_mapping(raw)
        reject_unknown(config, ("service_secret", "bridge_url", "lookups_per_day", "delivery_interval_ms"))
        bridge_url = get_str(config, "bridge_url", None)
        if bridge_url is not None and not bridge_url.startswith(("http://", "https://")):
            raise ModuleConfigError(f"expected an http(s) URL, found {bridge_url!r}", ("bridge_url",))
        return ContactImportConfig(
            service_secret=get_str(config, "service_secret"),
            bridge_url=bridge_url.rstrip("/") if bridge_url else None,
            lookups_per_day=get_int(config, "lookups_per_day", 50_000, minimum=1),
            delivery_interval_ms=get_int(config, "delivery_interval_ms", 1000, minimum=50),
        )


def dm_marker(importer: str, invitee: str) -> str:
    return "dm:" + hashlib.sha256(f"{importer}\x00{invitee}".encode()).hexdigest()[:32]


class ContactImport:
    """Synapse module: ``synapse_modules.contact_import.ContactImport``."""

    def __init__(self, config: ContactImportConfig, api: ModuleApi):
        _features.loaded("contact_import")
        self._config = config
        self._api = api
        self._internals = _internals.ContactImportInternals(api)
        self._store = ModuleStore(api, "wangxin_import", store.SCHEMA)
        self._delivering = False
        resource = RoutedJsonResource()
        resource.route("GET", "/discoverable", self._get_discoverable)
        resource.route("PUT", "/discoverable", self._put_discoverable)
        resource.route("POST", "/lookup", self._lookup)
        resource.route("POST", "/dm", self._dm)
        resource.route("POST", "/find_room", self._find_room)
        resource.route("POST", "/invited", self._invited)
        resource.route("GET", "/quota", self._get_quota)
        resource.route("DELETE", "/quota", self._reset_quota)
        api.register_web_resource(API_PREFIX, resource)
        api.register_third_party_rules_callbacks(on_add_user_third_party_identifier=self._on_add_threepid)
        if config.bridge_url:
            # Runs on the background-tasks process only (docs/synapse.md, "Where module work runs").
            api.looping_background_call(
                self._deliver_arrivals, config.delivery_interval_ms, desc="wangxin_import_arrivals"
            )

    @staticmethod
    def parse_config(config: Any) -> ContactImportConfig:
        try:
            return ContactImportConfig.from_dict(config)
        except ModuleConfigError as e:
            raise to_synapse_config_error(e) from None

    # -- plumbing ------------------------------------------------------------------------

    async def _db(self, desc: str, func: Any, *args: Any) -> Any:
        return await self._store.run_named(desc, func, *args)

    async def _requester(self, request: Any, *, service_only: bool = False) -> str:
        return await acting_user(request, self._api, self._config.service_secret, service_only=service_only)

    # -- HTTP ----------------------------------------------------------------------------

    async def _get_discoverable(self, request: Any) -> tuple[int, Any]:
        user_id = await self._requester(request)
        return 200, {"discoverable": await self._db("wangxin_import_disc", store.is_discoverable_txn, user_id)}

    async def _put_discoverable(self, request: Any) -> tuple[int, Any]:
        user_id = await self._requester(request)
        body = parse_json_object_from_request(request)
        on = body.get("discoverable")
        if not isinstance(on, bool):
            raise errors.SynapseError(400, "'discoverable' must be true or false", errors.Codes.BAD_JSON)
        await self._db("wangxin_import_set_disc", store.set_discoverable_txn, user_id, on)
        if on:
            # Numbers bound before the user turned this on count as arrivals now.
            numbers = await self._internals.msisdns_of(user_id)
            await self._db("wangxin_import_arrive", store.add_arrivals_txn, user_id, numbers)
        return 200, {"discoverable": on}

    async def _lookup(self, request: Any) -> tuple[int, Any]:
        importer = await self._requester(request, service_only=True)
        body = parse_json_object_from_request(request)
        numbers = body.get("msisdns")
        if not isinstance(numbers, list) or not all(isinstance(n, str) for n in numbers):
            raise errors.SynapseError(400, "'msisdns' must be a list of strings", errors.Codes.BAD_JSON)
        if len(numbers) > MAX_LOOKUP_BATCH:
            raise errors.SynapseError(400, f"At most {MAX_LOOKUP_BATCH} numbers per request", errors.Codes.TOO_LARGE)
        wanted = sorted({n for n in numbers if MSISDN_RE.match(n)})
        wait_ms = await self._db(
            "wangxin_import_quota", store.take_lookup_quota_txn, importer, len(wanted), self._config.lookups_per_day
        )
        if wait_ms:
            raise errors.SynapseError(
                429,
                f"This account may look up at most {self._config.lookups_per_day} numbers a day",
                errors.Codes.LIMIT_EXCEEDED,
                additional_fields={"retry_after_ms": wait_ms},
            )
        matches = await self._internals.users_by_msisdn(wanted, store.DISCOVERABLE_TABLE)
        # The importer's own numbers are theirs to know: they are not "someone else" to invite.
        for own in await self._internals.msisdns_of(importer):
            if own in wanted:
                matches[own] = importer
        return 200, {"matches": matches}

    async def _quota(self, user_id: str) -> dict[str, int]:
        used = await self._db("wangxin_import_quota_used", store.lookups_used_today_txn, user_id)
        limit = self._config.lookups_per_day
        return {"lookups_per_day": limit, "used_today": used, "remaining_today": max(0, limit - used),
                "resets_in_ms": store.ms_until_next_day()}

    async def _get_quota(self, request: Any) -> tuple[int, Any]:
        """The importer's lookups today: the bridge checks a file against them before spending any."""
        return 200, await self._quota(await self._requester(request))

    async def _reset_quota(self, request: Any) -> tuple[int, Any]:
        """A server admin gives ``?user_id=`` today's lookups back (a large address book sooner)."""
        requester = await self._api.get_user_by_req(request)
        if not await self._api.is_user_admin(requester.user.to_string()):
            raise errors.SynapseError(403, "Only a server admin may reset lookups", errors.Codes.FORBIDDEN)
        args = request.args.get(b"user_id")
        user_id = args[0].decode("utf-8") if args else ""
        if not USER_ID_RE.match(user_id) or not self._api.is_mine(user_id):
            raise errors.SynapseError(400, "user_id must name a local user", errors.Codes.INVALID_PARAM)
        await self._db("wangxin_import_quota_reset", store.reset_lookups_today_txn, user_id)
        logger.info("%s reset today's phone lookups of %s", requester.user.to_string(), user_id)
        return 200, await self._quota(user_id)

    async def _dm(self, request: Any) -> tuple[int, Any]:
        importer = await self._requester(request, service_only=True)
        body = parse_json_object_from_request(request)
        invitee = body.get("invitee")
        note = body.get("note") or ""
        if not isinstance(invitee, str) or not USER_ID_RE.match(invitee) or not self._api.is_mine(invitee):
            raise errors.SynapseError(400, "'invitee' must name a local user", errors.Codes.INVALID_PARAM)
        if not isinstance(note, str) or len(note) > 500:
            raise errors.SynapseError(400, "'note' must be a string of at most 500 characters", errors.Codes.BAD_JSON)
        if invitee == importer or not await self._may_find(importer, invitee):
            raise errors.SynapseError(403, "That user cannot be invited by an import", errors.Codes.FORBIDDEN)
        marker = dm_marker(importer, invitee)
        room_id = await self._internals.room_with_marker(importer, MARKER_TYPE, marker)
        created = False
        if room_id is None:
            config = {
                "preset": "trusted_private_chat",
                "is_direct": True,
                "topic": note,
                "initial_state": [{"type": MARKER_TYPE, "state_key": marker, "content": {"kind": "dm"}}],
            }
            room_id, _ = await self._api.create_room(importer, config, ratelimit=False)
            created = True
            await self._add_direct(importer, invitee, room_id)
        membership = await self._internals.membership(invitee, room_id)
        if membership is None:
            await self._internals.invite(importer, invitee, room_id, {"is_direct": True, "reason": note})
            membership = "invite"
        return 200, {"room_id": room_id, "created": created, "membership": membership}

    async def _may_find(self, importer: str, invitee: str) -> bool:
        """Discoverable users, and users whose number the importer invited by SMS."""
        if await self._db("wangxin_import_disc", store.is_discoverable_txn, invitee):
            return True
        numbers = await self._internals.msisdns_of(invitee)
        return bool(numbers) and bool(await self._db("wangxin_import_invited_any", store.invited_any_txn, importer,
                                                     numbers))

    async def _invited(self, request: Any) -> tuple[int, Any]:
        """``{"msisdn": digits, "invited": bool}``: the importer invited (or stopped inviting) a number by SMS."""
        inviter = await self._requester(request, service_only=True)
        body = parse_json_object_from_request(request)
        address = body.get("msisdn")
        invited = body.get("invited")
        if not isinstance(address, str) or not MSISDN_RE.match(address):
            raise errors.SynapseError(400, "'msisdn' must be E.164 digits without +", errors.Codes.INVALID_PARAM)
        if not isinstance(invited, bool):
            raise errors.SynapseError(400, "'invited' must be true or false", errors.Codes.BAD_JSON)
        await self._db("wangxin_import_set_invited", store.set_invited_txn, inviter, address, invited)
        return 200, {"msisdn": address, "invited": invited}

    async def _add_direct(self, user_id: str, other: str, room_id: str) -> None:
        """Record the DM in the importer's ``m.direct`` as Element does for DMs it creates."""
        manager = self._api.account_data_manager
        current = await manager.get_global(user_id, "m.direct") or {}
        direct = {k: list(v) for k, v in current.items() if isinstance(v, list)}
        rooms = direct.setdefault(other, [])
        if room_id not in rooms:
            rooms.append(room_id)
            await manager.put_global(user_id, "m.direct", direct)

    async def _find_room(self, request: Any) -> tuple[int, Any]:
        member = await self._requester(request, service_only=True)
        body = parse_json_object_from_request(request)
        marker = body.get("marker")
        if not isinstance(marker, str) or not marker:
            raise errors.SynapseError(400, "'marker' must be a string", errors.Codes.BAD_JSON)
        return 200, {"room_id": await self._internals.room_with_marker(member, MARKER_TYPE, marker)}

    # -- arrivals ------------------------------------------------------------------------

    async def _on_add_threepid(self, user_id: str, medium: str, address: str) -> None:
        if medium != "msisdn":
            return
        # Queued for every user; the delivery loop drops those who are not discoverable.
        await self._db("wangxin_import_arrive", store.add_arrivals_txn, user_id, [address])

    async def _deliver_arrivals(self) -> None:
        if self._delivering:
            return
        self._delivering = True
        try:
            while True:
                batch = await self._db("wangxin_import_pending", store.pending_arrivals_txn, 100)
                if not batch:
                    return
                await self._api.http_client.post_json_get_json(
                    f"{self._config.bridge_url}/_wangxin/v1/arrivals",
                    {"arrivals": [{"user_id": u, "msisdn": a, "invited_by": by} for u, a, by in batch]},
                    headers={b"Authorization": [f"Bearer {self._config.service_secret}".encode()]},
                )
                await self._db("wangxin_import_delivered", store.delete_arrivals_txn, [(u, a) for u, a, _ in batch])
        except Exception as e:  # the bridge is down or refused: retried on the next tick
            logger.info("Could not tell the bridge about new phone numbers yet: %s", e)
        finally:
            self._delivering = False
