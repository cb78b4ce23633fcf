"""An account's staff and the support chats started from a direct chat: what the API accepts and
what a support room's seats should be. Pure: no I/O.

- :func:`validate_staff`: the body of ``PUT /accounts/{id}/staff`` (its shape; whether each user
  is a local person is asked of Synapse by ``http_staff``);
- :func:`staff_changes` / :func:`staff_levels`: who must be seated in (removed from) a support
  room, read from its power levels, which record who sits there for the account (power 50);
- the cursor of the staff's sync over an account's support rooms (a job's ``reason``);
- :func:`decline_reason`: the reason the account's user gives when it declines a direct chat.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from typing import Any

from synapse.module_api import errors

from synapse_modules._http import USER_ID_RE

STAFF_FIELDS = ("user_ids",)
PERSON_LEVEL = 50  # the power of the account's user, owner and staff in a support room
CURSOR_PREFIX = "from:"


def _invalid(message: str) -> Exception:
    return errors.SynapseError(400, message, errors.Codes.INVALID_PARAM)


def validate_staff(body: Mapping[str, Any], max_staff: int) -> list[str]:
    """The staff's user ids, in the order given; every refusal names the field."""
    for key in body:
        if key not in STAFF_FIELDS:
            raise _invalid(f"'{key}' is not a field of the staff (only 'user_ids')")
    user_ids = body.get("user_ids")
    if not isinstance(user_ids, list):
        raise errors.SynapseError(400, "'user_ids' must be a list of user ids", errors.Codes.BAD_JSON)
    if len(user_ids) > max_staff:
        raise _invalid(f"'user_ids': at most {max_staff} staff, found {len(user_ids)}")
    seen: set[str] = set()
    for i, user_id in enumerate(user_ids):
        if not isinstance(user_id, str) or not USER_ID_RE.match(user_id):
            raise _invalid(f"'user_ids[{i}]' must be a Matrix user id like @name:server")
        if user_id in seen:
            raise _invalid(f"'user_ids[{i}]': {user_id} is in the list twice")
        seen.add(user_id)
    return list(user_ids)


def staff_changes(users: Mapping[str, Any], staff: Collection[str], keep: Collection[str],
                  follower: str) -> tuple[list[str], list[str]]:
    """``(to seat, to remove)`` in a support room whose power levels give ``users``: staff not at
    ``PERSON_LEVEL`` yet are seated; anyone at that level who is neither staff nor in ``keep``
    (the account's user and owner) was staff and leaves. The follower is never either: a staff
    member's own support room keeps them as its follower."""
    seat = [u for u in staff if u != follower and u not in keep and users.get(u) != PERSON_LEVEL]
    remove = sorted(u for u, level in users.items()
                    if level == PERSON_LEVEL and u not in keep and u not in staff and u != follower)
    return seat, remove


def staff_levels(users: Mapping[str, Any], seat: Sequence[str], remove: Sequence[str]) -> dict[str, Any]:
    """The power levels' ``users`` after seating and removing those."""
    changed = {u: level for u, level in users.items() if u not in remove}
    changed.update({u: PERSON_LEVEL for u in seat})
    return changed


def plain(value: Any) -> Any:
    """A copy of event content as plain dicts and lists (Synapse hands out frozen mappings)."""
    if isinstance(value, Mapping):
        return {str(k): plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [plain(v) for v in value]
    return value


def staff_cursor(created_ts: int, room_id: str) -> str:
    """Where the staff's sync resumes: after this support room (rooms in the order made)."""
    return f"{CURSOR_PREFIX}{created_ts}:{room_id}"


def parse_staff_cursor(cursor: str) -> tuple[int, str]:
    """``(created_ts, room_id)`` to resume after; ``(-1, "")`` for the start (or anything else)."""
    rest = cursor.removeprefix(CURSOR_PREFIX)
    ts, _, room_id = rest.partition(":")
    if not rest or not ts.lstrip("-").isdigit() or not room_id:
        return -1, ""
    return int(ts), room_id


def decline_reason(account_name: str, support_room_name: str) -> str:
    """Why the account's user declines a direct chat (shown by clients that show reasons). Only
    the account's name: nothing the inviter wrote."""
    return (f"{account_name} answers in your support chat “{support_room_name}” · "
            f"请在「{support_room_name}」会话中继续")
