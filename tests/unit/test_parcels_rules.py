"""Parcels without a homeserver: the webhook's fields, the statuses and their order (never
backwards, whatever the arrival order), which changes notify, and the cards."""

from __future__ import annotations

import itertools
import random
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from synapse.module_api.errors import SynapseError

from synapse_modules.parcels.cards import (
    Parcel,
    alert_content,
    card_content,
    content_hash,
    edit_content,
    format_time,
)
from synapse_modules.parcels.carriers import CarrierRegistry
from synapse_modules.parcels.rules import (
    FINAL,
    NOTIFYING,
    STAGE,
    STATUSES,
    Update,
    alert_for,
    current_of,
    history_order,
    parcel_state,
    parse_shipment,
)

SHANGHAI = ZoneInfo("Asia/Shanghai")


def body(**overrides: Any) -> dict[str, Any]:
    base: dict[str, Any] = {"shipment_id": "s-1", "buyer": "@alice:hs", "carrier": "sf",
                            "tracking_number": "SF1234567890", "status": "in_transit", "at": 1_700_000_000_000}
    base.update(overrides)
    return {k: v for k, v in base.items() if v is not None}


def refused(fields: dict[str, Any], errcode: str, field: str) -> str:
    with pytest.raises(SynapseError) as e:
        parse_shipment(body(**fields))
    assert e.value.code == 400, e.value.msg
    assert e.value.errcode == errcode, (e.value.errcode, e.value.msg)
    assert f"'{field}'" in e.value.msg, e.value.msg
    return str(e.value.msg)


# -- the webhook body ----------------------------------------------------------------------------


def test_a_full_update_is_read_with_every_field() -> None:
    s = parse_shipment(body(order_id="o-9", merchant="@shop:hs", carrier="SF", location="杭州 西湖区",
                            eta=1_700_100_000_000, detail="courier Wang"))
    assert (s.shipment_id, s.buyer, s.buyer_phone, s.merchant, s.order_id) == ("s-1", "@alice:hs", None, "@shop:hs",
                                                                              "o-9")
    assert (s.carrier, s.tracking_number) == ("sf", "SF1234567890")  # codes are case-insensitive
    assert s.update == Update("in_transit", 1_700_000_000_000, "杭州 西湖区", 1_700_100_000_000, "courier Wang")


def test_a_phone_number_is_kept_as_synapse_stores_msisdns() -> None:
    s = parse_shipment(body(buyer=None, buyer_phone="+86 138-0013-8000"))
    assert (s.buyer, s.buyer_phone) == (None, "8613800138000")


@pytest.mark.parametrize("fields", [{"buyer": None}, {"buyer_phone": "+8613800138000"}])
def test_buyer_and_buyer_phone_both_or_neither_are_refused(fields: dict[str, Any]) -> None:
    msg = refused(fields, "M_BAD_JSON", "buyer")
    assert "'buyer_phone'" in msg


@pytest.mark.parametrize("phone", ["8613800138000", "+86", "+8600000", "+1 555 000 0000x", "+999123456789",
                                   "not a number"])
def test_an_invalid_phone_number_is_refused_naming_it(phone: str) -> None:
    refused({"buyer": None, "buyer_phone": phone}, "M_INVALID_PARAM", "buyer_phone")


@pytest.mark.parametrize("status", ["lost", "DELIVERED", "", 3])
def test_an_unknown_status_is_refused_naming_it(status: Any) -> None:
    msg = refused({"status": status}, "M_INVALID_PARAM", "status")
    assert "out_for_delivery" in msg


@pytest.mark.parametrize("at", ["1700000000000", 1.5, 1e12, True, None, [1]])
def test_at_must_be_an_integer(at: Any) -> None:
    refused({"at": at}, "M_BAD_JSON", "at")


def test_at_and_eta_must_be_in_range() -> None:
    refused({"at": -1}, "M_INVALID_PARAM", "at")
    refused({"eta": 2**53}, "M_INVALID_PARAM", "eta")
    refused({"eta": "tomorrow"}, "M_BAD_JSON", "eta")


@pytest.mark.parametrize(("field", "limit"), [("tracking_number", 64), ("location", 256), ("detail", 256),
                                              ("order_id", 256), ("shipment_id", 256)])
def test_over_long_fields_are_refused_naming_them(field: str, limit: int) -> None:
    parse_shipment(body(**{field: "A" * limit}))
    msg = refused({field: "A" * (limit + 1)}, "M_TOO_LARGE", field)
    assert str(limit) in msg


