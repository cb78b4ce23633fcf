"""The accounts module's pure parts: what PUT /accounts, search and the storefront accept (each
refusal naming its field), the fee waiver's date, the ids merchants get, the follow page's
escaping and QR code, and the options."""

from __future__ import annotations

import datetime
import io
from typing import Any

import pytest
import segno
from PIL import Image
from synapse.module_api import errors

from synapse_modules._config import ModuleConfigError
from synapse_modules.accounts.config import AccountsConfig
from synapse_modules.accounts.follow_page import follow_page, not_found_page, qr_png
from synapse_modules.accounts.rules import (
    ACCOUNT_ID_RE,
    STOREFRONT_WIDGET_ID,
    add_months,
    ascii_lower,
    derived_account_ids,
    follow_link,
    like_escaped,
    matrix_to_link,
    storefront_layout,
    storefront_widget,
    validate_account,
    validate_account_id,
    validate_limit,
    validate_query,
    validate_storefront_url,
)


def refused(call: Any, status: int, field: str) -> errors.SynapseError:
    with pytest.raises(errors.SynapseError) as raised:
        call()
    assert raised.value.code == status, raised.value.msg
    assert f"'{field}'" in raised.value.msg, raised.value.msg
    return raised.value


def ms(year: int, month: int, day: int, hour: int = 0, minute: int = 0) -> int:
    return int(datetime.datetime(year, month, day, hour, minute, tzinfo=datetime.UTC).timestamp() * 1000)


# -- accounts ------------------------------------------------------------------------------------

@pytest.mark.parametrize("good", ["abc", "tea-house", "a_b", "x" * 32, "123"])
def test_account_ids_of_three_to_32_plain_characters_pass(good: str) -> None:
    assert validate_account_id(good) == good


@pytest.mark.parametrize("bad", ["ab", "x" * 33, "Tea", "tea house", "tea.house", "茶馆", "../x", "", None, 5])
def test_other_account_ids_are_refused_naming_the_field(bad: Any) -> None:
    error = refused(lambda: validate_account_id(bad), 400, "account_id")
    assert error.errcode == errors.Codes.INVALID_PARAM


def body(**changes: Any) -> dict[str, Any]:
    base: dict[str, Any] = {"kind": "organisation", "owner": "@alice:hs", "name": "City Library", "verified": True}
    base.update(changes)
    return {k: v for k, v in base.items() if v is not ...}


def test_a_full_account_body_is_read() -> None:
    account = validate_account(body(avatar_url="mxc://hs/abc", description="Books · 图书"))
    assert (account.kind, account.owner, account.name, account.verified) == ("organisation", "@alice:hs",
                                                                             "City Library", True)
    assert (account.avatar_url, account.description) == ("mxc://hs/abc", "Books · 图书")
    assert validate_account(body(verified=...)).verified is False


@pytest.mark.parametrize(("changes", "status", "field"), [
    ({"kind": "shop"}, 400, "kind"),
    ({"kind": None}, 400, "kind"),
    ({"kind": ["merchant"]}, 400, "kind"),
    ({"owner": "alice"}, 400, "owner"),
    ({"owner": ...}, 400, "owner"),
    ({"name": ""}, 400, "name"),
    ({"name": "x" * 81}, 413, "name"),
    ({"avatar_url": "https://example.org/a.png"}, 400, "avatar_url"),
    ({"description": 5}, 400, "description"),
    ({"description": "x" * 501}, 413, "description"),
    ({"verified": "yes"}, 400, "verified"),
    ({"verified": 1}, 400, "verified"),
])
def test_a_wrong_field_is_refused_by_name(changes: dict[str, Any], status: int, field: str) -> None:
    refused(lambda: validate_account(body(**changes)), status, field)


