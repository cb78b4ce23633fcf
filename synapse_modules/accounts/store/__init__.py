"""All SQL of the accounts module, and the one way its parts run it.

- ``schema``: the table (created on first use, by every process);
- ``accounts``: accounts, their search, the merchants not yet made accounts;
- ``follows``: a follow asked for through the accounts API, in the merchant circle's tables.

Each ``*_txn`` function is one transaction's work; the parts run it with
``await store.run(get_account_txn, account_id)``. Synapse's cursor turns ``?`` into ``%s`` for
PostgreSQL. The merchant circle's tables are read (joined) here, and written only through its own
``*_txn`` functions.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Concatenate, ParamSpec, TypeVar

from synapse.module_api import LoggingTransaction, ModuleApi

from synapse_modules._store import ModuleStore
from synapse_modules.accounts.store.schema import SCHEMA

P = ParamSpec("P")
R = TypeVar("R")


class AccountsStore(ModuleStore):
    """Runs the accounts module's transactions (named ``wangxin_accounts_<name without _txn>``).
    The merchant circle's tables, which they join, are made first."""

    def __init__(self, api: ModuleApi, circle_store: ModuleStore):
        super().__init__(api, "wangxin_accounts", SCHEMA)
        self._circle_store = circle_store

    async def run_named(self, desc: str, func: Callable[Concatenate[LoggingTransaction, P], R], *args: P.args,
                        **kwargs: P.kwargs) -> R:
        await self._circle_store.ready()
        return await super().run_named(desc, func, *args, **kwargs)
