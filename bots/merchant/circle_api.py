"""The merchant bot's view of the merchant circle module's HTTP API, and the posts it makes.

The bot authenticates as itself (its ordinary access token). The module names the bot in its
config (``merchant_bot``) and lets that one account read any merchant's details and post in
every circle (power level 50); the bot acts only for the merchant who DMs it, so the Matrix
sender of a command is the merchant's identity. No extra secret to deploy or leak.
"""

from __future__ import annotations

import hashlib
import io
import time
from typing import Any
from urllib.parse import quote

import aiohttp
import attrs
import segno
from PIL import Image

API = "/_synapse/client/wangxin/v1"


class NotAMerchant(Exception):
    pass


class CircleApiError(RuntimeError):
    """The module answered a lookup with an unexpected status."""


@attrs.frozen
class MerchantInfo:
    user_id: str
    name: str
    circle_room_id: str
    followers: int
    next_post_allowed_in_ms: int


class CircleApi:
    def __init__(self, homeserver_url: str, access_token: str = ""):
        self._url = homeserver_url.rstrip("/")
        self._token = access_token

    def use_token(self, access_token: str) -> None:
        """The bot's access token, once it has logged in."""
        self._token = access_token

    async def _get(self, path: str) -> tuple[int, Any]:
        async with aiohttp.ClientSession() as session:
            async with session.get(f"{self._url}{path}", headers={"Authorization": f"Bearer {self._token}"},
                                   timeout=aiohttp.ClientTimeout(total=30)) as r:
                return r.status, await r.json(content_type=None)

    async def merchant(self, user_id: str) -> MerchantInfo:
        status, body = await self._get(f"{API}/merchants/{quote(user_id)}")
        if status == 404:
            raise NotAMerchant(user_id)
        if status != 200:
            raise CircleApiError(f"merchant lookup failed: {status} {body}")
        return MerchantInfo(body["user_id"], body["name"], body["circle_room_id"], int(body["followers"]),
                            int(body.get("next_post_allowed_in_ms", 0)))

    async def products(self, user_id: str) -> list[dict[str, Any]]:
        status, body = await self._get(f"{API}/merchants/{quote(user_id)}/products")
        if status != 200:
            raise CircleApiError(f"product lookup failed: {status} {body}")
        return list(body["products"])

    async def download(self, mxc: str) -> bytes | None:
        """Authenticated media download (Synapse 1.163 serves new media only this way)."""
        if not mxc.startswith("mxc://"):
            return None
        server, _, media_id = mxc[len("mxc://"):].partition("/")
        async with aiohttp.ClientSession() as session:
            async with session.get(f"{self._url}/_matrix/client/v1/media/download/{server}/{media_id}",
                                   headers={"Authorization": f"Bearer {self._token}"},
                                   timeout=aiohttp.ClientTimeout(total=60)) as r:
                return await r.read() if r.status == 200 else None


def product_id_for(url: str) -> str:
    """A product's id is stable for its buy link, so ``repost`` finds it again."""
    return "p" + hashlib.sha256(url.encode()).hexdigest()[:8]


# A post with a photo is a JPEG: as a PNG a phone photo weighs 150-300 KB at 480 pixels wide, and
# Synapse makes PNG thumbnails of a PNG, so every follower opening the circle would fetch that
# much per post (docs/merchant-circle.md, "Cost"). At this quality the QR code's modules (8 pixels
# each) keep their colour. A QR code alone stays a PNG: lossless, and under 2 KB.
JPEG_QUALITY = 85


def post_image(url: str, photo: bytes | None) -> tuple[bytes, int, int]:
    """The post's image, the product photo (if any) above a QR code of the buy link:
    ``(image, w, h)``; a JPEG with a photo, a PNG without (``image_type`` tells which)."""
    qr_png = io.BytesIO()
    segno.make(url, error="m").save(qr_png, kind="png", scale=8, border=3)
    qr = Image.open(io.BytesIO(qr_png.getvalue())).convert("RGB")
    width = max(qr.width, 480)
    parts = []
    if photo:
        try:
            picture = Image.open(io.BytesIO(photo)).convert("RGB")
            ratio = width / picture.width
            parts.append(picture.resize((width, max(1, int(picture.height * ratio)))))
        except Exception:  # not an image we can read: the QR code alone still sells
            pass
    parts.append(qr)
    height = sum(p.height for p in parts)
    canvas = Image.new("RGB", (width, height), "white")
    y = 0
    for part in parts:
        canvas.paste(part, ((width - part.width) // 2, y))
        y += part.height
    out = io.BytesIO()
    if len(parts) > 1:
        canvas.save(out, format="JPEG", quality=JPEG_QUALITY, optimize=True)
    else:
        canvas.save(out, format="PNG")
    return out.getvalue(), width, height


def image_type(image: bytes) -> tuple[str, str]:
    """``(mimetype, file extension)`` of an image ``post_image`` made."""
    return ("image/png", "png") if image.startswith(b"\x89PNG") else ("image/jpeg", "jpg")


def caption(product: dict[str, Any]) -> str:
    return f"{product['title']} — {product['price']} {product['currency']}\nBuy: {product['url']}"


def _duration(ms: int) -> str:
    minutes = max(1, round(ms / 60000))
    if minutes < 120:
        return f"{minutes} min"
    hours = minutes / 60
    if hours < 48:
        return f"{hours:.0f} h"
    return f"{hours / 24:.1f} days"


def in_how_long(ms: int) -> str:
    """When a circle limit lets the merchant post again, as a duration and a UTC time."""
    at = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime(time.time() + ms / 1000))
    return f"in {_duration(ms)} (at {at})"
