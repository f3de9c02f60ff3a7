"""``/api/users`` and ``/api/users/{name}`` (list, show, PUT, DELETE)."""
from __future__ import annotations

from aiohttp import web

from ...auth.passwords import encode_hash
from ...broker.admin import AdminError
from ..auth import require_admin
from ..errors import bad_request, not_found
from ..listing import json_response, respond
from ..request import read_json

routes = web.RouteTableDef()


def user_info(u) -> dict:
    return {"name": u.name, "password_hash": encode_hash(u.password_hash), "hashing_algorithm": u.algorithm,
            "tags": list(u.tags), "limits": dict(u.limits)}


@routes.get("/api/users")
async def list_users(request):
    require_admin(request)
    return respond(request, [user_info(u) for u in request.app["broker"].access.users.values()])


@routes.get("/api/users/{user}")
async def show_user(request):
    require_admin(request)
    u = request.app["broker"].access.users.get(request.match_info["user"])
    if u is None:
        raise not_found()
    return json_response(user_info(u))


@routes.put("/api/users/{user}")
async def put_user(request):
    require_admin(request)
    body = await read_json(request)
    name = request.match_info["user"]
    b = request.app["broker"]
    tags = body.get("tags", "")
    tags = [t for t in (tags.split(",") if isinstance(tags, str) else tags) if t]
    existed = name in b.access.users
    if "password" in body:
        b.add_user(name, body["password"], tags)
    elif "password_hash" in body:
        try:
            b.add_user_with_hash(name, body["password_hash"], body.get("hashing_algorithm"), tags)
        except (AdminError, ValueError) as e:
            raise bad_request(str(e)) from None
    elif existed:
        b.set_user_tags(name, tags)
    else:
        raise bad_request("Must provide password or password_hash")
    return web.Response(status=204 if existed else 201)


@routes.delete("/api/users/{user}")
async def delete_user(request):
    require_admin(request)
    try:
        request.app["broker"].delete_user(request.match_info["user"])
    except AdminError:
        raise not_found() from None
    return web.Response(status=204)
