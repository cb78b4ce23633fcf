"""The tables of accounts' posts (created on first use by every process, idempotently), and the
store that runs their transactions.

- ``wangxin_account_posts``: every post asked for through ``POST /accounts/{id}/posts`` (or the
  bot): posted now, scheduled, cancelled, failed; a targeted post's segment (JSON) and how many
  people it targeted.
- ``wangxin_account_post_recipients``: the people a targeted post is for, fixed when its delivery
  starts, each ``pending`` until served (``sent``, or ``skipped`` when they left the platform's room
  for them, or ``failed``).
- ``wangxin_account_inboxes``: the room of each (platform, person) that targeted posts go to.

The quota itself is the merchant circle's (``wangxin_circle_posts``): see docs/accounts.md.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Concatenate, ParamSpec, TypeVar

from synapse.module_api import LoggingTransaction, ModuleApi

from synapse_modules._store import ModuleStore, Schema

P = ParamSpec("P")
R = TypeVar("R")

STATEMENTS = (
    """CREATE TABLE IF NOT EXISTS wangxin_account_posts (
        post_id TEXT NOT NULL PRIMARY KEY,
        account_id TEXT NOT NULL,
        author TEXT NOT NULL,
        body TEXT NOT NULL,
        segment TEXT,
        state TEXT NOT NULL,
        due_ts BIGINT NOT NULL,
        created_ts BIGINT NOT NULL,
        sent_ts BIGINT,
        event_id TEXT,
        room_id TEXT,
        targeted INTEGER,
        attempts INTEGER NOT NULL DEFAULT 0,
        last_error TEXT
    )""",
    # The delivery loop reads the scheduled posts that are due, and the targeted ones delivering.
    "CREATE INDEX IF NOT EXISTS wangxin_account_posts_due ON wangxin_account_posts (state, due_ts)",
    "CREATE INDEX IF NOT EXISTS wangxin_account_posts_account ON wangxin_account_posts (account_id, state, due_ts)",
    """CREATE TABLE IF NOT EXISTS wangxin_account_post_recipients (
        post_id TEXT NOT NULL,
        user_id TEXT NOT NULL,
        state TEXT NOT NULL,
        event_id TEXT,
        error TEXT,
        PRIMARY KEY (post_id, user_id)
    )""",
    "CREATE INDEX IF NOT EXISTS wangxin_account_post_recipients_state ON wangxin_account_post_recipients"
    " (post_id, state)",
    """CREATE TABLE IF NOT EXISTS wangxin_account_inboxes (
        account_id TEXT NOT NULL,
        user_id TEXT NOT NULL,
        room_id TEXT NOT NULL,
        created_ts BIGINT NOT NULL,
        PRIMARY KEY (account_id, user_id)
    )""",
)

POSTS_SCHEMA = Schema(STATEMENTS)


class PostsStore(ModuleStore):
    """Runs the posts' transactions (named ``wangxin_account_posts_<name without _txn>``). The
    accounts' and the merchant circle's tables, which they join and write, are made first."""

    def __init__(self, api: ModuleApi, *others: ModuleStore):
        super().__init__(api, "wangxin_account_posts", POSTS_SCHEMA)
        self._others = others

    async def run_named(self, desc: str, func: Callable[Concatenate[LoggingTransaction, P], R], *args: P.args,
                        **kwargs: P.kwargs) -> R:
        for other in self._others:
            await other.ready()
        return await super().run_named(desc, func, *args, **kwargs)
