"""``/api/exchanges`` (list, per vhost, show, PUT, DELETE ``?if-unused``, bindings as source and
destination, ``/publish``). Declare and delete go through the channel's own code as the
requesting user (:mod:`..direct`), so permissions, equivalence and reply texts are the AMQP
ones; ``/publish`` answers ``{"routed": bool}`` (published mandatory: routed unless returned).
"""
from __future__ import annotations

import base64
import binascii

from aiohttp import web

from ...amqp import spec
from ...amqp.codec import BasicProperties
from ...broker import introspect
from ...amqp.errors import AMQPError
from ...broker.direct import DirectClient
from ..auth import authenticate, require_vhost, visible_vhosts
from ..direct import check_vhost, direct_request, flag, key_missing
from ..errors import bad_request, not_found
from ..listing import json_response, respond
from ..request import read_json
from ..keys import BROKER

routes = web.RouteTableDef()

PROPERTY_KEYS = ("content_type", "content_encoding", "headers", "delivery_mode", "priority", "correlation_id",
                 "reply_to", "expiration", "message_id", "timestamp", "type", "user_id", "app_id", "cluster_id")


def exchange_name(request, key: str = "exchange") -> str:
    """The exchange named by the path segment ``key``: ``amq.default`` is the default exchange
    (``rabbit_mgmt_util:id/2`` maps it so for ``exchange``, ``source`` and ``destination``)."""
    name = request.match_info[key]
    return "" if name == "amq.default" else name


def exchange_of(request):
    vhost, name = request.match_info["vhost"], exchange_name(request)
    require_vhost(request, vhost)
    x = request.app[BROKER].vhosts[vhost].exchanges.get(name)
    if x is None:
        raise not_found()
    return x




@routes.get("/api/exchanges")
async def list_exchanges(request):
    b = request.app[BROKER]
    return await respond(request, introspect.exchanges_view(b, visible_vhosts(request), b.stats), ("vhost", "name"),
                         paginate=True)


@routes.get("/api/exchanges/{vhost}")
async def vhost_exchanges(request):
    vhost = request.match_info["vhost"]
    require_vhost(request, vhost)
    b = request.app[BROKER]
    return await respond(request, introspect.exchanges_view(b, [vhost], b.stats), ("vhost", "name"), paginate=True)


@routes.get("/api/exchanges/{vhost}/{exchange}")
async def show_exchange(request):
    x = exchange_of(request)
    b = request.app[BROKER]
    d = introspect.exchange_info(x, b.stats.rates_of(x), introspect.pending_publishes(b))
    d["incoming"] = []          # (per-channel detail: RabbitMQ's "detailed" rates mode only)
    d["outgoing"] = []
    return json_response(d)


@routes.put("/api/exchanges/{vhost}/{exchange}")
async def put_exchange(request):
    vhost, name = request.match_info["vhost"], request.match_info["exchange"]
    check_vhost(request, vhost)
    body = await read_json(request)
    existed = name in request.app[BROKER].vhosts[vhost].exchanges
    m = spec.ExchangeDeclare(exchange=name, type=str(body.get("type", "direct")),
                             durable=_bool(body.get("durable", True)),
                             auto_delete=_bool(body.get("auto_delete", False)),
                             internal=_bool(body.get("internal", False)),
                             arguments=_args(body))
    with direct_request(request, vhost) as client:
        client.call(m)
    return web.Response(status=204 if existed else 201)


@routes.delete("/api/exchanges/{vhost}/{exchange}")
async def delete_exchange(request):
    x = exchange_of(request)
    with direct_request(request, request.match_info["vhost"]) as client:
        client.call(spec.ExchangeDelete(exchange=x.name, if_unused=flag(request, "if-unused")))
    return web.Response(status=204)


@routes.get("/api/exchanges/{vhost}/{exchange}/bindings/source")
async def bindings_source(request):
    x = exchange_of(request)
    return await respond(request, [introspect.binding_info(b) for b in sorted(x.bindings.values(), key=introspect.binding_order)], ())


@routes.get("/api/exchanges/{vhost}/{exchange}/bindings/destination")
async def bindings_destination(request):
    x = exchange_of(request)
    v = request.app[BROKER].vhosts[x.vhost]
    found = [b for src in v.exchanges.values() for b in src.bindings.values() if b.destination is x]
    return await respond(request, [introspect.binding_info(b) for b in sorted(found, key=introspect.binding_order)], ())


@routes.post("/api/exchanges/{vhost}/{exchange}/publish")
async def publish(request):
    vhost, name = request.match_info["vhost"], exchange_name(request)
    require_vhost(request, vhost)
    body = await read_json(request)
    key_missing(body, ("routing_key", "properties", "payload", "payload_encoding"))
    enc = body["payload_encoding"]
    payload = body["payload"]
    if enc == "string":
        data = str(payload).encode("utf-8")
    elif enc == "base64":
        try:
            data = base64.b64decode(str(payload), validate=True)
        except (binascii.Error, ValueError):
            raise bad_request("not_base64") from None
    else:
        raise bad_request(f"Unsupported payload_encoding: {enc}")
    props = to_properties(body["properties"])
    try:
        with DirectClient(request.app[BROKER], authenticate(request), vhost) as client:
            out = client.publish(name, str(body["routing_key"]), props, data, mandatory=True)
    except AMQPError as e:
        # (RabbitMQ learns of a refused publish as the channel's exit: 400 "<code> <text>")
        raise bad_request(f"{e.reply_code} {e.reply_text}") from None
    routed = not any(getattr(f, "method", None) is not None and isinstance(f.method, spec.BasicReturn) for f in out)
    return json_response({"routed": routed})


def to_properties(p) -> BasicProperties:
    """JSON message properties (``rabbit_mgmt_format:to_basic_properties``)."""
    if not isinstance(p, dict):
        raise bad_request("properties must be an object")
    kw = {}
    for k, v in p.items():
        if k not in PROPERTY_KEYS:
            raise bad_request(f"invalid property: {k}")
        if k == "headers":
            if not isinstance(v, dict):
                raise bad_request("headers must be an object")
            v = introspect.typed_table(v)
        elif k in ("delivery_mode", "priority", "timestamp"):
            if not isinstance(v, int) or isinstance(v, bool) or v < 0 or (k != "timestamp" and v > 255):
                raise bad_request(f"invalid {k}: {v}")
        else:
            v = str(v)
        kw[k] = v
    return BasicProperties(**kw)


def properties_json(p: BasicProperties) -> dict:
    out = {}
    for k in PROPERTY_KEYS:
        v = getattr(p, k)
        if v is not None:
            out[k] = introspect.json_table(v) if k == "headers" else v
    return out


def _bool(v) -> bool:
    return v is True or v == "true"


def _args(body: dict) -> dict:
    args = body.get("arguments") or {}
    if not isinstance(args, dict):
        raise bad_request("arguments must be an object")
    try:
        return introspect.typed_table(args)
    except (TypeError, ValueError) as e:
        raise bad_request(str(e)) from None
