"""The chat-facing side of contact import and the life of its jobs.

``import`` downloads the user's last upload, parses it, looks it up (when today's lookups cover
it) and answers with a preview, stored as a ``preview`` job; ``import confirm`` makes it
``running`` and runs it in the background (``run.ImportRun``). A job that needs more lookups
than today's quota imports what is ready (a part), waits, still ``running``, until the quota
renews at 00:00 UTC (or ``import confirm`` again, if an administrator gave lookups back), then
does the next part. The job row keeps how far the lookups and the import got, so a restart
resumes where it was without spending anything twice. A run that fails (the homeserver is
unwell) is retried after ``RETRY_AFTER_S``; ``import cancel`` and ``forget`` stop it.
"""

from __future__ import annotations

import hashlib
import logging
from typing import Any

from twisted.internet import defer, reactor

from bridges.config import BridgeConfig
from bridges.contact_import.arrivals import ArrivalListener, Arrivals
from bridges.contact_import.exports import LOOKUP_BATCH, Exports, ImportProblem
from bridges.contact_import.messages import StatusMessages, full_counts, part_report, summary_text
from bridges.contact_import.plan import in_how_long, preview_in_parts_text, preview_text
from bridges.contact_import.rooms import RoomActions
from bridges.contact_import.run import ImportRun
from bridges.contact_import.store import ImportStore
from bridges.contact_import.store.jobs import Job, Upload
from bridges.matrix_client import MatrixClient, MatrixRequestError
from bridges.store import BridgeStore
from bridges.wangxin_api import WangxinApi

logger = logging.getLogger(__name__)

RETRY_AFTER_S = 30.0
WAKE_MARGIN_S = 5.0  # after the lookup quota renews, before a waiting import continues


class Cancelled(Exception):
    pass


class ContactImporter:
    def __init__(self, config: BridgeConfig, db_store: BridgeStore, store: ImportStore, client: MatrixClient,
                 wangxin: WangxinApi) -> None:
        self.config = config
        self.core_store = db_store
        self.store = store
        self.client = client
        self.wangxin = wangxin
        self.bot = config.bot_user_id
        self.ghost_key = hashlib.sha256(b"wangxin-placeholder\x00" + config.appservice.as_token.encode()).digest()
        self.exports = Exports(config, client, wangxin)
        self.messages = StatusMessages(client, store)
        self.rooms = RoomActions(client, wangxin, store)
        self.arrivals = Arrivals(config, store, client, wangxin, self.rooms)
        self._jobs: dict[int, defer.Deferred[None]] = {}
        self._wakes: dict[int, Any] = {}  # job id -> the call that continues it when lookups renew
        self._cancelled: set[int] = set()
        self.progress: dict[int, dict[str, Any]] = {}

    @property
    def arrival_listeners(self) -> list[ArrivalListener]:
        """Called with (user_id, phone) after an arrival was handled (SMS invitations: joined)."""
        return self.arrivals.listeners

    async def start(self) -> None:
        """Resume imports that were running when the bridge stopped, and pending arrivals."""
        for job_id in await self.store.running_jobs():
            logger.info("Resuming import job %d", job_id)
            self.start_job(job_id)
        self.arrivals.wake()

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
            data = await self.exports.download(upload)
            _job_id, text, _counts = await self.preview_data(user_id, room_id, upload.filename, data)
        except ImportProblem as e:
            return f"I can't import {upload.filename}: {e} Nothing was imported."
        return text

    async def preview_data(self, user_id: str, room_id: str, filename: str,
                           data: bytes) -> tuple[int, str, dict[str, int]]:
        """Parse, and look up if today's lookups cover the file; store it as a previewed job.
        Raises ImportProblem."""
        plan = await self.exports.plan(data, filename)
        numbers = plan.numbers_in_order()
        quota = await self.exports.quota(user_id)
        if len(numbers) <= quota["remaining_today"]:
            matches = await self.exports.lookup(user_id, numbers)
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
        await self.messages.ensure_status_message(job.job_id, reply_to=command_event_id)
        self.start_job(job.job_id)
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
            return summary_text(full_counts(job.counts), job.filename)
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

    async def accept_claim(self, importer: str, claimant: str) -> str:
        """The importer confirms that ``claimant`` is the person behind the placeholders they claimed."""
        return await self.arrivals.accept_claim(importer, claimant)

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
        defer.ensureDeferred(self.rooms.remove_placeholders(ghosts, memberships))
        return (f"Forgotten: your uploads, imports and their records ({len(ghosts)} placeholders are being "
                "removed from your imported rooms). Rooms and chats already created stay as they are.")

    # -- running a job -------------------------------------------------------------------

    def start_job(self, job_id: int) -> None:
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
                await self.messages.finish_message(job, "Import cancelled. What was done before stays.", None)
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
                self.start_job(job_id)

        defer.ensureDeferred(again())

    def check(self, job_id: int) -> None:
        """Raises Cancelled if the job was cancelled or the bridge is stopping."""
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
        plan = await self.exports.plan(data, job.filename)
        numbers = plan.numbers_in_order()
        before = len(numbers) if job.looked_up is None else min(job.looked_up, len(numbers))
        await self.messages.ensure_status_message(job_id)
        looked_up, quota = before, None
        if before < len(numbers):
            looked_up, quota = await self._lookup_part(job, numbers, before)
            job = await self.store.job(job_id) or job
        start = (0, 0) if job.imported_upto is None else plan.ready(min(job.imported_upto, looked_up))
        end = plan.ready(looked_up)
        complete = looked_up >= len(numbers)
        run = ImportRun(self, job, plan.part(start, end), plan) if complete or end != start else None
        if run:
            await run.execute(final=complete)
        if complete or quota is None:
            return False
        # The part's counts and its end in one transaction: a crash in between would count it twice.
        await self.store.set_imported_upto(job_id, looked_up, counts=run.counts if run else None)
        text, part = part_report(job.filename, plan, end, looked_up, len(numbers), quota)
        self.progress[job_id] = {"text": text, "waiting": True}
        if looked_up > before or end != start or before == 0:
            await self.messages.part_notice(job, looked_up, text, part)
        self._schedule_wake(job_id, quota["resets_in_ms"])
        return True

    async def _lookup_part(self, job: Job, numbers: list[str], looked_up: int) -> tuple[int, dict[str, int]]:
        """Look up the job's next numbers, as many as the importer may still today; each batch is
        recorded on the job before the next. Returns how many are looked up now, and the quota."""
        quota = await self.exports.quota(job.user_id)
        end = looked_up + min(quota["remaining_today"], len(numbers) - looked_up)
        while looked_up < end:
            self.check(job.job_id)
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
            quota = await self.exports.quota(job.user_id)
        except ImportProblem as e:
            return f"I can't continue the import of {job.filename} now: {e}"
        if not quota["remaining_today"]:
            return (f"Your phone-number lookups for today are used up; the import of {job.filename} continues by "
                    f"itself after 00:00 UTC ({in_how_long(quota['resets_in_ms'])}).")
        self._cancel_wake(job.job_id)
        self.start_job(job.job_id)
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
