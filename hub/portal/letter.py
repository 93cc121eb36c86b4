"""The invite letter a caseworker prints or hands over: the code, how to use it, a QR code.

The QR code holds the portal's address with the code after ``#``: a fragment never
reaches a server or its logs, and the start page's script fills the code in. The letter
names no one: the caseworker writes the client's name on the envelope, not the hub.
"""

from __future__ import annotations

import html

import segno

from hub.portal.invites import Issued
from hub.portal.words import Words


def portal_url(base: str) -> str:
    """The portal's start page under the gateway's public address."""
    return base.rstrip("/") + "/mein-verfahren/"


def qr_svg(url: str) -> str:
    """The QR code of ``url`` as inline SVG (error correction M, black on white)."""
    return segno.make(url, error="m", micro=False).svg_inline(scale=4, omitsize=False)


def letter_html(issued: Issued, *, base_url: str, words: Words) -> str:
    """A one-page letter in the client's language with the code, the address and a QR code."""
    url = portal_url(base_url)
    t = words.t
    expires = words.day(issued.expires_at.date())
    direction = "rtl" if words.rtl else "ltr"
    return f"""<!doctype html>
<html lang="{words.language}" dir="{direction}"><head><meta charset="utf-8">
<title>{html.escape(t("site.title"))}</title>
</head><body>
<h1>{html.escape(t("site.title"))}: {html.escape(t("site.owner"))}</h1>
<p>{html.escape(t("start.intro"))}</p>
<p>{html.escape(t("start.how"))} {html.escape(t("start.once"))}</p>
<p>{html.escape(t("start.code"))}:</p>
<h2 dir="ltr"><code>{html.escape(issued.code)}</code></h2>
<p dir="ltr">{html.escape(url)}</p>
<div>{qr_svg(url + "#" + issued.code)}</div>
<p>{html.escape(t("letter.expires", day=expires))}</p>
<p>{html.escape(t("site.footer"))}</p>
</body></html>
"""
