"""A follow asked for through the accounts API: what the merchant circle records when a user
joins a circle themselves (``user_may_join_room``), written with its own SQL functions."""

from __future__ import annotations

from typing import Any

from synapse_modules.merchant_circle.store.follows import enqueue_job_txn, set_follow_state_txn


def record_own_follow_txn(txn: Any, merchant_id: str, user_id: str, room_id: str, now: int) -> None:
    """Following (an earlier unfollow undone), and the channel filed in the user's space, muted:
    the ``file`` job of a user's own join (``reason`` ``joined``)."""
    set_follow_state_txn(txn, merchant_id, user_id, "following", now)
    enqueue_job_txn(txn, "file", user_id, merchant_id, room_id, "joined", now)
