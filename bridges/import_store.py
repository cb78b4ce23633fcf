"""Every SQL statement of contact import, each in a small ``*_txn`` function.

The tables (``bridges/database.py``, migration 2) are the import's journal: each step of an
import checks them before acting and records itself when done, so a resumed or repeated import
never repeats a step.
"""

from __future__ import annotations

import json
from typing import Any

import attrs

from bridges.database import Database, Txn
from bridges.store import now_ms

ACTIVE_STATES = ("preview", "running")
# (user_id, phone, source_key) or (user_id, phone, source_key, only_importers)
Arrival = tuple[Any, ...]


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


@attrs.frozen
class Placeholder:
    ghost_id: str
    importer: str
    name: str
    source_label: str


@attrs.frozen
class Invitable:
    importer: str
    phone: str
    name: str
    source_label: str


class ImportStore:
    def __init__(self, db: Database):
        self.db = db

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

    # -- rooms ---------------------------------------------------------------------------

    async def room_for(self, importer: str, group_key: str) -> tuple[bool, str | None]:
        """(a row exists, its room id); a row without room id means creation was started."""
        return await self.db.run("room_for", _room_for_txn, importer, group_key)

    async def begin_room(self, importer: str, group_key: str, job_id: int) -> None:
        await self.db.run("begin_room", _begin_room_txn, importer, group_key, job_id)

    async def finish_room(self, importer: str, group_key: str, room_id: str,
                          members: list[tuple[str, str]]) -> None:
        """Record the created room and the people its creation invited: ``(user_id, kind)``."""
        await self.db.run("finish_room", _finish_room_txn, importer, group_key, room_id, members)

    async def room_members(self, room_id: str) -> dict[str, tuple[str, str]]:
        """user_id -> (kind, state) of the people the bridge put into the room."""
        return await self.db.run("room_members", _room_members_txn, room_id)

    async def set_member(self, room_id: str, user_id: str, importer: str, kind: str, state: str) -> None:
        await self.db.run("set_member", _set_member_txn, room_id, user_id, importer, kind, state)

    async def rooms_of(self, user_id: str, states: tuple[str, ...]) -> list[tuple[str, str]]:
        """(room_id, importer) of the import rooms holding ``user_id`` in one of ``states``."""
        return await self.db.run("rooms_of", _rooms_of_txn, user_id, states)

    async def pending_joins(self, importer: str) -> list[tuple[str, str]]:
        """(room_id, ghost) of placeholders invited to the importer's rooms but not joined yet."""
        return await self.db.run("pending_joins", _pending_joins_txn, importer)

    # -- placeholders --------------------------------------------------------------------

    async def placeholder_state(self, ghost_id: str) -> tuple[bool, str | None]:
        """(known, arrived user id)."""
        return await self.db.run("placeholder_state", _placeholder_state_txn, ghost_id)

    async def add_placeholder(self, ghost_id: str, importer: str, person_key: str, name: str,
                              source_key: str | None, source_label: str, phones: list[str]) -> None:
        await self.db.run("add_placeholder", _add_placeholder_txn, ghost_id, importer, person_key, name,
                          source_key, source_label, phones)

    async def placeholders_for(self, phone: str | None, source_key: str | None) -> list[Placeholder]:
        """Placeholders not yet replaced that stand for this number or network id."""
        return await self.db.run("placeholders_for", _placeholders_for_txn, phone, source_key)

    async def mark_arrived(self, ghost_id: str, user_id: str) -> None:
        await self.db.run("mark_arrived", _mark_arrived_txn, ghost_id, user_id)

    # -- direct chats and invitable contacts --------------------------------------------

    async def dm_room(self, importer: str, invitee: str) -> str | None:
        return await self.db.run("dm_room", _dm_room_txn, importer, invitee)

    async def add_dm(self, importer: str, invitee: str, room_id: str) -> None:
        await self.db.run("add_dm", _add_dm_txn, importer, invitee, room_id)

    async def add_invitable(self, job_id: int, rows: list[Invitable]) -> None:
        await self.db.run("add_invitable", _add_invitable_txn, job_id, rows)

    async def invitable_for(self, phone: str) -> list[Invitable]:
        return await self.db.run("invitable_for", _invitable_for_txn, phone)

    async def invitable_of(self, importer: str) -> list[Invitable]:
        return await self.db.run("invitable_of", _invitable_of_txn, importer)

    async def remove_invitable(self, importer: str, phone: str) -> None:
        await self.db.run("remove_invitable", _remove_invitable_txn, importer, phone)

    # -- arrivals ------------------------------------------------------------------------

    async def add_arrivals(self, arrivals: list[Arrival]) -> None:
        """``(user_id, phone E.164, source_key[, only_importers])`` of people who arrived, queued
        durably. ``only_importers`` (a list) limits what the arrival does to those importers: a
        user who is not discoverable arrives only for whoever invited their number by SMS."""
        await self.db.run("add_arrivals", _add_arrivals_txn, arrivals)

    async def pending_arrivals(
        self, limit: int = 100
    ) -> list[tuple[int, str, str | None, str | None, list[str] | None]]:
        return await self.db.run("pending_arrivals", _pending_arrivals_txn, limit)

    async def arrival_done(self, seq: int) -> None:
        await self.db.run("arrival_done", _arrival_done_txn, seq)

    # -- claims: "this id in my own export is me" ----------------------------------------

    async def claimed_before(self, user_id: str, source_key: str, seq: int) -> bool:
        """Whether ``user_id`` already claimed ``source_key`` (an earlier, handled arrival row)."""
        return await self.db.run("claimed_before", _claimed_before_txn, user_id, source_key, seq)

    async def claimed_placeholders(self, importer: str, claimant: str) -> list[Placeholder]:
        """``importer``'s placeholders, not yet replaced, whose network id ``claimant`` claimed."""
        return await self.db.run("claimed_placeholders", _claimed_placeholders_txn, importer, claimant)

    async def management_room(self, user_id: str) -> str | None:
        """The user's newest direct chat with the bridge bot, where notices about imports go."""
        return await self.db.run("management_room", _management_room_txn, user_id)

    # -- forget --------------------------------------------------------------------------

    async def forget(self, user_id: str) -> tuple[list[str], list[tuple[str, str]]]:
        """Delete everything held about ``user_id``'s imports; returns the placeholders and
        ``(room_id, ghost)`` memberships that should be taken out of Synapse too."""
        return await self.db.run("forget", _forget_txn, user_id)


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


