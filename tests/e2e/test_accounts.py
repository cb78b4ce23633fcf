"""Official accounts (公众号) as admins, owners, followers and browsers meet them: created and
verified by a server admin, found, followed by API and by link, merchants made the old way are
accounts too, and the storefront widget pinned beside the chat."""

from __future__ import annotations

import io
import secrets
from typing import Any
from urllib.parse import quote

import requests
import segno
from PIL import Image

from synapse_modules.accounts.rules import add_months
from tests.e2e.test_merchant_circle import (
    CIRCLE_TYPE,
    _login_as,
    make_merchant,
    membership,
    room_state,
    wait_until,
)
from tests.harness.stack import RunningStack

API = "/_synapse/client/wangxin/v1"
ACCOUNTS = f"{API}/accounts"


# -- helpers -------------------------------------------------------------------------------------

def _h(user: dict[str, Any]) -> dict[str, str]:
    return {"Authorization": f"Bearer {user['access_token']}"}


def new_id(prefix: str = "acc") -> str:
    return f"{prefix}-{secrets.token_hex(4)}"


def put_account(stack: RunningStack, account_id: str, body: dict[str, Any],
                headers: dict[str, str] | None = None) -> requests.Response:
    return requests.put(f"{stack.url}{ACCOUNTS}/{quote(account_id)}", json=body,
                        headers=headers or stack.admin_headers(), timeout=120)


def make_account(stack: RunningStack, kind: str = "organisation", name: str = "City Library",
                 verified: bool = False, **extra: Any) -> tuple[str, dict[str, Any], dict[str, Any]]:
    """A new account of a fresh owner: ``(account_id, owner, the PUT's answer)``."""
    owner = stack.register_user()
    account_id = new_id()
    r = put_account(stack, account_id, {"kind": kind, "owner": owner["user_id"], "name": name,
                                        "verified": verified, **extra})
    assert r.status_code == 200, r.text
    return account_id, owner, r.json()


def get_account(stack: RunningStack, account_id: str, user: dict[str, Any]) -> requests.Response:
    return requests.get(f"{stack.url}{ACCOUNTS}/{quote(account_id)}", headers=_h(user), timeout=30)


def error_of(r: requests.Response, status: int, field: str | None = None) -> None:
    assert r.status_code == status, r.text
    if field is not None:
        assert f"'{field}'" in r.json()["error"], r.text


def space_children(stack: RunningStack, space_id: str) -> set[str]:
    return {key for (t, key), content in room_state(stack, space_id).items() if t == "m.space.child" and content}


def space_of(stack: RunningStack, user: dict[str, Any]) -> str:
    return str(wait_until("the 商家圈 space", lambda: requests.get(
        f"{stack.url}{API}/circle", headers=_h(user), timeout=30).json()["space_room_id"]))


def directory_visibility(stack: RunningStack, room_id: str) -> str:
    r = requests.get(f"{stack.url}/_matrix/client/v3/directory/list/room/{quote(room_id)}", timeout=30)
    assert r.status_code == 200, r.text
    return str(r.json()["visibility"])


def in_public_rooms(stack: RunningStack, user: dict[str, Any], name: str) -> list[str]:
    """The rooms Element's "Explore rooms" finds by ``name``."""
    r = requests.post(f"{stack.url}/_matrix/client/v3/publicRooms", headers=_h(user),
                      json={"filter": {"generic_search_term": name}, "limit": 50}, timeout=30)
    assert r.status_code == 200, r.text
    return [chunk["room_id"] for chunk in r.json()["chunk"]]


def mute_rule(stack: RunningStack, user: dict[str, Any], room_id: str) -> dict[str, Any] | None:
    r = requests.get(f"{stack.url}/_matrix/client/v3/pushrules/global/override/{quote(room_id)}", headers=_h(user),
                     timeout=30)
    return dict(r.json()) if r.status_code == 200 else None


# -- 1. accounts ---------------------------------------------------------------------------------

