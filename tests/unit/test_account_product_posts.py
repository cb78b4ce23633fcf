"""Product posts under the merchant's own name (issue 24, item 3): what ``POST /accounts/{id}/posts``
accepts as a product and an image, the event the server builds from them (which the merchant
circle must still count as a product post), and what the merchant bot sends and answers."""

from __future__ import annotations

from typing import Any

import pytest
from nio import UploadResponse
from synapse.module_api import errors

from bots.merchant.circle_api import MerchantInfo, caption
from bots.merchant.posts_api import Answer, OwnedAccount
from bots.merchant.publisher import NO_ACCOUNT_YET, Publisher, refusal
from synapse_modules.accounts.post_rules import POST_KEY, PostImage, post_content, validate_post
from synapse_modules.merchant_circle.rules import PRODUCT_KEY, classify_circle_event

NOW = 1_800_000_000_000
PRODUCT = {"id": "p1a2b3c4d", "title": "Green tea", "price": "9.90", "currency": "CNY",
           "url": "https://shop.example/tea"}
IMAGE = {"url": "mxc://example.org/AbC123", "filename": "p1a2b3c4d.jpg",
         "info": {"mimetype": "image/jpeg", "size": 31_337, "w": 480, "h": 900}}


def field_error(body: dict[str, Any], status: int, field: str, kind: str = "merchant") -> None:
    with pytest.raises(errors.SynapseError) as caught:
        validate_post(body, kind, NOW, 365)
    assert caught.value.code == status and f"'{field}'" in caught.value.msg, caught.value.msg


def test_a_post_may_carry_a_product_and_its_image() -> None:
    wanted = validate_post({"body": caption(PRODUCT), "product": PRODUCT, "image": IMAGE}, "merchant", NOW, 365)
    assert wanted.product == PRODUCT and wanted.at is None and wanted.segment is None
    assert wanted.image == PostImage(IMAGE["url"], IMAGE["filename"], IMAGE["info"])
    plain = validate_post({"body": "Hi"}, "merchant", NOW, 365)
    assert plain.product is None and plain.image is None
    # Each part alone is fine too (a product shown as text, a picture post); price as a number too.
    assert validate_post({"body": "x", "product": {**PRODUCT, "price": 9}}, "organisation", NOW, 365).image is None
    assert validate_post({"body": "x", "image": {"url": IMAGE["url"]}}, "merchant", NOW, 365).image == \
        PostImage(IMAGE["url"], None, {})


@pytest.mark.parametrize("body,status,field", [
    ({"product": "tea"}, 400, "product"),
    ({"product": [PRODUCT]}, 400, "product"),
    ({"product": {**PRODUCT, "colour": "green"}}, 400, "product.colour"),
    ({"product": {**PRODUCT, "image": IMAGE["url"]}}, 400, "product.image"),  # the server adds it
    ({"product": {k: v for k, v in PRODUCT.items() if k != "title"}}, 400, "product.title"),
    ({"product": {**PRODUCT, "title": "t" * 201}}, 413, "product.title"),
    ({"product": {**PRODUCT, "id": ""}}, 400, "product.id"),
    ({"product": {**PRODUCT, "price": "nan"}}, 400, "product.price"),
    ({"product": {**PRODUCT, "price": -1}}, 400, "product.price"),
    ({"product": {**PRODUCT, "price": True}}, 400, "product.price"),
    ({"product": {**PRODUCT, "url": "ftp://shop.example/tea"}}, 400, "product.url"),
    ({"product": {**PRODUCT, "url": "https://x/" + "a" * 2048}}, 413, "product.url"),
    ({"image": "mxc://example.org/AbC123"}, 400, "image"),
    ({"image": {}}, 400, "image.url"),
    ({"image": {"url": "https://example.org/tea.jpg"}}, 400, "image.url"),
    ({"image": {"url": "mxc://example.org/" + "a" * 300}}, 413, "image.url"),
    ({"image": {**IMAGE, "thumbnail_url": "mxc://example.org/t"}}, 400, "image.thumbnail_url"),
    ({"image": {**IMAGE, "filename": ""}}, 400, "image.filename"),
    ({"image": {**IMAGE, "filename": "f" * 256}}, 413, "image.filename"),
    ({"image": {**IMAGE, "info": "big"}}, 400, "image.info"),
    ({"image": {**IMAGE, "info": {"blurhash": "x"}}}, 400, "image.info.blurhash"),
    ({"image": {**IMAGE, "info": {"mimetype": "text/html"}}}, 400, "image.info.mimetype"),
    ({"image": {**IMAGE, "info": {"size": -1}}}, 400, "image.info.size"),
    ({"image": {**IMAGE, "info": {"w": True}}}, 400, "image.info.w"),
    ({"image": {**IMAGE, "info": {"h": 1.5}}}, 400, "image.info.h"),
    ({"product": PRODUCT, "at": NOW + 3_600_000}, 400, "product"),
    ({"image": IMAGE, "at": NOW + 3_600_000}, 400, "image"),
    ({"body": "", "product": PRODUCT}, 400, "body"),
])
def test_a_bad_product_or_image_is_refused_naming_the_field(body: dict[str, Any], status: int, field: str) -> None:
    field_error({"body": "Green tea", **body}, status, field)


def test_a_targeted_post_carries_no_product() -> None:
    field_error({"body": "x", "product": PRODUCT, "segment": {"category": "tea"}}, 400, "product", kind="platform")