@pytest.mark.parametrize(("fields", "errcode", "field"), [
    ({"shipment_id": None}, "M_BAD_JSON", "shipment_id"),
    ({"shipment_id": "a/b"}, "M_INVALID_PARAM", "shipment_id"),
    ({"shipment_id": ".."}, "M_INVALID_PARAM", "shipment_id"),
    ({"buyer": "alice"}, "M_INVALID_PARAM", "buyer"),
    ({"buyer": 7}, "M_BAD_JSON", "buyer"),
    ({"merchant": "shop"}, "M_INVALID_PARAM", "merchant"),
    ({"carrier": None}, "M_BAD_JSON", "carrier"),
    ({"carrier": "s f"}, "M_INVALID_PARAM", "carrier"),
    ({"carrier": "x" * 33}, "M_INVALID_PARAM", "carrier"),
    ({"tracking_number": None}, "M_BAD_JSON", "tracking_number"),
    ({"tracking_number": "SF 123"}, "M_INVALID_PARAM", "tracking_number"),
    ({"tracking_number": "  "}, "M_BAD_JSON", "tracking_number"),
    ({"location": "line\nbreak"}, "M_INVALID_PARAM", "location"),
    ({"detail": "bidi \u202e trick"}, "M_INVALID_PARAM", "detail"),
    ({"location": 5}, "M_BAD_JSON", "location"),
])
def test_bad_fields_are_refused_naming_them(fields: dict[str, Any], errcode: str, field: str) -> None:
    refused(fields, errcode, field)


def test_empty_optional_texts_count_as_absent() -> None:
    s = parse_shipment(body(location="", detail=None, order_id=""))
    assert (s.update.location, s.update.detail, s.order_id) == (None, None, None)


# -- the current status --------------------------------------------------------------------------


def u(status: str, at: int, location: str | None = None, eta: int | None = None) -> Update:
    return Update(status, at, location, eta)


def test_history_is_kept_in_time_order() -> None:
    updates = [u("delivered", 50), u("created", 10), u("in_transit", 30), u("picked_up", 20)]
    assert [x.status for x in history_order(updates)] == ["created", "picked_up", "in_transit", "delivered"]


def test_an_update_stamped_before_the_delivery_stays_history() -> None:
    assert current_of([u("delivered", 50), u("in_transit", 30)]) == u("delivered", 50)


def test_a_later_update_of_an_earlier_stage_stays_history() -> None:
    assert current_of([u("out_for_delivery", 10), u("in_transit", 20)]) == u("out_for_delivery", 10)


def test_the_same_stage_at_a_new_place_becomes_current() -> None:
    assert current_of([u("in_transit", 10, "Shenzhen"), u("in_transit", 20, "Hangzhou")]) == u("in_transit", 20,
                                                                                               "Hangzhou")


def test_an_exception_becomes_current_and_the_parcel_moves_on_after_it() -> None:
    assert current_of([u("in_transit", 10), u("exception", 20)]).status == "exception"
    assert current_of([u("in_transit", 10), u("exception", 20), u("in_transit", 30)]).status == "in_transit"
    # but not back to an earlier stage than the one reached before the exception
    assert current_of([u("out_for_delivery", 10), u("exception", 20), u("in_transit", 30)]).status == "exception"


def test_nothing_changes_after_delivered_or_returned() -> None:
    assert current_of([u("delivered", 10), u("exception", 20), u("returned", 30)]) == u("delivered", 10)
    assert current_of([u("returned", 10), u("in_transit", 20)]) == u("returned", 10)


def test_location_and_eta_are_the_latest_given_up_to_the_current_update() -> None:
    state = parcel_state([u("picked_up", 10, "Shenzhen", 500), u("in_transit", 20), u("created", 5)])
    assert (state.status, state.location, state.eta) == ("in_transit", "Shenzhen", 500)
    assert parcel_state([u("picked_up", 10, "Shenzhen", 500), u("delivered", 20)]).eta is None  # over: no ETA


STATUS_LIST = list(STATUSES)


@st.composite
def histories(draw: Any) -> list[Update]:
    n = draw(st.integers(min_value=1, max_value=8))
    keys = draw(st.lists(st.tuples(st.sampled_from(STATUS_LIST), st.integers(min_value=0, max_value=20)),
                         min_size=n, max_size=n, unique=True))
    return [u(status, at) for status, at in keys]


def _progress(update: Update | None) -> int:
    return -1 if update is None or update.status == "exception" else STAGE[update.status]


@settings(max_examples=400, deadline=None)
@given(histories(), st.randoms(use_true_random=False))
def test_whatever_the_arrival_order_the_stage_never_goes_back_and_the_end_is_the_same(
        updates: list[Update], rnd: random.Random) -> None:
    final = current_of(updates)
    arrival = list(updates)
    rnd.shuffle(arrival)
    shown_stage = -1  # the furthest stage a card showed so far
    shown_final = False
    for n in range(1, len(arrival) + 1):
        current = current_of(arrival[:n])
        assert current is not None
        if current.status != "exception":
            assert STAGE[current.status] >= shown_stage, (arrival[:n], current)
            shown_stage = STAGE[current.status]
        assert current.status in FINAL or not shown_final, (arrival[:n], current)
        shown_final = current.status in FINAL
    assert current_of(arrival) == final  # replays and out-of-order deliveries converge


