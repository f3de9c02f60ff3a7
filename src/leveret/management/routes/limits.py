"""``/api/vhost-limits`` and ``/api/user-limits``: list, one vhost's/user's, and
``/{vhost|user}/{name}`` PUT ``{"value": N}`` / DELETE.

As ``rabbit_mgmt_wm_limit(s)`` and ``..._user_limit(s)`` (3.10): lists show only vhosts/users
that have limits, as ``{"vhost"|"user", "value": {...}}``; PUT and DELETE are for
administrators; PUT without ``value`` is 400 ``[{key_missing,value}]``, a limit RabbitMQ does
not know or a value that is not an integer is 400 with its validation text; PUT into a vhost
that does not exist is 404 ``vhost_not_found``, for a user that does not exist 400
``["no_such_user", U]``; DELETE of a limit that is not set is 204. ``GET`` of one limit is 405.

Difference: RabbitMQ keeps an empty ``vhost-limits`` parameter after the vhost's last limit is
deleted (``/api/parameters`` shows ``"value": []``); Leveret removes it.
"""
from __future__ import annotations

from aiohttp import web

from ...broker.admin import AdminError
from ..auth import authenticate, require_admin, require_vhost_visible, shown_vhosts
from ..errors import bad_request, json_error, not_found
from ..listing import respond
from ..request import read_json
from ..keys import BROKER

routes = web.RouteTableDef()


async def _value(request) -> dict:
    body = await read_json(request)
    if "value" not in body:
        raise bad_request("[{key_missing,value}]")
    return body["value"]


@routes.get("/api/vhost-limits")
async def list_vhost_limits(request):
    visible = set(shown_vhosts(request))
    items = [{"vhost": x["vhost"], "value": x["limits"]} for x in request.app[BROKER].list_vhost_limits()
             if x["vhost"] in visible]
    return await respond(request, items, ("vhost",))


@routes.get("/api/vhost-limits/{vhost}")
async def show_vhost_limits(request):
    vhost = request.match_info["vhost"]
    require_vhost_visible(request, vhost)
    items = [{"vhost": x["vhost"], "value": x["limits"]} for x in request.app[BROKER].list_vhost_limits(vhost)
             if x["limits"]]
    return await respond(request, items, ("vhost",))


@routes.put("/api/vhost-limits/{vhost}/{name}")
async def put_vhost_limit(request):
    require_admin(request)
    b = request.app[BROKER]
    vhost, name = request.match_info["vhost"], request.match_info["name"]
    value = await _value(request)
    v = b.vhosts.get(vhost)
    if v is None:
        raise json_error(404, "not_found", "vhost_not_found")
    try:
        b.set_vhost_limits(vhost, {**v.limits, name: value})
    except AdminError as e:
        raise bad_request(str(e)) from None
    return web.Response(status=204)


@routes.delete("/api/vhost-limits/{vhost}/{name}")
async def delete_vhost_limit(request):
    require_admin(request)
    b = request.app[BROKER]
    vhost, name = request.match_info["vhost"], request.match_info["name"]
    v = b.vhosts.get(vhost)
    if v is None:
        raise not_found()
    rest = {k: x for k, x in v.limits.items() if k != name}
    if rest:
        b.set_vhost_limits(vhost, rest)
    elif v.limits:
        b.clear_vhost_limits(vhost)
    return web.Response(status=204)


@routes.get("/api/user-limits")
async def list_user_limits(request):
    authenticate(request)
    items = [{"user": x["user"], "value": x["limits"]} for x in request.app[BROKER].list_user_limits()]
    return await respond(request, items, ("user",))


@routes.get("/api/user-limits/{user}")
async def show_user_limits(request):
    authenticate(request)
    try:
        found = request.app[BROKER].list_user_limits(request.match_info["user"])
    except AdminError:
        raise not_found() from None
    return await respond(request, [{"user": x["user"], "value": x["limits"]} for x in found if x["limits"]], ("user",))


@routes.put("/api/user-limits/{user}/{name}")
async def put_user_limit(request):
    require_admin(request)
    b = request.app[BROKER]
    user, name = request.match_info["user"], request.match_info["name"]
    value = await _value(request)
    try:
        b.set_user_limits(user, {name: value})
    except AdminError as e:
        if e.kind == "no_such_user":
            raise json_error(400, "bad_request", ["no_such_user", user]) from None
        raise bad_request(str(e)) from None
    return web.Response(status=204)


@routes.delete("/api/user-limits/{user}/{name}")
async def delete_user_limit(request):
    require_admin(request)
    try:
        request.app[BROKER].clear_user_limits(request.match_info["user"], request.match_info["name"])
    except AdminError:
        raise not_found() from None
    return web.Response(status=204)