def test_an_admin_creates_and_verifies_an_account_with_its_channel(stack: RunningStack) -> None:
    account_id, owner, made = make_account(stack, description="Books, talks and a reading room")
    alias = f"#{account_id}:{stack.server_name}"
    bot = stack.info["merchant_bot"]["user_id"]
    assert made["account_id"] == account_id and made["kind"] == "organisation" and made["verified"] is False
    assert made["alias"] == alias and made["owner"] == owner["user_id"]
    assert made["fees_waived_until"] == add_months(made["registered_at"], 36)
    assert sorted(made["fees_waived"]) == ["membership", "transfer", "verification"]
    room_id = made["channel_room_id"]
    identity = made["account_user_id"]
    # Posts come from the account's own user (tests/e2e/test_account_posts.py); the bot serves it.
    assert made["bot_user_id"] == bot and made["sender"] == identity and made["sender_is_shared"] is False
    assert identity == f"@acct.{account_id}:{stack.server_name}"

    state = room_state(stack, room_id)
    assert state[("m.room.create", "")]["type"] == CIRCLE_TYPE
    assert state[("m.room.canonical_alias", "")]["alias"] == alias
    assert state[("org.wangxin.account", "")] == {"account_id": account_id, "kind": "organisation",
                                                  "verified": False}
    assert state[("m.room.name", "")]["name"] == "City Library · 商家圈"
    assert state[("m.room.member", identity)]["membership"] == "join"
    assert state[("m.room.power_levels", "")]["users"][identity] == 50
    resolved = requests.get(f"{stack.url}/_matrix/client/v3/directory/room/{quote(alias)}", headers=_h(owner),
                            timeout=30)
    assert resolved.status_code == 200 and resolved.json()["room_id"] == room_id
    profile = requests.get(f"{stack.url}/_matrix/client/v3/profile/{quote(identity)}", timeout=30).json()
    assert profile["displayname"] == "City Library"
    assert directory_visibility(stack, room_id) == "private"  # unverified: not in the room directory

    # Verified, renamed: the same channel, the state says so.
    r = put_account(stack, account_id, {"kind": "organisation", "owner": owner["user_id"], "name": "City Library 2",
                                        "verified": True})
    assert r.status_code == 200 and r.json()["channel_room_id"] == room_id and r.json()["verified"] is True
    state = room_state(stack, room_id)
    assert state[("org.wangxin.account", "")]["verified"] is True
    assert state[("m.room.name", "")]["name"] == "City Library 2 · 商家圈"
    # Verified: the channel is in the public room directory, where Element's "Explore rooms" finds it.
    assert directory_visibility(stack, room_id) == "public"
    wait_until("the channel in the room directory's search", lambda: room_id in in_public_rooms(
        stack, owner, "City Library 2"))

    reader = stack.register_user()
    got = get_account(stack, account_id, reader)
    assert got.status_code == 200, got.text
    view = got.json()
    assert view["verified"] is True and view["name"] == "City Library 2"
    assert view["description"] is None  # the second PUT left it out
    assert view["registered_at"] == made["registered_at"] and view["fees_waived_until"] == made["fees_waived_until"]
    assert "owner" not in view  # for the owner and admins only
    assert get_account(stack, account_id, owner).json()["owner"] == owner["user_id"]

    # No longer verified: out of the directory, the state says so.
    r = put_account(stack, account_id, {"kind": "organisation", "owner": owner["user_id"], "name": "City Library 2",
                                        "verified": False})
    assert r.status_code == 200 and r.json()["verified"] is False
    assert directory_visibility(stack, room_id) == "private"
    assert room_id not in in_public_rooms(stack, owner, "City Library 2")
    assert room_state(stack, room_id)[("org.wangxin.account", "")]["verified"] is False


