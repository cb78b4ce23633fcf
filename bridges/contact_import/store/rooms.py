"""SQL of what an import made: rooms and the people put into them, placeholders, direct chats,
and the contacts left to invite by SMS (``import_rooms``, ``import_room_members``,
``import_placeholders``, ``import_placeholder_phones``, ``import_dms``, ``import_invitable``).
"""

from __future__ import annotations

import attrs

from bridges.database import Database, Txn
from bridges.store import now_ms


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


class RoomStore:
    db: Database

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
