"""What an import tells the importer in their chat with the bot: one status message, edited as
the import goes; the summary at the end; a notice for each part that waits for tomorrow's
lookups. The summary and part notices carry their figures as content keys, for clients."""

from __future__ import annotations

import logging
import uuid
from typing import Any

from bridges.contact_import.plan import ImportPlan, in_how_long
from bridges.contact_import.store.jobs import Job, JobStore
from bridges.matrix_client import MatrixClient, MatrixRequestError, txn_id_for

logger = logging.getLogger(__name__)

SUMMARY_KEY = "org.wangxin.import.summary"
# On the message after each part of an import that waits for tomorrow's lookups.
PART_KEY = "org.wangxin.import.part"
SUMMARY_FIELDS = ("contacts", "matched", "groups", "rooms_created", "invited", "placeholders",
                  "invitable_by_sms", "skipped", "errors")


def summary_text(counts: dict[str, int], filename: str) -> str:
    c = counts
    return (
        f"Import of {filename} finished: {c['contacts']} contacts, {c['groups']} groups. "
        f"{c['matched']} people found here; {c['rooms_created']} rooms created; {c['invited']} invitations sent; "
        f"{c['placeholders']} placeholders added; {c['invitable_by_sms']} contacts can be invited by SMS; "
        f"{c['skipped']} skipped (already done or nothing to do); {c['errors']} errors."
    )


def full_counts(counts: dict[str, Any]) -> dict[str, int]:
    return {k: int(counts.get(k, 0)) for k in SUMMARY_FIELDS}


def part_report(filename: str, plan: ImportPlan, done: tuple[int, int], looked_up: int, numbers: int,
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


class StatusMessages:
    def __init__(self, client: MatrixClient, store: JobStore) -> None:
        self.client = client
        self.store = store

    async def edit_status(self, job_id: int, text: str, extra: dict[str, Any] | None = None) -> None:
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

    async def ensure_status_message(self, job_id: int, reply_to: str | None = None) -> None:
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

    async def part_notice(self, job: Job, looked_up: int, text: str, part: dict[str, int]) -> None:
        """A part is done and the rest waits for the lookups to renew: the status says so, and a notice."""
        await self.edit_status(job.job_id, text, {PART_KEY: part})
        if job.room_id:
            await self.client.send_event(job.room_id, "m.room.message",
                                         {"msgtype": "m.notice", "body": text, PART_KEY: part},
                                         txn_id_for("import-part", str(job.job_id), str(looked_up)))

    async def finish_message(self, job: Job, text: str, summary: dict[str, int] | None) -> None:
        if not job.room_id:
            return
        extra = {SUMMARY_KEY: summary} if summary is not None else {}
        await self.edit_status(job.job_id, text, extra)
        content: dict[str, Any] = {"msgtype": "m.notice", "body": text, **extra}
        await self.client.send_event(job.room_id, "m.room.message", content, txn_id_for("import-end", str(job.job_id)))
