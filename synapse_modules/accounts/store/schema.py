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
)

SCHEMA = Schema(STATEMENTS)
