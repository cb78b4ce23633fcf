"""``bench.parcels_plan``: the updates ``bench parcels`` sends, and what the module does with each
(which the direct arm copies)."""

from __future__ import annotations

from collections import Counter

import pytest

from bench.parcels_plan import STATUS_PATH, Mirror, Send, check_sizes, make_plan, update_of

BASE = 1_760_000_000_000


def test_every_person_gets_their_updates_one_per_round() -> None:
    plan = make_plan(200, 10, BASE, seed=1)
    assert len(plan.rounds) == 10
    for r in plan.rounds:
        assert sorted(s.person for s in r) == list(range(200))
    assert len(plan.sends()) == 2000


def test_five_per_cent_replays_and_five_per_cent_out_of_order() -> None:
    plan = make_plan(1000, 10, BASE)
    assert plan.replays == 500
    assert plan.late == 500


def test_statuses_go_in_order_except_the_late_ones_and_replays_follow_their_original() -> None:
    plan = make_plan(300, 10, BASE, seed=2)
    seen: dict[tuple[int, int], list[Send]] = {}
    for send in plan.sends():
        history = seen.setdefault(send.shipment_key, [])
        if send.replay:
            assert any(s.token == send.token and s.at == send.at and s.status == send.status for s in history)
            continue
        assert send.status == STATUS_PATH[send.step]
        if send.late:  # a later scan of its parcel arrived first
            assert history and max(s.at for s in history) > send.at
        else:
            assert all(s.at < send.at for s in history if not s.replay)
        history.append(send)
    tokens = [s.token for s in plan.sends() if not s.replay]
    assert len(tokens) == len(set(tokens))


def test_the_plan_is_the_same_for_a_seed() -> None:
    assert make_plan(50, 10, BASE, seed=5) == make_plan(50, 10, BASE, seed=5)
    assert make_plan(50, 10, BASE, seed=5) != make_plan(50, 10, BASE, seed=6)


def test_the_mirror_posts_one_card_per_parcel_edits_after_and_notifies_as_the_module() -> None:
    plan = make_plan(400, 10, BASE, seed=3)
    mirror = Mirror()
    effects = [(send, mirror.apply(send, update_of(send, "D", BASE))) for send in plan.sends()]
    cards = Counter(send.shipment_key for send, e in effects if e.action == "card")
    assert set(cards.values()) == {1}
    assert len(cards) == len({s.shipment_key for s in plan.sends()})
    for send, effect in effects:
        if send.replay:
            assert effect == effect.__class__("none", False)
        elif send.late:
            assert effect.action == "edit" and not effect.alert  # stays history: no notification
        elif effect.alert:
            assert send.status in ("out_for_delivery", "delivered")
    alerted = Counter(s.status for s, e in effects if e.alert)
    assert alerted["out_for_delivery"] > 0 and alerted["delivered"] > 0
    assert set(alerted) <= {"out_for_delivery", "delivered"}


def test_a_replay_changes_nothing_and_a_late_scan_stays_history() -> None:
    mirror = Mirror()
    sends = [Send(0, 0, 0, "created", BASE, 1), Send(0, 0, 2, "in_transit", BASE + 20, 3),
             Send(0, 0, 1, "picked_up", BASE + 10, 2, late=True),
             Send(0, 0, 2, "in_transit", BASE + 20, 3, replay=True)]
    effects = [mirror.apply(s, update_of(s, "W", BASE)) for s in sends]
    assert [e.action for e in effects] == ["card", "edit", "edit", "none"]
    assert [u.status for u in mirror.updates(sends[0])] == ["created", "in_transit", "picked_up"]


def test_each_update_carries_its_token_in_its_detail() -> None:
    send = Send(3, 1, 2, "in_transit", BASE, 42)
    assert update_of(send, "W", BASE).detail == "scan W42"
    assert update_of(send, "D", BASE).detail == "scan D42"
    assert update_of(send, "W", BASE).location


@pytest.mark.parametrize("people, updates", [(0, 10), (10, 1)])
def test_sizes_that_make_no_run_are_refused(people: int, updates: int) -> None:
    with pytest.raises(ValueError):
        check_sizes(people, updates)