# -- rooms ---------------------------------------------------------------------------------


def _room_for_txn(txn: Txn, importer: str, group_key: str) -> tuple[bool, str | None]:
    row = txn.execute(
        "SELECT room_id FROM import_rooms WHERE importer = ? AND group_key = ?", (importer, group_key)
    ).fetchone()
    return (True, row[0]) if row else (False, None)


def _begin_room_txn(txn: Txn, importer: str, group_key: str, job_id: int) -> None:
    txn.execute(
        "INSERT INTO import_rooms (importer, group_key, room_id, job_id, created_ts) VALUES (?, ?, NULL, ?, ?)"
        " ON CONFLICT (importer, group_key) DO NOTHING",
        (importer, group_key, job_id, now_ms()),
    )


def _finish_room_txn(txn: Txn, importer: str, group_key: str, room_id: str, members: list[tuple[str, str]]) -> None:
    txn.execute(
        "UPDATE import_rooms SET room_id = ? WHERE importer = ? AND group_key = ?", (room_id, importer, group_key)
    )
    for user_id, kind in members:
        _set_member_txn(txn, room_id, user_id, importer, kind, "invited")


def _room_members_txn(txn: Txn, room_id: str) -> dict[str, tuple[str, str]]:
    rows = txn.execute("SELECT user_id, kind, state FROM import_room_members WHERE room_id = ?", (room_id,))
    return {r[0]: (r[1], r[2]) for r in rows.fetchall()}


def _set_member_txn(txn: Txn, room_id: str, user_id: str, importer: str, kind: str, state: str) -> None:
    txn.execute(
        "INSERT INTO import_room_members (room_id, user_id, importer, kind, state) VALUES (?, ?, ?, ?, ?)"
        " ON CONFLICT (room_id, user_id) DO UPDATE SET state = excluded.state, kind = excluded.kind",
        (room_id, user_id, importer, kind, state),
    )


def _rooms_of_txn(txn: Txn, user_id: str, states: tuple[str, ...]) -> list[tuple[str, str]]:
    marks = ", ".join("?" for _ in states)
    rows = txn.execute(
        f"SELECT room_id, importer FROM import_room_members WHERE user_id = ? AND state IN ({marks})",
        (user_id, *states),
    )
    return [(r[0], r[1]) for r in rows.fetchall()]


