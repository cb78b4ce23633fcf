"""One connection pool for SQLite or PostgreSQL, with numbered schema migrations.

SQL in this package is written once with ``?`` placeholders and ``{serial}``/``{bigint}``
type markers; :class:`Database` adapts it to the engine in use.
"""

from __future__ import annotations

import logging
import os
import sqlite3
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

from twisted.enterprise import adbapi

from bridges.config import DatabaseConfig

logger = logging.getLogger(__name__)
T = TypeVar("T")


class Txn:
    """A cursor that speaks the portable dialect above."""

    def __init__(self, cursor: Any, engine: str):
        self._cursor = cursor
        self.engine = engine

    def execute(self, sql: str, params: Sequence[Any] = ()) -> Txn:
        self._cursor.execute(adapt_sql(sql, self.engine), tuple(params))
        return self

    def fetchone(self) -> Any:
        return self._cursor.fetchone()

    def fetchall(self) -> list[Any]:
        return list(self._cursor.fetchall())

    @property
    def rowcount(self) -> int:
        return int(self._cursor.rowcount)


def adapt_sql(sql: str, engine: str) -> str:
    if engine == "postgres":
        sql = sql.replace("?", "%s")
        return sql.format(serial="BIGSERIAL PRIMARY KEY", bigint="BIGINT", blob="BYTEA")
    return sql.format(serial="INTEGER PRIMARY KEY AUTOINCREMENT", bigint="INTEGER", blob="BLOB")


