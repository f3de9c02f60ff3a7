"""The administrative endpoints' requests whose answers are compared with RabbitMQ's: run in
order against one API (objects named from ``{V}`` / ``{U}``, unique per run and deleted
afterwards). ``tools/capture_management.py`` records RabbitMQ's answers into
``tests/data/management/admin.json``; ``test_admin_shapes.py`` replays them against the broker
under test.

Besides ``{V}``/``{U}``: ``{P}`` is the AMQP port of the broker under test and ``{C}`` its
cluster name before the run (restored at the end: the ``cluster_name`` global parameter is
put back as it was, or deleted if there was none, so a default name stays a default); with an AMQP URL, :func:`run` holds a
consumer on ``{V}``'s queue ``cq`` (pika) while the cases run.

How an answer is compared (:func:`compare`): the status always; an error body (4xx) exactly;
any other body by its shape (:func:`shape`: the JSON types, key by key; a list by its first
item), where the keys of ``ABSENT`` may be missing from Leveret's answer (statistics that are
the object endpoints' work, and RabbitMQ's inter-node ``clustering`` listener).
"""
from __future__ import annotations

import uuid

SETUP = [
    ("PUT", "/api/vhosts/{V}", {"description": "shape test", "tags": "a,b"}),
    ("PUT", "/api/users/{U}", {"password": "pw", "tags": "management"}),
    ("PUT", "/api/users/{U}2", {"password": "pw", "tags": ""}),
    ("PUT", "/api/queues/{V}/cq", {"durable": False}),
    ("PUT", "/api/exchanges/{V}/src", {"type": "direct", "durable": False}),
    ("PUT", "/api/exchanges/{V}/dst", {"type": "fanout", "durable": False}),
    ("POST", "/api/bindings/{V}/e/src/e/dst", {"routing_key": "k", "arguments": {}}),
]
TEARDOWN = [("DELETE", "/api/vhosts/{V}", None), ("DELETE", "/api/vhosts/{V}q", None),
            ("DELETE", "/api/users/{U}", None), ("DELETE", "/api/users/{U}2", None),
            ("DELETE", "/api/global-parameters/{U}-g", None)]