def test_refused_accounts_name_the_field_and_change_nothing(stack: RunningStack) -> None:
    owner = stack.register_user()
    someone = stack.register_user()
    good = {"kind": "platform", "owner": owner["user_id"], "name": "Mall", "verified": False}
    account_id = new_id()
    r = put_account(stack, account_id, good, headers=_h(someone))
    assert r.status_code == 403 and r.json()["errcode"] == "M_FORBIDDEN", r.text
    for bad_id in ("AB", "ab", "tea house", "x" * 33, "ta.x"):
        error_of(put_account(stack, bad_id, good), 400, "account_id")
    error_of(put_account(stack, account_id, {**good, "kind": "shop"}), 400, "kind")
    error_of(put_account(stack, account_id, {**good, "owner": f"@nobody-{secrets.token_hex(3)}:{stack.server_name}"}),
             400, "owner")
    error_of(put_account(stack, account_id, {**good, "owner": stack.info["merchant_bot"]["user_id"]}), 400, "owner")
    error_of(put_account(stack, account_id, {**good, "verified": "yes"}), 400, "verified")
    error_of(put_account(stack, account_id, {**good, "name": ""}), 400, "name")
    for refused_id in (account_id, "ab"):
        error_of(get_account(stack, refused_id if refused_id != "ab" else new_id(), owner), 404)
    r = requests.post(f"{stack.url}{ACCOUNTS}/{new_id()}/follow", headers=_h(someone), timeout=30)
    assert r.status_code == 404 and r.json()["errcode"] == "M_NOT_FOUND", r.text
    # Nobody can claim an account's user name ahead of the account.
    try:
        stack.register_user(f"acct.{new_id()}")
        raise AssertionError("registered a name reserved for accounts")
    except requests.HTTPError as e:
        assert e.response is not None and e.response.status_code == 429

    # The kind of an existing account stays (a new owner is a transfer: test_account_support_staff.py).
    made = put_account(stack, account_id, good)
    assert made.status_code == 200, made.text
    error_of(put_account(stack, account_id, {**good, "kind": "organisation"}), 409, "kind")
    assert get_account(stack, account_id, owner).json()["kind"] == "platform"


# -- 2. find and follow --------------------------------------------------------------------------

def test_search_finds_names_and_descriptions_verified_first(stack: RunningStack) -> None:
    token = f"zq{secrets.token_hex(4)}"
    plain, _, _ = make_account(stack, name=f"{token} Tea Garden")
    by_description, _, _ = make_account(stack, name="Reading Room", description=f"also {token} here")
    verified, _, _ = make_account(stack, name=f"Official {token}", verified=True)
    searcher = stack.register_user()

    def search(**params: str) -> requests.Response:
        return requests.get(f"{stack.url}{ACCOUNTS}", params=params, headers=_h(searcher), timeout=30)

    r = search(q=token.upper())
    assert r.status_code == 200, r.text
    found = [a["account_id"] for a in r.json()["results"]]
    assert found[0] == verified and set(found) == {plain, by_description, verified}
    assert r.json()["results"][0]["verified"] is True
    assert [a["account_id"] for a in search(q=token, limit="1").json()["results"]] == [verified]
    assert search(q=f"{token}%").json()["results"] == []  # a wildcard matches only itself
    error_of(search(), 400, "q")
    error_of(search(q=token, limit="500"), 400, "limit")
    assert requests.get(f"{stack.url}{ACCOUNTS}", params={"q": token}, timeout=30).status_code == 401


def test_a_follow_joins_mutes_and_files_and_an_unfollow_undoes_it(stack: RunningStack) -> None:
    account_id, _, made = make_account(stack, name="Night Market")
    room_id = made["channel_room_id"]
    follower = stack.register_user()
    url = f"{stack.url}{ACCOUNTS}/{account_id}/follow"

    for _ in range(2):  # following twice is following
        r = requests.post(url, headers=_h(follower), timeout=60)
        assert r.status_code == 200 and r.json()["following"] is True, r.text
    assert membership(stack, follower, room_id) == "join"
    rule = mute_rule(stack, follower, room_id)
    assert rule is not None and rule["actions"] in (["dont_notify"], [])
    space_id = space_of(stack, follower)
    wait_until("the channel filed in the 商家圈 space", lambda: room_id in space_children(stack, space_id))
    view = get_account(stack, account_id, follower).json()
    assert view["you_follow"] is True and view["followers"] == 1
    listed = requests.get(f"{stack.url}{API}/circle", headers=_h(follower), timeout=30).json()["merchants"]
    assert room_id in [m["circle_room_id"] for m in listed]

    r = requests.delete(url, headers=_h(follower), timeout=60)
    assert r.status_code == 200 and r.json()["following"] is False, r.text
    assert membership(stack, follower, room_id) is None
    assert room_id not in space_children(stack, space_id)
    assert get_account(stack, account_id, follower).json()["followers"] == 0

    # Following again after an unfollow: the user asked for it.
    assert requests.post(url, headers=_h(follower), timeout=60).status_code == 200
    assert membership(stack, follower, room_id) == "join"
    wait_until("filed again", lambda: room_id in space_children(stack, space_id))

    # The account's own user and the service accounts do not follow.
    for user_id in (made["account_user_id"], stack.info["merchant_bot"]["user_id"]):
        error_of(requests.post(url, headers=_h(_login_as(stack, user_id)), timeout=30), 400)


