"""Group mute with per-member exemptions (屏蔽群消息，但领导和重要的人不屏蔽).

HTTP (user's own access token, or the Wangxin service secret with ``?user_id=`` for the bridge bot):

- ``PUT /_synapse/client/wangxin/v1/rooms/{roomId}/mute``
  ``{"exempt_users": [...], "exempt_moderators": bool, "exempt_mentions": bool, "exempt_replies": bool}``
  mutes the room for the user (the same rule Element writes) and installs the exemptions;
  ``GET`` returns the setting, ``DELETE`` unmutes and removes every rule it created.
- ``GET|PUT /_synapse/client/wangxin/v1/vips`` ``{"users": [...]}``: people who break through every
  room the user has muted. ``GET /_synapse/client/wangxin/v1/mutes`` lists the user's mutes.

A change is checked whole first, then planned (``mute_rules.py``) and written in one transaction,
push rules and stored settings together: a refused or failed change leaves both as they were.

How it stays right while clients change push rules (see ``mute_rules.py`` for the rules):
a loop on the push-rules writer reads the push-rules stream and the membership delta stream
(cheap, indexed reads of what changed since the last look, and no read at all while Synapse's
in-memory stream positions say nothing changed) every ``repair_interval_ms``.
For each user with exemptions whose rules changed it restores the order (an Element re-mute
moves the mute rule above the exemptions), puts exemptions to sleep when the client unmutes
and wakes them when it mutes again; when the user leaves a room, that room's rules go (its mute
rule only if Wangxin wrote it: a client's own mute rule stays).
"""

from __future__ import annotations

import logging
from typing import Any

import attrs
from synapse.module_api import ModuleApi, errors

from synapse_modules import _features, _internals, mute_store
from synapse_modules._config import (
    ModuleConfigError,
    get_int,
    get_str,
    reject_unknown,
    require_mapping,
    to_synapse_config_error,
)
from synapse_modules._http import RoutedJsonResource, acting_user, parse_json_object
from synapse_modules._store import ModuleStore
from synapse_modules.mute_rules import (
    MuteSettings,
    Rule,
    RulesPlan,
    exemption_rules,
    is_wangxin_rule,
    looks_like_mute,
    plan_room_mute,
    plan_room_removal,
    plan_vips,
    user_id_problem,
    vip_rules,
)

logger = logging.getLogger(__name__)

API_PREFIX = "/_synapse/client/wangxin/v1"
ENCRYPTED_NOTE = (
    "This room is end-to-end encrypted: the server sees who sends a message and their power level, "
    "so exemptions for members, VIPs and moderators work everywhere, pushes to phones included. "
    "Mentions and replies are inside the encrypted message: only clients that check push rules after "
    "decrypting (Element does) can let them through; phones get no push for them."
)


@attrs.frozen
class MuteConfig:
    max_exemptions_per_room: int = 50
    max_vips: int = 50
    service_secret: str | None = None
    repair_interval_ms: int = 500

    @staticmethod
    def from_dict(raw: Any) -> MuteConfig:
        config = require_mapping(raw)
        reject_unknown(config, ("max_exemptions_per_room", "max_vips", "service_secret", "repair_interval_ms"))
        return MuteConfig(
            max_exemptions_per_room=get_int(config, "max_exemptions_per_room", 50, minimum=1),
            max_vips=get_int(config, "max_vips", 50, minimum=0),
            service_secret=get_str(config, "service_secret", None),
            repair_interval_ms=get_int(config, "repair_interval_ms", 500, minimum=50),
        )


