"""``/api/permissions``, ``/api/topic-permissions`` (list; ``/{vhost}/{user}`` GET, PUT,
DELETE) and a vhost's ``/api/vhosts/{vhost}/permissions`` / ``topic-permissions``.

As ``rabbit_mgmt_wm_permission(s)`` and ``..._topic_permission(s)`` (3.10, administrators
only): PUT needs ``configure``, ``write`` and ``read`` (topic: ``exchange``, ``write``,
``read``; a missing key is 400 ``[{key_missing,read}]``), a user or vhost that does not exist
is 400 ``vhost_or_user_not_found``, a bad regular expression is 400 with RabbitMQ's error
term (``["invalid_regexp", "(", [["missing )"], 1]]``, its strings as Erlang would encode them:
a permission's pattern as a list of code points, a topic permission's as a string). PUT
answers 201 when the entry is new, 204 when it replaced one; GET and DELETE of an entry that
is not there are 404. A topic permission's DELETE removes every exchange's entry of that
user in that vhost.
"""
from __future__ import annotations

from aiohttp import web

from ...broker.admin import AdminError
from ..auth import require_admin
from ..errors import bad_request, json_error, not_found
from ..listing import json_response, respond
from ..request import read_json
from ..keys import BROKER

routes = web.RouteTableDef()


def _codes(s: str) -> list[int]:
    return [ord(c) for c in s]


async def _body(request, keys: tuple) -> dict:
    body = await read_json(request)
    missing = [k for k in keys if k not in body]
    if missing:
        raise bad_request("[" + ",".join(f"{{key_missing,{k}}}" for k in missing) + "]")
    bad = [k for k in keys if not isinstance(body[k], str)]
    if bad:
        raise bad_request(f"{bad[0]} must be a string")
    return body


def _entry(request, kind: str):
    b = request.app[BROKER]
    vhost, user = request.match_info["vhost"], request.match_info["user"]
    if vhost not in b.vhosts or user not in b.access.users:
        raise not_found()
    lister = b.list_permissions if kind == "permissions" else b.list_topic_permissions
    return lister(vhost=vhost, user=user)


def _invalid(e: AdminError, as_codes: bool):
    d = e.details
    regexp = _codes(d["regexp"]) if as_codes else d["regexp"]
    return json_error(400, "bad_request", ["invalid_regexp", regexp, [_codes(d["error"]), d["offset"]]])


@routes.get("/api/permissions")
async def list_permissions(request):
    require_admin(request)
    return await respond(request, request.app[BROKER].list_permissions(), ("vhost", "user"))


@routes.get("/api/permissions/{vhost}/{user}")
async def show_permission(request):
    require_admin(request)
    items = _entry(request, "permissions")
    if not items:
        raise not_found()
    return json_response(items[0])


@routes.put("/api/permissions/{vhost}/{user}")
async def put_permission(request):
    require_admin(request)
    body = await _body(request, ("configure", "write", "read"))
    b = request.app[BROKER]
    vhost, user = request.match_info["vhost"], request.match_info["user"]
    existed = (user, vhost) in b.access.permissions
    try:
        b.set_permissions(user, vhost, body["configure"], body["write"], body["read"])
    except AdminError as e:
        if e.kind == "invalid_regexp":
            raise _invalid(e, True) from None
        raise bad_request("vhost_or_user_not_found") from None
    return web.Response(status=204 if existed else 201)


@routes.delete("/api/permissions/{vhost}/{user}")
async def delete_permission(request):
    require_admin(request)
    if not _entry(request, "permissions"):
        raise not_found()
    request.app[BROKER].clear_permissions(request.match_info["user"], request.match_info["vhost"])
    return web.Response(status=204)


@routes.get("/api/topic-permissions")
async def list_topic_permissions(request):
    require_admin(request)
    return await respond(request, request.app[BROKER].list_topic_permissions(), ("vhost", "user"))


@routes.get("/api/topic-permissions/{vhost}/{user}")
async def show_topic_permission(request):
    require_admin(request)
    items = _entry(request, "topic-permissions")
    if not items:
        raise not_found()
    return await respond(request, items, ("exchange",))


@routes.put("/api/topic-permissions/{vhost}/{user}")
async def put_topic_permission(request):
    require_admin(request)
    body = await _body(request, ("exchange", "write", "read"))
    b = request.app[BROKER]
    vhost, user = request.match_info["vhost"], request.match_info["user"]
    existed = body["exchange"] in b.access.topic_permissions.get((user, vhost), {})
    try:
        b.set_topic_permissions(user, vhost, body["exchange"], body["write"], body["read"])
    except AdminError as e:
        if e.kind == "invalid_regexp":
            raise _invalid(e, False) from None
        raise bad_request("vhost_or_user_not_found") from None
    return web.Response(status=204 if existed else 201)


@routes.delete("/api/topic-permissions/{vhost}/{user}")
async def delete_topic_permission(request):
    require_admin(request)
    if not _entry(request, "topic-permissions"):
        raise not_found()
    request.app[BROKER].clear_topic_permissions(request.match_info["user"], request.match_info["vhost"])
    return web.Response(status=204)


@routes.get("/api/vhosts/{vhost}/permissions")
async def vhost_permissions(request):
    require_admin(request)
    try:
        items = request.app[BROKER].list_permissions(vhost=request.match_info["vhost"])
    except AdminError:
        raise not_found() from None
    return await respond(request, items, ("vhost", "user"))


@routes.get("/api/vhosts/{vhost}/topic-permissions")
async def vhost_topic_permissions(request):
    require_admin(request)
    try:
        items = request.app[BROKER].list_topic_permissions(vhost=request.match_info["vhost"])
    except AdminError:
        raise not_found() from None
    return await respond(request, items, ("vhost", "user"))
