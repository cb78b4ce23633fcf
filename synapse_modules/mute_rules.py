"""Push rules for a muted room with exemptions, as pure data (no Synapse import).

Synapse evaluates push rules itself; there is no per-event module hook in push evaluation
(docs/synapse.md, "Push rules"). So each exemption is an *override* rule placed above the room's mute
rule, which is the rule Element writes: ``rule_id`` = room id, one ``event_match`` on
``room_id``, actions ``["dont_notify"]``. Our rules never look like that mute rule (two or more
conditions, notifying actions), so Element's unmute, which deletes the first override rule that
looks like a mute of the room, never deletes one of ours.

Rule ids: ``org.wangxin.mute.<room hash>.<what>`` and ``org.wangxin.vip.<user hash>.<type>``,
deterministic, so writing the same settings twice changes nothing.

A change of a mute is planned here (:func:`plan_room_mute`, :func:`plan_room_removal`,
:func:`plan_vips`) and written by the module in one transaction, so it happens whole or not at all.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Sequence
from typing import Any, Protocol

import attrs

MUTE_RULE_PREFIX = "org.wangxin.mute."
VIP_RULE_PREFIX = "org.wangxin.vip."
WANGXIN_RULE_PREFIX = "org.wangxin."

# Messages arrive as m.room.message in plain rooms and m.room.encrypted in encrypted ones; the
# server sees the sender and type of both. Push-rule globs have no character classes, so each
# exemption is two rules, one per type; other event types (reactions, membership) stay muted.
MESSAGE_TYPES = ("m.room.message", "m.room.encrypted")

NOTIFY_WITH_SOUND: list[Any] = ["notify", {"set_tweak": "sound", "value": "default"}]
NOTIFY_HIGHLIGHT: list[Any] = [
    "notify",
    {"set_tweak": "sound", "value": "default"},
    {"set_tweak": "highlight", "value": True},
]
MUTE_ACTIONS_ELEMENT = ["dont_notify"]

# A custom notifications key: `sender_notification_permission` falls back to power level 50
# (moderator) when the room's power levels do not name it.
MODERATOR_KEY = "org.wangxin.moderator"


@attrs.frozen
class MuteSettings:
    room_id: str
    exempt_users: tuple[str, ...] = ()
    exempt_moderators: bool = False
    exempt_mentions: bool = False
    exempt_replies: bool = False

    def to_json(self) -> dict[str, Any]:
        return {
            "exempt_users": list(self.exempt_users),
            "exempt_moderators": self.exempt_moderators,
            "exempt_mentions": self.exempt_mentions,
            "exempt_replies": self.exempt_replies,
        }


@attrs.frozen
class Rule:
    rule_id: str
    conditions: list[dict[str, Any]]
    actions: list[Any]


def _h(value: str, n: int = 16) -> str:
    return hashlib.sha256(value.encode("utf-8")).hexdigest()[:n]


def room_rule_prefix(room_id: str) -> str:
    return f"{MUTE_RULE_PREFIX}{_h(room_id)}."


def is_wangxin_rule(rule_id: str) -> bool:
    return rule_id.startswith(WANGXIN_RULE_PREFIX)


def element_mute_rule(room_id: str) -> Rule:
    """The rule Element Web writes for "Mute room" (docs/synapse.md, "Element's mute")."""
    return Rule(room_id, [{"kind": "event_match", "key": "room_id", "pattern": room_id}], list(MUTE_ACTIONS_ELEMENT))


def looks_like_mute(rule_id: str, conditions: list[dict[str, Any]], actions: list[Any], room_id: str) -> bool:
    """Element's own test for a mute rule: one room_id condition and silent actions."""
    return (
        len(conditions) == 1
        and conditions[0].get("kind") == "event_match"
        and conditions[0].get("key") == "room_id"
        and conditions[0].get("pattern") == room_id
        and all(a == "dont_notify" for a in actions)
    )


def _room(room_id: str) -> dict[str, Any]:
    return {"kind": "event_match", "key": "room_id", "pattern": room_id}


