"""``/api/aliveness-test/{vhost}`` and ``/api/health/checks/*``, as RabbitMQ 3.10 answers them
for a single node.

Any management user may call them (the aliveness test: one that may see the vhost). A passing
check is 200 ``{"status":"ok"}`` (plus what it checked: ``port``, ``protocol``, or
``reason: "single node cluster"`` for the two cluster checks); a failing one is 503
``{"status":"failed","reason":...}`` with the check's details (``alarms``, ``missing`` and the
``ports``/``protocols`` there are, ``expired``). The deprecated ``/api/healthchecks/node[/{node}]`` (``rabbit_mgmt_wm_healthchecks``, which
amqpstorm's ``healthchecks.get`` calls) answers ``{"status":"ok"}``, 503 with ``resource alarm(s)
in effect:...`` (the alarm list as Erlang's ``~p`` prints it) while an alarm is in effect, and 404
for a node name that is not this node's. Listeners are this node's: AMQP (``amqp``),
AMQPS (``amqp/ssl``) and the management API (``http``); RabbitMQ's inter-node ``clustering``
listener does not exist here. Bad arguments get RabbitMQ's 400 texts.
"""
from __future__ import annotations

import datetime

from aiohttp import web
from cryptography import x509

from ...broker.health import aliveness_test, alarms, listeners
from ..auth import authenticate, require_vhost
from ..errors import bad_request, not_found
from ..listing import json_response
from ..keys import BROKER

routes = web.RouteTableDef()

_UNIT_SECONDS = {"days": 86400, "weeks": 7 * 86400, "months": 30 * 86400, "years": 365 * 86400}
# rabbit_mgmt_wm_health_check_protocol_listener:normalize_protocol (the names this node can have)
_PROTOCOL_ALIASES = {"amqp091": "amqp", "amqp0.9.1": "amqp", "amqp0-9-1": "amqp", "amqp0_9_1": "amqp",
                     "amqp10": "amqp", "amqp1.0": "amqp", "amqp1-0": "amqp", "amqp1_0": "amqp",
                     "amqps": "amqp/ssl", "http1": "http", "http1.1": "http", "http_api": "http",
                     "management": "http"}


def _failed(body: dict) -> web.Response:
    return json_response({"status": "failed", **body}, status=503)


@routes.get("/api/aliveness-test/{vhost}")
async def aliveness(request):
    vhost = request.match_info["vhost"]
    require_vhost(request, vhost)
    why = aliveness_test(request.app[BROKER], vhost)
    if why is not None:
        return _failed({"reason": why})
    return json_response({"status": "ok"})


@routes.get("/api/healthchecks/node")
@routes.get("/api/healthchecks/node/{node}")
async def node_health_check(request):
    # rabbit_health_check:local (channels, queues, alarms, partitions): only alarms can fail here
    authenticate(request)
    b = request.app[BROKER]
    if request.match_info.get("node", b.node_name) != b.node_name:
        raise not_found()
    found = alarms(b)
    if found:
        listed = ",".join(f"{{{{resource_limit,{a['resource']},'{a['node']}'}},[]}}" for a in found)
        return _failed({"reason": f"resource alarm(s) in effect:[{listed}]"})
    return json_response({"status": "ok"})


@routes.get("/api/health/checks/alarms")
async def check_alarms(request):
    authenticate(request)
    found = alarms(request.app[BROKER])
    if found:
        return _failed({"reason": "There are alarms in effect in the cluster", "alarms": found})
    return json_response({"status": "ok"})


@routes.get("/api/health/checks/local-alarms")
async def check_local_alarms(request):
    authenticate(request)
    found = alarms(request.app[BROKER])
    if found:
        return _failed({"reason": "There are alarms in effect on the node", "alarms": found})
    return json_response({"status": "ok"})


@routes.get("/api/health/checks/certificate-expiration/{within}/{unit}")
async def check_certificates(request):
    authenticate(request)
    try:
        within = int(request.match_info["within"])
    except ValueError:
        raise bad_request("Invalid expiration value.") from None
    unit = request.match_info["unit"].lower()
    if unit not in _UNIT_SECONDS:
        raise bad_request("Time unit not recognised. Supported units: days, weeks, months, years.")
    b = request.app[BROKER]
    s = b.settings
    expired = []
    if s.ssl_certfile and getattr(b, "ssl_port", None) is not None:
        with open(s.ssl_certfile, "rb") as f:
            cert = x509.load_pem_x509_certificate(f.read())
        deadline = datetime.datetime.now(datetime.timezone.utc) + datetime.timedelta(seconds=within * _UNIT_SECONDS[unit])
        if cert.not_valid_after_utc < deadline:
            expired.append({"node": b.node_name, "protocol": "amqp/ssl",
                            "interface": s.ssl_host if s.ssl_host is not None else s.host, "port": b.ssl_port,
                            "certfile": s.ssl_certfile, "cacertfile": s.ssl_cacertfile,
                            "expiry_date": cert.not_valid_after_utc.strftime("%Y-%m-%dT%H:%M:%S")})
    if expired:
        return _failed({"reason": "Certificates expiring", "expired": expired})
    return json_response({"status": "ok"})


@routes.get("/api/health/checks/port-listener/{port}")
async def check_port(request):
    authenticate(request)
    try:
        port = int(request.match_info["port"])
    except ValueError:
        raise bad_request("Invalid port") from None
    ports = [p for _proto, p in listeners(request.app[BROKER])]
    if port not in ports:
        return _failed({"reason": "No active listener", "missing": port, "ports": ports})
    return json_response({"status": "ok", "port": port})


@routes.get("/api/health/checks/protocol-listener/{protocol}")
async def check_protocol(request):
    authenticate(request)
    name = request.match_info["protocol"].lower()
    name = _PROTOCOL_ALIASES.get(name, name)
    protocols = [proto for proto, _p in listeners(request.app[BROKER])]
    if name not in protocols:
        return _failed({"reason": "No active listener", "missing": name, "protocols": protocols})
    return json_response({"status": "ok", "protocol": name})


@routes.get("/api/health/checks/virtual-hosts")
async def check_vhosts(request):
    authenticate(request)
    return json_response({"status": "ok"})     # every vhost runs in the broker's one process


@routes.get("/api/health/checks/node-is-quorum-critical")
async def check_quorum_critical(request):
    authenticate(request)
    return json_response({"status": "ok", "reason": "single node cluster"})


@routes.get("/api/health/checks/node-is-mirror-sync-critical")
async def check_mirror_sync_critical(request):
    authenticate(request)
    return json_response({"status": "ok", "reason": "single node cluster"})
