"""SQL of uploads and import jobs (``import_uploads``, ``import_jobs``).

A job row is the import's own journal: its state, the stored file until it is done, how far the
lookups and the import got (``looked_up``, ``imported_upto``), its counts and status message.
"""

from __future__ import annotations

import json
from typing import Any

import attrs

from bridges.database import Database, Txn
from bridges.store import now_ms


@attrs.frozen
class Upload:
    user_id: str
    room_id: str
    event_id: str
    mxc: str
    filename: str
    size: int | None


@attrs.frozen
class Job:
    job_id: int
    user_id: str
    room_id: str
    state: str  # preview | running | done | cancelled | failed | replaced
    filename: str
    matches: dict[str, str]
    status_event_id: str | None
    counts: dict[str, int]
    error: str | None
    looked_up: int | None = None  # numbers of the file looked up so far, in plan order; None: all
    # The contacts and groups whose numbers are all among the first this many are imported; None: none yet.
    imported_upto: int | None = None


class JobStore:
    db: Database

    # -- uploads -------------------------------------------------------------------------

    async def set_upload(self, upload: Upload) -> None:
        await self.db.run("set_upload", _set_upload_txn, upload)

    async def get_upload(self, user_id: str) -> Upload | None:
        return await self.db.run("get_upload", _get_upload_txn, user_id)

    # -- jobs ----------------------------------------------------------------------------

    async def create_preview(self, user_id: str, room_id: str, filename: str, data: bytes,
                             matches: dict[str, str], looked_up: int) -> int:
        """A new previewed job; an older preview of the same user is replaced (its file dropped)."""
        return await self.db.run("create_preview", _create_preview_txn, user_id, room_id, filename, data, matches,
                                 looked_up)

    async def record_lookups(self, job_id: int, matches: dict[str, str], looked_up: int) -> None:
        """One more batch of the job's numbers was looked up: add its matches, move the mark."""
        await self.db.run("record_lookups", _record_lookups_txn, job_id, matches, looked_up)

    async def set_imported_upto(self, job_id: int, numbers: int, counts: dict[str, int] | None = None) -> None:
        """A part of the job is imported: the contacts and groups ready at ``numbers`` lookups (and its counts)."""
        await self.db.run("set_imported_upto", _set_imported_upto_txn, job_id, numbers, counts)

    async def job(self, job_id: int) -> Job | None:
        return await self.db.run("job", _job_txn, job_id)

    async def job_file(self, job_id: int) -> bytes | None:
        return await self.db.run("job_file", _job_file_txn, job_id)

    async def latest_job(self, user_id: str, states: tuple[str, ...] | None = None) -> Job | None:
        return await self.db.run("latest_job", _latest_job_txn, user_id, states)

    async def running_jobs(self) -> list[int]:
        return await self.db.run("running_jobs", _running_jobs_txn)

    async def set_job_state(self, job_id: int, state: str, *, expect: tuple[str, ...] | None = None,
                            counts: dict[str, int] | None = None, error: str | None = None,
                            drop_file: bool = False) -> bool:
        """Move a job to ``state`` (only from one of ``expect`` when given); False if it was not there."""
        return await self.db.run("set_job_state", _set_job_state_txn, job_id, state, expect, counts, error, drop_file)

    async def set_status_event(self, job_id: int, event_id: str) -> None:
        await self.db.run("set_status_event", _set_status_event_txn, job_id, event_id)


# -- uploads -------------------------------------------------------------------------------


def _set_upload_txn(txn: Txn, u: Upload) -> None:
    txn.execute("DELETE FROM import_uploads WHERE user_id = ?", (u.user_id,))
    txn.execute(
        "INSERT INTO import_uploads (user_id, room_id, event_id, mxc, filename, size, uploaded_ts)"
        " VALUES (?, ?, ?, ?, ?, ?, ?)",
        (u.user_id, u.room_id, u.event_id, u.mxc, u.filename, u.size, now_ms()),
    )


def _get_upload_txn(txn: Txn, user_id: str) -> Upload | None:
    row = txn.execute(
        "SELECT user_id, room_id, event_id, mxc, filename, size FROM import_uploads WHERE user_id = ?", (user_id,)
    ).fetchone()
    return Upload(*row) if row else None


# -- jobs ----------------------------------------------------------------------------------

_JOB_COLUMNS = ("job_id, user_id, room_id, state, filename, matches, status_event_id, counts, error, looked_up,"
                " imported_upto")


