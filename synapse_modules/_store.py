"""The modules' own tables on Synapse's database: a schema created on first use, and transactions.

Every Synapse process loads every module, so each process creates the tables it needs the first
time it touches them (``CREATE … IF NOT EXISTS``, columns and indexes added where missing); when
several processes start at once, a concurrent creation on PostgreSQL can fail once, and is retried.
Transactions run through ``ModuleApi.run_db_interaction`` under a name starting ``wangxin_`` (what
Synapse's transaction log and ``bench transactions`` count by).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Concatenate, ParamSpec, TypeVar

import attrs
from synapse.module_api import LoggingTransaction, ModuleApi

logger = logging.getLogger(__name__)

P = ParamSpec("P")
R = TypeVar("R")
SCHEMA_ATTEMPTS = 5


@attrs.frozen
class Schema:
    """A module's tables: created if missing, then columns and indexes added in later releases."""

    statements: tuple[str, ...]
    # (table, column, definition), added where the column is missing.
    added_columns: tuple[tuple[str, str, str], ...] = ()
    # Indexes on added columns, created after those columns exist.
    added_indexes: tuple[str, ...] = ()

    def create_txn(self, txn: LoggingTransaction) -> None:
        for statement in self.statements:
            txn.execute(statement)
        for table, column, definition in self.added_columns:
            txn.execute(f"SELECT * FROM {table} LIMIT 0")
            if column not in [d[0] for d in txn.description or ()]:
                txn.execute(f"ALTER TABLE {table} ADD COLUMN {column} {definition}")
        for statement in self.added_indexes:
            txn.execute(statement)


class ModuleStore:
    """Runs a module's transactions; the schema is created on the first one in this process."""

    def __init__(self, api: ModuleApi, prefix: str, schema: Schema):
        self._api = api
        self._prefix = prefix
        self._schema = schema
        self._ready = False

    async def run(self, func: Callable[Concatenate[LoggingTransaction, P], R], *args: P.args,
                  **kwargs: P.kwargs) -> R:
        """``func(txn, *args)`` in a transaction named ``<prefix>_<name without _txn>``."""
        return await self.run_named(f"{self._prefix}_{func.__name__.removesuffix('_txn')}", func, *args, **kwargs)

    async def run_named(self, desc: str, func: Callable[Concatenate[LoggingTransaction, P], R], *args: P.args,
                        **kwargs: P.kwargs) -> R:
        """``func(txn, *args)`` in a transaction named ``desc``."""
        if not self._ready:
            await self._ensure_schema()
        return await self._api.run_db_interaction(desc, func, *args, **kwargs)

    async def ready(self) -> None:
        """Create the schema now if this process has not (for a query of these tables run
        inside another module's transaction)."""
        if not self._ready:
            await self._ensure_schema()

    async def _ensure_schema(self) -> None:
        for attempt in range(SCHEMA_ATTEMPTS):
            try:
                await self._api.run_db_interaction(f"{self._prefix}_schema", self._schema.create_txn)
                self._ready = True
                return
            except Exception:
                if attempt == SCHEMA_ATTEMPTS - 1:
                    raise
                logger.info("Creating the %s tables raced another process; retrying", self._prefix)
                await self._api.sleep(0.2 * (attempt + 1))