def _type(event_type: str) -> dict[str, Any]:
    return {"kind": "event_match", "key": "type", "pattern": event_type}


def exemption_rules(settings: MuteSettings, user_id: str) -> list[Rule]:
    """The override rules for one muted room, in the order they must be evaluated."""
    prefix = room_rule_prefix(settings.room_id)
    room = _room(settings.room_id)
    rules: list[Rule] = []
    mentions_me = {"kind": "event_property_contains", "key": "content.m\\.mentions.user_ids", "value": user_id}
    if settings.exempt_mentions:
        rules.append(Rule(prefix + "mention", [room, mentions_me], list(NOTIFY_HIGHLIGHT)))
        # Clients without intentional mentions: the user's display name in the body.
        rules.append(Rule(prefix + "mention_name", [room, {"kind": "contains_display_name"}], list(NOTIFY_HIGHLIGHT)))
        rules.append(
            Rule(
                prefix + "mention_room",
                [room, {"kind": "event_property_is", "key": "content.m\\.mentions.room", "value": True},
                 {"kind": "sender_notification_permission", "key": "room"}],
                list(NOTIFY_HIGHLIGHT),
            )
        )
    elif settings.exempt_replies:
        # A rich reply names the replied-to user in m.mentions (Matrix spec, intentional mentions);
        # the server cannot see who wrote the replied-to event otherwise.
        in_reply = {"kind": "event_match", "key": "content.m\\.relates_to.m\\.in_reply_to.event_id", "pattern": "*"}
        rules.append(Rule(prefix + "reply", [room, mentions_me, in_reply], list(NOTIFY_HIGHLIGHT)))
    for member in settings.exempt_users:
        for event_type in MESSAGE_TYPES:
            rules.append(
                Rule(
                    f"{prefix}user.{_h(member, 12)}.{'enc' if event_type.endswith('encrypted') else 'msg'}",
                    [room, {"kind": "event_match", "key": "sender", "pattern": member}, _type(event_type)],
                    list(NOTIFY_WITH_SOUND),
                )
            )
    if settings.exempt_moderators:
        for event_type in MESSAGE_TYPES:
            rules.append(
                Rule(
                    f"{prefix}moderators.{'enc' if event_type.endswith('encrypted') else 'msg'}",
                    [room, {"kind": "sender_notification_permission", "key": MODERATOR_KEY}, _type(event_type)],
                    list(NOTIFY_WITH_SOUND),
                )
            )
    return rules


def vip_rules(vips: tuple[str, ...]) -> list[Rule]:
    """Rules that let VIPs through every room: global, above every mute rule."""
    rules = []
    for vip in vips:
        for event_type in MESSAGE_TYPES:
            rules.append(
                Rule(
                    f"{VIP_RULE_PREFIX}{_h(vip, 16)}.{'enc' if event_type.endswith('encrypted') else 'msg'}",
                    [{"kind": "event_match", "key": "sender", "pattern": vip}, _type(event_type)],
                    list(NOTIFY_WITH_SOUND),
                )
            )
    return rules


# -- user ids ---------------------------------------------------------------------------------

# Matrix user ids (spec, "User Identifiers"): at most 255 bytes, "@" localpart ":" server name.
# The localpart is checked against the historical grammar (printable ASCII but ":"), which every
# server's ids satisfy; the server name is a DNS name, an IPv4 address or a bracketed IPv6
# address, with an optional port.
MAX_USER_ID_BYTES = 255
_LOCALPART = r"[\x21-\x39\x3b-\x7e]+"
_SERVER_NAME = r"(?:[A-Za-z0-9.-]+|\[[0-9A-Fa-f:.]{2,45}\])(?::[0-9]{1,5})?"
_USER_ID = re.compile(f"@{_LOCALPART}:{_SERVER_NAME}")


