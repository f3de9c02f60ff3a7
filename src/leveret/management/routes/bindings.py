"""``/api/bindings`` (all, per vhost, ``/e/{source}/q/{queue}``, ``/e/{source}/e/{exchange}``:
list, POST -> 201 with a ``Location`` of ``{destination}/{properties_key}``, and
``/{properties_key}`` GET and DELETE). A binding's ``properties_key`` is
:func:`~leveret.broker.introspect.properties_key`, RabbitMQ's for the same binding: POSTed
arguments are typed as ``rabbit_misc:to_amqp_table`` types them (an integer is a ``long``), as
the hash depends on the types. A ``null`` argument, which RabbitMQ answers with a 500 (a crash
in ``to_amqp_table``), is a 400 here."""
from __future__ import annotations

from urllib.parse import quote

from aiohttp import web

from ...amqp import spec
from ...amqp.codec import json_table_typed
from ...broker import introspect
from ..auth import require_vhost, visible_vhosts
from ..direct import direct_request
from ..errors import bad_request, not_found
from ..listing import json_response, respond
from ..request import read_json
from .exchanges import exchange_name
from ..keys import BROKER

routes = web.RouteTableDef()
KINDS = {"q": "queue", "e": "exchange"}


@routes.get("/api/bindings")
async def all_bindings(request):
    b = request.app[BROKER]
    return await respond(request, introspect.bindings_view([b.vhosts[v] for v in visible_vhosts(request)]), ())


@routes.get("/api/bindings/{vhost}")
async def vhost_bindings(request):
    vhost = request.match_info["vhost"]
    require_vhost(request, vhost)
    return await respond(request, introspect.bindings_view([request.app[BROKER].vhosts[vhost]]), ())


def _ends(request):
    """(vhost, source exchange, destination) of the path (404 if either is missing)."""
    vhost = request.match_info["vhost"]
    require_vhost(request, vhost)
    v = request.app[BROKER].vhosts[vhost]
    src = v.exchanges.get(exchange_name(request, "source"))
    kind = KINDS[request.match_info["kind"]]
    name = request.match_info["dest"] if kind == "queue" else exchange_name(request, "dest")
    dest = v.queues.get(name) if kind == "queue" else v.exchanges.get(name)
    return v, src, dest


def _between(src, dest) -> list:
    return sorted((b for b in src.bindings.values() if b.destination is dest), key=introspect.binding_order)


PATH = "/api/bindings/{vhost}/e/{source}/{kind:[qe]}/{dest}"


@routes.get(PATH)
async def list_between(request):
    _v, src, dest = _ends(request)
    if src is None or dest is None:
        raise not_found()
    implicit = introspect.default_bindings_of(dest) if src.name == "" and dest.kind == "queue" else []
    return await respond(request, implicit + [introspect.binding_info(b) for b in _between(src, dest)], ())


@routes.post(PATH)
async def create_binding(request):
    v, src, dest = _ends(request)
    body = await read_json(request)
    rk = body.get("routing_key", "")
    if not isinstance(rk, str):
        raise bad_request("routing_key must be a string")
    args = _binding_args(body)
    kind = KINDS[request.match_info["kind"]]
    sname = exchange_name(request, "source")
    dname = request.match_info["dest"] if kind == "queue" else exchange_name(request, "dest")
    if kind == "queue":
        m = spec.QueueBind(queue=dname, exchange=sname, routing_key=rk, arguments=args)
    else:
        m = spec.ExchangeBind(destination=dname, source=sname, routing_key=rk, arguments=args)
    with direct_request(request, v.name) as client:
        client.call(m)
    key = introspect.properties_key(rk, args)
    return web.Response(status=201, headers={"Location": f"{quote(dname, safe='')}/{quote(key, safe='~')}"})


def _binding_args(body: dict) -> dict:
    """The JSON ``arguments`` typed as RabbitMQ types them (``rabbit_mgmt_util:args``): what
    the binding's ``properties_key`` is a hash of."""
    args = body.get("arguments") or {}
    if not isinstance(args, dict):
        raise bad_request("arguments must be an object")
    try:
        return json_table_typed(args)
    except ValueError as e:
        raise bad_request(f"invalid arguments: {e}") from None


def _binding(request):
    _v, src, dest = _ends(request)
    if src is None or dest is None:
        raise not_found()
    key = request.match_info["props"]
    for b in _between(src, dest):
        if introspect.binding_key(b) == key:
            return b
    raise not_found()


@routes.get(PATH + "/{props}")
async def show_binding(request):
    return json_response(introspect.binding_info(_binding(request)))


@routes.delete(PATH + "/{props}")
async def delete_binding(request):
    b = _binding(request)
    d = b.destination
    if d.kind == "queue":
        m = spec.QueueUnbind(queue=d.name, exchange=b.source.name, routing_key=b.routing_key, arguments=b.arguments)
    else:
        m = spec.ExchangeUnbind(destination=d.name, source=b.source.name, routing_key=b.routing_key,
                                arguments=b.arguments)
    with direct_request(request, request.match_info["vhost"]) as client:
        client.call(m)
    return web.Response(status=204)
