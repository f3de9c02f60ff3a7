"""Runtime parameters, global parameters, policies and operator policies:
``/api/parameters[/{component}[/{vhost}[/{name}]]]``, ``/api/global-parameters[/{name}]``,
``/api/policies[/{vhost}[/{name}]]``, ``/api/operator-policies[/{vhost}[/{name}]]``.

As RabbitMQ 3.10's ``rabbit_mgmt_wm_parameter(s)``, ``..._global_parameter(s)``,
``..._policy``/``policies`` and ``..._operator_policy``/``policies``:

* parameters need a policymaker in the vhost (``is_authorized_policies``: else 401 ``User not
  authorised to access object``; ``management.auth`` has every rule); components are those of
  :mod:`leveret.broker.parameters` (``vhost-limits``, ``shovel``; ``policy``/``operator_policy``
  listed by component only); another one is 400 ``Validation failed\\n\\ncomponent foo not found\\n``
  on PUT and an empty list on GET, as RabbitMQ without the plugin;
* global parameters are for policymakers and administrators (every method, as
  ``is_authorized_global_parameters``); ``cluster_name`` is one;
* policies: lists for any management user, filtered to its login vhosts (all for an
  administrator) and refused for a vhost outside them; one policy's GET/PUT/DELETE for a
  policymaker in that vhost (else 401 ``User not authorised to access object``, checked before
  the vhost's existence); operator policies' PUT/DELETE/GET for administrators. PUT needs ``pattern``
  and ``definition`` (400 ``[{key_missing,pattern}]``), ``priority`` defaults to 0 and
  ``apply-to`` to ``all``; validation failures are 400 ``Validation failed\\n\\n`` with every
  reason, one per line, in RabbitMQ's order (HTML-escaped on the policy and parameter routes,
  not on the operator-policy route, as RabbitMQ does);
* PUT into a vhost that does not exist is 404 ``{"error":"not_found","reason":"vhost_not_found"}``;
  GET/DELETE of something that is not there is 404. PUT answers 201 when it created, else 204.
"""
from __future__ import annotations

from aiohttp import web

from ...broker.admin import AdminError
from ...broker.parameters import clear_parameter, get_parameter, list_parameters, set_parameter
from ..auth import (authenticate, require_admin, require_global_parameters, require_policies, require_vhost,
                    visible_vhosts)
from ..errors import bad_request, json_error, not_found
from ..listing import json_response, respond
from ..request import read_json
from ..keys import BROKER

routes = web.RouteTableDef()