def test_the_product_post_is_what_the_bot_sent_and_the_circle_counts_it_as_a_product_post() -> None:
    wanted = validate_post({"body": caption(PRODUCT), "product": PRODUCT, "image": IMAGE}, "merchant", NOW, 365)
    content = post_content(wanted.body, "teahouse", "p0123456789abcdef", wanted.product, wanted.image)
    # What bots/merchant/publisher.py used to send into the circle itself, plus the account's tag.
    assert content == {
        "msgtype": "m.image", "body": caption(PRODUCT), "filename": IMAGE["filename"], "url": IMAGE["url"],
        "info": IMAGE["info"], PRODUCT_KEY: {**PRODUCT, "image": IMAGE["url"]},
        POST_KEY: {"account_id": "teahouse", "post_id": "p0123456789abcdef"},
    }
    event = classify_circle_event("m.room.message", content)
    assert event.kind == "post" and event.product == {**PRODUCT, "image": IMAGE["url"]}
    # Without an image: text carrying the product; without either: the plain text post as before.
    text = post_content("Green tea", "teahouse", "p0123456789abcdef", PRODUCT)
    assert text["msgtype"] == "m.text" and text[PRODUCT_KEY] == PRODUCT and "url" not in text
    assert classify_circle_event("m.room.message", text).product == PRODUCT
    assert post_content("Hi", "teahouse", "p0123456789abcdef") == {
        "msgtype": "m.text", "body": "Hi", POST_KEY: {"account_id": "teahouse", "post_id": "p0123456789abcdef"}}


# -- the bot --------------------------------------------------------------------------------------

class FakePosts:
    def __init__(self, owned: list[OwnedAccount], answer: Answer):
        self.owned_accounts = owned
        self.answer = answer
        self.sent: list[tuple[Any, ...]] = []

    async def owned(self, user_id: str) -> list[OwnedAccount]:
        return self.owned_accounts

    async def post_product(self, *args: Any) -> Answer:
        self.sent.append(args)
        return self.answer


class FakeClient:
    def __init__(self) -> None:
        self.uploads = 0

    async def upload(self, *args: Any, **kwargs: Any) -> tuple[UploadResponse, None]:
        self.uploads += 1
        return UploadResponse("mxc://example.org/Drawn1"), None


MERCHANT = MerchantInfo("@teahouse:example.org", "Tea House", "!circle:example.org", 12, 0)
OWNED = [OwnedAccount("library", "organisation", "Library", "@acct.library:example.org"),
         OwnedAccount("teahouse", "merchant", "Tea House", "@teahouse:example.org")]


async def test_the_bot_posts_a_product_through_the_merchants_account() -> None:
    posts = FakePosts(OWNED, Answer(200, {"event_id": "$e", "sender": MERCHANT.user_id}))
    client = FakeClient()
    publisher = Publisher(client, None, posts)  # type: ignore[arg-type]
    answer = await publisher.publish(MERCHANT, dict(PRODUCT), None)
    assert answer == "Posted “Green tea” (product p1a2b3c4d) to your circle (12 followers)."
    assert client.uploads == 1
    [(account_id, user_id, body, product, image)] = posts.sent
    assert (account_id, user_id, body, product) == ("teahouse", MERCHANT.user_id, caption(PRODUCT), PRODUCT)
    assert image["url"] == "mxc://example.org/Drawn1" and image["filename"] == "p1a2b3c4d.png"
    assert image["info"]["mimetype"] == "image/png" and image["info"]["w"] == 480 and image["info"]["h"] > 0
    # A repost shows the image of the post it repeats: nothing is uploaded, the stored product's
    # extra keys (its image) are not sent back as product fields.
    await publisher.publish(MERCHANT, {**PRODUCT, "image": "mxc://example.org/Old1"}, None,
                            image="mxc://example.org/Old1")
    assert client.uploads == 1
    assert posts.sent[-1][3] == PRODUCT and posts.sent[-1][4] == {"url": "mxc://example.org/Old1",
                                                                  "filename": "p1a2b3c4d"}


async def test_a_merchant_without_an_account_is_told_so_and_nothing_is_uploaded() -> None:
    posts = FakePosts(OWNED[:1], Answer(200, {}))
    client = FakeClient()
    assert await Publisher(client, None, posts).publish(MERCHANT, dict(PRODUCT), None) == NO_ACCOUNT_YET  # type: ignore[arg-type]
    assert client.uploads == 0 and posts.sent == []


def test_refusals_are_plain_sentences() -> None:
    day = refusal(Answer(429, {"errcode": "M_LIMIT_EXCEEDED", "retry_after_ms": 3_600_000,
                               "org.wangxin.limit": "posts_per_day", "error": "The limit…"}))
    assert day.startswith("Not posted: your circle's posts for today are used up") and "in 60 min (at " in day
    week = refusal(Answer(429, {"retry_after_ms": 6 * 86_400_000, "org.wangxin.limit": "repost_cooldown_hours"}))
    assert week.startswith("Not posted: a product can be posted again") and "6.0 days" in week
    other = refusal(Answer(400, {"errcode": "M_BAD_JSON", "error": "'product.url' must be an http(s) URL"}))
    assert other == "Not posted: the server said “'product.url' must be an http(s) URL”."
    for sentence in (day, week, other):
        assert "{" not in sentence and "M_LIMIT_EXCEEDED" not in sentence