def _pixels_match(png: bytes, text: str) -> bool:
    image = Image.open(io.BytesIO(png)).convert("L")
    qr = segno.make_qr(text, error="m")
    scale, border = 8, 4
    if image.size != ((len(qr.matrix) + 2 * border) * scale,) * 2:
        return False
    for r, row in enumerate(qr.matrix):
        for c, dark in enumerate(row):
            pixel = image.getpixel(((c + border) * scale + 4, (r + border) * scale + 4))
            if not isinstance(pixel, int) or (pixel < 128) != bool(dark):
                return False
    return True


def test_the_follow_link_opens_a_page_with_a_matrix_to_link_and_a_qr_code(stack: RunningStack) -> None:
    account_id, owner, made = make_account(stack, name="<b>Tea</b> & Co", description="<script>x</script>",
                                           verified=True)
    link = made["follow_link"]
    assert link == f"{stack.url}{ACCOUNTS}/{account_id}/follow"  # Synapse's public_baseurl is the stack's URL
    page = requests.get(f"{stack.url}{ACCOUNTS}/{account_id}/follow", timeout=30)  # no login
    assert page.status_code == 200 and page.headers["Content-Type"].startswith("text/html"), page.text
    matrix_to = f"https://matrix.to/#/%23{account_id}:{stack.server_name}"
    assert made["matrix_to"] == matrix_to and f'href="{matrix_to}"' in page.text
    assert "<b>Tea</b>" not in page.text and "&lt;b&gt;Tea&lt;/b&gt; &amp; Co" in page.text
    assert "<script>" not in page.text
    qr = requests.get(f"{stack.url}{ACCOUNTS}/{account_id}/qr.png", timeout=30)
    assert qr.status_code == 200 and qr.headers["Content-Type"] == "image/png"
    assert qr.content.startswith(b"\x89PNG\r\n\x1a\n")
    assert _pixels_match(qr.content, link)  # the QR code reads as the follow link
    assert made["qr_code"] == link.removesuffix("/follow") + "/qr.png"
    assert requests.get(f"{stack.url}{ACCOUNTS}/{new_id()}/follow", timeout=30).status_code == 404
    assert requests.get(f"{stack.url}{ACCOUNTS}/{new_id()}/qr.png", timeout=30).status_code == 404
    assert requests.get(f"{stack.url}{ACCOUNTS}/%3Cx%3E/follow", timeout=30).status_code == 404

    # Following by the link: the client joins the channel through its alias, as Element does.
    follower = stack.register_user()
    r = requests.post(f"{stack.url}/_matrix/client/v3/join/{quote(f'#{account_id}:{stack.server_name}')}",
                      json={}, headers=_h(follower), timeout=60)
    assert r.status_code == 200 and r.json()["room_id"] == made["channel_room_id"], r.text
    space_id = space_of(stack, follower)
    wait_until("filed in the space", lambda: made["channel_room_id"] in space_children(stack, space_id))
    wait_until("muted", lambda: mute_rule(stack, follower, made["channel_room_id"]) is not None)


def test_a_merchant_made_the_old_way_is_an_account_of_kind_merchant(stack: RunningStack) -> None:
    merchant, circle = make_merchant(stack, "Old Shop")
    account_id = merchant["user_id"][1:].split(":")[0]  # its localpart, a valid account id
    reader = stack.register_user()
    view = wait_until("the merchant's account", lambda: (
        lambda r: r.json() if r.status_code == 200 and r.json()["alias"] else None)(get_account(stack, account_id,
                                                                                              reader)))
    assert view["kind"] == "merchant" and view["channel_room_id"] == circle and view["name"] == "Old Shop"
    assert view["made_from_merchant"] is True and view["account_user_id"] == merchant["user_id"]
    assert view["fees_waived_until"] == add_months(view["registered_at"], 36)
    wait_until("its alias and account state in the circle", lambda: room_state(stack, circle).get(
        ("org.wangxin.account", "")) == {"account_id": account_id, "kind": "merchant", "verified": False})
    assert room_state(stack, circle)[("m.room.canonical_alias", "")]["alias"] == f"#{account_id}:{stack.server_name}"
    # The merchant API still answers as before, and a rename there shows in the account.
    got = requests.get(f"{stack.url}{API}/merchants/{quote(merchant['user_id'])}", headers=stack.admin_headers(),
                       timeout=30)
    assert got.status_code == 200 and got.json()["circle_room_id"] == circle
    renamed = requests.put(f"{stack.url}{API}/merchants/{quote(merchant['user_id'])}", json={"name": "New Shop"},
                           headers=stack.admin_headers(), timeout=60)
    assert renamed.status_code == 200
    assert get_account(stack, account_id, reader).json()["name"] == "New Shop"
    # Another account for the same merchant is refused, naming the owner.
    error_of(put_account(stack, new_id(), {"kind": "merchant", "owner": merchant["user_id"], "name": "Again"}),
             409, "owner")


