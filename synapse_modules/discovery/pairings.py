"""Answering chat requests, and the direct chat an accept makes (a shake, 36.8° or face-to-face
pairing is a request on both sides, and the room comes only when everyone accepted); a 36.8°
pairing's accept also records the coupons to ask the platform for (``coupons.py``).

The room is made by the server as the last person to accept, with the other one invited and
joined at once (both agreed), marked as a direct chat for both (``is_direct`` on the invite,
and each one's ``m.direct`` account data, which is what Element reads). It carries an
``org.wangxin.discovery`` state event (the kind and request id, no text) and, by default,
end-to-end encryption (``dm_encrypted``), as Element would turn on.
"""

from __future__ import annotations

import logging
from typing import Any

import attrs
from synapse.module_api import ModuleApi

from synapse_modules._internals import MembershipInternals
from synapse_modules.discovery.config import DiscoveryConfig
from synapse_modules.discovery.coupons import CouponDesk
from synapse_modules.discovery.store import DiscoveryStore
from synapse_modules.discovery.store.coupons import finish_pairing_txn
from synapse_modules.discovery.store.limits import Limited
from synapse_modules.discovery.store.requests import (
    Answer,
    Request,
    answer_txn,
    finish_request_txn,
    release_request_txn,
)

logger = logging.getLogger(__name__)

DISCOVERY_STATE = "org.wangxin.discovery"
MEGOLM = "m.megolm.v1.aes-sha2"
# Pairings whose accept earns both people a coupon from the platform.
REWARDED_KINDS = ("angle",)


@attrs.frozen
class Accepted:
    """An answer, the room's id if it made one, and for a rewarded kind whether the caller's
    coupon was asked for (``"requested"``) or not (``"not_rewarded"``: the daily limit, or no
    platform configured)."""

    answer: Answer
    room_id: str | None = None
    coupon: str | None = None


class Pairings:
    def __init__(self, api: ModuleApi, config: DiscoveryConfig, store: DiscoveryStore, members: MembershipInternals,
                 coupons: CouponDesk):
        self._api = api
        self._config = config
        self._store = store
        self._members = members
        self._coupons = coupons

    async def answer(self, user_id: str, request_id: str, accept: bool) -> Limited | Accepted:
        """Record the answer; when it completes the pairing, make the room. The answer, and the
        room's id if one was made."""
        now = self._api.get_current_time_msec()
        answer = await self._store.run(answer_txn, request_id, user_id, accept, now,
                                       self._config.request_ttl_hours * 3600_000, self._config.rate_limits["answer"])
        if isinstance(answer, Limited):
            return answer
        if answer.outcome != "make_room":
            return Accepted(answer)
        request = answer.request
        assert request is not None
        try:
            room_id = await self._make_room(request, user_id)
        except Exception:
            await self._store.run(release_request_txn, request_id, self._api.get_current_time_msec())
            raise
        now = self._api.get_current_time_msec()
        if request.kind not in REWARDED_KINDS:
            await self._store.run(finish_request_txn, request_id, room_id, now)
            return Accepted(answer, room_id)
        if not self._coupons.enabled:
            await self._store.run(finish_request_txn, request_id, room_id, now)
            return Accepted(answer, room_id, "not_rewarded")
        # The coupons' job is written with the accept: asked for exactly once, even if we stop now.
        rewarded = await self._store.run(finish_pairing_txn, request_id, room_id, (request.sender, request.recipient),
                                         now, self._config.coupons.rewards_per_day)
        if rewarded:
            self._coupons.kick(request_id)
        return Accepted(answer, room_id, "requested" if user_id in rewarded else "not_rewarded")

    async def _make_room(self, request: Request, creator: str) -> str:
        other = request.other(creator)
        initial_state: list[dict[str, Any]] = [
            {"type": DISCOVERY_STATE, "state_key": "",
             "content": {"kind": request.kind, "request_id": request.request_id,
                         # Face to face: the chat is made for a video call (Element: the call button).
                         **({"call": "video"} if request.kind == "video" else {})}},
        ]
        if self._config.dm_encrypted:
            initial_state.append({"type": "m.room.encryption", "state_key": "", "content": {"algorithm": MEGOLM}})
        room_id, _ = await self._api.create_room(
            creator,
            {"preset": "trusted_private_chat", "is_direct": True, "invite": [other], "initial_state": initial_state},
            ratelimit=False,
        )
        # Both agreed: the other joins too (without the client join limit, as an admin join would).
        await self._members.set_membership(other, room_id, "join")
        for me, them in ((creator, other), (other, creator)):
            await self._mark_direct(me, them, room_id)
        logger.info("Discovery request %s accepted: direct chat %s", request.request_id, room_id)
        return room_id

    async def _mark_direct(self, user_id: str, other: str, room_id: str) -> None:
        """Add the room to ``user_id``'s ``m.direct`` (as their client does for a DM it makes)."""
        current = await self._api.account_data_manager.get_global(user_id, "m.direct") or {}
        direct = {k: list(v) for k, v in current.items() if isinstance(v, (list, tuple))}
        rooms = direct.setdefault(other, [])
        if room_id not in rooms:
            rooms.append(room_id)
        await self._api.account_data_manager.put_global(user_id, "m.direct", direct)
