"""Wangxin's Synapse modules, loaded by a stock Synapse through ``modules:`` in homeserver.yaml.

One module per feature. Each keeps its configuration pure (no Synapse imports in the
config classes), its SQL in one store, and its HTTP surface thin.
"""

from wangxin_common import WANGXIN_VERSION

__all__ = ["WANGXIN_VERSION"]