def _pending_joins_txn(txn: Txn, importer: str) -> list[tuple[str, str]]:
    rows = txn.execute(
        "SELECT room_id, user_id FROM import_room_members"
        " WHERE importer = ? AND kind = 'placeholder' AND state = 'invited' ORDER BY room_id, user_id",
        (importer,),
    )
    return [(r[0], r[1]) for r in rows.fetchall()]


# -- placeholders --------------------------------------------------------------------------


def _placeholder_state_txn(txn: Txn, ghost_id: str) -> tuple[bool, str | None]:
    row = txn.execute("SELECT arrived_user_id FROM import_placeholders WHERE ghost_id = ?", (ghost_id,)).fetchone()
    return (True, row[0]) if row else (False, None)


def _add_placeholder_txn(txn: Txn, ghost_id: str, importer: str, person_key: str, name: str,
                         source_key: str | None, source_label: str, phones: list[str]) -> None:
    txn.execute(
        "INSERT INTO import_placeholders (ghost_id, importer, person_key, name, source_key, source_label,"
        " created_ts) VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT (ghost_id) DO NOTHING",
        (ghost_id, importer, person_key, name, source_key, source_label, now_ms()),
    )
    for phone in phones:
        txn.execute(
            "INSERT INTO import_placeholder_phones (phone, ghost_id) VALUES (?, ?) ON CONFLICT DO NOTHING",
            (phone, ghost_id),
        )


def _placeholders_for_txn(txn: Txn, phone: str | None, source_key: str | None) -> list[Placeholder]:
    found: dict[str, Placeholder] = {}
    columns = "p.ghost_id, p.importer, p.name, p.source_label"
    if phone:
        rows = txn.execute(
            f"SELECT {columns} FROM import_placeholders AS p JOIN import_placeholder_phones AS f"
            " ON f.ghost_id = p.ghost_id WHERE f.phone = ? AND p.arrived_user_id IS NULL",
            (phone,),
        ).fetchall()
        found.update({r[0]: Placeholder(*r) for r in rows})
    if source_key:
        rows = txn.execute(
            f"SELECT {columns} FROM import_placeholders AS p WHERE p.source_key = ? AND p.arrived_user_id IS NULL",
            (source_key,),
        ).fetchall()
        found.update({r[0]: Placeholder(*r) for r in rows})
    return list(found.values())


def _mark_arrived_txn(txn: Txn, ghost_id: str, user_id: str) -> None:
    txn.execute("UPDATE import_placeholders SET arrived_user_id = ? WHERE ghost_id = ?", (user_id, ghost_id))


# -- direct chats and invitable contacts ---------------------------------------------------


def _dm_room_txn(txn: Txn, importer: str, invitee: str) -> str | None:
    row = txn.execute(
        "SELECT room_id FROM import_dms WHERE importer = ? AND invitee = ?", (importer, invitee)
    ).fetchone()
    return row[0] if row else None


def _add_dm_txn(txn: Txn, importer: str, invitee: str, room_id: str) -> None:
    txn.execute(
        "INSERT INTO import_dms (importer, invitee, room_id, created_ts) VALUES (?, ?, ?, ?)"
        " ON CONFLICT (importer, invitee) DO NOTHING",
        (importer, invitee, room_id, now_ms()),
    )


def _add_invitable_txn(txn: Txn, job_id: int, rows: list[Invitable]) -> None:
    for r in rows:
        txn.execute(
            "INSERT INTO import_invitable (importer, phone, name, source_label, job_id, created_ts)"
            " VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (importer, phone) DO NOTHING",
            (r.importer, r.phone, r.name, r.source_label, job_id, now_ms()),
        )


def _invitable_for_txn(txn: Txn, phone: str) -> list[Invitable]:
    rows = txn.execute("SELECT importer, phone, name, source_label FROM import_invitable WHERE phone = ?", (phone,))
    return [Invitable(*r) for r in rows.fetchall()]


def _invitable_of_txn(txn: Txn, importer: str) -> list[Invitable]:
    rows = txn.execute(
        "SELECT importer, phone, name, source_label FROM import_invitable WHERE importer = ? ORDER BY phone",
        (importer,),
    )
    return [Invitable(*r) for r in rows.fetchall()]


def _remove_invitable_txn(txn: Txn, importer: str, phone: str) -> None:
    txn.execute("DELETE FROM import_invitable WHERE importer = ? AND phone = ?", (importer, phone))


