"""``/api/vhosts`` and ``/api/vhosts/{name}`` (list, show, PUT, DELETE), and
``/api/vhosts/{name}/start/{node}``.

PUT as ``rabbit_mgmt_wm_vhost`` (3.10): ``description`` and ``tags`` (a comma-separated string
or a list) replace the vhost's metadata; ``defaultqueuetype`` (RabbitMQ 3.10 spells it so;
``default_queue_type`` is ignored there too) applies only when the vhost is created (an unknown
type refuses the creation: RabbitMQ answers 500, Leveret 400 ``invalid_queue_type``); the user
who creates a vhost gets full permissions in it. ``tracing: true`` is refused (400): Leveret
has no firehose tracer; ``false`` is accepted. 201 when created, 204 otherwise. ``start/{node}``
(restarting a vhost that failed on a node) answers 204 for this node and a vhost that exists,
as RabbitMQ for a running one, else RabbitMQ's 400 texts.

Who: the list shows every vhost to monitoring and administrator users, a user's login vhosts
to the others; ``/api/vhosts/{name}`` (GET too) is for administrators only
(``management.auth``).
"""
from __future__ import annotations

import json

from aiohttp import web

from ...broker.admin import AdminError, vhost_tags
from ..auth import require_admin, shown_vhosts
from ..errors import bad_request, json_error, not_found
from ..listing import json_response, respond
from ..request import read_json
from ..keys import BROKER

routes = web.RouteTableDef()


def vhost_info(broker, name: str) -> dict:
    v = broker.vhosts[name]
    ready = sum(q.message_count for q in v.queues.values())
    unacked = sum(q.unacked_count for q in v.queues.values())
    description, tags = v.description, vhost_tags(v)
    metadata = {"description": description, "tags": tags}
    if v.default_queue_type:
        metadata["default_queue_type"] = v.default_queue_type
    return {"name": name, "description": description, "tags": tags,
            "default_queue_type": v.default_queue_type or "undefined",
            "metadata": metadata, "tracing": False,
            "cluster_state": {broker.node_name: "running"},
            "messages_ready": ready, "messages_unacknowledged": unacked, "messages": ready + unacked}


@routes.get("/api/vhosts")
async def list_vhosts(request):
    b = request.app[BROKER]
    return await respond(request, [vhost_info(b, v) for v in shown_vhosts(request)], paginate=True)


@routes.get("/api/vhosts/{vhost}")
async def show_vhost(request):
    name = request.match_info["vhost"]
    require_admin(request)              # (rabbit_mgmt_wm_vhost: every method is the administrator's)
    if name not in request.app[BROKER].vhosts:
        raise not_found()
    return json_response(vhost_info(request.app[BROKER], name))


def _tags(value) -> list:
    if value in (None, "undefined", "null"):
        return []
    if isinstance(value, str):
        return [t.strip() for t in value.split(",") if t.strip()]
    if isinstance(value, list) and all(isinstance(t, str) for t in value):
        return [t.strip() for t in value if t.strip()]
    raise bad_request(f"tags must be a string or a list of strings, not {json.dumps(value)}")


@routes.put("/api/vhosts/{vhost}")
async def put_vhost(request):
    user = require_admin(request)
    name = request.match_info["vhost"]
    body = await read_json(request)
    b = request.app[BROKER]
    tracing = body.get("tracing")
    if tracing not in (None, True, False, "true", "false"):
        raise json_error(400, "bad_request", ["not_boolean", tracing])
    if tracing in (True, "true"):
        raise bad_request("tracing is not supported by Leveret")
    description = body.get("description", "")
    if not isinstance(description, str):
        raise bad_request(f"description must be a string, not {json.dumps(description)}")
    tags = _tags(body.get("tags"))
    existed = name in b.vhosts
    if existed:
        b.update_vhost_metadata(name, description, tags)
        return web.Response(status=204)
    dqt = body.get("defaultqueuetype")
    try:
        b.add_vhost(name, description=description, tags=tags, default_queue_type=dqt)
    except AdminError as e:
        raise bad_request(e.kind) from None
    if user.name in b.access.users:
        b.set_permissions(user.name, name, ".*", ".*", ".*")
    return web.Response(status=201)


@routes.post("/api/vhosts/{vhost}/start/{node}")
async def start_vhost(request):
    require_admin(request)
    b = request.app[BROKER]
    name, node = request.match_info["vhost"], request.match_info["node"]
    if node != b.node_name:
        raise bad_request(f"Request to node {node} failed with nodedown")
    if name not in b.vhosts:
        raise bad_request(f'Request to node {node} failed with {{no_such_vhost,<<"{name}">>}}')
    return web.Response(status=204)


@routes.delete("/api/vhosts/{vhost}")
async def delete_vhost(request):
    require_admin(request)
    try:
        request.app[BROKER].delete_vhost(request.match_info["vhost"])
    except AdminError:
        raise not_found() from None
    return web.Response(status=204)