# Append only: a deployed database records the number of the last migration it ran.
MIGRATIONS: list[list[str]] = [
    [
        # Transaction ids Synapse has delivered; a retried id is acknowledged without work.
        "CREATE TABLE appservice_txns (txn_id TEXT PRIMARY KEY, received_ts {bigint} NOT NULL)",
        # Events accepted from Synapse and not yet fully handled; processed in seq order.
        """CREATE TABLE inbox (
            seq {serial},
            event_id TEXT NOT NULL UNIQUE,
            room_id TEXT NOT NULL,
            event_json TEXT NOT NULL,
            received_ts {bigint} NOT NULL,
            processed_ts {bigint},
            error TEXT
        )""",
        "CREATE INDEX inbox_pending ON inbox (processed_ts, seq)",
        # DMs between a user and the bridge bot, where the user gives commands.
        """CREATE TABLE management_rooms (
            room_id TEXT PRIMARY KEY,
            user_id TEXT NOT NULL,
            created_ts {bigint} NOT NULL
        )""",
        "CREATE INDEX management_rooms_user ON management_rooms (user_id)",
        # Ghost users of the bridge's namespace that have been registered with Synapse.
        "CREATE TABLE ghosts (user_id TEXT PRIMARY KEY, kind TEXT NOT NULL, registered_ts {bigint} NOT NULL)",
    ],
    [
        # Synapse on SQLite numbers transactions from its own table, which it empties after
        # delivery: after a Synapse restart, ids repeat. A replay is the same id with the same
        # events, so the event ids are remembered with the id.
        "ALTER TABLE appservice_txns ADD COLUMN event_ids_hash TEXT",
    ],
    [
        # Contact import (bridges/contact_import/; SQL in bridges/contact_import/store/).
        # The last file each user uploaded to their management room.
        """CREATE TABLE import_uploads (
            user_id TEXT PRIMARY KEY,
            room_id TEXT NOT NULL,
            event_id TEXT NOT NULL,
            mxc TEXT NOT NULL,
            filename TEXT NOT NULL,
            size {bigint},
            uploaded_ts {bigint} NOT NULL
        )""",
        # One import: previewed, running (resumed at start), or ended. The file is kept here
        # until the import ends; the plan is recomputed from it, the journal is the tables below.
        """CREATE TABLE import_jobs (
            job_id {serial},
            user_id TEXT NOT NULL,
            room_id TEXT NOT NULL,
            state TEXT NOT NULL,
            filename TEXT NOT NULL,
            file_data {blob},
            matches TEXT,
            status_event_id TEXT,
            counts TEXT,
            error TEXT,
            created_ts {bigint} NOT NULL,
            updated_ts {bigint} NOT NULL
        )""",
        "CREATE INDEX import_jobs_user ON import_jobs (user_id, state)",
        # Rooms made from an importer's groups; room_id is NULL while the room is being created.
        """CREATE TABLE import_rooms (
            importer TEXT NOT NULL,
            group_key TEXT NOT NULL,
            room_id TEXT,
            job_id {bigint} NOT NULL,
            created_ts {bigint} NOT NULL,
            PRIMARY KEY (importer, group_key)
        )""",
        # Who the bridge put into an import room: real people ('member') and placeholders.
        """CREATE TABLE import_room_members (
            room_id TEXT NOT NULL,
            user_id TEXT NOT NULL,
            importer TEXT NOT NULL,
            kind TEXT NOT NULL,
            state TEXT NOT NULL,
            PRIMARY KEY (room_id, user_id)
        )""",
        "CREATE INDEX import_room_members_user ON import_room_members (user_id)",
        "CREATE INDEX import_room_members_importer ON import_room_members (importer)",
        # Placeholder ghosts: one per importer and person who is not here yet.
        """CREATE TABLE import_placeholders (
            ghost_id TEXT PRIMARY KEY,
            importer TEXT NOT NULL,
            person_key TEXT NOT NULL,
            name TEXT NOT NULL,
            source_key TEXT,
            source_label TEXT NOT NULL,
            arrived_user_id TEXT,
            created_ts {bigint} NOT NULL
        )""",
        "CREATE INDEX import_placeholders_importer ON import_placeholders (importer)",
        "CREATE INDEX import_placeholders_source ON import_placeholders (source_key)",
        "CREATE TABLE import_placeholder_phones (phone TEXT NOT NULL, ghost_id TEXT NOT NULL,"
        " PRIMARY KEY (phone, ghost_id))",
        # Direct chats an import opened from the importer to someone found here.
        """CREATE TABLE import_dms (
            importer TEXT NOT NULL,
            invitee TEXT NOT NULL,
            room_id TEXT NOT NULL,
            created_ts {bigint} NOT NULL,
            PRIMARY KEY (importer, invitee)
        )""",
        # Contacts with a phone number and no account here: invitable by SMS.
        """CREATE TABLE import_invitable (
            importer TEXT NOT NULL,
            phone TEXT NOT NULL,
            name TEXT NOT NULL,
            source_label TEXT NOT NULL,
            job_id {bigint} NOT NULL,
            created_ts {bigint} NOT NULL,
            PRIMARY KEY (importer, phone)
        )""",
        "CREATE INDEX import_invitable_phone ON import_invitable (phone)",
        # People who arrived (a number bound, or their own export imported): handled in order.
        """CREATE TABLE import_arrivals (
            seq {serial},
            user_id TEXT NOT NULL,
            phone TEXT,
            source_key TEXT,
            received_ts {bigint} NOT NULL,
            processed_ts {bigint}
        )""",
    ],
    [
        # 4. SMS service (bridges/sms/service.py, SQL in bridges/sms/store.py): outbound queue,
        # inbound de-duplication, opt-outs, daily counters.
        # Every outbound SMS, from queued to its final state. ``uncertain`` = 1 while the gateway
        # may have accepted the last attempt without us knowing (a timeout, a crash while sending):
        # before another attempt the gateway is asked whether it has the message.
        """CREATE TABLE sms_outbound (
            sms_id {serial},
            kind TEXT NOT NULL,
            to_number TEXT NOT NULL,
            body TEXT NOT NULL,
            segments INTEGER NOT NULL,
            state TEXT NOT NULL,
            sender TEXT,
            room_id TEXT,
            event_id TEXT,
            dedup_key TEXT,
            provider_id TEXT,
            attempts INTEGER NOT NULL,
            uncertain INTEGER NOT NULL,
            next_attempt_ts {bigint} NOT NULL,
            first_attempt_ts {bigint},
            error TEXT,
            created_ts {bigint} NOT NULL,
            updated_ts {bigint} NOT NULL
        )""",
        "CREATE INDEX sms_outbound_due ON sms_outbound (state, next_attempt_ts)",
        "CREATE UNIQUE INDEX sms_outbound_dedup ON sms_outbound (dedup_key)",
        "CREATE INDEX sms_outbound_provider ON sms_outbound (provider_id)",
        # Inbound SMS by the gateway's id: a replayed webhook is acknowledged without work.
        # Stored before the answer, handled after it (processed_ts), resumed after a crash.
        """CREATE TABLE sms_inbound (
            message_sid TEXT PRIMARY KEY,
            from_number TEXT NOT NULL,
            to_number TEXT NOT NULL,
            body TEXT NOT NULL,
            media_urls TEXT NOT NULL,
            received_ts {bigint} NOT NULL,
            processed_ts {bigint},
            error TEXT
        )""",
        "CREATE INDEX sms_inbound_pending ON sms_inbound (processed_ts, received_ts)",
        # Numbers that texted STOP (or another opt-out keyword): no SMS but system answers.
        "CREATE TABLE sms_opt_outs (phone TEXT PRIMARY KEY, keyword TEXT NOT NULL, opted_out_ts {bigint} NOT NULL)",
        # SMS counted against daily caps: scope 'user' (Matrix user id) or 'to' (E.164), UTC day.
        """CREATE TABLE sms_daily_counts (
            scope TEXT NOT NULL,
            subject TEXT NOT NULL,
            day TEXT NOT NULL,
            count INTEGER NOT NULL,
            PRIMARY KEY (scope, subject, day)
        )""",
    ],
    [
        # 5. Phone-number sign-up (bridges/sms/identity.py): verification sessions.
        # SQL in bridges/sms/signup_store.py. One session per client_secret and number (E.164
        # digits without +); the code is kept only as an HMAC under a per-code random salt.
        """CREATE TABLE signup_sessions (
            sid TEXT PRIMARY KEY,
            client_secret TEXT NOT NULL,
            phone TEXT NOT NULL,
            send_attempt {bigint} NOT NULL,
            code_salt TEXT NOT NULL,
            code_hash TEXT NOT NULL,
            attempts INTEGER NOT NULL,
            sms_id {bigint},
            created_ts {bigint} NOT NULL,
            expires_ts {bigint} NOT NULL,
            validated_ts {bigint}
        )""",
        "CREATE UNIQUE INDEX signup_sessions_secret_phone ON signup_sessions (client_secret, phone)",
        "CREATE INDEX signup_sessions_expires ON signup_sessions (expires_ts)",
        # Every code SMS queued, for the per-number hourly limit; kept one hour.
        "CREATE TABLE signup_code_sends (phone TEXT NOT NULL, sent_ts {bigint} NOT NULL)",
        "CREATE INDEX signup_code_sends_phone ON signup_code_sends (phone, sent_ts)",
    ],
    [
        # 6. SMS chat rooms and SMS invitations (bridges/sms/chat.py, bridges/sms/invites.py;
        # SQL in bridges/sms/chat_store.py).
        # A user's conversation with a phone number: a DM with the number's ghost. (Who gets a reply
        # is decided by sms_bindings, migration 7; last_outbound_ts is no longer used.)
        """CREATE TABLE sms_rooms (
            user_id TEXT NOT NULL,
            phone TEXT NOT NULL,
            room_id TEXT NOT NULL,
            created_ts {bigint} NOT NULL,
            last_outbound_ts {bigint} NOT NULL,
            PRIMARY KEY (user_id, phone)
        )""",
        "CREATE UNIQUE INDEX sms_rooms_room ON sms_rooms (room_id)",
        "CREATE INDEX sms_rooms_phone ON sms_rooms (phone, last_outbound_ts)",
        # The Matrix event each outbound chat SMS came from, and the status reaction shown on it.
        """CREATE TABLE sms_chat_messages (
            sms_id {bigint} PRIMARY KEY,
            room_id TEXT NOT NULL,
            event_id TEXT NOT NULL,
            shown_state TEXT,
            reaction_event_id TEXT
        )""",
        # Personal SMS invitations; the link carries invite_id and a MAC of it.
        """CREATE TABLE sms_invites (
            invite_id {serial},
            inviter TEXT NOT NULL,
            phone TEXT NOT NULL,
            name TEXT NOT NULL,
            state TEXT NOT NULL,
            sms_id {bigint},
            error TEXT,
            joined_user_id TEXT,
            created_ts {bigint} NOT NULL,
            updated_ts {bigint} NOT NULL
        )""",
        "CREATE UNIQUE INDEX sms_invites_inviter_phone ON sms_invites (inviter, phone)",
        "CREATE INDEX sms_invites_phone ON sms_invites (phone)",
        "CREATE INDEX sms_invites_sms ON sms_invites (sms_id)",
        # An arrival of a user who is not discoverable concerns only the people who invited their
        # number by SMS (a JSON list of user ids); NULL: every importer.
        "ALTER TABLE import_arrivals ADD COLUMN only_importers TEXT",
    ],
    [
        # 7. Who gets an SMS reply (bridges/sms/routing.py; SQL in bridges/sms/store.py). A user's
        # SMS to a number go out from the user's own number of the sender pool; a reply is routed
        # by the number it was sent to and, where several users share that number for that phone,
        # by its reply code (0: none).
        """CREATE TABLE sms_bindings (
            phone TEXT NOT NULL,
            user_id TEXT NOT NULL,
            pool_number TEXT NOT NULL,
            reply_code INTEGER NOT NULL,
            created_ts {bigint} NOT NULL,
            PRIMARY KEY (phone, user_id)
        )""",
        "CREATE UNIQUE INDEX sms_bindings_route ON sms_bindings (phone, pool_number, reply_code)"
        " WHERE pool_number <> ''",
        # Conversations from before the pool went out from one number: bound to '' ("that number"),
        # which a reply to any of ours matches, until the user texts again.
        "INSERT INTO sms_bindings (phone, user_id, pool_number, reply_code, created_ts)"
        " SELECT phone, user_id, '', 0, created_ts FROM sms_rooms",
        "ALTER TABLE sms_outbound ADD COLUMN from_number TEXT",
        # SMS that may go to one number only once in a while (the "could not deliver" answer).
        "CREATE TABLE sms_throttle (throttle_key TEXT PRIMARY KEY, until_ts {bigint} NOT NULL)",
    ],
    [
        # 8. An export with more phone numbers than the importer may look up today is imported in
        # parts (bridges/contact_import/): how many of its numbers (in the plan's order) were
        # looked up so far, NULL: all, at the preview; and up to which of them its contacts and
        # groups were imported (NULL: none yet).
        "ALTER TABLE import_jobs ADD COLUMN looked_up {bigint}",
        "ALTER TABLE import_jobs ADD COLUMN imported_upto {bigint}",
    ],
]


