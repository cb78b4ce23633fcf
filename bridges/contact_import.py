"""Contact import (通讯录转移): export file -> DM invitations, group rooms and placeholders.

Flow: the user uploads an export to their management room; ``import`` downloads it (the
appservice token on the authenticated media API), parses it (``bridges.importers``), asks the
``contact_import`` Synapse module which numbers belong to discoverable users and answers with
a preview; ``import confirm`` runs it in the background:

1. placeholders: a ghost of the bridge's namespace per group member not here yet, per
   importer (``@wx_p_<hmac>``), named "张三 (not on Wangxin yet)";
2. rooms: one per group, created by the bridge bot (appservice, ``rate_limited: false``) with
   the importer at power level 100 and everyone invited in the creation request; ghosts join;
3. direct chats: the module creates each *as the importer* (only a module may act as a local
   user) and invites the contact with a note of where they know each other from;
4. contacts with a number and no account are kept as invitable by SMS.

Lookups: a file's numbers are checked against what the importer may still look up today
(module ``GET /import/quota``) before any is spent. A file that fits is looked up at the
preview. A bigger one is looked up after ``import confirm``, as far as today's quota goes; the
contacts and groups whose numbers are all looked up are imported (a part), and the job waits,
still ``running``, until the quota renews at 00:00 UTC (or ``import confirm`` again, if an
administrator gave lookups back), then does the next part. The job row keeps how far the
lookups and the import got, so a restart resumes where it was without spending anything twice.

Journal: each step checks the import tables first and records itself when done, so a repeated
or overlapping import makes no duplicates and a job interrupted by a crash is resumed at start
from its stored file. Room creation is recorded before it starts; a room whose creation was
interrupted is found again by its marker state event (module ``POST /import/find_room``).

Arrivals: when a discoverable user binds a number (module hook, ``POST /_wangxin/v1/arrivals``),
every placeholder with that number leaves its rooms, they are invited instead and get each
importer's direct-chat invitation. An export naming its owner's own id (e.g. a WeChat wxid) is
only a claim: the importers holding placeholders with that id are asked to confirm it
(``import accept``) before anything changes, because anyone can write any id into a file.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import re
import time
import uuid
from collections.abc import Awaitable, Callable, Iterable
from typing import Any, TypeVar

import treq
from twisted.internet import defer, reactor, threads

from bridges.config import BridgeConfig
from bridges.http import MatrixError, Router, read_json_object
from bridges.import_plan import (
    ImportPlan,
    Person,
    PlannedGroup,
    build_plan,
    in_how_long,
    msisdn,
    placeholder_name,
    preview_in_parts_text,
    preview_text,
)
from bridges.import_store import ImportStore, Invitable, Job, Placeholder, Upload
from bridges.importers import ImportedExport, ImportFormatError, ImportLimits, parse_export
from bridges.importers.limits import human_size
from bridges.matrix_client import MatrixClient, MatrixRequestError, q, txn_id_for
from bridges.store import BridgeStore
from bridges.wangxin_api import WangxinApi

logger = logging.getLogger(__name__)
T = TypeVar("T")

MARKER_TYPE = "org.wangxin.import.marker"
SUMMARY_KEY = "org.wangxin.import.summary"
# On the message after each part of an import that waits for tomorrow's lookups.
PART_KEY = "org.wangxin.import.part"
SUMMARY_FIELDS = ("contacts", "matched", "groups", "rooms_created", "invited", "placeholders",
                  "invitable_by_sms", "skipped", "errors")
LOOKUP_BATCH = 1000
PROGRESS_EVERY_S = 2.0
RETRY_AFTER_S = 30.0
WAKE_MARGIN_S = 5.0  # after the lookup quota renews, before a waiting import continues
USER_ID_RE = re.compile(r"^@[^:\s]+:[^\s]+$")


class ImportProblem(Exception):
    """Something the user must hear about, in one sentence; nothing was imported."""


class Cancelled(Exception):
    pass


def room_marker(importer: str, group_key: str) -> str:
    return "group:" + hashlib.sha256(f"{importer}\x00{group_key}".encode()).hexdigest()[:32]


def _size_limit(limit: int) -> str:
    return (f"the limit imports.max_bytes = {limit} bytes ({human_size(limit)}). Export fewer contacts or chats at a "
            "time, or ask an administrator to raise the limit")


def summary_text(counts: dict[str, int], filename: str) -> str:
    c = counts
    return (
        f"Import of {filename} finished: {c['contacts']} contacts, {c['groups']} groups. "
        f"{c['matched']} people found here; {c['rooms_created']} rooms created; {c['invited']} invitations sent; "
        f"{c['placeholders']} placeholders added; {c['invitable_by_sms']} contacts can be invited by SMS; "
        f"{c['skipped']} skipped (already done or nothing to do); {c['errors']} errors."
    )


class ContactImporter:
    def __init__(self, config: BridgeConfig, db_store: BridgeStore, store: ImportStore, client: MatrixClient,
                 wangxin: WangxinApi):
        self.config = config
        self.core_store = db_store
        self.store = store
        self.client = client
        self.wangxin = wangxin
        self.bot = config.bot_user_id
        self._ghost_key = hashlib.sha256(b"wangxin-placeholder\x00" + config.appservice.as_token.encode()).digest()
        self._jobs: dict[int, defer.Deferred[None]] = {}
        self._wakes: dict[int, Any] = {}  # job id -> the call that continues it when lookups renew
        self._cancelled: set[int] = set()
        self.progress: dict[int, dict[str, Any]] = {}
        self._arrivals_running = False
        self._arrivals_again = False
        # Called with (user_id, phone) after an arrival was handled (SMS invitations: joined).
        self.arrival_listeners: list[Any] = []
        self._limits = ImportLimits(max_bytes=config.imports.max_bytes, max_rows=config.imports.max_rows)

    # -- wiring --------------------------------------------------------------------------

    def install(self, router: Router) -> None:
        router.add("POST", "/_wangxin/v1/arrivals", self._post_arrivals)
        # The operator CLI (``wangxin-bridge import``), authenticated with the as_token.
        router.add("POST", "/_wangxin/v1/imports", self._post_import)
        router.add("GET", r"/_wangxin/v1/imports/(?P<job_id>[0-9]+)", self._get_import)

    async def start(self) -> None:
        """Resume imports that were running when the bridge stopped, and pending arrivals."""
        for job_id in await self.store.running_jobs():
            logger.info("Resuming import job %d", job_id)
            self._start_job(job_id)
        self.wake_arrivals()

    async def stop(self) -> None:
        for job_id in list(self._jobs):
            self._cancelled.add(-job_id)  # stop without marking the job cancelled: it resumes at start
        for job_id in list(self._wakes):
            self._cancel_wake(job_id)

    # -- chat-facing operations (bridges/import_commands.py) ----------------------------

    async def remember_upload(self, room_id: str, sender: str, event: dict[str, Any]) -> str:
        content = event.get("content") or {}
        url = content.get("url")
        filename = str(content.get("filename") or content.get("body") or "export")
        if not isinstance(url, str) or not url.startswith("mxc://"):
            return "I can't read that file (it has no plain download link; was it sent encrypted?)."
        size = (content.get("info") or {}).get("size")
        await self.store.set_upload(Upload(sender, room_id, str(event["event_id"]), url, filename,
                                           int(size) if isinstance(size, int) else None))
        return f"Got {filename}. Send “import” to see what it contains before anything happens."

    async def preview(self, user_id: str, room_id: str) -> str:
        running = await self.store.latest_job(user_id, ("running",))
        if running:
            return "An import is already running; send “import status” to follow it or “import cancel” to stop it."
        upload = await self.store.get_upload(user_id)
        if upload is None:
            return ("First send me your export file here (attach it to this chat), then send “import”. "
                    "I read vCard (.vcf), Google/Outlook CSV, Telegram Desktop JSON, WeChat contact dumps "
                    "and WhatsApp chat exports (.txt).")
        try:
            data = await self._download(upload)
            _job_id, text, _counts = await self._preview_data(user_id, room_id, upload.filename, data)
        except ImportProblem as e:
            return f"I can't import {upload.filename}: {e} Nothing was imported."
        return text

    async def _preview_data(self, user_id: str, room_id: str, filename: str,
                            data: bytes) -> tuple[int, str, dict[str, int]]:
        """Parse, and look up if today's lookups cover the file; store it as a previewed job.
        Raises ImportProblem."""
        plan = await self._plan(data, filename)
        numbers = plan.numbers_in_order()
        quota = await self._quota(user_id)
        if len(numbers) <= quota["remaining_today"]:
            matches = await self._lookup(user_id, numbers)
            job_id = await self.store.create_preview(user_id, room_id, filename, data, matches, len(numbers))
            return job_id, preview_text(plan, filename, matches, user_id), plan.counts(matches, user_id)
        # Too many for today: nothing is spent on a preview; confirmed, it is imported in parts.
        job_id = await self.store.create_preview(user_id, room_id, filename, data, {}, 0)
        text = preview_in_parts_text(plan, filename, remaining_today=quota["remaining_today"],
                                     per_day=quota["lookups_per_day"], resets_in_ms=quota["resets_in_ms"])
        return job_id, text, {**plan.counts({}, user_id), "numbers": len(numbers),
                              "lookups_left_today": quota["remaining_today"]}

    async def confirm(self, user_id: str, room_id: str, command_event_id: str) -> str | None:
        job = await self.store.latest_job(user_id, ("preview", "running"))
        if job is None:
            return "There is nothing to confirm: send me the export file, then “import” for a preview."
        if job.state == "running":
            if job.job_id in self._jobs:
                return "That import is already running; send “import status” to follow it."
            return await self._continue_now(job)
        if not await self.store.set_job_state(job.job_id, "running", expect=("preview",)):
            return "That preview is gone; send “import” again."
        await self._ensure_status_message(job.job_id, reply_to=command_event_id)
        self._start_job(job.job_id)
        return None

    async def status(self, user_id: str) -> str:
        job = await self.store.latest_job(user_id, ("preview", "running", "done", "cancelled", "failed"))
        if job is None:
            return "You have not imported anything yet."
        if job.state == "preview":
            return f"{job.filename} is waiting for “import confirm” (or “import cancel”)."
        if job.state == "running":
            p = self.progress.get(job.job_id, {})
            if p.get("waiting"):
                return str(p["text"])
            return f"Importing {job.filename}: {p.get('text', 'starting')}."
        if job.state == "done":
            return summary_text(_full_counts(job.counts), job.filename)
        if job.state == "cancelled":
            return f"The import of {job.filename} was cancelled; what was done before stays."
        return f"The import of {job.filename} failed: {job.error}"

    async def cancel(self, user_id: str) -> str:
        job = await self.store.latest_job(user_id, ("preview", "running"))
        if job is None:
            return "There is no import to cancel."
        self._cancelled.add(job.job_id)
        self._cancel_wake(job.job_id)
        self.progress.pop(job.job_id, None)
        await self.store.set_job_state(job.job_id, "cancelled", expect=("preview", "running"), drop_file=True)
        if job.state == "preview":
            return f"Dropped {job.filename}; nothing was imported."
        return (f"Stopping the import of {job.filename}. Rooms and invitations made so far stay; "
                "send “import” and “import confirm” again later to finish it without duplicates.")

    async def set_discoverable(self, user_id: str, on: bool | None) -> str:
        if on is None:
            answer = await self.wangxin.call("GET", "/import/discoverable", user_id)
        else:
            answer = await self.wangxin.call("PUT", "/import/discoverable", user_id, {"discoverable": on})
        if answer.get("discoverable"):
            return ("Discoverable: on. People who import an address book or group with your phone number "
                    "will find you and can invite you. Send “discoverable off” to stop that.")
        return ("Discoverable: off. Other people's imports cannot find you by your phone number "
                "(send “discoverable on” to let them).")

    async def forget(self, user_id: str) -> str:
        job = await self.store.latest_job(user_id, ("preview", "running"))
        if job:
            self._cancelled.add(job.job_id)
            self._cancel_wake(job.job_id)
            self.progress.pop(job.job_id, None)
        ghosts, memberships = await self.store.forget(user_id)
        # Placeholders carry names from the user's export: take them out of the rooms too.
        defer.ensureDeferred(self._remove_placeholders(ghosts, memberships))
        return (f"Forgotten: your uploads, imports and their records ({len(ghosts)} placeholders are being "
                "removed from your imported rooms). Rooms and chats already created stay as they are.")

    # -- file, parse, lookup -------------------------------------------------------------

    async def _download(self, upload: Upload) -> bytes:
        limit = self.config.imports.max_bytes
        if upload.size is not None and upload.size > limit:
            raise ImportProblem(f"the file is {upload.size} bytes, more than {_size_limit(limit)}.")
        server_and_id = upload.mxc[len("mxc://"):]
        if server_and_id.count("/") != 1:
            raise ImportProblem("its download link is malformed.")
        server, media_id = server_and_id.split("/")
        url = f"{self.client.base_url}/_matrix/client/v1/media/download/{q(server)}/{q(media_id)}"
        try:
            headers: dict[bytes | str, bytes | str] = {"Authorization": f"Bearer {self.config.appservice.as_token}"}
            response = await treq.get(url, headers=headers, timeout=120)
        except Exception as e:
            raise ImportProblem(f"I could not download it ({e}); please send it again.") from e
        if response.code != 200:
            raise ImportProblem(f"I could not download it (the server said {response.code}); please send it again.")
        chunks: list[bytes] = []
        received = [0]

        def collect(chunk: bytes) -> None:
            received[0] += len(chunk)
            if received[0] <= limit:
                chunks.append(chunk)

        await treq.collect(response, collect)
        if received[0] > limit:
            raise ImportProblem(f"the file is larger than {_size_limit(limit)}.")
        return b"".join(chunks)

    async def _parse(self, data: bytes, filename: str) -> ImportedExport:
        try:
            return await threads.deferToThread(
                parse_export, data, filename, default_region=self.config.imports.default_region,
                limits=self._limits,
            )
        except ImportFormatError as e:
            raise ImportProblem(str(e)) from None

    async def _plan(self, data: bytes, filename: str) -> ImportPlan:
        return build_plan(await self._parse(data, filename), max_phones=self.config.imports.max_phones_per_contact)

    async def _quota(self, importer: str) -> dict[str, int]:
        """The importer's phone lookups today (module): lookups_per_day, used_today, remaining_today, resets_in_ms."""
        try:
            answer = await self.wangxin.call("GET", "/import/quota", importer)
        except MatrixRequestError as e:
            raise ImportProblem(f"I could not check how many phone numbers you may look up today ({e.error}).") from e
        return {k: int(answer[k]) for k in ("lookups_per_day", "used_today", "remaining_today", "resets_in_ms")}

    async def _lookup(self, importer: str, numbers: list[str]) -> dict[str, str]:
        matches: dict[str, str] = {}
        for start in range(0, len(numbers), LOOKUP_BATCH):
            try:
                answer = await self.wangxin.call(
                    "POST", "/import/lookup", importer, {"msisdns": numbers[start:start + LOOKUP_BATCH]}
                )
            except MatrixRequestError as e:
                if e.status == 429:  # spent by something else since the quota was checked
                    raise ImportProblem(
                        "your phone-number lookups for today ran out while I was checking this file (another "
                        "import used them). Send “import” again and I will offer to import it in parts."
                    ) from e
                raise ImportProblem(f"I could not check who is already here ({e.error}).") from e
            matches.update(answer.get("matches") or {})
        return matches

    # -- running a job -------------------------------------------------------------------

    def _start_job(self, job_id: int) -> None:
        if job_id in self._jobs:
            return
        d = defer.ensureDeferred(self._run_guarded(job_id))
        self._jobs[job_id] = d

    async def _run_guarded(self, job_id: int) -> None:
        waiting = False
        try:
            waiting = await self._run(job_id)
        except Cancelled:
            logger.info("Import job %d stopped", job_id)
            job = await self.store.job(job_id)
            if job and job.state == "cancelled":
                await self._finish_message(job, "Import cancelled. What was done before stays.", None)
        except Exception:
            logger.exception("Import job %d failed; retrying in %.0fs", job_id, RETRY_AFTER_S)
            self._jobs.pop(job_id, None)
            reactor.callLater(RETRY_AFTER_S, self._retry, job_id)  # type: ignore[attr-defined]
            return
        finally:
            self._cancelled.discard(job_id)
        self._jobs.pop(job_id, None)
        if not waiting:
            self.progress.pop(job_id, None)

    def _retry(self, job_id: int) -> None:
        async def again() -> None:
            job = await self.store.job(job_id)
            if job and job.state == "running":
                self._start_job(job_id)

        defer.ensureDeferred(again())

    def _check(self, job_id: int) -> None:
        if job_id in self._cancelled or -job_id in self._cancelled:
            raise Cancelled()

    async def _run(self, job_id: int) -> bool:
        """Look up as much of the file as today's quota allows and import what that makes ready;
        True when the rest waits for the quota to renew."""
        job = await self.store.job(job_id)
        if job is None or job.state != "running":
            return False
        data = await self.store.job_file(job_id)
        if data is None:
            await self.store.set_job_state(job_id, "failed", error="the stored file is missing")
            return False
        plan = await self._plan(data, job.filename)
        numbers = plan.numbers_in_order()
        before = len(numbers) if job.looked_up is None else min(job.looked_up, len(numbers))
        await self._ensure_status_message(job_id)
        looked_up, quota = before, None
        if before < len(numbers):
            looked_up, quota = await self._lookup_part(job, numbers, before)
            job = await self.store.job(job_id) or job
        start = (0, 0) if job.imported_upto is None else plan.ready(min(job.imported_upto, looked_up))
        end = plan.ready(looked_up)
        complete = looked_up >= len(numbers)
        run = _Run(self, job, plan.part(start, end), plan) if complete or end != start else None
        if run:
            await run.execute(final=complete)
        if complete or quota is None:
            return False
        # The part's counts and its end in one transaction: a crash in between would count it twice.
        await self.store.set_imported_upto(job_id, looked_up, counts=run.counts if run else None)
        text, part = _part_report(job.filename, plan, end, looked_up, len(numbers), quota)
        self.progress[job_id] = {"text": text, "waiting": True}
        if looked_up > before or end != start or before == 0:
            await self._edit_status(job_id, text, {PART_KEY: part})
            if job.room_id:
                await self.client.send_event(job.room_id, "m.room.message",
                                             {"msgtype": "m.notice", "body": text, PART_KEY: part},
                                             txn_id_for("import-part", str(job_id), str(looked_up)))
        self._schedule_wake(job_id, quota["resets_in_ms"])
        return True

    async def _lookup_part(self, job: Job, numbers: list[str], looked_up: int) -> tuple[int, dict[str, int]]:
        """Look up the job's next numbers, as many as the importer may still today; each batch is
        recorded on the job before the next. Returns how many are looked up now, and the quota."""
        quota = await self._quota(job.user_id)
        end = looked_up + min(quota["remaining_today"], len(numbers) - looked_up)
        while looked_up < end:
            self._check(job.job_id)
            self.progress[job.job_id] = {"text": f"checking phone numbers {looked_up}/{len(numbers)}"}
            batch = numbers[looked_up:min(looked_up + LOOKUP_BATCH, end)]
            try:
                answer = await self.wangxin.call("POST", "/import/lookup", job.user_id, {"msisdns": batch})
            except MatrixRequestError as e:
                if e.status == 429:  # another import spent them meanwhile: the rest waits too
                    break
                raise
            looked_up += len(batch)
            await self.store.record_lookups(job.job_id, dict(answer.get("matches") or {}), looked_up)
        return looked_up, quota

    async def _continue_now(self, job: Job) -> str:
        """``import confirm`` on an import waiting for lookups: go on now if there are any."""
        try:
            quota = await self._quota(job.user_id)
        except ImportProblem as e:
            return f"I can't continue the import of {job.filename} now: {e}"
        if not quota["remaining_today"]:
            return (f"Your phone-number lookups for today are used up; the import of {job.filename} continues by "
                    f"itself after 00:00 UTC ({in_how_long(quota['resets_in_ms'])}).")
        self._cancel_wake(job.job_id)
        self._start_job(job.job_id)
        return f"Continuing the import of {job.filename} now."

    def _schedule_wake(self, job_id: int, in_ms: int) -> None:
        self._cancel_wake(job_id)

        def wake() -> None:
            self._wakes.pop(job_id, None)
            self._retry(job_id)

        self._wakes[job_id] = reactor.callLater(in_ms / 1000 + WAKE_MARGIN_S, wake)  # type: ignore[attr-defined]

    def _cancel_wake(self, job_id: int) -> None:
        call = self._wakes.pop(job_id, None)
        if call is not None and call.active():
            call.cancel()


    # -- operator HTTP (bridges/__main__.py: wangxin-bridge import) ---------------------

    def _check_operator(self, request: Any) -> None:
        raw = request.getHeader(b"authorization")
        token = raw.decode("utf-8", "replace").removeprefix("Bearer ") if raw else ""
        if not hmac.compare_digest(token.encode(), self.config.appservice.as_token.encode()):
            raise MatrixError(403, "M_FORBIDDEN", "Send the bridge's as_token as a bearer token")

    async def _post_import(self, request: Any) -> tuple[int, Any]:
        self._check_operator(request)

        def arg(name: str) -> str:
            values = request.args.get(name.encode())
            return values[0].decode("utf-8") if values else ""

        user_id, filename = arg("user_id"), arg("filename") or "export"
        if not user_id.startswith("@") or not user_id.endswith(":" + self.config.homeserver.server_name):
            raise MatrixError(400, "M_INVALID_PARAM", "user_id must name a user of this server")
        limit = self.config.imports.max_bytes
        data = request.content.read(limit + 1)
        if len(data) > limit:
            raise MatrixError(413, "M_TOO_LARGE", f"The file is larger than imports.max_bytes={limit}")
        if await self.store.latest_job(user_id, ("running",)):
            raise MatrixError(409, "WX_IMPORT_RUNNING", f"An import for {user_id} is already running")
        try:
            job_id, text, counts = await self._preview_data(user_id, "", filename, data)
        except ImportProblem as e:
            raise MatrixError(400, "WX_BAD_EXPORT", f"{filename}: {e}") from None
        state = "preview"
        if arg("dry_run") not in ("1", "true"):
            await self.store.set_job_state(job_id, "running", expect=("preview",))
            self._start_job(job_id)
            state = "running"
        return 200, {"job_id": job_id, "state": state, "preview": text, "counts": counts}

    async def _get_import(self, request: Any, job_id: str) -> tuple[int, Any]:
        self._check_operator(request)
        job = await self.store.job(int(job_id))
        if job is None:
            raise MatrixError(404, "M_NOT_FOUND", "No such import")
        return 200, {"job_id": job.job_id, "user_id": job.user_id, "state": job.state,
                     "progress": self.progress.get(job.job_id), "counts": job.counts, "error": job.error}

    # -- messages, invitations and arrivals ---------------------------------------------

    async def _edit_status(self, job_id: int, text: str, extra: dict[str, Any] | None = None) -> None:
        job = await self.store.job(job_id)
        if job is None or not job.status_event_id or not job.room_id:
            return
        new_content: dict[str, Any] = {"msgtype": "m.notice", "body": text, **(extra or {})}
        content = {
            "msgtype": "m.notice",
            "body": "* " + text,
            "m.new_content": new_content,
            "m.relates_to": {"rel_type": "m.replace", "event_id": job.status_event_id},
            **(extra or {}),
        }
        try:
            await self.client.send_event(job.room_id, "m.room.message", content, "wx-" + uuid.uuid4().hex)
        except MatrixRequestError as e:
            logger.info("Could not update the import status message: %s", e)


    async def _ensure_status_message(self, job_id: int, reply_to: str | None = None) -> None:
        job = await self.store.job(job_id)
        if job is None or job.status_event_id or not job.room_id:  # no room: started by the operator CLI
            return
        extra: dict[str, Any] = {}
        if reply_to:
            extra["m.relates_to"] = {"m.in_reply_to": {"event_id": reply_to}}
        event_id = await self.client.send_notice(
            job.room_id, f"Importing {job.filename}: starting…", txn_id_for("import-status", str(job_id)), extra=extra
        )
        await self.store.set_status_event(job_id, event_id)


    async def _finish_message(self, job: Job, text: str, summary: dict[str, int] | None) -> None:
        if not job.room_id:
            return
        extra = {SUMMARY_KEY: summary} if summary is not None else {}
        await self._edit_status(job.job_id, text, extra)
        content: dict[str, Any] = {"msgtype": "m.notice", "body": text, **extra}
        await self.client.send_event(job.room_id, "m.room.message", content, txn_id_for("import-end", str(job.job_id)))


    async def invite(self, room_id: str, user_id: str) -> None:
        try:
            await self.client.request("POST", f"/_matrix/client/v3/rooms/{q(room_id)}/invite", {"user_id": user_id})
        except MatrixRequestError as e:
            if e.status == 403 and e.error and ("already in the room" in e.error or "is banned" in e.error):
                return
            raise


    async def open_dm(self, importer: str, invitee: str, name: str, source_label: str) -> bool:
        """A direct chat from the importer to the invitee, through the module (only it may act as
        a local user); False if the invitee may no longer be invited (not discoverable)."""
        note = f"You are in my contacts from {source_label} as “{name[:80]}”. (Moved over with Wangxin.)"
        try:
            answer = await self.wangxin.call("POST", "/import/dm", importer, {"invitee": invitee, "note": note})
        except MatrixRequestError as e:
            if e.status == 403:
                return False
            raise
        await self.store.add_dm(importer, invitee, str(answer["room_id"]))
        return True


    async def _post_arrivals(self, request: Any) -> tuple[int, Any]:
        secret = self.config.homeserver.service_secret
        raw = request.getHeader(b"authorization")
        token = raw.decode("utf-8", "replace").removeprefix("Bearer ") if raw else ""
        if not secret or not hmac.compare_digest(token.encode(), secret.encode()):
            raise MatrixError(403, "M_FORBIDDEN", "Only the Wangxin Synapse module may report arrivals")
        body = read_json_object(request)
        arrivals = body.get("arrivals")
        if not isinstance(arrivals, list):
            raise MatrixError(400, "M_BAD_JSON", "'arrivals' must be a list")
        rows: list[tuple[str, str | None, str | None, list[str] | None]] = []
        for a in arrivals:
            if isinstance(a, dict) and isinstance(a.get("user_id"), str) and isinstance(a.get("msisdn"), str):
                by = a.get("invited_by")
                only = [u for u in by if isinstance(u, str)] if isinstance(by, list) else None
                rows.append((a["user_id"], "+" + msisdn(a["msisdn"]), None, only))
        await self.store.add_arrivals(rows)
        self.wake_arrivals()
        return 200, {}


    def wake_arrivals(self) -> None:
        if self._arrivals_running:
            self._arrivals_again = True
            return
        defer.ensureDeferred(self._drain_arrivals())


    async def _drain_arrivals(self) -> None:
        self._arrivals_running = True
        try:
            while True:
                self._arrivals_again = False
                batch = await self.store.pending_arrivals()
                for seq, user_id, phone, source_key, only in batch:
                    if phone:
                        await self._arrive(user_id, phone, only)
                    elif source_key:
                        await self._claim(seq, user_id, source_key)
                    await self.store.arrival_done(seq)
                if not batch and not self._arrivals_again:
                    break
        except Exception:
            logger.exception("Handling arrivals stopped; retrying in %.0fs", RETRY_AFTER_S)
            reactor.callLater(RETRY_AFTER_S, self.wake_arrivals)  # type: ignore[attr-defined]
        finally:
            self._arrivals_running = False


    async def _arrive(self, user_id: str, phone: str, only: list[str] | None = None) -> None:
        """``user_id`` bound ``phone`` (verified by the homeserver): they are the person behind the
        placeholders and invitable contacts with that number; with ``only``, for those importers
        alone (the people who invited that number by SMS)."""
        notes: dict[str, tuple[str, str]] = {}
        for p in await self.store.placeholders_for(phone, None):
            if p.importer == user_id or (only is not None and p.importer not in only):
                continue
            await self._replace_placeholder(p, user_id)
            notes.setdefault(p.importer, (p.name, p.source_label))
        for inv in await self.store.invitable_for(phone):
            if inv.importer != user_id and (only is None or inv.importer in only):
                notes.setdefault(inv.importer, (inv.name, inv.source_label))
        for importer, (name, label) in notes.items():
            if not await self.store.dm_room(importer, user_id):
                await self.open_dm(importer, user_id, name, label)
            await self.store.remove_invitable(importer, phone)
        for listener in self.arrival_listeners:
            await listener(user_id, phone)

    async def _replace_placeholder(self, p: Placeholder, user_id: str) -> int:
        """Invite ``user_id`` to every room holding the placeholder, which leaves; how many rooms."""
        rooms = await self.store.rooms_of(p.ghost_id, ("invited", "joined"))
        for room_id, importer in rooms:
            members = await self.store.room_members(room_id)
            if user_id not in members:
                await self.invite(room_id, user_id)
                await self.store.set_member(room_id, user_id, importer, "member", "invited")
            try:
                await self.client.leave_room(room_id, as_user=p.ghost_id)
            except MatrixRequestError as e:
                logger.info("Placeholder %s could not leave %s: %s", p.ghost_id, room_id, e)
            await self.store.set_member(room_id, p.ghost_id, importer, "placeholder", "left")
        await self.store.mark_arrived(p.ghost_id, user_id)
        return len(rooms)

    async def _claim(self, seq: int, claimant: str, source_key: str) -> None:
        """``claimant``'s own export names them as ``source_key`` (e.g. their WeChat id).

        A file proves nothing: anyone can write someone else's id into one, and would otherwise be
        invited into every group that person was a placeholder in. So no placeholder is replaced
        here: each importer holding one with that id is asked, in their chat with the bot, to
        confirm with ``import accept``. Only discoverable claimants are announced, once per id.
        """
        if await self.store.claimed_before(claimant, source_key, seq):
            return
        if not await self._is_discoverable(claimant):
            return
        by_importer: dict[str, list[Placeholder]] = {}
        for p in await self.store.placeholders_for(None, source_key):
            if p.importer != claimant:
                by_importer.setdefault(p.importer, []).append(p)
        source_id = source_key.split(":", 1)[-1]
        for importer, placeholders in sorted(by_importer.items()):
            room_id = await self.store.management_room(importer)
            if room_id is None:
                continue
            rooms: set[str] = set()
            for p in placeholders:
                rooms.update(r for r, _ in await self.store.rooms_of(p.ghost_id, ("invited", "joined")))
            p = placeholders[0]
            text = (f"{claimant} says they are “{p.name}” from {p.source_label} ({source_id}), who is a placeholder "
                    f"in {len(rooms)} of your imported rooms. If you know that account is them (ask them on "
                    f"{p.source_label} if unsure), send “import accept {claimant}” and they take the "
                    "placeholder's place; otherwise ignore this message.")
            await self.client.send_notice(room_id, text, txn_id_for("import-claim", str(seq), importer))

    async def accept_claim(self, importer: str, claimant: str) -> str:
        """The importer confirms that ``claimant`` is the person behind the placeholders they claimed."""
        if not USER_ID_RE.match(claimant) or not claimant.endswith(":" + self.config.homeserver.server_name):
            return "Send “import accept @name:server” with the account named in my message."
        placeholders = await self.store.claimed_placeholders(importer, claimant)
        if not placeholders:
            return f"{claimant} has not asked to take anyone's place in your imported rooms (or already has)."
        if not await self._is_discoverable(claimant):
            return f"{claimant} no longer lets imports find them, so nothing was changed."
        rooms = 0
        for p in placeholders:
            rooms += await self._replace_placeholder(p, claimant)
        first = placeholders[0]
        dm = ""
        if not await self.store.dm_room(importer, claimant) and await self.open_dm(
            importer, claimant, first.name, first.source_label
        ):
            dm = " and got a direct-chat invitation from you"
        return f"Done: {claimant} took the place of “{first.name}” in {rooms} rooms{dm}."

    async def _is_discoverable(self, user_id: str) -> bool:
        answer = await self.wangxin.call("GET", "/import/discoverable", user_id)
        return bool(answer.get("discoverable"))

    async def _remove_placeholders(self, ghosts: list[str], memberships: list[tuple[str, str]]) -> None:
        for room_id, ghost in memberships:
            try:
                await self.client.leave_room(room_id, as_user=ghost)
            except MatrixRequestError as e:
                logger.info("Placeholder %s could not leave %s: %s", ghost, room_id, e)
        for ghost in ghosts:
            try:
                await self.client.set_displayname(ghost, "")
            except MatrixRequestError:
                pass


