"""The accounts module's table, created on first use by every process (idempotently).

An account's channel is a merchant circle: ``merchant_id`` is the circle's key in
``wangxin_merchants`` (the merchant itself for a merchant account, the account's own user for the
others). The name and avatar people see live in that merchant row once the channel exists (the
merchant API changes them there too); ``name`` and ``avatar_url`` here are what the account was
given, shown until then.
"""

from __future__ import annotations

from synapse_modules._store import Schema

STATEMENTS = (
    """CREATE TABLE IF NOT EXISTS wangxin_accounts (
        account_id TEXT NOT NULL PRIMARY KEY,
        kind TEXT NOT NULL,
        owner TEXT NOT NULL,
        merchant_id TEXT NOT NULL UNIQUE,
        name TEXT NOT NULL,
        avatar_url TEXT,
        description TEXT,
        verified SMALLINT NOT NULL DEFAULT 0,
        registered_ts BIGINT NOT NULL,
        fees_waived_until_ts BIGINT NOT NULL,
        storefront_url TEXT,
        adopted SMALLINT NOT NULL DEFAULT 0,
        published SMALLINT NOT NULL DEFAULT 0
    )""",
    "CREATE INDEX IF NOT EXISTS wangxin_accounts_owner ON wangxin_accounts (owner)",
    # The sweep looks for accounts whose alias and state event are not in their channel yet.
    "CREATE INDEX IF NOT EXISTS wangxin_accounts_unpublished ON wangxin_accounts (published)",
    # -- auto-reply and support rooms (store/support.py) --
    # An account's auto-reply settings (autoreply.AutoReply as JSON); `updated_ts` tells a
    # process that the copy it parsed is stale.
    """CREATE TABLE IF NOT EXISTS wangxin_account_autoreplies (
        account_id TEXT NOT NULL PRIMARY KEY,
        config TEXT NOT NULL,
        updated_ts BIGINT NOT NULL
    )""",
    # One support room per (account, follower). `menu_ts`: when the server last sent the menu (or
    # a notice) there by itself; `person_ts`: when a person of the account last wrote there.
    """CREATE TABLE IF NOT EXISTS wangxin_account_support_rooms (
        room_id TEXT NOT NULL PRIMARY KEY,
        account_id TEXT NOT NULL,
        user_id TEXT NOT NULL,
        created_ts BIGINT NOT NULL,
        menu_ts BIGINT NOT NULL DEFAULT 0,
        person_ts BIGINT NOT NULL DEFAULT 0,
        UNIQUE (account_id, user_id)
    )""",
    # The staff's sync walks an account's support rooms in the order they were made.
    "CREATE INDEX IF NOT EXISTS wangxin_account_support_rooms_made ON wangxin_account_support_rooms"
    " (account_id, created_ts, room_id)",
    # -- staff (store/staff.py) --
    # People of an account besides its owner, seated in its support rooms.
    """CREATE TABLE IF NOT EXISTS wangxin_account_staff (
        account_id TEXT NOT NULL,
        user_id TEXT NOT NULL,
        added_ts BIGINT NOT NULL,
        PRIMARY KEY (account_id, user_id)
    )""",
    # -- stats (store/stats.py) --
    # How many followed a channel when a post was sent into it (recorded as it is sent).
    """CREATE TABLE IF NOT EXISTS wangxin_account_post_audiences (
        event_id TEXT NOT NULL PRIMARY KEY,
        room_id TEXT NOT NULL,
        followers INTEGER NOT NULL,
        ts BIGINT NOT NULL
    )""",
    # Followers at the end of each day (in `stats_time_zone`): the last hourly count of the day.
    """CREATE TABLE IF NOT EXISTS wangxin_account_follower_days (
        account_id TEXT NOT NULL,
        day TEXT NOT NULL,
        followers INTEGER NOT NULL,
        updated_ts BIGINT NOT NULL,
        PRIMARY KEY (account_id, day)
    )""",
)

SCHEMA = Schema(STATEMENTS)