def user_id_problem(value: Any) -> str | None:
    """Why ``value`` is not a Matrix user id, or ``None`` if it is one."""
    if not isinstance(value, str):
        return "must be a user id like @name:server"
    try:
        size = len(value.encode("utf-8"))
    except UnicodeEncodeError:
        return "is not valid Unicode"
    if size > MAX_USER_ID_BYTES:
        return f"is {size} bytes long; Matrix user ids are at most {MAX_USER_ID_BYTES} bytes"
    if not _USER_ID.fullmatch(value):
        return "is not a user id like @name:server"
    return None


# -- plans ------------------------------------------------------------------------------------


class StoredRule(Protocol):
    """What the plans need of a user's stored override rule."""

    @property
    def rule_id(self) -> str: ...
    @property
    def conditions(self) -> list[dict[str, Any]]: ...
    @property
    def actions(self) -> list[Any]: ...
    @property
    def enabled(self) -> bool: ...


@attrs.frozen
class RulesPlan:
    """Override-rule changes for one user, in the order they are made: ``delete``, then ``put``
    (each rule lands on top of the override rules, so the last one put is evaluated first),
    then ``enable``. ``owns_mute_rule``: whether the room's mute rule is Wangxin's afterwards
    (for a removal: whether it was)."""

    delete: tuple[str, ...] = ()
    put: tuple[Rule, ...] = ()
    enable: tuple[str, ...] = ()
    owns_mute_rule: bool = False


def _mute_of(room_id: str, current: Sequence[StoredRule]) -> StoredRule | None:
    return next((r for r in current if r.rule_id == room_id and looks_like_mute(r.rule_id, r.conditions, r.actions,
                                                                               room_id)), None)


def plan_room_mute(settings: MuteSettings, user_id: str, current: Sequence[StoredRule], vips: tuple[str, ...],
                   owned_before: bool) -> RulesPlan:
    """Mute ``settings.room_id`` with its exemptions above the mute rule and the VIPs above all.

    The mute rule is Wangxin's when Wangxin writes it now (no mute rule of the client's was
    there), or was Wangxin's already; a client's own mute rule stays the client's."""
    wanted = exemption_rules(settings, user_id)
    wanted_ids = {r.rule_id for r in wanted}
    prefix = room_rule_prefix(settings.room_id)
    existing = _mute_of(settings.room_id, current)
    mute = element_mute_rule(settings.room_id)
    disabled = {r.rule_id for r in current if not r.enabled}
    return RulesPlan(
        delete=tuple(r.rule_id for r in current if r.rule_id.startswith(prefix) and r.rule_id not in wanted_ids),
        put=(mute, *reversed(wanted), *reversed(vip_rules(vips))),
        # A re-written rule keeps its enabled flag (Synapse): wake what a client unmute put to sleep.
        enable=tuple(r.rule_id for r in (mute, *wanted) if r.rule_id in disabled),
        owns_mute_rule=existing is None or owned_before,
    )


def plan_room_removal(room_id: str, current: Sequence[StoredRule], *, unmute: bool,
                      owns_mute_rule: bool) -> RulesPlan:
    """Remove a room's exemptions, and its mute rule when the user unmutes (whoever wrote it)
    or when Wangxin wrote it (the user left the room); a client's own mute rule stays."""
    prefix = room_rule_prefix(room_id)
    mute = _mute_of(room_id, current)
    drop_mute = mute is not None and (unmute or owns_mute_rule)
    return RulesPlan(
        delete=tuple(r.rule_id for r in current if r.rule_id.startswith(prefix) or (drop_mute and r is mute)),
        owns_mute_rule=owns_mute_rule,
    )


def plan_vips(vips: tuple[str, ...], current: Sequence[StoredRule]) -> RulesPlan:
    wanted = vip_rules(vips)
    wanted_ids = {r.rule_id for r in wanted}
    return RulesPlan(
        delete=tuple(r.rule_id for r in current if r.rule_id.startswith(VIP_RULE_PREFIX)
                     and r.rule_id not in wanted_ids),
        put=tuple(reversed(wanted)),
    )