class _Run:
    """One pass over a job's plan; every step is skipped when the journal says it is done."""

    def __init__(self, importer: ContactImporter, job: Job, plan: ImportPlan, whole: ImportPlan | None = None):
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
        digest = hmac.new(self.i._ghost_key, f"{self.user}\x00{person.key}".encode(), hashlib.sha256).hexdigest()
        return self.i.config.ghost_user_id("p_" + digest[:24])

    def user_for(self, person: Person) -> str | None:
        return person.user_in(self.matches) or self.arrived.get(person.key)

    async def parallel(self, items: Iterable[T], func: Callable[[T], Awaitable[None]]) -> None:
        iterator = iter(items)

        async def worker() -> None:
            for item in iterator:
                self.i._check(self.job.job_id)
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
        await self.i._edit_status(self.job.job_id, f"Importing {self.job.filename}: {self.progress_text()}.")

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
        self.i._check(self.job.job_id)
        if not final:
            return  # the caller records this part's counts with its end
        if self.whole.self_source_key:
            # The importer's own export names their id on the network: placeholders for it are them.
            await self.i.store.add_arrivals([(self.user, None, self.whole.self_source_key)])
            self.i.wake_arrivals()
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
        await self.i._finish_message(self.job, summary_text(summary, self.job.filename), summary)
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
            await self.i.invite(room_id, user)
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
        if await self.i.open_dm(self.user, invitee, contact.name, self.plan.source_label):
            self.counts["invited"] += 1
        else:
            self.counts["skipped"] += 1


