"""Discovery (附近的人、摇一摇、漂流瓶): meeting strangers, with consent and safety first.

Configured in ``modules:`` as ``synapse_modules.discovery.Discovery``; see docs/discovery.md.
The parts, each in its own file:

- ``config``: the options (pure; errors name the key path);
- ``rules``: what the API accepts and how the limits decide; ``cells``: location cells and
  distance bands from cells alone; ``pairing``: the pairing engine of a window (all pure);
- ``directory``: who may never be in discovery (merchants, service accounts);
- ``rendezvous``: shake windows that meet in the database, whichever process a call reaches;
- ``pairings``: answering requests, and the direct chat an accept makes;
- ``http``: the HTTP API;
- ``store``: all SQL, by section;
- ``module``: :class:`Discovery`, which only composes the parts.
"""

from synapse_modules.discovery.module import Discovery

__all__ = ["Discovery"]
