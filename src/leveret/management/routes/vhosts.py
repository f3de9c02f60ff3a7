"""``/api/vhosts`` and ``/api/vhosts/{name}`` (list, show, PUT, DELETE)."""
from __future__ import annotations

from aiohttp import web

from ...broker.admin import AdminError
from ..auth import authenticate, require_admin, require_vhost, visible_vhosts
from ..errors import not_found
from ..listing import json_response, respond
from ..request import read_json

routes = web.RouteTableDef()


def vhost_info(broker, name: str) -> dict:
    v = broker.vhosts[name]
    ready = sum(q.message_count for q in v.queues.values())
    unacked = sum(q.unacked_count for q in v.queues.values())
    description = getattr(v, "description", "")
    tags = list(getattr(v, "tags", ()))
    return {"name": name, "description": description, "tags": tags, "default_queue_type": "undefined",
            "metadata": {"description": description, "tags": tags}, "tracing": False,
            "cluster_state": {broker.node_name: "running"},
            "messages_ready": ready, "messages_unacknowledged": unacked, "messages": ready + unacked}


@routes.get("/api/vhosts")
async def list_vhosts(request):
    b = request.app["broker"]
    return respond(request, [vhost_info(b, v) for v in visible_vhosts(request)])


@routes.get("/api/vhosts/{vhost}")
async def show_vhost(request):
    name = request.match_info["vhost"]
    require_vhost(request, name)
    return json_response(vhost_info(request.app["broker"], name))


@routes.put("/api/vhosts/{vhost}")
async def put_vhost(request):
    require_admin(request)
    name = request.match_info["vhost"]
    await read_json(request)
    b = request.app["broker"]
    existed = name in b.vhosts
    b.add_vhost(name)
    return web.Response(status=204 if existed else 201)


@routes.delete("/api/vhosts/{vhost}")
async def delete_vhost(request):
    require_admin(request)
    try:
        request.app["broker"].delete_vhost(request.match_info["vhost"])
    except AdminError:
        raise not_found() from None
    return web.Response(status=204)