def _part_report(filename: str, plan: ImportPlan, done: tuple[int, int], looked_up: int, numbers: int,
                 quota: dict[str, int]) -> tuple[str, dict[str, int]]:
    """What to tell the importer while an import waits for tomorrow's lookups: text and PART_KEY content."""
    when = f"after 00:00 UTC ({in_how_long(quota['resets_in_ms'])})"
    part = {"contacts": len(plan.contacts), "contacts_done": done[0], "groups": len(plan.groups),
            "groups_done": done[1], "numbers": numbers, "numbers_checked": looked_up,
            "resumes_in_ms": quota["resets_in_ms"]}
    if done == (0, 0):
        text = (f"Nothing of {filename} is imported yet: your phone-number lookups for today are used up "
                f"({quota['lookups_per_day']} a day, lookups_per_day; {looked_up} of its {numbers} numbers checked). "
                f"It continues by itself {when}; “import cancel” drops it.")
        return text, part
    groups = f" and {done[1]} of {len(plan.groups)} groups" if plan.groups else ""
    text = (f"Imported {done[0]} of {len(plan.contacts)} contacts{groups} from {filename} so far ({looked_up} of "
            f"{numbers} phone numbers checked; you may look up {quota['lookups_per_day']} a day). The rest continues "
            f"by itself {when}, when your lookups renew. “import status” shows how far it is; “import cancel” "
            "stops here (what was done stays).")
    return text, part


def _full_counts(counts: dict[str, Any]) -> dict[str, int]:
    return {k: int(counts.get(k, 0)) for k in SUMMARY_FIELDS}
