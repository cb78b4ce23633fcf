"""Posting a product to a merchant's circle: the image (photo + QR code) and the caption."""

from __future__ import annotations

import io
from typing import Any

from nio import AsyncClient, RoomSendResponse, UploadResponse

from bots.merchant.circle_api import CircleApi, MerchantInfo, caption, image_type, in_how_long, post_image


class Publisher:
    def __init__(self, client: AsyncClient, circle: CircleApi):
        self._client = client
        self._circle = circle

    async def publish(self, merchant: MerchantInfo, product: dict[str, Any], photo_mxc: str | None,
                      *, image: str | None = None) -> str:
        """Post ``product`` to the merchant's circle; the answer for the merchant.

        ``image`` is the mxc URI of a post made before (``repost``); without it the image is drawn
        from ``photo_mxc`` (the merchant's last photo, if any) and the buy link, and uploaded.
        """
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
        product = {**product, "image": image}
        content: dict[str, Any] = {
            "msgtype": "m.image",
            "body": caption(product),
            "filename": filename,
            "url": image,
            "info": {"mimetype": mimetype, "size": size, "w": width, "h": height} if size else {},
            "org.wangxin.product": product,
        }
        response = await self._client.room_send(merchant.circle_room_id, "m.room.message", content)
        if isinstance(response, RoomSendResponse):
            return (f"Posted “{product['title']}” (product {product['id']}) to your circle "
                    f"({merchant.followers} followers).")
        if getattr(response, "status_code", None) == "M_LIMIT_EXCEEDED" and response.retry_after_ms:
            return (f"Not posted: your circle's limits (a few posts a day, one product at most once "
                    f"a week) allow your next post of this product {in_how_long(response.retry_after_ms)}.")
        return f"Not posted: the server said “{getattr(response, 'message', response)}”."
