"""The merchant bot's post image: cheap for followers to open (a circle opening fetches the
thumbnail of every post), with a QR code that still reads."""

from __future__ import annotations

import io

import segno
from PIL import Image

from bench.heavy_account import product_photo
from bots.merchant.circle_api import image_type, post_image

URL = "https://shop.example/p/123456"


def element_thumbnail(image: bytes) -> bytes:
    """What Synapse serves Element for an image tile (800x600, "scale"): the thumbnail it made at
    upload, of the same type as the image (a PNG of a PNG), never larger than the image."""
    from synapse.media.thumbnailer import Thumbnailer

    thumbnailer = Thumbnailer(io.BytesIO(image))
    width, height = thumbnailer.aspect(800, 600)
    mimetype, _ = image_type(image)
    return bytes(thumbnailer.scale(min(width, thumbnailer.width), min(height, thumbnailer.height),
                                   mimetype).getvalue())


def qr_reads(image: bytes, url: str) -> bool:
    """Every module of the QR code of ``url`` at the bottom of the image still has its colour
    (the centre pixel of each 8-pixel module on the right side of mid-grey)."""
    qr = segno.make(url, error="m")
    scale, border = 8, 3
    picture = Image.open(io.BytesIO(image)).convert("L")
    size = (len(qr.matrix) + 2 * border) * scale
    left, top = (picture.width - size) // 2, picture.height - size
    for row, modules in enumerate(qr.matrix):
        for column, dark in enumerate(modules):
            pixel = picture.getpixel((left + (column + border) * scale + scale // 2,
                                      top + (row + border) * scale + scale // 2))
            assert isinstance(pixel, int)
            if (pixel < 128) != bool(dark):
                return False
    return True


def test_a_post_with_a_photo_is_a_jpeg_with_a_cheap_thumbnail_and_a_readable_qr_code() -> None:
    image, width, height = post_image(URL, product_photo(25))
    assert image_type(image) == ("image/jpeg", "jpg")
    qr_side = (len(segno.make(URL, error="m").matrix) + 6) * 8
    assert Image.open(io.BytesIO(image)).size == (width, height) == (480, 360 + qr_side)
    assert len(image) < 60_000
    # What each follower fetches per post when opening the circle: as a PNG, 140 KB for this
    # photo (300 KB for a real one).
    assert len(element_thumbnail(image)) < 64_000
    assert qr_reads(image, URL)


def test_a_post_without_a_photo_stays_a_small_lossless_png() -> None:
    image, width, height = post_image(URL, None)
    assert image_type(image) == ("image/png", "png")
    assert len(image) < 4_000 and (width, height) == Image.open(io.BytesIO(image)).size
    assert qr_reads(image, URL)


def test_an_unreadable_photo_is_left_out() -> None:
    image, _, _ = post_image(URL, b"not a picture")
    assert image_type(image) == ("image/png", "png") and qr_reads(image, URL)
