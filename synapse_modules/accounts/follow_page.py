"""The follow link's page and its QR code, for people who are not in a Matrix client yet.

``GET …/accounts/{id}/follow`` is what the link (on a poster, a receipt, a shop's page) opens in a
browser: the account's name, description and verified badge, a button that opens the channel in
the person's Matrix client through matrix.to, and the QR code of the link itself, to show to
someone else's phone. Everything from the account is HTML-escaped; the page has no script.
"""

from __future__ import annotations

import html
import io

import segno

QR_SCALE = 8
QR_BORDER = 4

_STYLE = (
    "body{font-family:system-ui,sans-serif;max-width:30em;margin:2em auto;padding:0 1em;text-align:center;"
    "color:#222}a.follow{display:inline-block;padding:.8em 1.8em;background:#0a7a55;color:#fff;"
    "border-radius:.4em;text-decoration:none;font-size:1.2em}img{width:16em;height:16em;"
    "image-rendering:pixelated}.badge{color:#0a7a55}.small{color:#666;font-size:.9em}"
)


def follow_page(name: str, description: str | None, verified: bool, alias: str, matrix_to: str) -> str:
    e = html.escape
    badge = ' <span class="badge" title="Verified / 已认证">✔</span>' if verified else ""
    about = f"<p>{e(description)}</p>" if description else ""
    return (
        "<!DOCTYPE html>\n<html lang=\"zh\"><head><meta charset=\"utf-8\">"
        "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">"
        f"<title>{e(name)} · Wangxin</title><style>{_STYLE}</style></head><body>"
        f"<h1>{e(name)}{badge}</h1>{about}"
        f"<p><a class=\"follow\" href=\"{e(matrix_to, quote=True)}\">Follow · 关注</a></p>"
        f"<p class=\"small\">Opens {e(alias)} in your Matrix app (Element). New here? The link helps you get one.</p>"
        "<p><img src=\"qr.png\" alt=\"QR code of this page · 本页二维码\"></p>"
        "<p class=\"small\">Scan to follow · 扫码关注</p></body></html>\n"
    )


def not_found_page(account_id: str) -> str:
    return ("<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\"><title>Not found</title></head><body>"
            f"<p>No account {html.escape(account_id)} here · 没有这个公众号</p></body></html>\n")


def qr_png(link: str) -> bytes:
    """The QR code of ``link`` as a PNG (error correction M, as the merchant bot's)."""
    out = io.BytesIO()
    segno.make_qr(link, error="m").save(out, kind="png", scale=QR_SCALE, border=QR_BORDER)
    return out.getvalue()
