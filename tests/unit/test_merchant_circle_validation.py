"""Hostile input: request bodies, purchases, circle events and moments rooms are checked before
anything is written, and every refusal is a Matrix error naming the field."""

from __future__ import annotations

import io
from typing import Any

import pytest
from synapse.module_api.errors import SynapseError

from synapse_modules._http import MAX_JSON_BODY_BYTES, parse_json_object
from synapse_modules.merchant_circle.rules import (
    MAX_ITEMS,
    classify_circle_event,
    creation_join_rule,
    edit_product_error,
    not_friends_only_reason,
    validate_items,
    validate_order_id,
    validate_product,
    validate_profile,
)


class _Request:
    """What ``parse_json_object`` reads of a Twisted request: its body."""

    def __init__(self, body: bytes):
        self.content = io.BytesIO(body)


def _refused(call: Any, status: int, errcode: str, field: str | None = None) -> None:
    with pytest.raises(SynapseError) as e:
        call()
    assert (e.value.code, e.value.errcode) == (status, errcode), (e.value.code, e.value.errcode, e.value.msg)
    if field is not None:
        assert f"'{field}'" in e.value.msg, e.value.msg


def _parse(body: bytes) -> Any:
    return lambda: parse_json_object(_Request(body))


# -- request bodies ------------------------------------------------------------------------------

def test_a_good_body_and_an_empty_one() -> None:
    assert parse_json_object(_Request(b'{"name": "Tea \\u00e9", "n": [1, 2.5, null, true]}')) == {
        "name": "Tea é", "n": [1, 2.5, None, True]}
    assert parse_json_object(_Request(b"")) == {}


def test_nesting_never_reaches_a_recursion_error() -> None:
    _refused(_parse(b"[" * 100_000), 400, "M_BAD_JSON")
    _refused(_parse(b'{"a": ' + b"[" * 40 + b"]" * 40 + b"}"), 400, "M_BAD_JSON", "a" + "[0]" * 31)


def test_what_is_not_json_is_m_not_json() -> None:
    for body in (b"not json", b'{"a": NaN}', b'{"a": Infinity}', b'{"a": -Infinity}', b'{"a": "\xff"}',
                 b'{"a": 1', b'{"a": ' + b"9" * 5000 + b"}"):
        _refused(_parse(body), 400, "M_NOT_JSON")


def test_wrong_shapes_name_the_field() -> None:
    _refused(_parse(b"[1, 2]"), 400, "M_BAD_JSON")
    _refused(_parse(b'{"name": "\\ud800x"}'), 400, "M_BAD_JSON", "name")
    _refused(_parse(b'{"items": [{"sku": "\\udfff"}]}'), 400, "M_BAD_JSON", "items[0].sku")
    _refused(_parse(b'{"items": [{"qty": 1e400}]}'), 400, "M_BAD_JSON", "items[0].qty")
    _refused(_parse(b'{"items": [{"qty": 9007199254740993}]}'), 400, "M_BAD_JSON", "items[0].qty")
    _refused(_parse(b'{"\\ud800": 1}'), 400, "M_BAD_JSON")


def test_a_body_over_the_limit_is_too_large() -> None:
    _refused(_parse(b'{"name": "' + b"x" * MAX_JSON_BODY_BYTES + b'"}'), 413, "M_TOO_LARGE")


# -- merchants and purchases ---------------------------------------------------------------------

def test_profiles_are_bounded() -> None:
    assert validate_profile({"name": "Tea House", "avatar_url": "mxc://example.org/abc_12-X"}) == (
        "Tea House", "mxc://example.org/abc_12-X")
    _refused(lambda: validate_profile({"name": "x" * 81}), 413, "M_TOO_LARGE", "name")
    _refused(lambda: validate_profile({"name": " "}), 400, "M_BAD_JSON", "name")
    _refused(lambda: validate_profile({"name": "x", "avatar_url": "https://x/y"}), 400, "M_BAD_JSON", "avatar_url")
    _refused(lambda: validate_profile({"name": "x", "avatar_url": "mxc://a/" + "b" * 300}), 413, "M_TOO_LARGE",
             "avatar_url")


def test_order_ids_can_always_be_read_back_from_a_url() -> None:
    for good in ("o-1", "Shop-7:abc_A.1-b", "bot-@u1:hs.test", "x" * 128):
        assert validate_order_id(good) == good
    for bad in ("", "a/b", ".", "..", "../x", ".hidden", "x" * 129, "a b", "订单", "a%2Fb", "a?b", "a#b", None, 5):
        _refused(lambda bad=bad: validate_order_id(bad), 400, "M_BAD_JSON", "order_id")


def test_items_are_bounded() -> None:
    assert validate_items([]) == []
    assert validate_items([{"sku": "tea", "qty": 2}] * MAX_ITEMS)
    _refused(lambda: validate_items("tea"), 400, "M_BAD_JSON", "items")
    _refused(lambda: validate_items([{"sku": "tea"}] * (MAX_ITEMS + 1)), 413, "M_TOO_LARGE", "items")
    _refused(lambda: validate_items([{"sku": "tea"}, "tea"]), 400, "M_BAD_JSON", "items[1]")
    _refused(lambda: validate_items([{"note": "x" * 2000}]), 413, "M_TOO_LARGE", "items[0]")
    _refused(lambda: validate_items([{"qty": float("nan")}]), 400, "M_BAD_JSON", "items[0].qty")


