"""All SQL of discovery, by section, and the one way the parts run it.

- ``schema``: the tables (created on first use, by every process);
- ``people``: profiles, locations, standing (held, banned), blocks, opting out, who is visible
  to whom, the nearby query;
- ``limits``: per-user rate limits and daily limits, checked inside the action's transaction;
- ``bottles``, ``requests``, ``windows`` (the shake rendezvous), ``reports``;
- ``cleanup``: what expires.

Each ``*_txn`` function is one transaction's work; the parts run it with
``await store.run(func, *args)`` (arguments type-checked against the function), in a
transaction named ``wangxin_discovery_<name without _txn>``. Synapse's cursor turns ``?`` into
``%s`` for PostgreSQL.
"""

from __future__ import annotations

from synapse.module_api import ModuleApi

from synapse_modules._store import ModuleStore
from synapse_modules.discovery.store.schema import SCHEMA


class DiscoveryStore(ModuleStore):
    """Runs the store's transactions on Synapse's database pool; the schema is created on first use."""

    def __init__(self, api: ModuleApi):
        super().__init__(api, "wangxin_discovery", SCHEMA)
