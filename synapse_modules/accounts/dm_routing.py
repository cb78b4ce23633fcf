"""Support chats started from a Matrix client alone: a direct chat with an account's user goes to
the person's support room with the account.

A person using Element finds ``@acct.<account_id>`` (an organisation's or a platform's own user)
and starts a direct chat with it: Element makes a room and invites that user. The account's user
never joins rooms people make (they control those rooms: their name, their encryption, their
other members). Instead:

1. ``user_may_invite`` (Synapse passes only the ids, on whichever process takes the invite) sees
   an invite of an account's user by a local person and queues an ``account_dm`` job in the
   merchant circle's durable queue: one insert, in the process that took it (any worker);
2. the job runs on the background-tasks process once the invitation is stored (Synapse may still
   refuse it after the callback: the job then waits as a chat's follow waits for its invite, and
   gives up): it opens the person's support room (``Support.open``: made the first time, the same
   room after, the person put back if they had left; welcome and menu) and then the account's user
   declines the invitation, with a reason that names the support room.

Every invite is one job, and every job after the first finds the room made: inviting the account
into a thousand rooms makes one support room and declines a thousand invitations (each one event
in the inviter's own room). Nothing of the inviter's room (its name, topic, messages) is read or
repeated anywhere. The account's own people (owner, staff) and the service's accounts are not
routed: their invitation is left as it is. Invites from other servers and from server admins do
not pass ``user_may_invite`` and are left as they are too.
"""

from __future__ import annotations

import logging
from typing import Literal

from synapse.module_api import NOT_SPAM, ModuleApi

from synapse_modules.accounts.identities import Identities
from synapse_modules.accounts.staff_rules import decline_reason
from synapse_modules.accounts.store import AccountsStore
from synapse_modules.accounts.store.accounts import Account, get_account_txn
from synapse_modules.accounts.store.staff import DM_JOB, ROUTED_KINDS, get_staff_txn, queue_dm_txn
from synapse_modules.accounts.support import Support, room_name
from synapse_modules.merchant_circle.follows import check_user_active
from synapse_modules.merchant_circle.parts import CircleParts
from synapse_modules.merchant_circle.queue import NotYet, Permanent
from synapse_modules.merchant_circle.store.follows import Job

logger = logging.getLogger(__name__)


class DmRouting:
    def __init__(self, api: ModuleApi, store: AccountsStore, parts: CircleParts, identities: Identities,
                 support: Support):
        self._api = api
        self._store = store
        self._parts = parts
        self._identities = identities
        self._support = support

    def register(self) -> None:
        self._api.register_spam_checker_callbacks(user_may_invite=self.user_may_invite)
        self._parts.queue.handle(DM_JOB, self.run)
        # A chat with an account's user starts no follow of its channel (the merchant circle's
        # rule for chats with merchants): it is routed here instead.
        self._parts.lookups.set_chat_router(self._identities.is_identity_name)

    async def user_may_invite(self, inviter: str, invitee: str, room_id: str) -> Literal["NOT_SPAM"]:
        """Every invite by a local non-admin passes here: a prefix test, and for an account's
        user one transaction (the account's kind, the job)."""
        if not self._identities.is_identity_name(invitee) or not self._api.is_mine(inviter) \
                or inviter in self._parts.lookups.service_users() or self._identities.is_identity_name(inviter):
            return NOT_SPAM
        account_id = self._identities.account_id_of(invitee)
        if await self._store.run(queue_dm_txn, account_id, inviter, room_id, self._api.get_current_time_msec()):
            self._parts.queue.kick()
        return NOT_SPAM

    async def run(self, job: Job) -> None:
        """The ``account_dm`` job: open the inviter's support room, then decline the invitation."""
        account = await self._store.run(get_account_txn, job.reason)
        if account is None or account.kind not in ROUTED_KINDS or account.merchant_id != job.merchant_id:
            raise Permanent(f"{job.reason} is no organisation or platform account of {job.merchant_id}")
        if account.channel_room_id is None or job.room_id is None:
            raise Permanent(f"the account {account.account_id} is not made yet")
        membership = await self._parts.members.local_membership(account.merchant_id, job.room_id)
        if membership == "join":
            return  # a room the account is in (made by the service): not a chat to route
        if membership != "invite":
            raise NotYet(f"no invitation of {account.merchant_id} into {job.room_id} (yet): "
                         "Synapse refused it, or it is not stored")
        if not await self._routed(account, job.user_id):
            return
        await check_user_active(self._api, job.user_id)
        room_id, made = await self._support.open(account, job.user_id, from_dm=True)
        await self._parts.members.set_membership(account.merchant_id, job.room_id, "leave",
                                                 reason=decline_reason(account.name, room_name(account.name)))
        logger.info("Routed %s's direct chat with %s to support room %s (%s)", job.user_id, account.account_id,
                    room_id, "made" if made else "existing")

    async def _routed(self, account: Account, user_id: str) -> bool:
        """Whether ``user_id`` gets a support room: not the account's own people nor the
        service's accounts (``POST /support`` refuses them too)."""
        if user_id in (account.owner, account.merchant_id) or await self._parts.lookups.is_service_account(user_id):
            return False
        return user_id not in await self._store.run(get_staff_txn, account.account_id)
