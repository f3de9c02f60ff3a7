"""``/api/users`` (list, show, PUT, DELETE), ``/api/users/without-permissions``,
``/api/users/bulk-delete`` and a user's ``permissions`` / ``topic-permissions``.

As ``rabbit_mgmt_wm_user(s)`` (3.10, administrators only): PUT needs ``tags`` (400
``tags_not_present``), takes ``password`` or ``password_hash`` (+ ``hashing_algorithm``; both:
400 ``both_password_and_password_hash_are_provided``; a hash that is not base64: 400
``["not_base64", hash]``), ``limits``, and for a new user ``permissions``; an existing user
given neither loses its password. 201 on creation, 204 on update. DELETE of an unknown user is
404; ``bulk-delete`` takes ``{"users": [...]}`` and stops at the first unknown one with 400
``["no_such_user", name]`` (those before it are deleted, as in RabbitMQ).

Differences: a body value of the wrong type (``"password": 5``) is 400 here, a 500 crash in
RabbitMQ; an unknown ``hashing_algorithm`` is 400 here (RabbitMQ stores it and the user can
never log in).
"""
from __future__ import annotations

from aiohttp import web

from ...auth.passwords import encode_hash
from ...broker.admin import AdminError
from ..auth import require_admin
from ..errors import bad_request, json_error, not_found
from ..listing import json_response, respond
from ..request import read_json
from ..keys import BROKER

routes = web.RouteTableDef()


def user_info(u) -> dict:
    return {"name": u.name, "password_hash": encode_hash(u.password_hash), "hashing_algorithm": u.algorithm,
            "tags": list(u.tags), "limits": dict(u.limits)}


def _broker(request):
    return request.app[BROKER]


@routes.get("/api/users")
async def list_users(request):
    require_admin(request)
    return await respond(request, [user_info(u) for u in _broker(request).access.users.values()])


@routes.get("/api/users/without-permissions")
async def users_without_permissions(request):
    require_admin(request)
    b = _broker(request)
    with_perms = {u for u, _v in b.access.permissions}
    return await respond(request, [user_info(u) for u in b.access.users.values() if u.name not in with_perms])


@routes.post("/api/users/bulk-delete")
async def bulk_delete(request):
    require_admin(request)
    body = await read_json(request)
    names = body.get("users")
    if "users" not in body:
        raise bad_request("[{key_missing,users}]")
    if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
        raise bad_request("users must be a list of user names")
    b = _broker(request)
    for n in names:
        try:
            b.delete_user(n)
        except AdminError:
            raise json_error(400, "bad_request", ["no_such_user", n]) from None
    return web.Response(status=204)


@routes.get("/api/users/{user}")
async def show_user(request):
    require_admin(request)
    u = _broker(request).access.users.get(request.match_info["user"])
    if u is None:
        raise not_found()
    return json_response(user_info(u))


@routes.put("/api/users/{user}")
async def put_user(request):
    require_admin(request)
    body = await read_json(request)
    body["name"] = request.match_info["user"]
    try:
        created = _broker(request).put_user_definition(body)
    except AdminError as e:
        if e.kind == "not_base64":
            raise json_error(400, "bad_request", ["not_base64", e.details["value"]]) from None
        if e.kind in ("tags_not_present", "both_password_and_password_hash_are_provided"):
            raise bad_request(e.kind) from None
        if e.kind == "no_such_vhost":
            raise bad_request("vhost_or_user_not_found") from None
        raise bad_request(str(e)) from None
    return web.Response(status=201 if created else 204)


@routes.delete("/api/users/{user}")
async def delete_user(request):
    require_admin(request)
    try:
        _broker(request).delete_user(request.match_info["user"])
    except AdminError:
        raise not_found() from None
    return web.Response(status=204)


@routes.get("/api/users/{user}/permissions")
async def user_permissions(request):
    require_admin(request)
    try:
        items = _broker(request).list_permissions(user=request.match_info["user"])
    except AdminError:
        raise not_found() from None
    return await respond(request, items, ("vhost", "user"))


@routes.get("/api/users/{user}/topic-permissions")
async def user_topic_permissions(request):
    require_admin(request)
    try:
        items = _broker(request).list_topic_permissions(user=request.match_info["user"])
    except AdminError:
        raise not_found() from None
    return await respond(request, items, ("vhost", "user"))