def test_the_notifying_statuses_notify_when_they_become_current() -> None:
    assert NOTIFYING == {"out_for_delivery", "delivered", "exception", "returned"}
    for before, after in itertools.product([None, *STATUSES], STATUSES):
        previous = u(before, 1) if before else None
        expected = after in NOTIFYING and before != after
        assert alert_for(previous, u(after, 2)) == expected, (before, after)


# -- the carrier registry and the cards ----------------------------------------------------------


def test_the_default_carriers_have_names_in_both_languages() -> None:
    registry = CarrierRegistry.with_defaults()
    assert {code: registry.display(code) for code in ("sf", "zto", "yto", "sto", "yunda", "jd", "ems")} == {
        "sf": ("SF Express", "顺丰速运"), "zto": ("ZTO Express", "中通快递"), "yto": ("YTO Express", "圆通速递"),
        "sto": ("STO Express", "申通快递"), "yunda": ("Yunda Express", "韵达快递"), "jd": ("JD Logistics", "京东物流"),
        "ems": ("EMS", "中国邮政 EMS"),
    }
    assert registry.link("SF", "SF12/34") == \
        "https://www.sf-express.com/chn/sc/dynamic_function/waybill/#search/bill-number/SF12%2F34"
    assert registry.link("jd", "JD0001") == "https://www.jdl.com/orderSearch/?waybillCodes=JD0001"
    assert registry.link("yto", "YT1") is None  # no reliable tracking page known: no link


def test_an_unknown_carrier_shows_its_code_and_no_link() -> None:
    registry = CarrierRegistry.with_defaults()
    assert registry.display("acme") == ("acme", None)
    assert registry.link("acme", "A1") is None


def parcel(*updates: Update, carrier: str = "sf") -> Parcel:
    return Parcel("s-1", carrier, "SF1234567890", parcel_state(list(updates)), "o-1")


def test_a_card_shows_everything_in_both_languages_with_the_link() -> None:
    registry = CarrierRegistry.with_defaults()
    p = parcel(u("picked_up", 1_700_000_000_000, "深圳"),
               Update("out_for_delivery", 1_700_003_600_000, "杭州 <西湖>", 1_700_010_000_000, "courier Wang"))
    content = card_content(p, registry, SHANGHAI)
    body_text = content["body"]
    for words in ("顺丰速运 SF Express · SF1234567890", "派送中 · Out for delivery", "杭州 <西湖>", "courier Wang",
                  "预计送达 ETA: 2023-11-15 09:00 (UTC+8)", registry.link("sf", "SF1234567890"),
                  "已揽收 · Picked up — 深圳"):
        assert words in body_text, (words, body_text)
    assert content["msgtype"] == "m.notice"  # quiet: .m.rule.suppress_notices
    assert "&lt;西湖&gt;" in content["formatted_body"] and "<西湖>" not in content["formatted_body"]
    assert content["org.wangxin.parcel"]["status"] == "out_for_delivery"
    assert body_text.index("派送中 · Out for delivery — 杭州") < body_text.index("已揽收 · Picked up")  # newest first


def test_an_unknown_carrier_card_has_the_raw_code_and_no_link() -> None:
    content = card_content(parcel(u("created", 1), carrier="acme"), CarrierRegistry.with_defaults(), SHANGHAI)
    assert content["body"].startswith("📦 acme · SF1234567890")
    assert "http" not in content["body"]


def test_an_edit_replaces_the_card_and_an_alert_replies_to_it() -> None:
    registry = CarrierRegistry.with_defaults()
    p = parcel(u("delivered", 1))
    content = card_content(p, registry, SHANGHAI)
    edit = edit_content("$card", content)
    assert edit["m.relates_to"] == {"rel_type": "m.replace", "event_id": "$card"}  # quiet: .m.rule.suppress_edits
    assert edit["m.new_content"] == content and "m.relates_to" not in content
    alert = alert_content(p, registry, "$card")
    assert alert["msgtype"] == "m.text" and alert["m.relates_to"] == {"m.in_reply_to": {"event_id": "$card"}}
    assert "已签收 · Delivered" in alert["body"]
    assert content_hash(content) == content_hash(card_content(p, registry, SHANGHAI))
    assert content_hash(content) != content_hash(card_content(parcel(u("delivered", 2)), registry, SHANGHAI))


def test_times_are_shown_in_the_configured_zone() -> None:
    assert format_time(0, ZoneInfo("UTC")) == "1970-01-01 00:00 (UTC+0)"
    assert format_time(0, ZoneInfo("Asia/Kolkata")) == "1970-01-01 05:30 (UTC+5:30)"