CASES = [
    # cluster name, UI extensions
    ("cluster.show", "GET", "/api/cluster-name", None),
    ("cluster.put_no_name", "PUT", "/api/cluster-name", {}),
    ("cluster.put", "PUT", "/api/cluster-name", {"name": "{U}-cluster"}),
    ("cluster.show_put", "GET", "/api/cluster-name", None),
    ("cluster.restore", "PUT", "/api/cluster-name", {"name": "{C}"}),
    ("extensions", "GET", "/api/extensions", None),
    # queues and exchanges in use
    ("queues.delete_if_unused_consumer", "DELETE", "/api/queues/{V}/cq?if-unused=true", None),
    ("exchanges.bindings_destination", "GET", "/api/exchanges/{V}/dst/bindings/destination", None),
    ("exchanges.bindings_source", "GET", "/api/exchanges/{V}/src/bindings/source", None),
    # users
    ("users.list", "GET", "/api/users", None),
    ("users.show", "GET", "/api/users/{U}", None),
    ("users.without_permissions", "GET", "/api/users/without-permissions", None),
    ("users.put_no_tags", "PUT", "/api/users/{U}", {"password": "x"}),
    ("users.put_both", "PUT", "/api/users/{U}", {"password": "x", "password_hash": "", "tags": ""}),
    ("users.put_not_base64", "PUT", "/api/users/{U}", {"password_hash": "abc", "tags": ""}),
    ("users.put_update", "PUT", "/api/users/{U}", {"password": "pw", "tags": "management, monitoring ,"}),
    ("users.show_updated", "GET", "/api/users/{U}", None),
    ("users.put_limits", "PUT", "/api/users/{U}", {"password": "pw", "tags": "management",
                                                   "limits": {"max-connections": 3}}),
    ("users.missing", "GET", "/api/users/{U}-none", None),
    ("users.delete_missing", "DELETE", "/api/users/{U}-none", None),
    ("users.bulk_delete_no_key", "POST", "/api/users/bulk-delete", {}),
    ("users.bulk_delete_missing", "POST", "/api/users/bulk-delete", {"users": ["{U}-none"]}),
    ("users.permissions_missing_user", "GET", "/api/users/{U}-none/permissions", None),
    # vhosts
    ("vhosts.show", "GET", "/api/vhosts/{V}", None),
    ("vhosts.update", "PUT", "/api/vhosts/{V}", {"description": "changed", "tags": ["x", "y"]}),
    ("vhosts.show_updated", "GET", "/api/vhosts/{V}", None),
    ("vhosts.create_quorum", "PUT", "/api/vhosts/{V}q", {"defaultqueuetype": "quorum"}),
    ("vhosts.show_quorum", "GET", "/api/vhosts/{V}q", None),
    ("vhosts.tracing_not_boolean", "PUT", "/api/vhosts/{V}", {"tracing": "maybe"}),
    ("vhosts.start_other_node", "POST", "/api/vhosts/{V}/start/rabbit@elsewhere", None),
    ("vhosts.permissions", "GET", "/api/vhosts/{V}/permissions", None),
    ("vhosts.permissions_missing", "GET", "/api/vhosts/{V}-none/permissions", None),
    ("vhosts.topic_permissions", "GET", "/api/vhosts/{V}/topic-permissions", None),
    ("vhosts.delete_missing", "DELETE", "/api/vhosts/{V}-none", None),
    # permissions
    ("permissions.missing", "GET", "/api/permissions/{V}/{U}", None),
    ("permissions.put_key_missing", "PUT", "/api/permissions/{V}/{U}", {"configure": ".*", "write": ".*"}),
    ("permissions.put_bad_regexp", "PUT", "/api/permissions/{V}/{U}", {"configure": ".*", "write": ".*",
                                                                      "read": "("}),
    ("permissions.put_no_user", "PUT", "/api/permissions/{V}/{U}-none", {"configure": ".*", "write": ".*",
                                                                        "read": ".*"}),
    ("permissions.put_no_vhost", "PUT", "/api/permissions/{V}-none/{U}", {"configure": ".*", "write": ".*",
                                                                         "read": ".*"}),
    ("permissions.put", "PUT", "/api/permissions/{V}/{U}", {"configure": "^x", "write": ".*", "read": ".*"}),
    ("permissions.put_again", "PUT", "/api/permissions/{V}/{U}", {"configure": ".*", "write": ".*", "read": ".*"}),
    ("permissions.show", "GET", "/api/permissions/{V}/{U}", None),
    ("permissions.list", "GET", "/api/permissions", None),
    ("permissions.of_user", "GET", "/api/users/{U}/permissions", None),
    ("permissions.delete", "DELETE", "/api/permissions/{V}/{U}", None),
    ("permissions.delete_again", "DELETE", "/api/permissions/{V}/{U}", None),
    # topic permissions
    ("topic.put_key_missing", "PUT", "/api/topic-permissions/{V}/{U}", {"write": ".*", "read": ".*"}),
    ("topic.put_bad_regexp", "PUT", "/api/topic-permissions/{V}/{U}", {"exchange": "amq.topic", "write": "(",
                                                                       "read": ".*"}),
    ("topic.put", "PUT", "/api/topic-permissions/{V}/{U}", {"exchange": "amq.topic", "write": "^a",
                                                            "read": ".*"}),
    ("topic.show", "GET", "/api/topic-permissions/{V}/{U}", None),
    ("topic.list", "GET", "/api/topic-permissions", None),
    ("topic.of_user", "GET", "/api/users/{U}/topic-permissions", None),
    ("topic.of_vhost", "GET", "/api/vhosts/{V}/topic-permissions", None),
    ("topic.delete", "DELETE", "/api/topic-permissions/{V}/{U}", None),
    ("topic.delete_again", "DELETE", "/api/topic-permissions/{V}/{U}", None),
    # vhost limits
    ("vlimits.none", "GET", "/api/vhost-limits/{V}", None),
    ("vlimits.put", "PUT", "/api/vhost-limits/{V}/max-connections", {"value": 10}),
    ("vlimits.put_unknown", "PUT", "/api/vhost-limits/{V}/max-bogus", {"value": 1}),
    ("vlimits.put_string", "PUT", "/api/vhost-limits/{V}/max-queues", {"value": "x"}),
    ("vlimits.put_no_value", "PUT", "/api/vhost-limits/{V}/max-queues", {}),
    ("vlimits.put_no_vhost", "PUT", "/api/vhost-limits/{V}-none/max-queues", {"value": 1}),
    ("vlimits.show", "GET", "/api/vhost-limits/{V}", None),
    ("vlimits.list", "GET", "/api/vhost-limits", None),
    ("vlimits.missing_vhost", "GET", "/api/vhost-limits/{V}-none", None),
    ("vlimits.as_parameter", "GET", "/api/parameters/vhost-limits/{V}/limits", None),
    ("vlimits.delete_unset", "DELETE", "/api/vhost-limits/{V}/max-queues", None),
    # user limits
    ("ulimits.none", "GET", "/api/user-limits/{U}2", None),
    ("ulimits.put", "PUT", "/api/user-limits/{U}2/max-channels", {"value": 5}),
    ("ulimits.put_unknown", "PUT", "/api/user-limits/{U}2/max-bogus", {"value": 1}),
    ("ulimits.put_string", "PUT", "/api/user-limits/{U}2/max-channels", {"value": "x"}),
    ("ulimits.put_no_user", "PUT", "/api/user-limits/{U}-none/max-channels", {"value": 1}),
    ("ulimits.show", "GET", "/api/user-limits/{U}2", None),
    ("ulimits.list", "GET", "/api/user-limits", None),
    ("ulimits.missing_user", "GET", "/api/user-limits/{U}-none", None),
    ("ulimits.delete", "DELETE", "/api/user-limits/{U}2/max-channels", None),
    ("ulimits.after_delete", "GET", "/api/user-limits/{U}2", None),
    # runtime and global parameters
    ("parameters.of_vhost", "GET", "/api/parameters/vhost-limits/{V}", None),
    ("parameters.unknown_component_list", "GET", "/api/parameters/no-such-component", None),
    ("parameters.unknown_component_put", "PUT", "/api/parameters/no-such-component/{V}/x", {"value": {}}),
    ("parameters.put_no_value", "PUT", "/api/parameters/vhost-limits/{V}/limits", {}),
    ("parameters.put_no_vhost", "PUT", "/api/parameters/vhost-limits/{V}-none/limits", {"value": {}}),
    ("parameters.put_invalid", "PUT", "/api/parameters/vhost-limits/{V}/limits", {"value": {"max-queues": "x"}}),
    ("parameters.put", "PUT", "/api/parameters/vhost-limits/{V}/limits", {"value": {"max-queues": 5}}),
    ("parameters.missing", "GET", "/api/parameters/vhost-limits/{V}/other", None),
    ("parameters.delete", "DELETE", "/api/parameters/vhost-limits/{V}/limits", None),
    ("parameters.delete_again", "DELETE", "/api/parameters/vhost-limits/{V}/limits", None),
    ("global.missing", "GET", "/api/global-parameters/{U}-g", None),
    ("global.put_no_value", "PUT", "/api/global-parameters/{U}-g", {}),
    ("global.put", "PUT", "/api/global-parameters/{U}-g", {"value": {"a": [1, 2]}}),
    ("global.put_again", "PUT", "/api/global-parameters/{U}-g", {"value": "text"}),
    ("global.show", "GET", "/api/global-parameters/{U}-g", None),
    ("global.list", "GET", "/api/global-parameters", None),
    ("global.delete", "DELETE", "/api/global-parameters/{U}-g", None),
    ("global.delete_again", "DELETE", "/api/global-parameters/{U}-g", None),
    # policies
    ("policies.put", "PUT", "/api/policies/{V}/p1", {"pattern": "^a", "definition": {"max-length": 5}}),
    ("policies.put_again", "PUT", "/api/policies/{V}/p1", {"pattern": "^a", "definition": {"max-length": 5},
                                                           "priority": 2, "apply-to": "queues"}),
    ("policies.show", "GET", "/api/policies/{V}/p1", None),
    ("policies.list_vhost", "GET", "/api/policies/{V}", None),
    ("policies.list", "GET", "/api/policies", None),
    ("policies.as_parameters", "GET", "/api/parameters/policy/{V}", None),
    ("policies.put_all_wrong", "PUT", "/api/policies/{V}/p2", {"pattern": "(", "definition": {"max-length": "x"},
                                                               "priority": "x", "apply-to": "bogus"}),
    ("policies.put_unknown_key", "PUT", "/api/policies/{V}/p2", {"pattern": "a", "definition": {"bogus": 1}}),
    ("policies.put_empty", "PUT", "/api/policies/{V}/p2", {"pattern": "a", "definition": {}}),
    ("policies.put_no_pattern", "PUT", "/api/policies/{V}/p2", {"definition": {"max-length": 1}}),
    ("policies.put_no_definition", "PUT", "/api/policies/{V}/p2", {"pattern": "a"}),
    ("policies.put_no_vhost", "PUT", "/api/policies/{V}-none/p2", {"pattern": "a", "definition": {"max-length": 1}}),
    ("policies.list_no_vhost", "GET", "/api/policies/{V}-none", None),
    ("policies.missing", "GET", "/api/policies/{V}/p2", None),
    ("policies.delete", "DELETE", "/api/policies/{V}/p1", None),
    ("policies.delete_again", "DELETE", "/api/policies/{V}/p1", None),
    ("opolicies.put_not_operator_key", "PUT", "/api/operator-policies/{V}/op",
     {"pattern": "a", "definition": {"max-length": 1, "dead-letter-exchange": "x"}}),
    ("opolicies.put_bad_value", "PUT", "/api/operator-policies/{V}/op",
     {"pattern": "a", "definition": {"expires": "x"}}),
    ("opolicies.put", "PUT", "/api/operator-policies/{V}/op", {"pattern": "a", "definition": {"max-length": 1}}),
    ("opolicies.show", "GET", "/api/operator-policies/{V}/op", None),
    ("opolicies.list_vhost", "GET", "/api/operator-policies/{V}", None),
    ("opolicies.delete", "DELETE", "/api/operator-policies/{V}/op", None),
    ("opolicies.delete_again", "DELETE", "/api/operator-policies/{V}/op", None),
    # definitions
    ("definitions.vhost_import", "POST", "/api/definitions/{V}",
     {"queues": [{"name": "dq", "durable": True, "auto_delete": False, "arguments": {"x-max-length": 3}}],
      "exchanges": [{"name": "dx", "type": "topic", "durable": True, "auto_delete": False, "internal": False,
                     "arguments": {}}],
      "bindings": [{"source": "dx", "destination": "dq", "destination_type": "queue", "routing_key": "a.#",
                    "arguments": {}}],
      "policies": [{"name": "dp", "pattern": "^dq$", "definition": {"message-ttl": 1000}, "priority": 0,
                    "apply-to": "queues"}]}),
    ("definitions.vhost_export", "GET", "/api/definitions/{V}", None),
    ("definitions.export", "GET", "/api/definitions", None),
    ("definitions.not_json", "POST", "/api/definitions", b"{bad"),
    ("definitions.no_vhost_field", "POST", "/api/definitions", {"queues": [{"name": "x"}]}),
    ("definitions.export_no_vhost", "GET", "/api/definitions/{V}-none", None),
    ("definitions.import_no_vhost", "POST", "/api/definitions/{V}-none", {}),
    # health
    ("health.aliveness", "GET", "/api/aliveness-test/{V}", None),
    ("health.aliveness_no_vhost", "GET", "/api/aliveness-test/{V}-none", None),
    ("health.alarms", "GET", "/api/health/checks/alarms", None),
    ("health.local_alarms", "GET", "/api/health/checks/local-alarms", None),
    ("health.certificates", "GET", "/api/health/checks/certificate-expiration/1/months", None),
    ("health.certificates_bad_unit", "GET", "/api/health/checks/certificate-expiration/1/fortnights", None),
    ("health.certificates_bad_value", "GET", "/api/health/checks/certificate-expiration/x/days", None),
    ("health.port", "GET", "/api/health/checks/port-listener/{P}", None),
    ("health.port_bad", "GET", "/api/health/checks/port-listener/abc", None),
    ("health.port_missing", "GET", "/api/health/checks/port-listener/1", None),
    ("health.protocol", "GET", "/api/health/checks/protocol-listener/amqp091", None),
    ("health.protocol_missing", "GET", "/api/health/checks/protocol-listener/stomp", None),
    ("health.virtual_hosts", "GET", "/api/health/checks/virtual-hosts", None),
    ("health.quorum_critical", "GET", "/api/health/checks/node-is-quorum-critical", None),
    ("health.mirror_sync_critical", "GET", "/api/health/checks/node-is-mirror-sync-critical", None),
    ("health.node_healthcheck", "GET", "/api/healthchecks/node", None),
    ("health.node_healthcheck_other_node", "GET", "/api/healthchecks/node/rabbit@elsewhere", None),
]

