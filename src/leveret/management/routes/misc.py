"""``/api/whoami``, ``/api/cluster-name``, ``/api/extensions``."""
from __future__ import annotations

from aiohttp import web

from ..auth import authenticate, require_admin
from ..errors import bad_request
from ..listing import json_response
from ..request import read_json
from ..keys import BROKER

routes = web.RouteTableDef()


@routes.get("/api/whoami")
async def whoami(request):
    u = authenticate(request)
    return json_response({"name": u.name, "tags": list(u.tags)})


@routes.get("/api/cluster-name")
async def cluster_name(request):
    authenticate(request)
    return json_response({"name": request.app[BROKER].cluster_name})


@routes.put("/api/cluster-name")
async def set_cluster_name(request):
    require_admin(request)
    body = await read_json(request)
    name = body.get("name")
    if not isinstance(name, str) or not name:
        raise bad_request("[{key_missing,name}]")
    request.app[BROKER].cluster_name = name
    return web.Response(status=204)


@routes.get("/api/extensions")
async def extensions(request):
    authenticate(request)
    return json_response([])
