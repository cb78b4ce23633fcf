"""All SQL of the merchant circle, by section, and the one way the parts run it.

- ``schema``: the tables (created on first use, by every process);
- ``merchants``: merchants and the creation of their circles;
- ``follows``: follows, purchases and the durable job queue;
- ``posts``: the post quota, the repost cooldown and edits;
- ``spaces``: each follower's "Merchant Circle" space;
- ``positions``: how far the module has read Synapse's streams.

Each ``*_txn`` function is one transaction's work; the parts run it with
``await store.run(get_merchant_txn, user_id)`` (arguments type-checked against the function,
``synapse_modules._store``).
Synapse's cursor turns ``?`` into ``%s`` for PostgreSQL.
"""

from __future__ import annotations

from synapse.module_api import ModuleApi

from synapse_modules._store import ModuleStore
from synapse_modules.merchant_circle.store.schema import SCHEMA


class MerchantCircleStore(ModuleStore):
    """Runs the circle's transactions (named ``wangxin_circle_<name without _txn>``); the
    schema is created on first use."""

    def __init__(self, api: ModuleApi):
        super().__init__(api, "wangxin_circle", SCHEMA)
