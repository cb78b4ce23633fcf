"""The SQL of a circle's further rooms and of its posts' mirrors, on SQLite (the e2e tests run it
on PostgreSQL): one process makes each room, a claim a stopped process left is taken over, the
rooms are found by merchant and by room, and a fan-out is open until finished."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from synapse_modules.merchant_circle.store.shards import (
    add_fanout_txn,
    add_mirror_txn,
    all_shard_rooms_txn,
    claim_shard_txn,
    copies_by_room_txn,
    drop_fanout_txn,
    finish_fanout_txn,
    merchant_of_shard_txn,
    mirrors_of_txn,
    open_fanouts_txn,
    set_shard_room_txn,
    shards_of_txn,
)
from tests.unit.sqlite_tables import tables

NOW = 1_700_000_000_000


@pytest.fixture
def txn() -> Iterator[Any]:
    with tables() as cur:
        yield cur


def test_one_claim_makes_a_room_and_a_stale_claim_is_taken_over(txn: Any) -> None:
    assert claim_shard_txn(txn, "@m:hs", 1, NOW, NOW - 600_000) is True
    assert claim_shard_txn(txn, "@m:hs", 1, NOW + 1, NOW - 600_000) is False  # being made by the first
    assert shards_of_txn(txn, "@m:hs") == [(1, None, NOW)]
    # Ten minutes on, nobody recorded the room: the next one to need it makes it.
    assert claim_shard_txn(txn, "@m:hs", 1, NOW + 700_000, NOW + 100_000) is True
    assert claim_shard_txn(txn, "@m:hs", 1, NOW + 700_001, NOW + 100_001) is False
    set_shard_room_txn(txn, "@m:hs", 1, "!r1:hs")
    assert claim_shard_txn(txn, "@m:hs", 1, NOW + 10**9, NOW + 10**9) is False  # made: never again
    assert claim_shard_txn(txn, "@m:hs", 2, NOW, NOW) is True
    set_shard_room_txn(txn, "@m:hs", 2, "!r2:hs")
    assert [room for _, room, _ in shards_of_txn(txn, "@m:hs")] == ["!r1:hs", "!r2:hs"]
    assert merchant_of_shard_txn(txn, "!r2:hs") == "@m:hs" and merchant_of_shard_txn(txn, "!x:hs") is None
    assert sorted(all_shard_rooms_txn(txn)) == [("@m:hs", "!r1:hs"), ("@m:hs", "!r2:hs")]
    assert shards_of_txn(txn, "@other:hs") == []


def test_a_fanout_stays_open_until_finished_and_its_mirrors_are_found_both_ways(txn: Any) -> None:
    add_fanout_txn(txn, "$post", "@m:hs", NOW)
    add_fanout_txn(txn, "$post", "@m:hs", NOW + 5)  # the same post again: one fan-out
    add_fanout_txn(txn, "$refused", "@m:hs", NOW)
    assert open_fanouts_txn(txn, NOW, 10) == []  # only those older than asked
    assert [e for e, _, _ in open_fanouts_txn(txn, NOW + 1, 10)] == ["$post", "$refused"]
    add_mirror_txn(txn, "$post", "!r1:hs", "$copy1")
    add_mirror_txn(txn, "$post", "!r1:hs", "$copy1-again")  # recorded once per room
    add_mirror_txn(txn, "$post", "!r2:hs", "$copy2")
    assert mirrors_of_txn(txn, "$post") == {"!r1:hs": "$copy1", "!r2:hs": "$copy2"}
    assert copies_by_room_txn(txn, ["$post", "$none"]) == {"!r1:hs": {"$copy1": "$post"},
                                                          "!r2:hs": {"$copy2": "$post"}}
    assert copies_by_room_txn(txn, []) == {}
    finish_fanout_txn(txn, "$post", NOW + 2)
    drop_fanout_txn(txn, "$refused")
    assert open_fanouts_txn(txn, NOW + 10, 10) == []
