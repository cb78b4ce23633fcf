"""Small pieces that the bridge, the bots and the stack launcher share.

Nothing here imports Synapse: the bridge and the bots run outside the homeserver.
"""

WANGXIN_VERSION = "0.1.0"