# statistics keys either side may lack (RabbitMQ adds them once its collector has run; they
# are the object endpoints' work)
ABSENT = {"send_oct", "send_oct_details", "recv_oct", "recv_oct_details", "messages_ready_details",
          "messages_unacknowledged_details", "messages_details", "message_stats",
          "messages", "messages_ready", "messages_unacknowledged"}


def names(call, api: str) -> dict:
    tag = uuid.uuid4().hex[:8]
    _, _, overview = call(api, "GET", "/api/overview")
    port = [x["port"] for x in overview["listeners"] if x["protocol"] == "amqp"][0]
    stored = call(api, "GET", "/api/global-parameters/cluster_name")
    return {"V": f"mgmt-shape-{tag}", "U": f"mgmt-shape-{tag}-user", "C": overview["cluster_name"], "P": str(port),
            "cluster_name": stored[2]["value"] if stored[0] == 200 else None}


def fill(obj, n: dict):
    """``{V}``/``{U}``/``{C}``/``{P}`` placeholders replaced in a path or body."""
    if isinstance(obj, str):
        return obj.replace("{V}", n["V"]).replace("{U}", n["U"]).replace("{C}", n["C"]).replace("{P}", n["P"])
    if isinstance(obj, dict):
        return {fill(k, n): fill(v, n) for k, v in obj.items()}
    if isinstance(obj, list):
        return [fill(x, n) for x in obj]
    return obj


