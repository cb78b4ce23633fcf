"""Which Wangxin modules this Synapse process loaded, for ``GET …/info`` (``features``).

Synapse loads every module listed under ``modules:`` in every process, each module's
constructor once; each one records its feature name here, so a client (or an operator checking
an install) sees which features the server runs without reading its config.
"""

from __future__ import annotations

_loaded: set[str] = set()


def loaded(feature: str) -> None:
    """Called from a module's constructor."""
    _loaded.add(feature)


def loaded_features() -> list[str]:
    return sorted(_loaded)