class MuteExemptions:
    """Synapse module: ``synapse_modules.mute_exemptions.MuteExemptions``."""

    def __init__(self, config: MuteConfig, api: ModuleApi):
        _features.loaded("mute_exemptions")
        self._config = config
        self._api = api
        self._internals = _internals.SynapseInternals(api)
        # One change of a user's rules at a time (API writes and the repair loop alike).
        self._user_locks = _internals.keyed_lock(api, "wangxin_mute_user")
        self._rules_pos: int | None = None
        self._members_pos: int | None = None
        self._store = ModuleStore(api, "wangxin_mute", mute_store.SCHEMA)
        # Each resource serves the paths below its mount point (RoutedJsonResource is a leaf).
        rooms = RoutedJsonResource()
        rooms.route("PUT", r"/(?P<room_id>[^/]+)/mute", self._put_mute)
        rooms.route("GET", r"/(?P<room_id>[^/]+)/mute", self._get_mute)
        rooms.route("DELETE", r"/(?P<room_id>[^/]+)/mute", self._delete_mute)
        api.register_web_resource(API_PREFIX + "/rooms", rooms)
        vips = RoutedJsonResource()
        vips.route("GET", "/", self._get_vips)
        vips.route("PUT", "/", self._put_vips)
        api.register_web_resource(API_PREFIX + "/vips", vips)
        mutes = RoutedJsonResource()
        mutes.route("GET", "/", self._get_mutes)
        api.register_web_resource(API_PREFIX + "/mutes", mutes)
        if self._internals.is_push_rules_writer:
            # Only the push-rules writer can write push rules; the loop lives there.
            api.looping_background_call(
                self._repair_tick, config.repair_interval_ms, desc="wangxin_mute_repair", run_on_all_instances=True
            )
        self._repairing = False

    @staticmethod
    def parse_config(config: Any) -> MuteConfig:
        try:
            return MuteConfig.from_dict(config)
        except ModuleConfigError as e:
            raise to_synapse_config_error(e) from None

    # -- plumbing ------------------------------------------------------------------------

    async def _db(self, desc: str, func: Any, *args: Any) -> Any:
        return await self._store.run_named(desc, func, *args)

    async def _locked(self, user_id: str, func: Any, *args: Any) -> Any:
        async with self._user_locks.queue(user_id):
            return await func(*args)

    async def _requester(self, request: Any) -> str:
        return await acting_user(request, self._api, self._config.service_secret)

    def _require_writer(self) -> None:
        if not self._internals.is_push_rules_writer:
            raise errors.SynapseError(
                503,
                "Route /_synapse/client/wangxin/v1/(rooms/*/mute|vips|mutes) to the push-rules writer process",
                "M_UNAVAILABLE",
            )

    async def _room_facts(self, room_id: str, user_id: str) -> tuple[bool, bool, bool]:
        """(room exists here, user is joined, room is encrypted), from three state keys only."""
        state = await self._api.get_room_state(
            room_id, [("m.room.create", ""), ("m.room.member", user_id), ("m.room.encryption", "")]
        )
        exists = ("m.room.create", "") in state
        member = state.get(("m.room.member", user_id))
        joined = member is not None and member.content.get("membership") == "join"
        return exists, joined, ("m.room.encryption", "") in state

    async def _check_room(self, room_id: str, user_id: str) -> bool:
        if not room_id.startswith("!"):
            raise errors.SynapseError(400, "roomId must be a room id starting with '!'", errors.Codes.INVALID_PARAM)
        exists, joined, encrypted = await self._room_facts(room_id, user_id)
        if not exists:
            raise errors.SynapseError(404, "Unknown room", errors.Codes.NOT_FOUND)
        if not joined:
            raise errors.SynapseError(403, "You are not a member of this room", errors.Codes.FORBIDDEN)
        return encrypted

    # -- HTTP ----------------------------------------------------------------------------

    async def _put_mute(self, request: Any, room_id: str) -> tuple[int, Any]:
        user_id = await self._requester(request)
        self._require_writer()
        # The whole body is checked before anything is written.
        settings = self._parse_settings(room_id, parse_json_object(request))
        encrypted = await self._check_room(room_id, user_id)
        await self._locked(user_id, self._install_room, user_id, settings)
        return 200, self._describe(settings, dormant=False, encrypted=encrypted)

    def _parse_settings(self, room_id: str, body: dict[str, Any]) -> MuteSettings:
        known = ("exempt_users", "exempt_moderators", "exempt_mentions", "exempt_replies")
        for key in body:
            if key not in known:
                raise errors.SynapseError(400, f"Unknown field '{key}'", errors.Codes.BAD_JSON)
        unique = _user_ids(body.get("exempt_users", []), "exempt_users")
        if len(unique) > self._config.max_exemptions_per_room:
            raise errors.SynapseError(
                400,
                f"'exempt_users' has {len(unique)} users; at most {self._config.max_exemptions_per_room} per room",
                errors.Codes.BAD_JSON,
            )
        flags = {}
        for key in known[1:]:
            value = body.get(key, False)
            if not isinstance(value, bool):
                raise errors.SynapseError(400, f"'{key}' must be true or false", errors.Codes.BAD_JSON)
            flags[key] = value
        return MuteSettings(room_id=room_id, exempt_users=unique, **flags)

    def _describe(self, settings: MuteSettings, dormant: bool, encrypted: bool) -> dict[str, Any]:
        body: dict[str, Any] = {"room_id": settings.room_id, **settings.to_json(), "active": not dormant,
                                "encrypted": encrypted}
        if encrypted:
            body["note"] = ENCRYPTED_NOTE
        return body

    async def _get_mute(self, request: Any, room_id: str) -> tuple[int, Any]:
        user_id = await self._requester(request)
        found = await self._db("wangxin_get_mute", mute_store.get_settings_txn, user_id, room_id)
        if found is None:
            raise errors.SynapseError(404, "This room has no Wangxin mute for you", errors.Codes.NOT_FOUND)
        _, _, encrypted = await self._room_facts(room_id, user_id)
        return 200, self._describe(found.settings, found.dormant, encrypted)

    async def _delete_mute(self, request: Any, room_id: str) -> tuple[int, Any]:
        user_id = await self._requester(request)
        self._require_writer()
        await self._locked(user_id, self._remove_room, user_id, room_id, True)
        return 200, {}

    async def _get_mutes(self, request: Any) -> tuple[int, Any]:
        user_id = await self._requester(request)
        rows = await self._db("wangxin_list_mutes", mute_store.list_settings_txn, user_id)
        return 200, {"mutes": [{"room_id": m.settings.room_id, **m.settings.to_json(), "active": not m.dormant}
                               for m in rows]}

    async def _get_vips(self, request: Any) -> tuple[int, Any]:
        user_id = await self._requester(request)
        return 200, {"users": list(await self._db("wangxin_get_vips", mute_store.get_vips_txn, user_id))}

    async def _put_vips(self, request: Any) -> tuple[int, Any]:
        user_id = await self._requester(request)
        self._require_writer()
        body = parse_json_object(request)
        for key in body:
            if key != "users":
                raise errors.SynapseError(400, f"Unknown field '{key}'", errors.Codes.BAD_JSON)
        vips = _user_ids(body.get("users"), "users")
        if len(vips) > self._config.max_vips:
            raise errors.SynapseError(400, f"'users' has {len(vips)} users; at most {self._config.max_vips}",
                                      errors.Codes.BAD_JSON)
        await self._locked(user_id, self._install_vips, user_id, vips)
        return 200, {"users": list(vips)}

    # -- rule maintenance (always under the user's lock) -------------------------------------

    async def _put(self, user_id: str, rules: list[Rule]) -> None:
        # Each PUT lands on top of the override rules: write the last-evaluated rule first.
        for rule in reversed(rules):
            await self._internals.put_push_rule(user_id, "override", rule.rule_id, rule.conditions, rule.actions)

    async def _apply(self, user_id: str, plan: RulesPlan, field: str, also: Any) -> None:
        """The plan's rule changes and ``also`` (the settings they implement) in one transaction:
        if anything fails, the rules and the settings stay as they were."""
        try:
            await self._internals.change_push_rules(
                user_id, "override", delete=plan.delete, put=[(r.rule_id, r.conditions, r.actions) for r in plan.put],
                enable=plan.enable, also=also,
            )
        except _internals.PushRuleLimitExceeded as e:
            raise errors.SynapseError(
                400, f"'{field}': {e}. Exempt fewer people, or unmute rooms you no longer need muted.",
                errors.Codes.INVALID_PARAM,
            ) from None

    async def _install_room(self, user_id: str, settings: MuteSettings) -> None:
        before = await self._db("wangxin_get_mute", mute_store.get_settings_txn, user_id, settings.room_id)
        vips = await self._db("wangxin_get_vips", mute_store.get_vips_txn, user_id)
        current = await self._internals.list_push_rules(user_id, "override")
        plan = plan_room_mute(settings, user_id, current, vips, owned_before=bool(before and before.owns_mute_rule))
        await self._apply(user_id, plan, "exempt_users", lambda txn: mute_store.upsert_settings_txn(
            txn, user_id, settings, plan.owns_mute_rule))

    async def _remove_room(self, user_id: str, room_id: str, unmute: bool) -> None:
        """Unmute (``unmute``: the user asked) or clean up after the user left the room."""
        stored = await self._db("wangxin_get_mute", mute_store.get_settings_txn, user_id, room_id)
        current = await self._internals.list_push_rules(user_id, "override")
        plan = plan_room_removal(room_id, current, unmute=unmute, owns_mute_rule=bool(stored and stored.owns_mute_rule))
        await self._apply(user_id, plan, "room_id", lambda txn: mute_store.delete_settings_txn(txn, user_id, room_id))

    async def _install_vips(self, user_id: str, vips: tuple[str, ...]) -> None:
        await self._db("wangxin_get_vips", mute_store.get_vips_txn, user_id)  # (creates the tables if new)
        plan = plan_vips(vips, await self._internals.list_push_rules(user_id, "override"))
        await self._apply(user_id, plan, "users", lambda txn: mute_store.set_vips_txn(txn, user_id, vips))

    async def repair_user(self, user_id: str) -> int:
        """Bring one user's rules back in line with their settings; returns the number of writes."""
        return await self._locked(user_id, self._repair_user, user_id)

    async def _repair_user(self, user_id: str) -> int:
        writes = 0
        rules = await self._internals.list_push_rules(user_id, "override")
        by_id = {r.rule_id: r for r in rules}
        vips = await self._db("wangxin_get_vips", mute_store.get_vips_txn, user_id)
        wanted_vips = vip_rules(vips)
        mutes = {r.rule_id: r for r in rules
                 if r.enabled and not is_wangxin_rule(r.rule_id) and looks_like_mute(r.rule_id, r.conditions,
                                                                                         r.actions, r.rule_id)}
        top_mute = max((r.priority for r in mutes.values()), default=None)
        vips_ok = all(
            r.rule_id in by_id and (top_mute is None or by_id[r.rule_id].priority > top_mute) for r in wanted_vips
        )
        for stored in await self._db("wangxin_list_mutes", mute_store.list_settings_txn, user_id):
            settings, dormant = stored.settings, stored.dormant
            wanted = exemption_rules(settings, user_id)
            mute = mutes.get(settings.room_id)
            if mute is None and stored.owns_mute_rule and settings.room_id not in by_id:
                # The client deleted Wangxin's mute rule: a mute rule written later is the client's.
                await self._db("wangxin_disown_mute", mute_store.disown_mute_rule_txn, user_id, settings.room_id)
            if mute is None:
                # Unmuted in the client: exemptions go to sleep rather than mute anything.
                if not dormant:
                    for rule in wanted:
                        if rule.rule_id in by_id:
                            await self._internals.set_push_rule_enabled(user_id, "override", rule.rule_id, False)
                            writes += 1
                    await self._db("wangxin_dormant", mute_store.set_dormant_txn, user_id, settings.room_id, True)
                continue
            if dormant:
                for rule in wanted:
                    if rule.rule_id in by_id:
                        await self._internals.set_push_rule_enabled(user_id, "override", rule.rule_id, True)
                        writes += 1
                await self._db("wangxin_dormant", mute_store.set_dormant_txn, user_id, settings.room_id, False)
            in_order = all(r.rule_id in by_id and by_id[r.rule_id].priority > mute.priority for r in wanted)
            if not in_order or dormant:
                await self._put(user_id, wanted)
                writes += len(wanted)
                vips_ok = False  # they must end above this room's exemptions' new positions too
        if not vips_ok and wanted_vips:
            await self._put(user_id, wanted_vips)
            writes += len(wanted_vips)
        if writes:
            logger.info("Repaired push rules of %s (%d writes)", user_id, writes)
        return writes

    # -- the repair loop -----------------------------------------------------------------------

    async def _repair_tick(self) -> None:
        if self._repairing:  # a slow pass is still running; the next tick picks up after it
            return
        self._repairing = True
        try:
            await self._repair_once()
        finally:
            self._repairing = False

    async def _repair_once(self) -> None:
        try:
            if self._rules_pos is None:
                # First tick: start from now, and check everyone once (changes while we were down).
                self._rules_pos = self._internals.current_push_rules_stream_id()
                self._members_pos = _internals.events_position(self._api)
                users = await self._db("wangxin_users", mute_store.users_with_rules_txn, None)
                for user_id in users:
                    await self._sweep_memberships(user_id)
                    await self.repair_user(user_id)
                return
            assert self._members_pos is not None
            self._members_pos, changed = await _internals.membership_changes_since(self._api, self._members_pos)
            if changed:
                for user_id, room_id in await self._db("wangxin_pairs", mute_store.settings_pairs_txn, changed):
                    _, joined, _ = await self._room_facts(room_id, user_id)
                    if not joined:
                        await self._locked(user_id, self._remove_room, user_id, room_id, False)
            self._rules_pos, changes = await self._internals.push_rule_changes_since(self._rules_pos)
            if not changes:
                return
            candidates = sorted({user_id for user_id, _ in changes})
            for user_id in await self._db("wangxin_users", mute_store.users_with_rules_txn, candidates):
                await self.repair_user(user_id)
        except Exception:
            logger.exception("Wangxin mute repair failed; retrying on the next tick")

    async def _sweep_memberships(self, user_id: str) -> None:
        for stored in await self._db("wangxin_list_mutes", mute_store.list_settings_txn, user_id):
            _, joined, _ = await self._room_facts(stored.settings.room_id, user_id)
            if not joined:
                await self._locked(user_id, self._remove_room, user_id, stored.settings.room_id, False)


def _user_ids(value: Any, field: str) -> tuple[str, ...]:
    """A list of Matrix user ids, without repeats; 400 ``M_BAD_JSON`` naming the entry otherwise."""
    if not isinstance(value, list):
        raise errors.SynapseError(400, f"'{field}' must be a list of user ids", errors.Codes.BAD_JSON)
    for i, user_id in enumerate(value):
        problem = user_id_problem(user_id)
        if problem is not None:
            shown = repr(user_id) if len(repr(user_id)) <= 80 else repr(user_id)[:77] + "…"
            raise errors.SynapseError(400, f"'{field}[{i}]' {problem}: {shown}", errors.Codes.BAD_JSON)
    return tuple(dict.fromkeys(value))