def test_the_fee_waiver_runs_calendar_months_from_registration() -> None:
    assert add_months(ms(2024, 5, 17, 8, 30), 36) == ms(2027, 5, 17, 8, 30)
    assert add_months(ms(2024, 2, 29), 12) == ms(2025, 2, 28)  # no 29 February then
    assert add_months(ms(2024, 11, 30), 3) == ms(2025, 2, 28)
    assert add_months(ms(2024, 1, 31), 1) == ms(2024, 2, 29)
    assert add_months(ms(2024, 5, 17), 0) == ms(2024, 5, 17)


def test_a_merchant_gets_its_localpart_as_account_id_or_a_stable_variant() -> None:
    assert derived_account_ids("@teahouse:hs")[0] == "teahouse"
    odd = derived_account_ids("@Tea.House=1:hs")
    assert odd[0] == "tea-house-1"
    short = derived_account_ids("@ab:hs")
    assert short and all(ACCOUNT_ID_RE.match(c) for c in short) and "ab" not in short
    long = derived_account_ids("@" + "x" * 60 + ":hs")
    assert all(ACCOUNT_ID_RE.match(c) for c in long) and long[0] == "x" * 32
    assert derived_account_ids("@shop.one:hs") == derived_account_ids("@shop.one:hs")  # the same every time
    assert len(set(derived_account_ids("@teahouse:hs"))) == len(derived_account_ids("@teahouse:hs"))
    # Two merchants whose localparts read the same get different variants.
    assert derived_account_ids("@a.bc:hs")[1:] != derived_account_ids("@a=bc:hs")[1:]


def test_links_escape_the_alias_for_matrix_to() -> None:
    assert matrix_to_link("#tea-house:example.org") == "https://matrix.to/#/%23tea-house:example.org"
    assert follow_link("https://matrix.example.org/", "/_synapse/client/wangxin/v1", "tea") == \
        "https://matrix.example.org/_synapse/client/wangxin/v1/accounts/tea/follow"


# -- search --------------------------------------------------------------------------------------

def test_search_text_is_required_and_bounded() -> None:
    assert validate_query("  tea ") == "tea"
    refused(lambda: validate_query(None), 400, "q")
    refused(lambda: validate_query("   "), 400, "q")
    refused(lambda: validate_query("x" * 65), 413, "q")
    assert validate_limit(None, 20, 50) == 20
    assert validate_limit("5", 20, 50) == 5
    for bad in ("0", "51", "-1", "two", "1e3"):
        refused(lambda bad=bad: validate_limit(bad, 20, 50), 400, "limit")


def test_wildcards_in_search_text_match_themselves() -> None:
    assert like_escaped("100%_off\\") == "100\\%\\_off\\\\"
    assert ascii_lower("TEA Ünïcode 茶") == "tea Ünïcode 茶"


# -- the storefront ------------------------------------------------------------------------------

@pytest.mark.parametrize("url", ["https://shop.example/p/1?x=1#top", "https://127.0.0.1:8443/", "HTTPS://Shop.example/"])
def test_https_storefronts_pass(url: str) -> None:
    assert validate_storefront_url({"url": url}, False) == url


@pytest.mark.parametrize("url", [
    "http://shop.example/", "ftp://shop.example/", "javascript:alert(1)", "https://", "https:///path",
    "https://user:pw@shop.example/", "https://shop.example/a b", "https://shop.example/\n", "//shop.example/",
    "https://shop.example:99999/", "data:text/html,<b>x</b>", "http://127.0.0.1/", "",
])
def test_other_storefront_urls_are_refused_naming_url(url: str) -> None:
    refused(lambda: validate_storefront_url({"url": url}, False), 400, "url")


def test_http_on_loopback_only_where_the_deployment_allows_it() -> None:
    for url in ("http://127.0.0.1:8000/shop", "http://localhost/shop", "http://[::1]:9/"):
        assert validate_storefront_url({"url": url}, True) == url
        refused(lambda url=url: validate_storefront_url({"url": url}, False), 400, "url")
    for url in ("http://10.0.0.1/", "http://192.168.1.1/", "http://shop.example/", "http://127.0.0.1.nip.io/"):
        refused(lambda url=url: validate_storefront_url({"url": url}, True), 400, "url")
    refused(lambda: validate_storefront_url({"url": None}, True), 400, "url")
    refused(lambda: validate_storefront_url({"url": "https://x.example/" + "a" * 2100}, True), 413, "url")


