"""Posting a product to a merchant's circle: the image (photo + QR code) and the caption.

The bot draws and uploads the image, then asks the accounts' posting API to post it
(``POST /accounts/{id}/posts`` with the product and the image, as itself with
``?user_id=<the merchant>``): the server sends the post from the merchant's own user, so followers
see it under the shop's name, not the bot's (docs/accounts.md, "Who a post comes from"). The
circle's limits are the server's; a refusal is answered with a sentence saying when.
"""

from __future__ import annotations

import io
from typing import Any

from nio import AsyncClient, UploadResponse

from bots.merchant.circle_api import CircleApi, MerchantInfo, caption, image_type, in_how_long, post_image
from bots.merchant.posts_api import Answer, PostsApi

PRODUCT_FIELDS = ("id", "title", "price", "currency", "url")  # what the posting API takes as the product
NO_ACCOUNT_YET = ("Not posted: your shop's official account (公众号) is not set up on this server yet, so I "
                  "cannot post under your name. Please try again in a few minutes; if this persists, ask the "
                  "server operator.")


class Publisher:
    def __init__(self, client: AsyncClient, circle: CircleApi, posts: PostsApi):
        self._client = client
        self._circle = circle
        self._posts = posts

    async def publish(self, merchant: MerchantInfo, product: dict[str, Any], photo_mxc: str | None,
                      *, image: str | None = None) -> str:
        """Post ``product`` to the merchant's circle, from the merchant; the answer for the merchant.

        ``image`` is the mxc URI of a post made before (``repost``); without it the image is drawn
        from ``photo_mxc`` (the merchant's last photo, if any) and the buy link, and uploaded.
        """
        account_id = await self._account_of(merchant.user_id)
        if account_id is None:
            return NO_ACCOUNT_YET
        size, width, height, mimetype = 0, 0, 0, ""
        filename = product["id"]  # a repost's image may be a PNG (posts without a photo, older posts) or a JPEG
        if image is None:
            photo = await self._circle.download(photo_mxc) if photo_mxc else None
            drawn, width, height = post_image(product["url"], photo)
            mimetype, extension = image_type(drawn)
            uploaded, _ = await self._client.upload(io.BytesIO(drawn), content_type=mimetype,
                                                    filename=f"{product['id']}.{extension}", filesize=len(drawn))
            if not isinstance(uploaded, UploadResponse):
                return "I could not upload the post's image; please try again in a minute."
            image, size, filename = uploaded.content_uri, len(drawn), f"{product['id']}.{extension}"
        picture: dict[str, Any] = {"url": image, "filename": filename}
        if size:
            picture["info"] = {"mimetype": mimetype, "size": size, "w": width, "h": height}
        fields = {k: product[k] for k in PRODUCT_FIELDS if k in product}
        answer = await self._posts.post_product(account_id, merchant.user_id, caption(fields), fields, picture)
        if answer.status == 200:
            return (f"Posted “{product['title']}” (product {product['id']}) to your circle "
                    f"({merchant.followers} followers).")
        return refusal(answer)

    async def _account_of(self, merchant_id: str) -> str | None:
        """The merchant's own account (kind ``merchant``, posting as the merchant); the server
        makes it if the merchant is none yet."""
        for account in await self._posts.owned(merchant_id):
            if account.kind == "merchant" and account.sender in ("", merchant_id):
                return account.account_id
        return None


def refusal(answer: Answer) -> str:
    """A refused product post, in one sentence for the merchant."""
    retry = answer.body.get("retry_after_ms")
    if answer.status == 429 and isinstance(retry, int) and retry > 0:
        limit = answer.body.get("org.wangxin.limit")
        if limit == "repost_cooldown_hours":
            return (f"Not posted: a product can be posted again only about once a week; this one "
                    f"{in_how_long(retry)}.")
        if limit == "posts_per_day":
            return (f"Not posted: your circle's posts for today are used up (a few a day); your next post "
                    f"is allowed {in_how_long(retry)}.")
        return (f"Not posted: your circle's limits (a few posts a day, one product at most once "
                f"a week) allow your next post of this product {in_how_long(retry)}.")
    return f"Not posted: the server said “{answer.error}”."
