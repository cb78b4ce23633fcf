"""All SQL of the parcels module, by section, and the one way the parts run it.

- ``schema``: the tables (created on first use, by every process);
- ``shipments``: shipments, their histories, their cards, and what is listed;
- ``rooms``: each person's Parcels room and its creation;
- ``work``: what is still to do (cards to bring up to date, phone numbers just bound) and the
  leases that keep one person's cards to one writer at a time, across processes.

Each ``*_txn`` function is one transaction's work; the parts run it with
``await store.run(get_shipment_txn, shipment_id)`` (arguments type-checked against the
function, ``synapse_modules._store``). Synapse's cursor turns ``?`` into ``%s`` for PostgreSQL.
"""

from __future__ import annotations

from synapse.module_api import ModuleApi

from synapse_modules._store import ModuleStore
from synapse_modules.parcels.store.schema import SCHEMA


class ParcelsStore(ModuleStore):
    """Runs the module's transactions (named ``wangxin_parcels_<name without _txn>``); the
    schema is created on first use."""

    def __init__(self, api: ModuleApi):
        super().__init__(api, "wangxin_parcels", SCHEMA)