class Database:
    def __init__(self, config: DatabaseConfig, base_dir: str = "."):
        self.engine = config.kind
        if config.kind == "sqlite":
            assert config.path is not None
            path = config.path if os.path.isabs(config.path) else os.path.join(base_dir, config.path)
            self.description = f"SQLite at {path}"
            # One connection: SQLite serialises writers anyway, and this avoids "database is locked".
            self._pool = adbapi.ConnectionPool(
                "sqlite3", path, check_same_thread=False, cp_min=1, cp_max=1, cp_openfun=_sqlite_setup
            )
        else:
            assert config.dsn is not None
            self.description = "PostgreSQL"
            self._pool = adbapi.ConnectionPool("psycopg2", config.dsn, cp_min=1, cp_max=5, cp_reconnect=True)

    async def run(self, desc: str, func: Callable[..., T], *args: Any) -> T:
        """Run ``func(txn, *args)`` in one database transaction on the pool's thread."""

        def interaction(cursor: Any) -> T:
            return func(Txn(cursor, self.engine), *args)

        return await self._pool.runInteraction(interaction)

    async def migrate(self) -> int:
        return await self.run("migrate", _migrate_txn)

    def close(self) -> None:
        self._pool.close()


def _sqlite_setup(conn: sqlite3.Connection) -> None:
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=NORMAL")
    conn.execute("PRAGMA foreign_keys=ON")


def _migrate_txn(txn: Txn) -> int:
    txn.execute("CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL)")
    row = txn.execute("SELECT version FROM schema_version").fetchone()
    current = row[0] if row else 0
    if row is None:
        txn.execute("INSERT INTO schema_version (version) VALUES (0)")
    for number, statements in enumerate(MIGRATIONS, start=1):
        if number <= current:
            continue
        logger.info("Applying bridge schema migration %d", number)
        for statement in statements:
            txn.execute(statement)
        txn.execute("UPDATE schema_version SET version = ?", (number,))
    return len(MIGRATIONS)