def escape_html(text: str) -> str:
    """``rabbit_misc:escape_html_tags``."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def vhost_not_found():
    return json_error(404, "not_found", "vhost_not_found")


def _policymaker_in(request, vhost: str):
    require_policies(request, vhost)
    if vhost not in request.app[BROKER].vhosts:
        raise not_found()


# ------------------------------------------------------------ runtime parameters

@routes.get("/api/parameters")
async def list_all_parameters(request):
    require_policies(request)
    visible = set(visible_vhosts(request))
    return await respond(request, [p for p in list_parameters(request.app[BROKER]) if p["vhost"] in visible],
                   ("vhost", "component", "name"))


@routes.get("/api/parameters/{component}")
async def list_component_parameters(request):
    require_policies(request)
    visible = set(visible_vhosts(request))
    items = list_parameters(request.app[BROKER], request.match_info["component"])
    return await respond(request, [p for p in items if p["vhost"] in visible], ("vhost", "component", "name"))


@routes.get("/api/parameters/{component}/{vhost}")
async def list_vhost_parameters(request):
    vhost = request.match_info["vhost"]
    _policymaker_in(request, vhost)
    items = list_parameters(request.app[BROKER], request.match_info["component"], vhost)
    return await respond(request, items, ("vhost", "component", "name"))


@routes.get("/api/parameters/{component}/{vhost}/{name}")
async def show_parameter(request):
    m = request.match_info
    _policymaker_in(request, m["vhost"])
    try:
        return json_response(get_parameter(request.app[BROKER], m["component"], m["vhost"], m["name"]))
    except AdminError:
        raise not_found() from None


@routes.put("/api/parameters/{component}/{vhost}/{name}")
async def put_parameter(request):
    m = request.match_info
    require_policies(request, m["vhost"])
    b = request.app[BROKER]
    if m["vhost"] not in b.vhosts:
        raise vhost_not_found()
    body = await read_json(request)
    if "value" not in body:
        raise bad_request("[{key_missing,value}]")
    try:
        get_parameter(b, m["component"], m["vhost"], m["name"])
        existed = True
    except AdminError:
        existed = False
    try:
        set_parameter(b, m["component"], m["vhost"], m["name"], body["value"], user=authenticate(request))
    except AdminError as e:
        raise bad_request(escape_html(str(e))) from None
    return web.Response(status=204 if existed else 201)


@routes.delete("/api/parameters/{component}/{vhost}/{name}")
async def delete_parameter(request):
    m = request.match_info
    _policymaker_in(request, m["vhost"])
    try:
        clear_parameter(request.app[BROKER], m["component"], m["vhost"], m["name"])
    except AdminError:
        raise not_found() from None
    return web.Response(status=204)


# ------------------------------------------------------------ global parameters

@routes.get("/api/global-parameters")
async def list_global_parameters(request):
    require_global_parameters(request)
    items = [{"name": k, "value": v} for k, v in request.app[BROKER].global_parameters.items()]
    return await respond(request, items)


@routes.get("/api/global-parameters/{name}")
async def show_global_parameter(request):
    require_global_parameters(request)
    name = request.match_info["name"]
    params = request.app[BROKER].global_parameters
    if name not in params:
        raise not_found()
    return json_response({"value": params[name], "name": name})


@routes.put("/api/global-parameters/{name}")
async def put_global_parameter(request):
    require_global_parameters(request)
    body = await read_json(request)
    if "value" not in body:
        raise bad_request("[{key_missing,value}]")
    b, name = request.app[BROKER], request.match_info["name"]
    existed = name in b.global_parameters
    b.set_global_parameter(name, body["value"])
    return web.Response(status=204 if existed else 201)


@routes.delete("/api/global-parameters/{name}")
async def delete_global_parameter(request):
    require_global_parameters(request)
    try:
        request.app[BROKER].clear_global_parameter(request.match_info["name"])
    except AdminError:
        raise not_found() from None
    return web.Response(status=204)


# ------------------------------------------------------------ policies and operator policies

def _policy_routes(prefix: str, operator: bool) -> None:
    def require_write(request, vhost):
        return require_admin(request) if operator else require_policies(request, vhost)

    async def list_all(request):
        authenticate(request)
        visible = set(visible_vhosts(request))
        items = [p for p in request.app[BROKER].list_policies(operator=operator) if p["vhost"] in visible]
        return await respond(request, items, ("vhost", "name"))

    async def list_vhost(request):
        vhost = request.match_info["vhost"]
        require_vhost(request, vhost)
        return await respond(request, request.app[BROKER].list_policies(vhost, operator=operator), ("vhost", "name"))

    def find(request):
        vhost, name = request.match_info["vhost"], request.match_info["name"]
        require_write(request, vhost)
        if vhost not in request.app[BROKER].vhosts:
            raise not_found()
        for p in request.app[BROKER].list_policies(vhost, operator=operator):
            if p["name"] == name:
                return p
        return None

    async def show(request):
        p = find(request)
        if p is None:
            raise not_found()
        return json_response(p)

    async def put(request):
        vhost, name = request.match_info["vhost"], request.match_info["name"]
        require_write(request, vhost)
        b = request.app[BROKER]
        if vhost not in b.vhosts:
            raise vhost_not_found()
        body = await read_json(request)
        missing = [k for k in ("pattern", "definition") if k not in body]
        if missing:
            raise bad_request("[" + ",".join(f"{{key_missing,{k}}}" for k in missing) + "]")
        existed = name in (b.vhosts[vhost].operator_policies if operator else b.vhosts[vhost].policies)
        try:
            b.put_policy(vhost, name, body["pattern"], body["definition"], body.get("priority", 0),
                         body.get("apply-to", "all"), operator=operator)
        except AdminError as e:
            text = f"Validation failed\n\n{e}\n"
            raise bad_request(text if operator else escape_html(text)) from None
        return web.Response(status=204 if existed else 201)

    async def delete(request):
        if find(request) is None:
            raise not_found()
        request.app[BROKER].clear_policy(request.match_info["name"], request.match_info["vhost"], operator=operator)
        return web.Response(status=204)

    routes.get(prefix)(list_all)
    routes.get(prefix + "/{vhost}")(list_vhost)
    routes.get(prefix + "/{vhost}/{name}")(show)
    routes.put(prefix + "/{vhost}/{name}")(put)
    routes.delete(prefix + "/{vhost}/{name}")(delete)


_policy_routes("/api/policies", operator=False)
_policy_routes("/api/operator-policies", operator=True)