def test_a_merchant_account_is_a_merchant_to_the_merchant_api(stack: RunningStack) -> None:
    account_id, owner, made = make_account(stack, kind="merchant", name="Dumpling Bar", verified=True)
    assert made["account_user_id"] == owner["user_id"]
    got = requests.get(f"{stack.url}{API}/merchants/{quote(owner['user_id'])}", headers=_h(owner), timeout=30)
    assert got.status_code == 200 and got.json()["circle_room_id"] == made["channel_room_id"], got.text
    state = room_state(stack, made["channel_room_id"])
    assert state[("m.room.power_levels", "")]["users"][owner["user_id"]] == 50
    assert state[("org.wangxin.account", "")]["verified"] is True
    assert membership(stack, owner, made["channel_room_id"]) == "join"


# -- 7. the storefront ---------------------------------------------------------------------------

def test_the_storefront_is_a_widget_pinned_beside_the_chat_and_removable(stack: RunningStack) -> None:
    account_id, owner, made = make_account(stack, kind="merchant", name="Tea House")
    room_id = made["channel_room_id"]
    url = f"{stack.url}{ACCOUNTS}/{account_id}/storefront"
    shop = "https://shop.example/tea-house?ref=wangxin"
    r = requests.put(url, json={"url": shop}, headers=_h(owner), timeout=60)
    assert r.status_code == 200 and r.json()["storefront_url"] == shop, r.text
    state = room_state(stack, room_id)
    widget = state[("im.vector.modular.widgets", "org.wangxin.storefront")]
    assert widget["type"] == "m.custom" and widget["url"] == shop and widget["name"] == "Tea House · 店铺"
    layout = state[("io.element.widgets.layout", "")]
    assert layout == {"widgets": {"org.wangxin.storefront": {"container": "top", "index": 0, "width": 100,
                                                             "height": 50}}}
    assert get_account(stack, account_id, owner).json()["storefront_url"] == shop

    stranger = stack.register_user()
    error_of(requests.put(url, json={"url": shop}, headers=_h(stranger), timeout=30), 403)
    for bad in ("http://shop.example/", "javascript:alert(1)", "https://user:pw@shop.example/", "shop.example"):
        error_of(requests.put(url, json={"url": bad}, headers=_h(owner), timeout=30), 400, "url")
    error_of(requests.put(url, json={}, headers=_h(owner), timeout=30), 400, "url")
    assert room_state(stack, room_id)[("im.vector.modular.widgets", "org.wangxin.storefront")]["url"] == shop
    # The dev stack allows a page served on this machine (a shop under development).
    local = "http://127.0.0.1:8000/shop"
    r = requests.put(url, json={"url": local}, headers=stack.admin_headers(), timeout=60)
    assert r.status_code == 200, r.text

    r = requests.delete(url, headers=_h(owner), timeout=60)
    assert r.status_code == 200 and r.json()["storefront_url"] is None, r.text
    state = room_state(stack, room_id)
    assert state[("im.vector.modular.widgets", "org.wangxin.storefront")] == {}
    assert state[("io.element.widgets.layout", "")] == {"widgets": {}}
    assert get_account(stack, account_id, owner).json()["storefront_url"] is None


def test_url_previews_are_on_and_never_fetch_from_this_machine(stack: RunningStack) -> None:
    """The preview endpoint answers (previews are on) and refuses the server's own loopback
    address before connecting. (Only loopback here: a test never sends traffic to other ranges.)"""
    user = stack.register_user()
    for target in (f"{stack.url}/health", "http://127.0.0.2:9/"):
        r = requests.get(f"{stack.url}/_matrix/client/v1/media/preview_url", params={"url": target},
                         headers=_h(user), timeout=60)
        assert r.status_code == 403 and r.json()["error"] == "IP address blocked", r.text
