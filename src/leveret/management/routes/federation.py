"""Federation link status, as RabbitMQ 3.10.8's ``rabbitmq_federation_management``
(``rabbit_federation_mgmt``): ``GET /api/federation-links`` and
``/api/federation-links/{vhost}`` (monitoring users and above; rows of the vhosts the user
may use), the same filtered to links not ``running`` or ``starting`` under ``state/down``,
and ``DELETE /api/federation-links/vhost/{vhost}/{id}/{node}/restart`` (404 for an unknown
id). Rows: ``node``, the link's identity (``exchange``/``upstream_exchange`` or
``queue``/``upstream_queue``/``consumer_tag``, ``type``, ``vhost``, ``upstream``, ``id``),
``status`` with ``local_connection`` (running) or ``error``, ``uri``, ``timestamp``. Read
through ``Broker.federation`` (None: every route 404s, as without the plugin)."""
from __future__ import annotations

from aiohttp import web

from ..auth import require_monitor, visible_vhosts
from ..errors import not_found
from ..listing import respond
from ..keys import BROKER

routes = web.RouteTableDef()


def _sup(request):
    sup = request.app[BROKER].federation
    if sup is None:
        raise not_found()
    return sup


def _rows(request, vhost: str | None, down: bool) -> list[dict]:
    require_monitor(request)
    sup = _sup(request)
    if vhost is not None and vhost not in request.app[BROKER].vhosts:
        raise not_found()
    visible = set(visible_vhosts(request))
    rows = [r for r in sup.status(vhost) if r["vhost"] in visible]
    if down:
        rows = [r for r in rows if r["status"] not in ("running", "starting")]
    return rows


@routes.get("/api/federation-links")
async def all_links(request):
    return await respond(request, _rows(request, None, False))


@routes.get("/api/federation-links/state/down/")
async def all_down(request):
    return await respond(request, _rows(request, None, True))


@routes.get("/api/federation-links/{vhost}")
async def vhost_links(request):
    return await respond(request, _rows(request, request.match_info["vhost"], False))


@routes.get("/api/federation-links/{vhost}/state/down")
async def vhost_down(request):
    return await respond(request, _rows(request, request.match_info["vhost"], True))


@routes.delete("/api/federation-links/vhost/{vhost}/{id}/{node}/restart")
async def restart_link(request):
    require_monitor(request)
    vhost = request.match_info["vhost"]
    if vhost not in request.app[BROKER].vhosts or not _sup(request).restart(request.match_info["id"]):
        raise not_found()
    return web.Response(status=204)
