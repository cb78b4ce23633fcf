"""An account's staff: people besides the owner who answer in its support rooms.

``PUT /accounts/{id}/staff`` (``http_staff``) stores the list and queues the staff's sync: an
``account_staff`` job of the merchant circle's durable queue, run on the background-tasks process.
Each step takes ``STAFF_BATCH`` of the account's support rooms in the order they were made and
reconciles them with the staff of now (``SupportSeats.reconcile``: new staff invited, joined and
given power 50, removed staff kicked by the room's creator); the transaction that ends a step
queues the next one from where it stopped. So a sync over many rooms survives restarts (a step cut
short runs again; what it did is seen as done), lets other work of the queue run between its
steps, and a newer PUT simply replaces it: a step whose job was dropped queues nothing more.
Rooms made meanwhile seat the staff when they are made (``Support.open``).
"""

from __future__ import annotations

from synapse.module_api import ModuleApi

from synapse_modules.accounts.staff_rules import parse_staff_cursor, staff_cursor
from synapse_modules.accounts.store import AccountsStore
from synapse_modules.accounts.store.accounts import get_account_by_merchant_txn
from synapse_modules.accounts.store.staff import (
    STAFF_JOB,
    get_staff_txn,
    next_staff_step_txn,
    support_rooms_after_txn,
)
from synapse_modules.accounts.support import Support
from synapse_modules.merchant_circle.parts import CircleParts
from synapse_modules.merchant_circle.queue import Permanent
from synapse_modules.merchant_circle.store.follows import Job

STAFF_BATCH = 20  # support rooms per step of a staff sync


class StaffSync:
    def __init__(self, api: ModuleApi, store: AccountsStore, parts: CircleParts, support: Support):
        self._api = api
        self._store = store
        self._parts = parts
        self._support = support

    def register(self) -> None:
        self._parts.queue.handle(STAFF_JOB, self.run)

    async def run(self, job: Job) -> bool:
        """One step of the sync; it ends its job itself (and queues the next step)."""
        account = await self._store.run(get_account_by_merchant_txn, job.merchant_id) if job.merchant_id else None
        if account is None:
            raise Permanent(f"{job.merchant_id} is no account's user")
        merchant_id = account.merchant_id
        staff = await self._store.run(get_staff_txn, account.account_id)
        after_ts, after_room = parse_staff_cursor(job.reason)
        rooms = await self._store.run(support_rooms_after_txn, account.account_id, after_ts, after_room, STAFF_BATCH)
        for _, room_id, follower in rooms:
            await self._support.seats.reconcile(room_id, account, follower, staff)
        following = staff_cursor(*rooms[-1][:2]) if len(rooms) == STAFF_BATCH else None
        if await self._store.run(next_staff_step_txn, job.job_id, merchant_id, following,
                                 self._api.get_current_time_msec()):
            self._parts.queue.kick()
        return True
