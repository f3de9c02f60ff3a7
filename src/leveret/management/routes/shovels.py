"""Shovel status and actions, as RabbitMQ 3.10.8's ``rabbitmq_shovel_management``:
``GET /api/shovels`` (the vhosts the user may see), ``GET /api/shovels/{vhost}``,
``GET|DELETE /api/shovels/vhost/{vhost}/{name}`` (DELETE clears the parameter) and
``DELETE /api/shovels/vhost/{vhost}/{name}/restart``. A shovel that has no status is 404
``Object Not Found``. Read through ``Broker.shovels`` (the node's supervisor; None when
shovels do not run, and then every route is 404 as without the plugin)."""
from __future__ import annotations

from aiohttp import web

from ..auth import authenticate, require_policymaker, require_vhost_visible, shown_vhosts
from ..errors import not_found
from ..listing import json_response, respond
from ..keys import BROKER

routes = web.RouteTableDef()


def _sup(request):
    sup = request.app[BROKER].shovels
    if sup is None:
        raise not_found()
    return sup


@routes.get("/api/shovels")
async def list_shovels(request):
    authenticate(request)
    visible = set(shown_vhosts(request))
    return await respond(request, [s for s in _sup(request).status() if s["vhost"] in visible])


@routes.get("/api/shovels/{vhost}")
async def list_vhost_shovels(request):
    vhost = request.match_info["vhost"]
    require_vhost_visible(request, vhost)
    return await respond(request, _sup(request).status(vhost))


def _find(request) -> dict:
    vhost, name = request.match_info["vhost"], request.match_info["name"]
    require_vhost_visible(request, vhost)
    for s in _sup(request).status(vhost):
        if s["name"] == name:
            return s
    raise not_found()


@routes.get("/api/shovels/vhost/{vhost}/{name}")
async def show_shovel(request):
    return json_response(_find(request))


@routes.delete("/api/shovels/vhost/{vhost}/{name}")
async def delete_shovel(request):
    require_policymaker(request)
    s = _find(request)
    request.app[BROKER].clear_runtime_parameter(s["vhost"], "shovel", s["name"])
    return web.Response(status=204)


@routes.delete("/api/shovels/vhost/{vhost}/{name}/restart")
async def restart_shovel(request):
    require_policymaker(request)
    s = _find(request)
    _sup(request).restart(s["vhost"], s["name"])
    return web.Response(status=204)
