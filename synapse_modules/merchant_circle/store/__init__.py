"""All SQL of the merchant circle, by section, and the one way the parts run it.

- ``schema``: the tables (created on first use, by every process);
- ``merchants``: merchants and the creation of their circles;
- ``follows``: follows, purchases and the durable job queue;
- ``posts``: the post quota, the repost cooldown and edits;
- ``spaces``: each follower's "Merchant Circle" space;
- ``positions``: how far the module has read Synapse's streams.

Each ``*_txn`` function is one transaction's work; the parts run it with
``await store.run(get_merchant_txn, user_id)`` (arguments type-checked against the function).
Synapse's cursor turns ``?`` into ``%s`` for PostgreSQL.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any, Concatenate, ParamSpec, TypeVar

from synapse.module_api import ModuleApi

from synapse_modules.merchant_circle.store.schema import create_schema_txn

logger = logging.getLogger(__name__)

P = ParamSpec("P")
R = TypeVar("R")


class MerchantCircleStore:
    """Runs the store's transactions on Synapse's database pool; the schema is created on first use."""

    def __init__(self, api: ModuleApi):
        self._api = api
        self._ready = False

    async def run(self, func: Callable[Concatenate[Any, P], R], *args: P.args, **kwargs: P.kwargs) -> R:
        """``func(txn, *args)`` in a transaction named ``wangxin_circle_<name without _txn>``."""
        if not self._ready:
            await self._ensure_schema()
        desc = f"wangxin_circle_{func.__name__.removesuffix('_txn')}"
        return await self._api.run_db_interaction(desc, func, *args, **kwargs)

    async def _ensure_schema(self) -> None:
        # Several processes may start at once; a concurrent CREATE on PostgreSQL can fail once.
        for attempt in range(5):
            try:
                await self._api.run_db_interaction("wangxin_circle_schema", create_schema_txn)
                self._ready = True
                return
            except Exception:
                if attempt == 4:
                    raise
                logger.info("Merchant circle schema creation raced another process; retrying")
                await self._api.sleep(0.2 * (attempt + 1))
