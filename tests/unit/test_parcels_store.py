"""The parcels store's transactions on SQLite, with the two Synapse tables the phone lookup reads:
replays change nothing, out-of-order updates go into the history without moving the status
back, conflicts and full shipments are refused before anything is written, cards and alerts are
marked, leases exclude, and phone claims hand shipments over once."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from typing import Any

import pytest

from synapse_modules.parcels.rules import MAX_UPDATES_PER_SHIPMENT, ShipmentUpdate, Update
from synapse_modules.parcels.store.rooms import get_room_txn, room_ready_txn, set_room_id_txn, start_room_txn
from synapse_modules.parcels.store.schema import create_schema_txn
from synapse_modules.parcels.store.shipments import (
    RENDER_GRACE_MS,
    Rendered,
    cards_rendered_txn,
    get_shipment_txn,
    recent_of_merchant_txn,
    recent_of_user_txn,
    record_update_txn,
    set_alerted_txn,
    set_card_txn,
    stale_cards_txn,
)
from synapse_modules.parcels.store.work import (
    acquire_lease_txn,
    add_claim_txn,
    apply_claim_txn,
    begin_render_txn,
    due_claims_txn,
    due_renders_txn,
    postpone_render_txn,
    release_lease_txn,
    render_done_txn,
)

NOW = 1_700_000_000_000
DAY = 24 * 3600 * 1000


@pytest.fixture
def txn() -> Iterator[Any]:
    conn = sqlite3.connect(":memory:")
    cur = conn.cursor()
    create_schema_txn(cur)
    create_schema_txn(cur)  # idempotent: every process runs it
    # What Synapse's schema holds of these two (the phone lookup's columns).
    cur.execute("CREATE TABLE users (name TEXT, deactivated INTEGER)")
    cur.execute("CREATE TABLE user_threepids (user_id TEXT, medium TEXT, address TEXT)")
    yield cur
    conn.close()


def shipment(status: str, at: int, shipment_id: str = "s1", **fields: Any) -> ShipmentUpdate:
    base: dict[str, Any] = {"carrier": "sf", "tracking_number": "SF1", "buyer": "@a:hs"}
    base.update(fields)
    location = base.pop("location", None)
    return ShipmentUpdate(shipment_id=shipment_id, update=Update(status, at, location), **base)


def record(txn: Any, status: str, at: int, user: str | None = "@a:hs", **fields: Any) -> Any:
    return record_update_txn(txn, shipment(status, at, **fields), user, NOW)


def test_a_replay_changes_nothing(txn: Any) -> None:
    first = record(txn, "picked_up", 10, location="Shenzhen")
    assert (first.status, first.changed, first.user_id) == ("picked_up", True, "@a:hs")
    before = get_shipment_txn(txn, "s1")
    again = record(txn, "picked_up", 10, location="somewhere else")
    assert (again.status, again.changed) == ("picked_up", False)
    assert get_shipment_txn(txn, "s1") == before


def test_out_of_order_updates_are_history_and_never_move_the_status_back(txn: Any) -> None:
    record(txn, "delivered", 50)
    late = record(txn, "in_transit", 30)
    assert (late.status, late.changed) == ("delivered", True)  # history changed, the status did not
    s = get_shipment_txn(txn, "s1")
    assert s is not None and (s.status, s.status_at) == ("delivered", 50)
    assert sorted((u.status, u.at) for u in s.history) == [("delivered", 50), ("in_transit", 30)]
    assert s.version == 2  # the card shows the history: it is rendered again


def test_alerts_are_marked_when_a_notifying_status_becomes_current(txn: Any) -> None:
    record(txn, "in_transit", 10)
    assert get_shipment_txn(txn, "s1").alert_key is None  # type: ignore[union-attr]
    record(txn, "out_for_delivery", 20)
    assert get_shipment_txn(txn, "s1").alert_key == "out_for_delivery@20"  # type: ignore[union-attr]
    record(txn, "in_transit", 15)  # history only
    assert get_shipment_txn(txn, "s1").alert_key == "out_for_delivery@20"  # type: ignore[union-attr]
    record(txn, "delivered", 30)
    assert get_shipment_txn(txn, "s1").alert_key == "delivered@30"  # type: ignore[union-attr]


@pytest.mark.parametrize(("field", "value"), [("buyer", "@b:hs"), ("carrier", "zto"), ("tracking_number", "SF2"),
                                              ("merchant", "@other:hs"), ("order_id", "o-2")])
def test_a_later_update_cannot_change_who_or_what_the_shipment_is(txn: Any, field: str, value: str) -> None:
    record(txn, "created", 1, merchant="@shop:hs", order_id="o-1")
    before = get_shipment_txn(txn, "s1")
    refused = record(txn, "picked_up", 2, **{"merchant": "@shop:hs", "order_id": "o-1", field: value})
    assert (refused.conflict, refused.changed) == (field, False)
    assert get_shipment_txn(txn, "s1") == before


def test_order_and_merchant_may_be_filled_in_later(txn: Any) -> None:
    record(txn, "created", 1)
    record(txn, "picked_up", 2, merchant="@shop:hs", order_id="o-1")
    s = get_shipment_txn(txn, "s1")
    assert s is not None and (s.merchant, s.order_id) == ("@shop:hs", "o-1")


def test_a_full_shipment_takes_no_more_updates(txn: Any) -> None:
    for at in range(MAX_UPDATES_PER_SHIPMENT):
        record(txn, "in_transit", at)
    full = record(txn, "in_transit", 10_000)
    assert full.full and not full.changed
    assert record(txn, "in_transit", 5).changed is False  # a replay is still just a replay


def test_cards_behind_are_listed_and_caught_up(txn: Any) -> None:
    record(txn, "created", 1)
    record(txn, "created", 1, shipment_id="s2")
    assert due_renders_txn(txn, NOW, 10) == []  # left to the request that wrote it, for a while
    assert due_renders_txn(txn, NOW + RENDER_GRACE_MS, 10) == ["@a:hs"]
    stale = stale_cards_txn(txn, "@a:hs")
    assert [s.shipment_id for s in stale] == ["s1", "s2"]
    set_card_txn(txn, "s1", "!room", "$card1", "h1")
    set_alerted_txn(txn, "s1", "created@1")
    cards_rendered_txn(txn, [Rendered("s1", stale[0].version, "h1")])
    assert [s.shipment_id for s in stale_cards_txn(txn, "@a:hs")] == ["s2"]
    work = begin_render_txn(txn, "@a:hs", "person:@a:hs", "me", NOW, 1000)
    assert work is not None and work.room is None and [s.shipment_id for s in work.stale] == ["s2"]
    assert begin_render_txn(txn, "@a:hs", "person:@a:hs", "you", NOW, 1000) is None  # the lease is mine
    render_done_txn(txn, "person:@a:hs", "me")
    assert due_renders_txn(txn, NOW + RENDER_GRACE_MS, 10) == ["@a:hs"]  # s2 is still behind
    assert begin_render_txn(txn, "@a:hs", "person:@a:hs", "you", NOW, 1000) is not None  # released
    render_done_txn(txn, "person:@a:hs", "you", [Rendered("s2", stale[1].version, "h2")])
    assert due_renders_txn(txn, NOW + DAY, 10) == []
    postpone_render_txn(txn, "@a:hs", NOW + DAY)  # nothing behind: nothing to postpone
    record(txn, "picked_up", 2, shipment_id="s2")
    postpone_render_txn(txn, "@a:hs", NOW + DAY)  # a render failed: the drain waits
    assert due_renders_txn(txn, NOW + RENDER_GRACE_MS, 10) == []
    assert due_renders_txn(txn, NOW + DAY, 10) == ["@a:hs"]
    s1 = get_shipment_txn(txn, "s1")
    assert s1 is not None and (s1.card_event_id, s1.card_hash, s1.alerted_key) == ("$card1", "h1", "created@1")


def test_a_lease_has_one_holder_until_released_or_expired(txn: Any) -> None:
    assert acquire_lease_txn(txn, "person:x", "one", NOW, 1000)
    assert not acquire_lease_txn(txn, "person:x", "two", NOW + 10, 1000)
    assert acquire_lease_txn(txn, "person:y", "two", NOW + 10, 1000)  # another person's
    release_lease_txn(txn, "person:x", "two")  # not the holder: nothing happens
    assert not acquire_lease_txn(txn, "person:x", "two", NOW + 20, 1000)
    assert acquire_lease_txn(txn, "person:x", "two", NOW + 1001, 1000)  # the holder's time ran out
    release_lease_txn(txn, "person:x", "two")
    assert acquire_lease_txn(txn, "person:x", "three", NOW + 1002, 1000)


def test_a_new_room_redoes_the_recent_cards_that_are_elsewhere(txn: Any) -> None:
    record(txn, "in_transit", NOW - DAY)
    record(txn, "delivered", NOW - 40 * DAY, shipment_id="old")
    for s in stale_cards_txn(txn, "@a:hs"):
        set_card_txn(txn, s.shipment_id, "!old", "$c", "h")
        cards_rendered_txn(txn, [Rendered(s.shipment_id, s.version, "h")])
    start_room_txn(txn, "@a:hs", NOW)
    assert get_room_txn(txn, "@a:hs").state == "creating"  # type: ignore[union-attr]
    set_room_id_txn(txn, "@a:hs", "!new", NOW)
    assert room_ready_txn(txn, "@a:hs", "!new", NOW, NOW - 30 * DAY) == 1  # not the one over 40 days ago
    assert get_room_txn(txn, "@a:hs").room_id == "!new"  # type: ignore[union-attr]
    assert [s.shipment_id for s in stale_cards_txn(txn, "@a:hs")] == ["s1"]


def test_recent_parcels_of_a_person_and_of_a_merchant(txn: Any) -> None:
    record(txn, "in_transit", NOW - 60 * DAY, merchant="@shop:hs", order_id="o-1")  # slow, but on its way
    record(txn, "delivered", NOW - DAY, shipment_id="s2", merchant="@shop:hs", order_id="o-2")
    record(txn, "returned", NOW - 31 * DAY, shipment_id="s3", merchant="@shop:hs")
    record(txn, "created", NOW, shipment_id="s4", buyer="@b:hs", user="@b:hs", merchant="@other:hs")
    since = NOW - 30 * DAY
    assert [s.shipment_id for s in recent_of_user_txn(txn, "@a:hs", since)] == ["s2", "s1"]
    assert [s.shipment_id for s in recent_of_merchant_txn(txn, "@shop:hs", since, None, 10)] == ["s2", "s1"]
    assert [s.shipment_id for s in recent_of_merchant_txn(txn, "@shop:hs", since, "o-1", 10)] == ["s1"]
    assert recent_of_merchant_txn(txn, "@other:hs", since, "o-1", 10) == []


def bind(txn: Any, user: str, msisdn: str, deactivated: int = 0) -> None:
    txn.execute("INSERT INTO users (name, deactivated) VALUES (?, ?)", (user, deactivated))
    txn.execute("INSERT INTO user_threepids (user_id, medium, address) VALUES (?, 'msisdn', ?)", (user, msisdn))


def test_a_claim_hands_the_numbers_shipments_over_once_it_is_bound(txn: Any) -> None:
    phone = "8613800138000"
    pending = record(txn, "in_transit", 10, user=None, buyer=None, buyer_phone=phone)
    assert (pending.changed, pending.user_id) == (True, None)
    record(txn, "delivered", 20, user=None, shipment_id="done", buyer=None, buyer_phone=phone)
    assert due_renders_txn(txn, NOW + DAY, 10) == []  # nobody to show them to yet
    add_claim_txn(txn, "@p:hs", phone, NOW)
    assert apply_claim_txn(txn, "@p:hs", phone, NOW, NOW, 30_000) == 0  # not bound (yet): nothing moves
    assert due_claims_txn(txn, 10) == []  # and a claim for a number the account does not hold goes
    bind(txn, "@p:hs", phone)
    add_claim_txn(txn, "@p:hs", phone, NOW)
    assert apply_claim_txn(txn, "@p:hs", phone, NOW, NOW, 30_000) == 2
    assert due_claims_txn(txn, 10) == [("@p:hs", phone, NOW)]  # kept while it settles...
    assert apply_claim_txn(txn, "@p:hs", phone, NOW, NOW + 30_000, 30_000) == 0  # ...applied again, then gone
    assert due_claims_txn(txn, 10) == []
    assert [s.shipment_id for s in stale_cards_txn(txn, "@p:hs")] == ["done", "s1"]
    done = get_shipment_txn(txn, "done")
    assert done is not None and done.alerted_key == done.alert_key == "delivered@20"  # over already: no alert
    moving = get_shipment_txn(txn, "s1")
    assert moving is not None and moving.user_id == "@p:hs"
    # Later updates of the number's shipments go to the account the shipment went to.
    assert record(txn, "out_for_delivery", 30, user=None, buyer=None, buyer_phone=phone).user_id == "@p:hs"


def test_a_deactivated_account_claims_nothing(txn: Any) -> None:
    phone = "8613800138001"
    record(txn, "in_transit", 10, user=None, buyer=None, buyer_phone=phone)
    bind(txn, "@gone:hs", phone, deactivated=1)
    assert apply_claim_txn(txn, "@gone:hs", phone, NOW, NOW, 30_000) == 0
