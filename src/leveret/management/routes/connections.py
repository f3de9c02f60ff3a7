"""``/api/connections``, ``/api/channels``, ``/api/consumers`` and their per-vhost forms.

Who sees what (``rabbit_mgmt_util``, rules in ``management.auth``): monitoring and
administrator users every connection, channel and consumer; other management users their own
only (consumers: on their own channels), in every vhost; the ``/api/vhosts/{vhost}/...`` forms
also need the vhost among the user's login vhosts (monitoring included), ``/api/consumers/{vhost}``
does not. One connection or channel (``is_authorized_user``): GET for monitoring or its user,
DELETE for administrator or its user, else 401 ``User not authorised to access object`` -- a
name that does not exist too, for a user who may not see others' (RabbitMQ checks before it
looks). ``DELETE /api/connections/{name}`` closes the connection with 320 CONNECTION_FORCED and
the ``X-Reason`` header as the reason (default ``Closed via management plugin``).
"""
from __future__ import annotations

from aiohttp import web

from ...broker import introspect
from ..auth import authenticate, is_monitor, require_object_user, require_vhost
from ..errors import not_found
from ..listing import json_response, respond
from ..keys import BROKER

routes = web.RouteTableDef()


def _visible_connections(request, vhost: str | None = None) -> list:
    user = authenticate(request)
    conns = introspect.network_connections(request.app[BROKER])
    if not is_monitor(user):
        conns = [c for c in conns if c.user is not None and c.user.name == user.name]
    if vhost is not None:
        conns = [c for c in conns if c.vhost.name == vhost]
    return conns


def _connection(request):
    name = request.match_info["connection"]
    for c in introspect.network_connections(request.app[BROKER]):
        if c.display_name == name:
            require_object_user(request, c.user.name if c.user is not None else None)
            return c
    require_object_user(request, None)
    raise not_found()


def _channels(conns) -> list:
    return [ch for c in conns for ch in c.sessions.values()]


@routes.get("/api/connections")
async def list_connections(request):
    b = request.app[BROKER]
    return await respond(request, introspect.connections_view(b, _visible_connections(request), b.stats), (),
                         paginate=True)


@routes.get("/api/vhosts/{vhost}/connections")
async def vhost_connections(request):
    vhost = request.match_info["vhost"]
    require_vhost(request, vhost)
    b = request.app[BROKER]
    return await respond(request, introspect.connections_view(b, _visible_connections(request, vhost), b.stats), ())


_SHOW_NULLS = ("ssl_protocol", "ssl_key_exchange", "ssl_cipher", "ssl_hash", "peer_cert_subject",
               "peer_cert_issuer", "peer_cert_validity")


@routes.get("/api/connections/{connection}")
async def show_connection(request):
    d = introspect.connection_info(_connection(request), request.app[BROKER].stats)
    for k in _SHOW_NULLS:               # (RabbitMQ's show formats these nulls as "")
        if k in d and d[k] is None:
            d[k] = ""
    return json_response(d)


@routes.delete("/api/connections/{connection}")
async def close_connection(request):
    c = _connection(request)
    reason = request.headers.get("X-Reason", "Closed via management plugin")
    c.force_close(f"CONNECTION_FORCED - {reason}")
    return web.Response(status=204)


@routes.get("/api/connections/{connection}/channels")
async def connection_channels(request):
    s = request.app[BROKER].stats
    c = _connection(request)
    return await respond(request, [introspect.channel_info(ch, s) for ch in c.sessions.values()], ())


@routes.get("/api/channels")
async def list_channels(request):
    s = request.app[BROKER].stats
    return await respond(request, [introspect.channel_info(ch, s) for ch in _channels(_visible_connections(request))], (),
                         paginate=True)


@routes.get("/api/vhosts/{vhost}/channels")
async def vhost_channels(request):
    vhost = request.match_info["vhost"]
    require_vhost(request, vhost)
    s = request.app[BROKER].stats
    return await respond(request, [introspect.channel_info(ch, s)
                             for ch in _channels(_visible_connections(request, vhost))], ())


@routes.get("/api/channels/{channel}")
async def show_channel(request):
    name = request.match_info["channel"]
    s = request.app[BROKER].stats
    for ch in _channels(introspect.network_connections(request.app[BROKER])):
        if introspect.channel_info(ch)["name"] == name:
            require_object_user(request, ch.conn.user.name if ch.conn.user is not None else None)
            return json_response(introspect.channel_info(ch, s, details=True))
    require_object_user(request, None)
    raise not_found()


def _own_consumers(request, vhosts) -> list[dict]:
    """``rabbit_mgmt_wm_consumers:filter_user``: a monitor's every consumer, else those on the
    user's own channels."""
    user = authenticate(request)
    items = introspect.consumers(request.app[BROKER], vhosts)
    return items if is_monitor(user) else [c for c in items if c["channel_details"]["user"] == user.name]


@routes.get("/api/consumers")
async def list_consumers(request):
    return await respond(request, _own_consumers(request, list(request.app[BROKER].vhosts)), ())


@routes.get("/api/consumers/{vhost}")
async def vhost_consumers(request):
    vhost = request.match_info["vhost"]
    authenticate(request)               # (no vhost check: rabbit_mgmt_wm_consumers is_authorized/2)
    if vhost not in request.app[BROKER].vhosts:
        raise not_found()
    return await respond(request, _own_consumers(request, [vhost]), ())