# -- circle events ---------------------------------------------------------------------------------

PRODUCT = {"id": "tea-1", "title": "Green tea", "price": "9.90", "currency": "CNY", "url": "https://shop.example/1"}


def test_products_are_checked_and_bounded() -> None:
    assert validate_product(PRODUCT) == PRODUCT
    assert validate_product({**PRODUCT, "price": 9.9})["price"] == 9.9
    for price in ("NaN", "Infinity", "-1", "", "nine", True, None, float("inf")):
        _refused(lambda price=price: validate_product({**PRODUCT, "price": price}), 400, "M_BAD_JSON",
                 "org.wangxin.product.price")
    _refused(lambda: validate_product({**PRODUCT, "title": "t" * 201}), 413, "M_TOO_LARGE",
             "org.wangxin.product.title")
    _refused(lambda: validate_product({**PRODUCT, "url": "javascript:alert(1)"}), 400, "M_BAD_JSON",
             "org.wangxin.product.url")


def test_what_a_follower_sees_is_a_post_an_edit_or_a_removal() -> None:
    text = {"msgtype": "m.text", "body": "Hello"}
    assert classify_circle_event("m.room.message", text).kind == "post"
    assert classify_circle_event("m.sticker", {"body": "x", "url": "mxc://a/b"}).kind == "post"
    assert classify_circle_event("org.matrix.msc3381.poll.start", {}).kind == "post"
    assert classify_circle_event("m.poll.start", {}).kind == "post"
    reply = {**text, "m.relates_to": {"m.in_reply_to": {"event_id": "$p"}}}
    assert classify_circle_event("m.room.message", reply).kind == "post"
    edit = {**text, "m.new_content": text, "m.relates_to": {"rel_type": "m.replace", "event_id": "$p"}}
    assert (classify_circle_event("m.room.message", edit).kind, classify_circle_event("m.room.message", edit).target) \
        == ("edit", "$p")
    end = {"m.relates_to": {"rel_type": "m.reference", "event_id": "$poll"}}
    assert classify_circle_event("org.matrix.msc3381.poll.end", end).kind == "edit"
    assert classify_circle_event("m.poll.end", {}).kind == "post"
    assert classify_circle_event("m.room.redaction", {}, "$p").target == "$p"
    for event_type in ("m.room.encrypted", "m.reaction", "m.call.invite", "com.example.banner"):
        refused = classify_circle_event(event_type, {})
        assert refused.kind == "refused" and refused.reason


def test_circle_posts_and_edits_are_checked() -> None:
    _refused(lambda: classify_circle_event("m.room.message", {"msgtype": "m.text", "body": ""}), 400, "M_BAD_JSON",
             "body")
    _refused(lambda: classify_circle_event("m.room.message", {"msgtype": "m.text", "body": "x" * 4001}), 413,
             "M_TOO_LARGE", "body")
    edit = {"msgtype": "m.text", "body": "* x", "m.relates_to": {"rel_type": "m.replace", "event_id": "$p"}}
    _refused(lambda: classify_circle_event("m.room.message", edit), 400, "M_BAD_JSON", "m.new_content")
    _refused(lambda: classify_circle_event("m.room.message", {**edit, "m.new_content": {"body": ""}}), 400,
             "M_BAD_JSON", "m.new_content.body")
    with_product = {**edit, "m.new_content": {"body": "x", "org.wangxin.product": {**PRODUCT, "price": "8.80"}}}
    event = classify_circle_event("m.room.message", with_product)
    assert edit_product_error(event, "tea-1") is None
    error = edit_product_error(event, "tea-2")
    assert error is not None and "'m.new_content.org.wangxin.product.id'" in str(error)
    assert edit_product_error(event, None) is not None
    assert edit_product_error(classify_circle_event("m.room.message", {**edit, "m.new_content": {"body": "y"}}),
                              "tea-1") is None


# -- moments ---------------------------------------------------------------------------------------

def test_moments_rooms_are_created_friends_only() -> None:
    assert creation_join_rule({}) == "invite"
    assert creation_join_rule({"preset": "public_chat"}) == "public"
    assert creation_join_rule({"visibility": "public"}) == "public"
    assert creation_join_rule({"preset": "trusted_private_chat"}) == "invite"
    knock = {"type": "m.room.join_rules", "state_key": "", "content": {"join_rule": "knock"}}
    assert creation_join_rule({"preset": "private_chat", "initial_state": [knock]}) == "knock"
    invite = {"type": "m.room.join_rules", "state_key": "", "content": {"join_rule": "invite"}}
    assert creation_join_rule({"preset": "public_chat", "initial_state": [invite]}) == "invite"
    for config in ({"preset": "public_chat"}, {"visibility": "public", "preset": "private_chat"},
                   {"initial_state": [knock]},
                   {"initial_state": [{**knock, "content": {"join_rule": "knock_restricted"}}]}):
        assert not_friends_only_reason(config), config
    restricted = {**knock, "content": {"join_rule": "restricted", "allow": []}}
    for config in ({}, {"preset": "private_chat"}, {"initial_state": [restricted]}):
        assert not_friends_only_reason(config) is None, config