def test_the_storefront_is_a_custom_widget_pinned_in_elements_top_container() -> None:
    widget = storefront_widget("https://shop.example/", "Tea House", "@owner:hs")
    assert widget["type"] == "m.custom" and widget["url"] == "https://shop.example/"
    assert widget["id"] == STOREFRONT_WIDGET_ID and widget["creatorUserId"] == "@owner:hs"
    assert storefront_layout(True) == {"widgets": {STOREFRONT_WIDGET_ID: {"container": "top", "index": 0,
                                                                          "width": 100, "height": 50}}}
    assert storefront_layout(False) == {"widgets": {}}


# -- the follow page -----------------------------------------------------------------------------

def test_the_follow_page_escapes_everything_from_the_account() -> None:
    page = follow_page('<script>alert("x")</script>', "a & b <i>", True, "#tea:hs", 'https://matrix.to/#/%23tea:hs"')
    assert "<script>" not in page and "&lt;script&gt;" in page
    assert "a &amp; b &lt;i&gt;" in page
    assert 'href="https://matrix.to/#/%23tea:hs&quot;"' in page
    assert "✔" in page and 'src="qr.png"' in page
    assert "✔" not in follow_page("Tea", None, False, "#tea:hs", "https://matrix.to/#/%23tea:hs")
    assert "&lt;b&gt;" in not_found_page("<b>")


def test_the_qr_code_is_a_png_of_the_link() -> None:
    link = "https://matrix.example.org/_synapse/client/wangxin/v1/accounts/tea/follow"
    image = Image.open(io.BytesIO(qr_png(link))).convert("L")
    qr = segno.make_qr(link, error="m")
    scale, border = 8, 4
    assert image.size == ((len(qr.matrix) + 2 * border) * scale,) * 2
    for row, modules in enumerate(qr.matrix):
        for column, dark in enumerate(modules):
            pixel = image.getpixel(((column + border) * scale + 4, (row + border) * scale + 4))
            assert isinstance(pixel, int) and (pixel < 128) == bool(dark)


# -- options -------------------------------------------------------------------------------------

def test_defaults_and_options() -> None:
    default = AccountsConfig.from_dict(None)
    assert (default.fee_waiver_months, default.identity_prefix, default.search_limit) == (36, "acct.", 20)
    assert default.storefront_allow_http_loopback is False and default.list_verified_in_directory is True
    config = AccountsConfig.from_dict({"fee_waiver_months": 12, "identity_prefix": "oa-", "search_limit": 50,
                                       "storefront_allow_http_loopback": True, "sweep_interval_ms": 5000,
                                       "list_verified_in_directory": False})
    assert (config.fee_waiver_months, config.identity_prefix, config.search_limit) == (12, "oa-", 50)
    assert config.storefront_allow_http_loopback and config.sweep_interval_ms == 5000
    assert config.list_verified_in_directory is False


@pytest.mark.parametrize(("raw", "key"), [
    ({"fee_waiver_months": -1}, "fee_waiver_months"),
    ({"identity_prefix": "_acct"}, "identity_prefix"),
    ({"identity_prefix": "Acct."}, "identity_prefix"),
    ({"identity_prefix": "x" * 17}, "identity_prefix"),
    ({"search_limit": 0}, "search_limit"),
    ({"search_limit": 51}, "search_limit"),
    ({"storefront_allow_http_loopback": "yes"}, "storefront_allow_http_loopback"),
    ({"sweep_interval_ms": 10}, "sweep_interval_ms"),
    ({"list_verified_in_directory": "yes"}, "list_verified_in_directory"),
    ({"colour": "red"}, "colour"),
])
def test_a_wrong_option_names_its_key(raw: dict[str, Any], key: str) -> None:
    with pytest.raises(ModuleConfigError) as raised:
        AccountsConfig.from_dict(raw)
    assert raised.value.path == (key,)
