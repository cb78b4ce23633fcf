"""One pass over a job's plan, or over the part of it today's lookups made ready:

1. placeholders: a ghost of the bridge's namespace per group member not here yet, per
   importer (``@wx_p_<hmac>``), named "张三 (not on Wangxin yet)";
2. rooms: one per group, created by the bridge bot (appservice, ``rate_limited: false``) with
   the importer at power level 100 and everyone invited in the creation request; ghosts join;
3. direct chats: the module creates each *as the importer* (only a module may act as a local
   user) and invites the contact with a note of where they know each other from;
4. contacts with a number and no account are kept as invitable by SMS.

Every step checks the journal (the import tables) first and records itself when done, so a
repeated or resumed run makes no duplicates. Room creation is recorded before it starts; a room
whose creation was interrupted is found again by its marker state event (module
``POST /import/find_room``).
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import time
from collections.abc import Awaitable, Callable, Iterable
from typing import Any, Protocol, TypeVar

from twisted.internet import defer

from bridges.config import BridgeConfig
from bridges.contact_import.arrivals import Arrivals
from bridges.contact_import.messages import StatusMessages, summary_text
from bridges.contact_import.plan import ImportPlan, Person, PlannedGroup, placeholder_name
from bridges.contact_import.rooms import RoomActions
from bridges.contact_import.store import ImportStore
from bridges.contact_import.store.jobs import Job
from bridges.contact_import.store.rooms import Invitable
from bridges.matrix_client import MatrixClient, MatrixRequestError
from bridges.store import BridgeStore
from bridges.wangxin_api import WangxinApi

logger = logging.getLogger(__name__)
T = TypeVar("T")

MARKER_TYPE = "org.wangxin.import.marker"
PROGRESS_EVERY_S = 2.0


def room_marker(importer: str, group_key: str) -> str:
    return "group:" + hashlib.sha256(f"{importer}\x00{group_key}".encode()).hexdigest()[:32]


class RunHost(Protocol):
    """What a run uses of the importer (``service.ContactImporter``)."""

    config: BridgeConfig
    core_store: BridgeStore
    store: ImportStore
    client: MatrixClient
    wangxin: WangxinApi
    bot: str
    ghost_key: bytes
    messages: StatusMessages
    rooms: RoomActions
    arrivals: Arrivals
    progress: dict[int, dict[str, Any]]

    def check(self, job_id: int) -> None:
        """Raises if the job was cancelled or the bridge is stopping."""


class ImportRun:
    """One pass over a job's plan; every step is skipped when the journal says it is done."""

    def __init__(self, importer: RunHost, job: Job, plan: ImportPlan, whole: ImportPlan | None = None) -> None:
        self.i = importer
        self.job = job
        self.plan = plan  # this part of the file (all of it when it fits in a day's lookups)
        self.whole = whole or plan
        self.user = job.user_id
        self.matches = dict(job.matches)  # msisdn -> user; the importer's own numbers map to the importer
        previous = job.counts or {}  # earlier parts, or this part before a crash
        self.counts = {k: int(previous.get(k, 0)) for k in ("rooms_created", "invited", "placeholders", "skipped",
                                                              "errors", "invitable_by_sms")}
        self.ghosts: dict[str, str] = {}  # person key -> ghost id
        self.arrived: dict[str, str] = {}  # person key -> user who replaced the placeholder
        self.phase = "starting"
        self.done = 0
        self.total = 0
        self._last_report = 0.0

    # -- helpers -------------------------------------------------------------------------

    def ghost_id(self, person: Person) -> str:
        digest = hmac.new(self.i.ghost_key, f"{self.user}\x00{person.key}".encode(), hashlib.sha256).hexdigest()
        return self.i.config.ghost_user_id("p_" + digest[:24])

    def user_for(self, person: Person) -> str | None:
        return person.user_in(self.matches) or self.arrived.get(person.key)

    async def parallel(self, items: Iterable[T], func: Callable[[T], Awaitable[None]]) -> None:
        iterator = iter(items)

        async def worker() -> None:
            for item in iterator:
                self.i.check(self.job.job_id)
                try:
                    await func(item)
                except MatrixRequestError as e:
                    if e.status == 0 or e.status >= 500 or e.status == 429:
                        raise  # the homeserver is unwell: stop, and resume later
                    logger.warning("Import %d: step failed: %s", self.job.job_id, e)
                    self.counts["errors"] += 1
                self.done += 1
                await self.report()

        workers = [defer.ensureDeferred(worker()) for _ in range(self.i.config.imports.concurrency)]
        try:
            await defer.gatherResults(workers, consumeErrors=True)
        except defer.FirstError as e:
            e.subFailure.raiseException()

    def start_phase(self, phase: str, total: int) -> None:
        self.phase, self.done, self.total = phase, 0, total

    def progress_text(self) -> str:
        c = self.counts
        return (f"{self.phase} {self.done}/{self.total} — {c['rooms_created']} rooms created, {c['invited']} "
                f"invitations, {c['placeholders']} placeholders so far")

    async def report(self, force: bool = False) -> None:
        now = time.monotonic()
        self.i.progress[self.job.job_id] = {"text": self.progress_text(), "phase": self.phase, "done": self.done,
                                            "total": self.total, "counts": dict(self.counts)}
        if not force and now - self._last_report < PROGRESS_EVERY_S:
            return
        self._last_report = now
        await self.i.store.set_job_state(self.job.job_id, "running", expect=("running",), counts=self.counts)
        await self.i.messages.edit_status(self.job.job_id, f"Importing {self.job.filename}: {self.progress_text()}.")

    # -- the steps -----------------------------------------------------------------------

    async def execute(self, final: bool = True) -> None:
        """Run this part's steps; with ``final``, end the import with its summary."""
        plan = self.plan
        absent = plan.absent_members(self.matches, self.user)
        self.start_phase("placeholders", len(absent))
        await self.report(force=True)
        await self.parallel(absent, self.ensure_placeholder)

        self.start_phase("rooms", len(plan.groups))
        await self.report(force=True)
        await self.parallel(plan.groups, self.ensure_room)

        joins = await self.i.store.pending_joins(self.user)
        self.start_phase("placeholders joining", len(joins))
        await self.report(force=True)
        await self.parallel(joins, self.ghost_join)

        dm_targets: dict[str, Person] = {}
        for contact in plan.contacts:
            user = self.user_for(contact)
            if user and user != self.user:
                dm_targets.setdefault(user, contact)
        self.start_phase("direct chats", len(dm_targets))
        await self.report(force=True)
        await self.parallel(dm_targets.items(), self.ensure_dm)

        invitable = [
            Invitable(self.user, c.phones[0], c.name, plan.source_label)
            for c in plan.contacts if c.phones and self.user_for(c) is None
        ]
        await self.i.store.add_invitable(self.job.job_id, invitable)
        self.counts["invitable_by_sms"] += len(invitable)
        self.i.check(self.job.job_id)
        if not final:
            return  # the caller records this part's counts with its end
        if self.whole.self_source_key:
            # The importer's own export names their id on the network: placeholders for it are them.
            await self.i.arrivals.add([(self.user, None, self.whole.self_source_key)])
        counts = self.whole.counts(self.matches, self.user)
        summary = {
            "contacts": counts["contacts"],
            "matched": counts["matched"],
            "groups": counts["groups"],
            "rooms_created": self.counts["rooms_created"],
            "invited": self.counts["invited"],
            "placeholders": self.counts["placeholders"],
            "invitable_by_sms": self.counts["invitable_by_sms"],
            "skipped": self.counts["skipped"] + counts["contacts"] - counts["with_phone"],
            "errors": self.counts["errors"],
        }
        await self.i.store.set_job_state(self.job.job_id, "running", expect=("running",), counts=summary)
        await self.i.messages.finish_message(self.job, summary_text(summary, self.job.filename), summary)
        await self.i.store.set_job_state(self.job.job_id, "done", expect=("running",), counts=summary,
                                         drop_file=True)

    async def ensure_placeholder(self, person: Person) -> None:
        ghost = self.ghost_id(person)
        known, arrived = await self.i.store.placeholder_state(ghost)
        if arrived:
            self.arrived[person.key] = arrived
            self.counts["skipped"] += 1
            return
        self.ghosts[person.key] = ghost
        if known:
            self.counts["skipped"] += 1
            return
        localpart = ghost[1:].split(":", 1)[0]
        await self.i.client.register_user(localpart)
        await self.i.client.set_displayname(ghost, placeholder_name(person))
        await self.i.core_store.add_ghost(ghost, "placeholder")
        await self.i.store.add_placeholder(ghost, self.user, person.key, person.name, person.source_key,
                                           self.plan.source_label, list(person.phones))
        self.counts["placeholders"] += 1

    def wanted_members(self, group: PlannedGroup) -> list[tuple[str, str]]:
        wanted: dict[str, str] = {self.user: "importer"}
        for person in group.members:
            user = self.user_for(person)
            if user:
                wanted.setdefault(user, "member")
            elif person.key in self.ghosts:
                wanted.setdefault(self.ghosts[person.key], "placeholder")
        return list(wanted.items())

    async def ensure_room(self, group: PlannedGroup) -> None:
        store = self.i.store
        wanted = self.wanted_members(group)
        exists, room_id = await store.room_for(self.user, group.key)
        marker = room_marker(self.user, group.key)
        if exists and room_id is None:
            # Creation started before a crash: the room may exist; its marker finds it.
            found = await self.i.wangxin.call("POST", "/import/find_room", self.i.bot, {"marker": marker})
            room_id = found.get("room_id")
            if room_id:
                await store.finish_room(self.user, group.key, room_id, wanted)
                self.counts["rooms_created"] += 1
                self.counts["invited"] += sum(1 for _, kind in wanted if kind == "member")
                return
        if room_id is None:
            await store.begin_room(self.user, group.key, self.job.job_id)
            body = {
                "preset": "private_chat",
                "name": group.name[:200],
                "topic": f"Imported from {self.plan.source_label}",
                "invite": [user for user, _ in wanted],
                # In room version 12 the creator (the bot) outranks everyone and must not be listed.
                "power_level_content_override": {"users": {self.user: 100}},
                "initial_state": [
                    {"type": MARKER_TYPE, "state_key": marker, "content": {"kind": "group", "importer": self.user}}
                ],
            }
            created = await self.i.client.request("POST", "/_matrix/client/v3/createRoom", body)
            await store.finish_room(self.user, group.key, str(created["room_id"]), wanted)
            self.counts["rooms_created"] += 1
            self.counts["invited"] += sum(1 for _, kind in wanted if kind == "member")
            return
        # The room exists (an earlier import): invite whoever this file adds.
        members = await store.room_members(room_id)
        for user, kind in wanted:
            if user in members:
                self.counts["skipped"] += 1
                continue
            await self.i.rooms.invite(room_id, user)
            await store.set_member(room_id, user, self.user, kind, "invited")
            if kind == "member":
                self.counts["invited"] += 1

    async def ghost_join(self, item: tuple[str, str]) -> None:
        room_id, ghost = item
        await self.i.client.join_room(room_id, as_user=ghost)
        await self.i.store.set_member(room_id, ghost, self.user, "placeholder", "joined")

    async def ensure_dm(self, item: tuple[str, Person]) -> None:
        invitee, contact = item
        if await self.i.store.dm_room(self.user, invitee):
            self.counts["skipped"] += 1
            return
        if await self.i.rooms.open_dm(self.user, invitee, contact.name, self.plan.source_label):
            self.counts["invited"] += 1
        else:
            self.counts["skipped"] += 1
