"""Parcels in chat (快递一键查询): shipment updates from the shop platform, shown to each person
in a Parcels room of their own. Configured in ``modules:`` as
``synapse_modules.parcels.Parcels``; see docs/parcels.md. The parts, each in its own file:

- ``config`` and ``carriers``: the options and the carrier registry (pure);
- ``rules``: what the webhook accepts, the statuses and their order, the current update (pure);
- ``cards``: the messages of a Parcels room, built from a parcel's state (pure);
- ``accounts``: who a shipment is for (a user, a phone number's account), the bot's account;
- ``rooms``: each person's Parcels room; ``delivery``: bringing a person's cards up to date,
  one writer per person across processes;
- ``claims``: phone numbers bound later, and the background drain;
- ``http``: the HTTP API; ``store``: all SQL, by section;
- ``module``: :class:`Parcels`, which only composes the parts.
"""

from synapse_modules.parcels.module import Parcels

__all__ = ["Parcels"]