def unfill(obj, n: dict):
    """Names put back as placeholders, so answers of two runs compare."""
    if isinstance(obj, str):
        return obj.replace(n["U"], "{U}").replace(n["V"], "{V}")
    if isinstance(obj, dict):
        return {unfill(k, n): unfill(v, n) for k, v in obj.items()}
    if isinstance(obj, list):
        return [unfill(x, n) for x in obj]
    return obj


def _consume(amqp_url: str, vhost: str, queue: str):
    """A pika connection to ``vhost`` consuming from ``queue`` (the URL's host, port and login)."""
    import pika
    params = pika.URLParameters(amqp_url)
    params.virtual_host = vhost
    conn = pika.BlockingConnection(params)
    conn.channel().basic_consume(queue, lambda *a: None)
    return conn


def run(call, api: str, amqp_url: str | None = None) -> dict:
    """Every case's ``{"status", "body"}`` (names as placeholders); cleans up after itself.
    Without ``amqp_url`` no consumer holds ``cq`` (the in-use case then answers otherwise)."""
    n = names(call, api)
    out = {}
    conn = None
    try:
        for method, path, body in SETUP:
            status, _, got = call(api, method, fill(path, n), body=fill(body, n))
            assert status in (201, 204), (path, status, got)
        if amqp_url is not None:
            conn = _consume(amqp_url, n["V"], "cq")
        for name, method, path, body in CASES:
            status, _, got = call(api, method, fill(path, n), body=body if isinstance(body, bytes) else fill(body, n))
            out[name] = {"status": status, "body": unfill(got, n)}
    finally:
        if conn is not None and conn.is_open:
            conn.close()
        for method, path, body in TEARDOWN:
            call(api, method, fill(path, n), body=fill(body, n))
        if n["cluster_name"] is None:
            call(api, "DELETE", "/api/global-parameters/cluster_name")
        else:
            call(api, "PUT", "/api/global-parameters/cluster_name", body={"value": n["cluster_name"]})
    return out


