"""``/api/queues`` (list, per vhost, show, PUT, DELETE ``?if-empty``/``?if-unused``,
``/contents`` purge, ``/get``, ``/actions``, ``/bindings``). Writes go through the channel's own
code as the requesting user (:mod:`..direct`), as RabbitMQ's management plugin does.

``/get`` is ``rabbit_mgmt_wm_queue_get``: ``count`` basic.gets on one channel, no-ack only for
``ack_requeue_false``; ``reject_requeue_*`` rejects each message afterwards; with
``ack_requeue_true`` the channel closing puts the messages back. ``/actions`` ``sync`` and
``cancel_sync`` are accepted with 204 and do nothing, as RabbitMQ 3.10 does for a queue that is
not mirrored (Leveret has no mirrors); any other action is 400 ``["unknown", action]``.
"""
from __future__ import annotations

import base64

from aiohttp import web

from ...amqp import spec
from ...broker import introspect
from ...broker.direct import Delivery
from ..auth import require_admin, require_vhost, visible_vhosts
from ..direct import check_vhost, direct_request, flag, key_missing, with_channel
from ..errors import bad_request, json_error, not_found
from ..listing import json_response, respond
from ..request import read_json
from .exchanges import _args, _bool, properties_json
from ..keys import BROKER

routes = web.RouteTableDef()

ACKMODES = {"ack_requeue_false": True, "ack_requeue_true": False, "reject_requeue_false": False,
            "reject_requeue_true": False}


def queue_of(request):
    vhost, name = request.match_info["vhost"], request.match_info["queue"]
    require_vhost(request, vhost)
    q = request.app[BROKER].vhosts[vhost].queues.get(name)
    if q is None:
        raise not_found()
    return q




@routes.get("/api/queues")
async def list_queues(request):
    b = request.app[BROKER]
    return await respond(request, introspect.queues_view(b, visible_vhosts(request), b.stats), ("vhost", "name"),
                         paginate=True)


@routes.get("/api/queues/{vhost}")
async def vhost_queues(request):
    vhost = request.match_info["vhost"]
    require_vhost(request, vhost)
    b = request.app[BROKER]
    return await respond(request, introspect.queues_view(b, [vhost], b.stats), ("vhost", "name"), paginate=True)


@routes.get("/api/queues/{vhost}/{queue}")
async def show_queue(request):
    q = queue_of(request)
    return json_response(introspect.queue_info(q, request.app[BROKER].stats.rates_of(q), details=True))


@routes.put("/api/queues/{vhost}/{queue}")
async def put_queue(request):
    vhost, name = request.match_info["vhost"], request.match_info["queue"]
    check_vhost(request, vhost)
    body = await read_json(request)
    args = dict(body.get("arguments") or {}) if isinstance(body.get("arguments") or {}, dict) else None
    if args is None:
        raise bad_request("arguments must be an object")
    if body.get("type") is not None and "x-queue-type" not in args:
        args["x-queue-type"] = str(body["type"])
    existed = name in request.app[BROKER].vhosts[vhost].queues
    m = spec.QueueDeclare(queue=name, durable=_bool(body.get("durable", True)),
                          auto_delete=_bool(body.get("auto_delete", False)), exclusive=False,
                          arguments=_args({"arguments": args}))
    with direct_request(request, vhost) as client:
        client.call(m)
    return web.Response(status=204 if existed else 201)


@routes.delete("/api/queues/{vhost}/{queue}")
async def delete_queue(request):
    q = queue_of(request)
    with direct_request(request, request.match_info["vhost"]) as client:
        client.call(spec.QueueDelete(queue=q.name, if_unused=flag(request, "if-unused"),
                                     if_empty=flag(request, "if-empty")))
    return web.Response(status=204)


@routes.delete("/api/queues/{vhost}/{queue}/contents")
async def purge_queue(request):
    q = queue_of(request)
    with direct_request(request, request.match_info["vhost"]) as client:
        client.call(spec.QueuePurge(queue=q.name))
    return web.Response(status=204)


@routes.get("/api/queues/{vhost}/{queue}/bindings")
async def queue_bindings(request):
    q = queue_of(request)
    return await respond(request, introspect.default_bindings_of(q)
                         + [introspect.binding_info(b) for b in sorted(q.bindings, key=introspect.binding_order)], ())


@routes.post("/api/queues/{vhost}/{queue}/actions")
async def queue_actions(request):
    require_admin(request)              # (rabbit_mgmt_wm_queue_actions)
    queue_of(request)
    body = await read_json(request)
    action = body.get("action")
    if action not in ("sync", "cancel_sync"):
        raise json_error(400, "bad_request", ["unknown", action])
    return web.Response(status=204)


@routes.post("/api/queues/{vhost}/{queue}/get")
async def get_messages(request):
    vhost, name = request.match_info["vhost"], request.match_info["queue"]
    require_vhost(request, vhost)
    body = await read_json(request)
    key_missing(body, ("ackmode", "count", "encoding"))
    ackmode, enc = body["ackmode"], body["encoding"]
    if enc not in ("auto", "base64"):
        raise bad_request("Unsupported encoding. Please use auto or base64.")
    if ackmode not in ACKMODES:
        raise bad_request(f"Unsupported ackmode: {ackmode}")
    count, trunc = _int(body["count"], "count"), body.get("truncate")
    trunc = _int(trunc, "truncate") if trunc is not None else None
    out = []
    with with_channel(request, vhost) as client:
        for _ in range(max(count, 0)):
            got = [f for f in client.call(spec.BasicGet(queue=name, no_ack=ACKMODES[ackmode]))
                   if isinstance(f, Delivery)]
            if not got:
                break
            out.append(got[0])
        if ackmode.startswith("reject"):
            for d in out:
                client.call(spec.BasicReject(delivery_tag=d.method.delivery_tag,
                                             requeue=ackmode == "reject_requeue_true"))
    return json_response([message_json(d, enc, trunc) for d in out])


def message_json(d: Delivery, enc: str, trunc: int | None) -> dict:
    m, body = d.method, d.body
    shown = body if trunc is None or len(body) < trunc else body[:trunc]
    payload, penc = None, "base64"
    if enc == "auto":
        try:
            payload, penc = shown.decode("utf-8"), "string"
        except UnicodeDecodeError:
            pass
    if payload is None:
        payload = base64.b64encode(shown).decode()
    return {"payload_bytes": len(body), "redelivered": bool(m.redelivered), "exchange": m.exchange,
            "routing_key": m.routing_key, "message_count": m.message_count,
            "properties": properties_json(d.properties), "payload": payload, "payload_encoding": penc}


def _int(v, what: str) -> int:
    try:
        return int(v)
    except (TypeError, ValueError):
        raise bad_request(f"{what} must be an integer") from None
