"""An account's staff and direct chats routed to support rooms, as far as they are pure rules and
SQL: the staff body's checks, who a support room seats or removes (read from its power levels),
the sync's cursor and steps (a newer PUT replaces a running sync), the direct-chat job queued only
for organisations and platforms, and the merchant circle's queue claiming the accounts' kinds
after its own. (The e2e tests run the same on real Synapse.)"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from synapse.module_api import errors

from synapse_modules.accounts.rules import add_months
from synapse_modules.accounts.staff_rules import (
    PERSON_LEVEL,
    decline_reason,
    parse_staff_cursor,
    plain,
    staff_changes,
    staff_cursor,
    staff_levels,
    validate_staff,
)
from synapse_modules.accounts.store.accounts import NewAccount, get_account_txn, insert_account_txn
from synapse_modules.accounts.store.schema import SCHEMA
from synapse_modules.accounts.store.staff import (
    DM_JOB,
    STAFF_JOB,
    get_staff_txn,
    next_staff_step_txn,
    queue_dm_txn,
    set_staff_txn,
    staff_sync_queued_txn,
    support_rooms_after_txn,
    transfer_account_txn,
)
from synapse_modules.accounts.store.support import insert_support_room_txn
from synapse_modules.merchant_circle.config import MerchantCircleConfig
from synapse_modules.merchant_circle.queue import FollowQueue
from synapse_modules.merchant_circle.store.follows import due_jobs_txn, enqueue_job_txn, finish_job_txn
from tests.unit.sqlite_tables import tables

NOW = 1_700_000_000_000
ACCT = "@acct.library:hs"


@pytest.fixture
def txn() -> Iterator[Any]:
    with tables(SCHEMA) as cur:
        yield cur


def _error(call: Any) -> errors.SynapseError:
    with pytest.raises(errors.SynapseError) as raised:
        call()
    return raised.value


# -- the body ------------------------------------------------------------------------------------

def test_the_staff_body_is_a_list_of_distinct_user_ids_within_the_limit() -> None:
    assert validate_staff({"user_ids": ["@a:hs", "@b:hs"]}, 20) == ["@a:hs", "@b:hs"]
    assert validate_staff({"user_ids": []}, 20) == []
    cases = [
        ({"user_ids": "@a:hs"}, "'user_ids'"),
        ({}, "'user_ids'"),
        ({"user_ids": [f"@u{i}:hs" for i in range(21)]}, "'user_ids'"),
        ({"user_ids": ["@a:hs", "bob"]}, "'user_ids[1]'"),
        ({"user_ids": ["@a:hs", 7]}, "'user_ids[1]'"),
        ({"user_ids": ["@a:hs", "@b:hs", "@a:hs"]}, "'user_ids[2]'"),
        ({"user_ids": [], "staff": []}, "'staff'"),
    ]
    for body, field in cases:
        error = _error(lambda body=body: validate_staff(body, 20))
        assert error.code == 400 and field in error.msg, (body, error.msg)


# -- seats ---------------------------------------------------------------------------------------

def test_a_room_seats_new_staff_and_removes_former_staff_but_never_the_follower_or_the_account() -> None:
    keep = (ACCT, "@owner:hs")
    users = {ACCT: 50, "@owner:hs": 50, "@old:hs": 50, "@still:hs": 50, "@mod:hs": 100}
    seat, remove = staff_changes(users, ["@still:hs", "@new:hs"], keep, "@follower:hs")
    assert seat == ["@new:hs"] and remove == ["@old:hs"]
    assert staff_levels(users, seat, remove) == {ACCT: 50, "@owner:hs": 50, "@still:hs": 50, "@mod:hs": 100,
                                                 "@new:hs": PERSON_LEVEL}
    # Nothing to do once done: the sync can run again after a restart.
    assert staff_changes(staff_levels(users, seat, remove), ["@still:hs", "@new:hs"], keep, "@follower:hs") == ([], [])
    # A staff member's own support room keeps them as its follower.
    assert staff_changes({ACCT: 50}, ["@follower:hs"], keep, "@follower:hs") == ([], [])
    assert staff_changes({ACCT: 50, "@follower:hs": 50}, [], keep, "@follower:hs") == ([], [])
    # Owner and account's user are never removed, even when the list names nobody.
    assert staff_changes({ACCT: 50, "@owner:hs": 50}, [], keep, "@f:hs") == ([], [])


def test_frozen_event_content_is_copied_as_plain_json() -> None:
    from immutabledict import immutabledict

    content = immutabledict({"users": immutabledict({"@a:hs": 50}), "events": immutabledict({"x": 100}),
                             "list": (1, 2)})
    copied = plain(content)
    assert copied == {"users": {"@a:hs": 50}, "events": {"x": 100}, "list": [1, 2]}
    assert type(copied) is dict and type(copied["users"]) is dict


def test_the_sync_cursor_resumes_after_the_last_room_and_anything_else_starts_over() -> None:
    assert parse_staff_cursor(staff_cursor(NOW, "!abc:hs")) == (NOW, "!abc:hs")
    for cursor in ("from:", "", "from:x:!a:hs", "from:12", "junk"):
        assert parse_staff_cursor(cursor) == (-1, ""), cursor


def test_the_decline_names_the_account_and_its_support_room_only() -> None:
    reason = decline_reason("City Library", "City Library · 客服")
    assert "City Library · 客服" in reason and "请" in reason


# -- SQL -----------------------------------------------------------------------------------------

def _account(txn: Any, account_id: str = "library", kind: str = "organisation") -> None:
    insert_account_txn(txn, NewAccount(account_id, kind, "@owner:hs", f"@acct.{account_id}:hs", "City Library",
                                       None, None, False, NOW, add_months(NOW, 36)))


def test_after_a_transfer_a_room_seats_the_new_owner_and_removes_the_old() -> None:
    """What ``SupportSeats.reconcile`` asks: the owner is seated like staff, only the account's
    user is kept whatever the lists say."""
    users = {ACCT: 50, "@old-owner:hs": 50, "@staff:hs": 50}
    seat, remove = staff_changes(users, ["@staff:hs", "@new-owner:hs"], (ACCT,), "@follower:hs")
    assert seat == ["@new-owner:hs"] and remove == ["@old-owner:hs"]
    # A merchant's owner is its own user: kept, never seated twice.
    assert staff_changes({ACCT: 50}, [ACCT], (ACCT,), "@f:hs") == ([], [])


def test_a_transfer_changes_the_owner_drops_them_from_staff_and_queues_a_sync_from_the_start(txn: Any) -> None:
    _account(txn)
    set_staff_txn(txn, "library", ACCT, ["@heir:hs", "@clerk:hs"], NOW)
    (running,) = due_jobs_txn(txn, (STAFF_JOB,), NOW, 10)
    assert next_staff_step_txn(txn, running.job_id, ACCT, staff_cursor(NOW, "!r:hs"), NOW + 1)  # half-way
    transfer_account_txn(txn, "library", ACCT, "@heir:hs", "Library", None, "Books", True, NOW + 2)
    account = get_account_txn(txn, "library")
    assert account is not None and (account.owner, account.name, account.verified) == ("@heir:hs", "Library", True)
    assert get_staff_txn(txn, "library") == ["@clerk:hs"]
    (sync,) = due_jobs_txn(txn, (STAFF_JOB,), NOW + 2, 10)
    assert sync.reason == "from:"  # every room again, whatever the running sync had done


def test_a_put_replaces_the_staff_and_the_queued_sync(txn: Any) -> None:
    _account(txn)
    assert set_staff_txn(txn, "library", ACCT, ["@b:hs", "@a:hs"], NOW) == (["@b:hs", "@a:hs"], [])
    assert get_staff_txn(txn, "library") == ["@a:hs", "@b:hs"]
    (first,) = due_jobs_txn(txn, (STAFF_JOB,), NOW, 10)
    assert (first.user_id, first.merchant_id, first.reason) == (ACCT, ACCT, "from:")
    assert staff_sync_queued_txn(txn, ACCT)
    # A second PUT while the first sync runs: its job is replaced by one from the start.
    assert set_staff_txn(txn, "library", ACCT, ["@b:hs", "@c:hs"], NOW + 1) == (["@c:hs"], ["@a:hs"])
    (second,) = due_jobs_txn(txn, (STAFF_JOB,), NOW + 1, 10)
    assert second.job_id != first.job_id and second.reason == "from:"
    # The first sync's step ends without queuing another: the second covers every room.
    assert next_staff_step_txn(txn, first.job_id, ACCT, staff_cursor(NOW, "!r:hs"), NOW + 2) is False
    assert [j.job_id for j in due_jobs_txn(txn, (STAFF_JOB,), NOW + 2, 10)] == [second.job_id]
    # The second goes on from its cursor, then ends.
    assert next_staff_step_txn(txn, second.job_id, ACCT, staff_cursor(NOW, "!r:hs"), NOW + 3) is True
    (third,) = due_jobs_txn(txn, (STAFF_JOB,), NOW + 3, 10)
    assert third.reason == staff_cursor(NOW, "!r:hs")
    assert next_staff_step_txn(txn, third.job_id, ACCT, None, NOW + 4) is False
    assert not staff_sync_queued_txn(txn, ACCT)
    assert set_staff_txn(txn, "library", ACCT, [], NOW + 5) == ([], ["@b:hs", "@c:hs"])
    assert get_staff_txn(txn, "library") == []


def test_the_sync_walks_the_accounts_rooms_in_the_order_made_from_its_cursor(txn: Any) -> None:
    for i, room in enumerate(["!c:hs", "!a:hs", "!b:hs"]):
        insert_support_room_txn(txn, room, "library", f"@f{i}:hs", NOW + (1 if room == "!b:hs" else 0))
    insert_support_room_txn(txn, "!other:hs", "museum", "@f0:hs", NOW)
    rooms = support_rooms_after_txn(txn, "library", -1, "", 2)
    assert [r[1] for r in rooms] == ["!a:hs", "!c:hs"]
    rest = support_rooms_after_txn(txn, "library", *rooms[-1][:2], 2)
    assert rest == [(NOW + 1, "!b:hs", "@f2:hs")]
    assert support_rooms_after_txn(txn, "library", NOW + 1, "!b:hs", 2) == []


def test_a_direct_chat_is_queued_for_organisations_and_platforms_only(txn: Any) -> None:
    _account(txn)
    _account(txn, "shop", kind="merchant")
    assert queue_dm_txn(txn, "library", "@person:hs", "!dm:hs", NOW) is True
    assert queue_dm_txn(txn, "shop", "@person:hs", "!dm2:hs", NOW) is False
    assert queue_dm_txn(txn, "nosuch", "@person:hs", "!dm3:hs", NOW) is False
    (job,) = due_jobs_txn(txn, (DM_JOB,), NOW, 10)
    assert (job.user_id, job.merchant_id, job.room_id, job.reason) == ("@person:hs", ACCT, "!dm:hs", "library")
    assert finish_job_txn(txn, job.job_id) is True and finish_job_txn(txn, job.job_id) is False


# -- the queue -----------------------------------------------------------------------------------

class _Store:
    def __init__(self, txn: Any):
        self.txn = txn

    async def run(self, func: Any, *args: Any) -> Any:
        return func(self.txn, *args)


class _Api:
    def get_current_time_msec(self) -> int:
        return NOW + 10


class _Mutes:
    def __init__(self) -> None:
        self.ahead: list[Any] = []

    async def write_ahead(self, jobs: list[Any]) -> None:
        self.ahead.extend(jobs)


async def test_the_circle_queue_claims_the_accounts_kinds_after_its_own(txn: Any) -> None:
    config = MerchantCircleConfig.from_dict({"platform_secret": "s" * 32})
    queue = FollowQueue(_Api(), config, _Store(txn), _Mutes(), runs_here=False)  # type: ignore[arg-type]

    async def nothing(job: Any) -> None:
        return None

    for kind in ("follow", "file", "unfile", "evict", DM_JOB, STAFF_JOB):
        queue.handle(kind, nothing)
    dm = enqueue_job_txn(txn, DM_JOB, "@person:hs", ACCT, "!dm:hs", "library", NOW)
    staff = enqueue_job_txn(txn, STAFF_JOB, ACCT, ACCT, None, "from:", NOW + 1)
    follow = enqueue_job_txn(txn, "follow", "@buyer:hs", "@shop:hs", None, "purchase:1", NOW + 2)
    assert [j.job_id for j in await queue._claim_jobs(frozenset())] == [follow]
    finish_job_txn(txn, follow)
    assert [j.job_id for j in await queue._claim_jobs(frozenset())] == [dm, staff]
    assert await queue._claim_jobs(frozenset({dm, staff})) == []


# -- a room's seats, with Synapse faked --------------------------------------------------------

class _Event:
    def __init__(self, content: dict[str, Any]):
        self.content = content


class _RoomApi:
    def __init__(self, levels: dict[str, Any]):
        self.levels = levels
        self.sent: list[dict[str, Any]] = []

    async def get_room_state(self, room_id: str, keys: Any) -> dict[Any, _Event]:
        return {("m.room.power_levels", ""): _Event(self.levels)}

    async def create_and_send_event_into_room(self, event: dict[str, Any]) -> None:
        self.sent.append(event)


class _Members:
    def __init__(self, memberships: dict[str, str], broken: set[str]):
        self.memberships = memberships
        self.broken = broken
        self.kicked: list[tuple[str, str, str]] = []

    async def local_membership(self, user_id: str, room_id: str) -> str | None:
        return self.memberships.get(user_id)

    async def set_membership(self, user_id: str, room_id: str, membership: str) -> None:
        if user_id in self.broken:
            raise RuntimeError(f"{user_id} is deactivated")
        self.memberships[user_id] = membership

    async def kick(self, sender: str, user_id: str, room_id: str, reason: str) -> None:
        self.kicked.append((sender, user_id, reason))
        self.memberships[user_id] = "leave"


class _Invites:
    def __init__(self, api: Any) -> None:
        pass

    async def invite(self, sender: str, target: str, room_id: str, content: Any) -> None:
        pass


async def test_a_room_seats_staff_kicks_former_staff_and_skips_one_who_cannot_be_seated(
        monkeypatch: pytest.MonkeyPatch) -> None:
    from types import SimpleNamespace

    from synapse_modules.accounts import support_seats
    from synapse_modules.accounts.store.accounts import Account

    monkeypatch.setattr(support_seats, "ContactImportInternals", _Invites)
    api = _RoomApi({"users": {ACCT: 50, "@owner:hs": 50, "@old:hs": 50}, "state_default": 100})
    members = _Members({ACCT: "join", "@owner:hs": "join", "@old:hs": "join", "@f:hs": "join"}, {"@gone:hs"})
    parts = SimpleNamespace(members=members, lookups=SimpleNamespace(owner="@circles:hs"))
    seats = support_seats.SupportSeats(api, parts)  # type: ignore[arg-type]
    account = Account("library", "organisation", "@owner:hs", ACCT, "City Library", None, None, False, NOW, NOW,
                      None, False, True, "!channel:hs")
    assert await seats.reconcile("!room:hs", account, "@f:hs", ["@new:hs", "@gone:hs"]) is True
    assert members.memberships["@new:hs"] == "join" and "@gone:hs" not in members.memberships
    assert [(k[0], k[1]) for k in members.kicked] == [("@circles:hs", "@old:hs")]
    assert "City Library" in members.kicked[0][2]
    (levels,) = api.sent
    assert levels["sender"] == "@circles:hs" and levels["content"]["state_default"] == 100
    assert levels["content"]["users"] == {ACCT: 50, "@owner:hs": 50, "@new:hs": 50}  # not the one left out
    # Run again on the new levels: nothing left to do but the one who cannot be seated.
    api.levels = levels["content"]
    assert await seats.reconcile("!room:hs", account, "@f:hs", ["@new:hs", "@gone:hs"]) is False
    assert len(api.sent) == 1
