"""``/api/overview``, ``/api/nodes``, ``/api/nodes/{node}``.

Versions: ``rabbitmq_version`` and ``management_version`` are the RabbitMQ release whose API
Leveret implements (3.10.8), so tools that gate features on them work; ``product_name`` and
``product_version`` are ``settings.product_name``/``product_version`` (rabbitmq.conf's
``product.name``/``product.version``, RabbitMQ 3.10.8 by default, as in connection.start). There is no Erlang, so no
``erlang_version``; no history is kept, so no ``sample_retention_policies``.

A user without ``monitoring`` (``management.auth``) gets, as from RabbitMQ, no ``node``,
``listeners`` or ``contexts``, queue totals and ``message_stats`` of its login vhosts only, and
``object_totals`` without ``consumers`` whose connections and channels are its own. Its
``message_stats`` add up the open channels on connections to those vhosts (RabbitMQ keeps
per-vhost counters that outlive channels), with rates 0.0, as are its queue totals' rates
(Leveret samples rates node-wide only).
"""
from __future__ import annotations

from aiohttp import web

from ...broker import introspect
from ..auth import authenticate, is_monitor, require_monitor, visible_vhosts
from ..errors import not_found
from ..listing import json_response, respond
from ..keys import BROKER

routes = web.RouteTableDef()


def contexts(request) -> list[dict]:
    b = request.app[BROKER]
    port = getattr(getattr(b, "management", None), "port", None) or b.settings.management_port
    return [{"ssl_opts": [], "node": b.node_name, "description": "RabbitMQ Management", "path": "/",
             "port": str(port)}]


def http_listener(request) -> dict:
    b = request.app[BROKER]
    ctx = contexts(request)[0]
    return {"node": b.node_name, "protocol": "http", "ip_address": b.settings.management_host or "::",
            "port": int(ctx["port"]), "socket_opts": {"port": int(ctx["port"])}}


@routes.get("/api/overview")
async def overview(request):
    user = authenticate(request)
    b = request.app[BROKER]
    d = {"management_version": introspect.RABBITMQ_VERSION, "rates_mode": "basic",
         "exchange_types": introspect.exchange_types(), "product_version": b.settings.product_version,
         "product_name": b.settings.product_name, "rabbitmq_version": introspect.RABBITMQ_VERSION,
         "cluster_name": b.cluster_name, "disable_stats": False, "enable_queue_totals": False,
         "node": b.node_name}
    if is_monitor(user):
        d.update(introspect.overview_stats(b))
        d["object_totals"] = introspect.object_totals(b)
        d["listeners"] = introspect.listeners(b) + [http_listener(request)]
        d["contexts"] = contexts(request)
    else:
        # rabbit_mgmt_db:overview(User, ...): the login vhosts' queue totals and message
        # statistics, the user's own connections and channels, no consumers count, no node,
        # listeners or contexts
        vs = set(visible_vhosts(request))
        d.pop("node")
        d.update(introspect.user_overview(b, vs, user.name))
    return json_response(d)


def node(request) -> dict:
    d = introspect.node_info(request.app[BROKER])
    d["contexts"] = [{k: v for k, v in c.items() if k not in ("node", "ssl_opts")} for c in contexts(request)]
    return d


@routes.get("/api/nodes")
async def nodes(request):
    require_monitor(request)
    return await respond(request, [node(request)])


@routes.get("/api/nodes/{node}")
async def show_node(request):
    require_monitor(request)
    if request.match_info["node"] != request.app[BROKER].node_name:
        raise not_found()
    return json_response(node(request))
