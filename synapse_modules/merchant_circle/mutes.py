"""Followers' circles muted: Element's "Mute room" for the follower, written before their join.

Joins into one room run one at a time in Synapse, so follows that each muted just before their
own join wrote one rule per commit (and Synapse answers each push-rule change with a write of its
own). So the rules of a claimed batch of new follows are written ahead, in one transaction, and
mutes that arrive together otherwise share one (group commit).
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable

from synapse_modules._group_commit import GroupCommit
from synapse_modules._internals import NewPushRule, SynapseInternals
from synapse_modules.merchant_circle.lookups import CircleLookups
from synapse_modules.merchant_circle.store import MerchantCircleStore
from synapse_modules.merchant_circle.store.follows import Job, follow_states_txn

logger = logging.getLogger(__name__)


class Mutes:
    def __init__(self, store: MerchantCircleStore, lookups: CircleLookups, push: SynapseInternals,
                 open_room: Callable[[str], Awaitable[str | None]]):
        self._store = store
        self._lookups = lookups
        self._open_room = open_room  # the room of a circle a new follower goes into (``shards``)
        self._push = push
        self._commit: GroupCommit[tuple[str, str], None] = GroupCommit(self._write)
        # (user, circle) pairs whose mute rule was written ahead, with the rest of their claim
        self._ahead: set[tuple[str, str]] = set()

    async def mute(self, user_id: str, room_id: str) -> None:
        """Element's "Mute room" for this user: an override rule named after the room
        (docs/synapse.md, "Element's mute"). Follows that mute at the same time share one transaction."""
        await self._commit.submit((user_id, room_id))

    def muted_ahead(self, user_id: str, room_id: str) -> bool:
        return (user_id, room_id) in self._ahead

    def forget_ahead(self, user_id: str, room_id: str) -> None:
        """Muted ahead or not, a later follow of the pair (after a kick, say) mutes again."""
        self._ahead.discard((user_id, room_id))

    async def write_ahead(self, jobs: list[Job]) -> None:
        """Write the mute rules of a claimed batch of new follows in one transaction, before any
        of them joins. A rule for a follow that then does not happen (the user was deactivated
        meanwhile, or the join fails for good) mutes a room the user is not in, which nothing
        shows. If the batch fails, each follow mutes itself before its join."""
        by_merchant: dict[str, list[Job]] = {}
        for job in jobs:
            if job.merchant_id and not job.reason.startswith("chat:"):  # a chat's invite may still be refused
                by_merchant.setdefault(job.merchant_id, []).append(job)
        todo: list[tuple[str, str]] = []
        try:
            for merchant_id, merchant_jobs in by_merchant.items():
                room_id = await self._open_room(merchant_id)
                if room_id is None:
                    continue
                users = [j.user_id for j in merchant_jobs if (j.user_id, room_id) not in self._ahead]
                states = await self._store.run(follow_states_txn, merchant_id, users)
                # Only users who never followed: a follower is muted already, and an unfollow stays.
                todo += [(user_id, room_id) for user_id in dict.fromkeys(users) if user_id not in states]
            if todo:
                await self._write(todo)
        except Exception as e:
            logger.warning("Could not mute %d new followers ahead (%s); each mutes before its join", len(todo), e)
            return
        self._ahead.update(todo)

    async def _write(self, mutes: list[tuple[str, str]]) -> list[None]:
        await self._push.put_push_rules_at_top([
            NewPushRule(user_id, "override", room_id, [{"kind": "event_match", "key": "room_id", "pattern": room_id}],
                        ["dont_notify"])
            for user_id, room_id in mutes
        ])
        return [None] * len(mutes)