# values that are data, not fields (a policy's definition, a parameter's value, ...): their
# shape is "data", whatever it holds
OPAQUE = {"definition", "value", "arguments", "limits", "cluster_state"}


def shape(v, key: str = ""):
    """The type structure of a JSON value."""
    if key in OPAQUE:
        return "data"
    if isinstance(v, dict):
        return {k: shape(x, k) for k, x in v.items()}
    if isinstance(v, list):
        return [shape(v[0], key)] if v else []
    if isinstance(v, bool):
        return "bool"
    if isinstance(v, (int, float)):
        return "number"
    if v is None:
        return "null"
    return type(v).__name__


def compare(name: str, rabbit: dict, ours: dict) -> list[str]:
    """What differs between RabbitMQ's recorded answer and ours (empty: they agree)."""
    if rabbit["status"] != ours["status"]:
        return [f"{name}: status {ours['status']} (RabbitMQ {rabbit['status']}): {ours['body']!r}"]
    rb, ob = rabbit["body"], ours["body"]
    if 400 <= rabbit["status"] < 500:
        return [] if rb == ob else [f"{name}: body {ob!r} (RabbitMQ {rb!r})"]
    return [f"{name}: {d}" for d in _shape_diff(shape(rb), shape(ob), "")]


def _shape_diff(r, o, at: str) -> list[str]:
    if isinstance(r, dict) and isinstance(o, dict):
        out = [f"{at}.{k} missing" for k in r if k not in o and k not in ABSENT]
        out += [f"{at}.{k} not in RabbitMQ's answer" for k in o if k not in r and k not in ABSENT]
        for k in r:
            if k in o:
                out += _shape_diff(r[k], o[k], f"{at}.{k}")
        return out
    if isinstance(r, list) and isinstance(o, list):
        return _shape_diff(r[0], o[0], at + "[0]") if r and o else []
    return [] if r == o else [f"{at}: {o} (RabbitMQ {r})"]