# -- arrivals ------------------------------------------------------------------------------


def _add_arrivals_txn(txn: Txn, arrivals: list[Arrival]) -> None:
    for user_id, phone, source_key, *rest in arrivals:
        only = json.dumps(sorted(rest[0])) if rest and rest[0] is not None else None
        txn.execute(
            "INSERT INTO import_arrivals (user_id, phone, source_key, received_ts, only_importers)"
            " VALUES (?, ?, ?, ?, ?)",
            (user_id, phone, source_key, now_ms(), only),
        )


def _pending_arrivals_txn(txn: Txn, limit: int) -> list[tuple[int, str, str | None, str | None, list[str] | None]]:
    rows = txn.execute(
        "SELECT seq, user_id, phone, source_key, only_importers FROM import_arrivals WHERE processed_ts IS NULL"
        " ORDER BY seq LIMIT ?",
        (limit,),
    )
    return [(int(r[0]), r[1], r[2], r[3], json.loads(r[4]) if r[4] else None) for r in rows.fetchall()]


def _arrival_done_txn(txn: Txn, seq: int) -> None:
    # A handled number is gone for good; a claim (source_key) stays: "import accept" reads it.
    txn.execute("DELETE FROM import_arrivals WHERE seq = ? AND source_key IS NULL", (seq,))
    txn.execute("UPDATE import_arrivals SET processed_ts = ? WHERE seq = ?", (now_ms(), seq))


def _claimed_before_txn(txn: Txn, user_id: str, source_key: str, seq: int) -> bool:
    row = txn.execute(
        "SELECT 1 FROM import_arrivals WHERE user_id = ? AND source_key = ? AND seq < ? AND processed_ts IS NOT NULL",
        (user_id, source_key, seq),
    ).fetchone()
    return row is not None


def _claimed_placeholders_txn(txn: Txn, importer: str, claimant: str) -> list[Placeholder]:
    rows = txn.execute(
        "SELECT DISTINCT p.ghost_id, p.importer, p.name, p.source_label FROM import_placeholders AS p"
        " JOIN import_arrivals AS a ON a.source_key = p.source_key"
        " WHERE a.user_id = ? AND a.processed_ts IS NOT NULL AND p.importer = ? AND p.arrived_user_id IS NULL"
        " ORDER BY p.ghost_id",
        (claimant, importer),
    ).fetchall()
    return [Placeholder(*r) for r in rows]


def _management_room_txn(txn: Txn, user_id: str) -> str | None:
    row = txn.execute(
        "SELECT room_id FROM management_rooms WHERE user_id = ? ORDER BY created_ts DESC LIMIT 1", (user_id,)
    ).fetchone()
    return row[0] if row else None


# -- forget --------------------------------------------------------------------------------


def _forget_txn(txn: Txn, user_id: str) -> tuple[list[str], list[tuple[str, str]]]:
    ghosts = [r[0] for r in txn.execute(
        "SELECT ghost_id FROM import_placeholders WHERE importer = ?", (user_id,)
    ).fetchall()]
    memberships = [(r[0], r[1]) for r in txn.execute(
        "SELECT room_id, user_id FROM import_room_members WHERE importer = ? AND kind = 'placeholder'"
        " AND state IN ('invited', 'joined')",
        (user_id,),
    ).fetchall()]
    # One statement: the table is keyed by phone, so a DELETE per ghost scanned it once per
    # placeholder (2.2 s for 5,000 placeholders on SQLite, holding the bridge's one connection).
    txn.execute(
        "DELETE FROM import_placeholder_phones WHERE ghost_id IN"
        " (SELECT ghost_id FROM import_placeholders WHERE importer = ?)",
        (user_id,),
    )
    for table, column in (
        ("import_placeholders", "importer"),
        ("import_room_members", "importer"),
        ("import_rooms", "importer"),
        ("import_dms", "importer"),
        ("import_invitable", "importer"),
        ("import_uploads", "user_id"),
        ("import_jobs", "user_id"),
    ):
        txn.execute(f"DELETE FROM {table} WHERE {column} = ?", (user_id,))
    # The user's claims of ids in their own exports (pending arrivals of their numbers stay).
    txn.execute("DELETE FROM import_arrivals WHERE user_id = ? AND source_key IS NOT NULL", (user_id,))
    return ghosts, memberships
