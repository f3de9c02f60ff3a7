"""Leveret's web UI: ``/`` is its page, ``/ui/...`` its files (``management/ui/``: plain ES
modules, no build step; third-party code vendored with its licence under ``ui/vendor/``).

As with RabbitMQ's UI, the files themselves need no login: the page asks for a user and
password, keeps them in ``sessionStorage`` and sends them as HTTP basic auth with every API
call, so the API's own tag and vhost rules decide what the user sees (no cookies, no session
on the server). The page is sent with a Content-Security-Policy allowing only this origin's
scripts, and every file with ``Cache-Control: no-cache`` (revalidated by ETag/Last-Modified,
so an upgraded broker serves the new UI at once).
"""
from __future__ import annotations

from pathlib import Path

from aiohttp import web

from ..errors import not_found

routes = web.RouteTableDef()

UI_DIR = Path(__file__).resolve().parent.parent / "ui"
HEADERS = {"Cache-Control": "no-cache", "X-Content-Type-Options": "nosniff"}
PAGE_HEADERS = {**HEADERS, "X-Frame-Options": "DENY", "Referrer-Policy": "no-referrer",
                "Content-Security-Policy": "default-src 'self'; img-src 'self' data:; style-src 'self' 'unsafe-inline'; "
                                           "object-src 'none'; base-uri 'none'; frame-ancestors 'none'"}


@routes.get("/")
async def index(request):
    return web.FileResponse(UI_DIR / "index.html", headers=PAGE_HEADERS)


@routes.get("/ui/{path:.+}")
async def ui_file(request):
    try:
        path = (UI_DIR / request.match_info["path"]).resolve(strict=True)
    except (OSError, RuntimeError):
        raise not_found() from None
    if not path.is_file() or UI_DIR not in path.parents:
        raise not_found()
    return web.FileResponse(path, headers=HEADERS)