def _job_from_row(row: Any) -> Job:
    return Job(
        job_id=int(row[0]), user_id=row[1], room_id=row[2], state=row[3], filename=row[4],
        matches=json.loads(row[5]) if row[5] else {}, status_event_id=row[6],
        counts=json.loads(row[7]) if row[7] else {}, error=row[8],
        looked_up=None if row[9] is None else int(row[9]), imported_upto=None if row[10] is None else int(row[10]),
    )


def _create_preview_txn(txn: Txn, user_id: str, room_id: str, filename: str, data: bytes,
                        matches: dict[str, str], looked_up: int) -> int:
    now = now_ms()
    txn.execute(
        "UPDATE import_jobs SET state = 'replaced', file_data = NULL, updated_ts = ?"
        " WHERE user_id = ? AND state = 'preview'",
        (now, user_id),
    )
    blob: Any = data
    if txn.engine == "postgres":
        import psycopg2

        blob = psycopg2.Binary(data)
    txn.execute(
        "INSERT INTO import_jobs (user_id, room_id, state, filename, file_data, matches, looked_up, created_ts,"
        " updated_ts) VALUES (?, ?, 'preview', ?, ?, ?, ?, ?, ?)",
        (user_id, room_id, filename, blob, json.dumps(matches), looked_up, now, now),
    )
    row = txn.execute(
        "SELECT MAX(job_id) FROM import_jobs WHERE user_id = ? AND state = 'preview'", (user_id,)
    ).fetchone()
    return int(row[0])


def _job_txn(txn: Txn, job_id: int) -> Job | None:
    row = txn.execute(f"SELECT {_JOB_COLUMNS} FROM import_jobs WHERE job_id = ?", (job_id,)).fetchone()
    return _job_from_row(row) if row else None


def _job_file_txn(txn: Txn, job_id: int) -> bytes | None:
    row = txn.execute("SELECT file_data FROM import_jobs WHERE job_id = ?", (job_id,)).fetchone()
    return bytes(row[0]) if row and row[0] is not None else None


def _latest_job_txn(txn: Txn, user_id: str, states: tuple[str, ...] | None) -> Job | None:
    sql = f"SELECT {_JOB_COLUMNS} FROM import_jobs WHERE user_id = ?"
    params: list[Any] = [user_id]
    if states:
        sql += " AND state IN (" + ", ".join("?" for _ in states) + ")"
        params += list(states)
    row = txn.execute(sql + " ORDER BY job_id DESC LIMIT 1", params).fetchone()
    return _job_from_row(row) if row else None


def _running_jobs_txn(txn: Txn) -> list[int]:
    return [int(r[0]) for r in txn.execute("SELECT job_id FROM import_jobs WHERE state = 'running'").fetchall()]


def _set_job_state_txn(txn: Txn, job_id: int, state: str, expect: tuple[str, ...] | None,
                       counts: dict[str, int] | None, error: str | None, drop_file: bool) -> bool:
    sets = ["state = ?", "updated_ts = ?"]
    params: list[Any] = [state, now_ms()]
    if counts is not None:
        sets.append("counts = ?")
        params.append(json.dumps(counts))
    if error is not None:
        sets.append("error = ?")
        params.append(error)
    if drop_file:
        sets.append("file_data = NULL")
    sql = f"UPDATE import_jobs SET {', '.join(sets)} WHERE job_id = ?"
    params.append(job_id)
    if expect:
        sql += " AND state IN (" + ", ".join("?" for _ in expect) + ")"
        params += list(expect)
    txn.execute(sql, params)
    return txn.rowcount > 0


def _record_lookups_txn(txn: Txn, job_id: int, matches: dict[str, str], looked_up: int) -> None:
    row = txn.execute("SELECT matches FROM import_jobs WHERE job_id = ?", (job_id,)).fetchone()
    known = json.loads(row[0]) if row and row[0] else {}
    known.update(matches)
    txn.execute("UPDATE import_jobs SET matches = ?, looked_up = ?, updated_ts = ? WHERE job_id = ?",
                (json.dumps(known), looked_up, now_ms(), job_id))


def _set_imported_upto_txn(txn: Txn, job_id: int, numbers: int, counts: dict[str, int] | None) -> None:
    txn.execute("UPDATE import_jobs SET imported_upto = ?, updated_ts = ? WHERE job_id = ?",
                (numbers, now_ms(), job_id))
    if counts is not None:
        txn.execute("UPDATE import_jobs SET counts = ? WHERE job_id = ?", (json.dumps(counts), job_id))


def _set_status_event_txn(txn: Txn, job_id: int, event_id: str) -> None:
    txn.execute("UPDATE import_jobs SET status_event_id = ? WHERE job_id = ?", (event_id, job_id))
