"""Broker objects through the management API: shapes against RabbitMQ's recorded responses,
counters after known traffic, declare/delete/bind/publish/get and their errors, closing a
connection. Runs against Leveret and, with ``LEVERET_TEST_MGMT_URL`` and ``LEVERET_TEST_URL``,
against RabbitMQ 3.10.8."""
from __future__ import annotations

import os
import uuid

import pika
import pytest

from .conftest import call
from .scenario import Scenario, differences, load, q, shape

ON_RABBITMQ = bool(os.environ.get("LEVERET_TEST_URL"))

# What Leveret leaves out (docs/operations.md): Erlang process and VM fields, fields it does
# not compute, and RabbitMQ's churn and history.
ERLANG = {"garbage_collection", "reductions", "reductions_details", "memory", "backing_queue_status",
          "recoverable_slaves", "erlang_version", "erlang_full_version", "statistics_db_event_queue",
          "user_who_performed_action", "idle_since", "pending_raft_commands", "cowboy_opts", "linger",
          "exit_on_close"}
ABSENT = {
    "overview": ERLANG | {"sample_retention_policies", "churn_rates", "release_series_support_status",
                          "message_stats.disk_reads", "message_stats.disk_reads_details",
                          "message_stats.disk_writes", "message_stats.disk_writes_details"},
    "nodes": ERLANG | {"applications", "channel_closed", "channel_closed_details", "channel_created",
                       "channel_created_details", "config_files", "connection_closed",
                       "connection_closed_details", "connection_created", "connection_created_details",
                       "context_switches", "context_switches_details", "disk_free_details", "enabled_plugins",
                       "fd_used_details", "gc_bytes_reclaimed", "gc_bytes_reclaimed_details", "gc_num",
                       "gc_num_details", "log_files", "mem_used_details", "metrics_gc_queue_length",
                       "mnesia_disk_tx_count", "mnesia_disk_tx_count_details", "mnesia_ram_tx_count",
                       "mnesia_ram_tx_count_details", "net_ticktime", "proc_total", "proc_used",
                       "proc_used_details", "queue_created", "queue_created_details", "queue_declared",
                       "queue_declared_details", "queue_deleted", "queue_deleted_details", "ra_open_file_metrics",
                       "run_queue", "sockets_total", "sockets_used_details", "persister_stats"}
             | {k for k in load("nodes")[0] if k.startswith(("io_", "msg_store_", "queue_index_"))},
    "queue": ERLANG | {"consumer_capacity", "consumer_utilisation", "head_message_timestamp", "message_bytes",
                       "message_bytes_persistent", "message_bytes_unacknowledged", "messages_persistent"},
    "channel": ERLANG, "connection_channels": ERLANG, "connection": ERLANG, "exchange": ERLANG,
}
ABSENT.update({"queues_list": ABSENT["queue"], "exchanges_list": ERLANG, "connections_list": ERLANG,
               "channels_list": ERLANG})


@pytest.fixture(scope="module")
def scenario(api, broker_url):
    s = Scenario(broker_url, api, uuid.uuid4().hex[:8])
    try:
        s.wait_for_stats()
        yield s
    finally:
        s.close()


@pytest.mark.parametrize("fixture", ["overview", "nodes", "connection", "connection_channels", "channel", "queue",
                                     "exchange", "bindings_between", "bindings_source", "consumers",
                                     "queues_list", "exchanges_list", "connections_list", "channels_list"])
def test_shapes_match_rabbitmq(api, scenario, fixture):
    status, _, body = call(api, "GET", scenario.paths()[fixture])
    assert status == 200
    got = scenario.mine(fixture, body)
    assert got, f"{fixture}: nothing of the scenario's in the response"
    diffs = differences(shape(load(fixture)), shape(got), absent=frozenset(ABSENT.get(fixture, ())))
    assert diffs == []


def test_counters_after_known_traffic(api, scenario):
    _, _, qd = call(api, "GET", scenario.paths()["queue"])
    assert {k: qd[k] for k in ("messages", "messages_ready", "messages_unacknowledged", "consumers")} == {
        "messages": 5, "messages_ready": 2, "messages_unacknowledged": 3, "consumers": 1}
    ms = qd["message_stats"]
    assert {k: ms[k] for k in ("publish", "deliver", "deliver_get", "deliver_no_ack", "get", "ack", "redeliver")} == {
        "publish": 5, "deliver": 3, "deliver_get": 3, "deliver_no_ack": 0, "get": 0, "ack": 0, "redeliver": 0}
    assert all(isinstance(ms[k + "_details"]["rate"], (int, float)) for k in ("publish", "deliver", "ack"))
    assert isinstance(qd["messages_details"]["rate"], (int, float))
    _, _, xd = call(api, "GET", scenario.paths()["exchange"])
    assert (xd["message_stats"]["publish_in"], xd["message_stats"]["publish_out"]) == (6, 5)
    _, _, ch = call(api, "GET", scenario.paths()["channel"])
    cs = ch["message_stats"]
    assert {k: cs[k] for k in ("publish", "confirm", "return_unroutable", "drop_unroutable", "deliver", "ack")} == {
        "publish": 6, "confirm": 6, "return_unroutable": 1, "drop_unroutable": 0, "deliver": 3, "ack": 0}
    assert (ch["messages_unacknowledged"], ch["prefetch_count"], ch["confirm"], ch["number"]) == (3, 3, True, 1)
    assert [c["consumer_tag"] for c in ch["consumer_details"]] == [f"ctag-{scenario.tag}"]
    _, _, conn = call(api, "GET", scenario.paths()["connection"])
    assert conn["name"] == f"{conn['peer_host']}:{conn['peer_port']} -> {conn['host']}:{conn['port']}"
    assert conn["user_provided_name"] == f"mgmt-{scenario.tag}" and conn["channels"] == 1


def test_bindings_and_properties_keys(api, scenario):
    _, _, bs = call(api, "GET", scenario.paths()["bindings_between"])
    assert [(b["routing_key"], b["arguments"]) for b in bs] == [("k", {}), ("k2", {"a": 1, "b": "s"})]
    assert bs[0]["properties_key"] == "k" and bs[1]["properties_key"].startswith("k2~")
    status, _, one = call(api, "GET", scenario.paths()["bindings_between"] + "/" + q(bs[1]["properties_key"]))
    assert status == 200 and one == bs[1]


def _c(api, method, path, body=None, **kw):
    status, headers, got = call(api, method, path, body=body, **kw)
    return status, got


def test_declare_bind_publish_get_delete(api):
    t = uuid.uuid4().hex[:8]
    x, qu = f"mgmt-{t}-x", f"mgmt-{t}-q"
    try:
        assert _c(api, "PUT", f"/api/queues/%2F/{qu}", {"durable": False, "arguments": {"x-max-length": 10}})[0] == 201
        assert _c(api, "PUT", f"/api/queues/%2F/{qu}", {"durable": False, "arguments": {"x-max-length": 10}})[0] == 204
        assert _c(api, "PUT", f"/api/queues/%2F/{qu}", {"durable": True}) == (400, {
            "error": "bad_request", "reason": f"inequivalent arg 'durable' for queue '{qu}' in vhost '/': "
                                              "received 'true' but current is 'false'"})
        assert _c(api, "PUT", f"/api/exchanges/%2F/{x}", {"type": "nope"}) == (400, {
            "error": "bad_request", "reason": "unknown exchange type 'nope'"})
        assert _c(api, "PUT", f"/api/exchanges/%2F/{x}", {})[0] == 201
        status, headers, _ = call(api, "POST", f"/api/bindings/%2F/e/{x}/q/{qu}", body={"routing_key": ""})
        assert status == 201 and headers.get("Location", headers.get("location")) == f"{qu}/~"
        assert _c(api, "POST", f"/api/bindings/%2F/e/{x}/q/nope", {"routing_key": "a"}) == (404, {
            "error": "not_found", "reason": "no queue 'nope' in vhost '/'"})
        assert _c(api, "DELETE", f"/api/exchanges/%2F/{x}?if-unused=true") == (400, {
            "error": "bad_request", "reason": f"exchange '{x}' in vhost '/' in use"})
        pub = {"routing_key": "", "payload": "hi", "payload_encoding": "string",
               "properties": {"headers": {"z": 1}, "delivery_mode": 2}}
        assert _c(api, "POST", f"/api/exchanges/%2F/{x}/publish", pub) == (200, {"routed": True})
        assert _c(api, "POST", f"/api/exchanges/%2F/{x}/publish", dict(pub, routing_key="other")) == (200, {"routed": False})
        assert _c(api, "POST", f"/api/exchanges/%2F/{x}/publish", dict(pub, payload="/w==", payload_encoding="base64")) \
            == (200, {"routed": True})
        del pub["payload_encoding"]
        assert _c(api, "POST", f"/api/exchanges/%2F/{x}/publish", pub) == (400, {
            "error": "bad_request", "reason": "[{key_missing,payload_encoding}]"})
        assert _c(api, "POST", f"/api/queues/%2F/{qu}/get", {"count": 5}) == (400, {
            "error": "bad_request", "reason": "[{key_missing,ackmode},{key_missing,encoding}]"})
        assert _c(api, "POST", f"/api/queues/%2F/{qu}/get", {"count": 5, "ackmode": "ack_requeue_true",
                                                             "encoding": "x"}) == (400, {
            "error": "bad_request", "reason": "Unsupported encoding. Please use auto or base64."})
        status, got = _c(api, "POST", f"/api/queues/%2F/{qu}/get",
                         {"count": 5, "ackmode": "reject_requeue_true", "encoding": "auto", "truncate": 1})
        assert status == 200
        assert [(m["payload"], m["payload_encoding"], m["payload_bytes"], m["redelivered"], m["message_count"])
                for m in got] == [("h", "string", 2, False, 1), ("/w==", "base64", 1, False, 0)]
        assert got[0]["properties"] == {"headers": {"z": 1}, "delivery_mode": 2}
        status, got = _c(api, "POST", f"/api/queues/%2F/{qu}/get",
                         {"count": 1, "ackmode": "ack_requeue_false", "encoding": "base64"})
        assert [(m["payload"], m["redelivered"], m["message_count"]) for m in got] == [("aGk=", True, 1)]
        assert _c(api, "POST", f"/api/queues/%2F/{qu}/actions", {"action": "sync"})[0] == 204
        assert _c(api, "POST", f"/api/queues/%2F/{qu}/actions", {"action": "bogus"}) == (400, {
            "error": "bad_request", "reason": ["unknown", "bogus"]})
        assert _c(api, "DELETE", f"/api/queues/%2F/{qu}?if-empty=true") == (400, {
            "error": "bad_request", "reason": f"queue '{qu}' in vhost '/' not empty"})
        assert _c(api, "DELETE", f"/api/queues/%2F/{qu}/contents")[0] == 204
        assert _c(api, "POST", f"/api/queues/%2F/{qu}/get", {"count": 1, "ackmode": "ack_requeue_true",
                                                             "encoding": "auto"}) == (200, [])
        assert _c(api, "DELETE", f"/api/bindings/%2F/e/{x}/q/{qu}/~")[0] == 204
        assert _c(api, "DELETE", f"/api/bindings/%2F/e/{x}/q/{qu}/~")[0] == 404
        assert _c(api, "DELETE", f"/api/queues/%2F/{qu}?if-empty=true")[0] == 204
        assert _c(api, "DELETE", f"/api/queues/%2F/{qu}") == (404, {"error": "Object Not Found", "reason": "Not Found"})
        assert _c(api, "DELETE", f"/api/exchanges/%2F/{x}")[0] == 204
    finally:
        call(api, "DELETE", f"/api/queues/%2F/{qu}")
        call(api, "DELETE", f"/api/exchanges/%2F/{x}")


def test_amq_default_names_the_default_exchange(api):
    """``amq.default`` in an exchange, source or destination segment is the default exchange
    (``rabbit_mgmt_util:id/2``): UIs publish to a queue through it."""
    qu = f"mgmt-{uuid.uuid4().hex[:8]}-dq"
    try:
        assert _c(api, "PUT", f"/api/queues/%2F/{qu}", {"durable": False})[0] == 201
        status, got = _c(api, "GET", "/api/exchanges/%2F/amq.default")
        assert status == 200 and (got["name"], got["type"]) == ("", "direct")
        pub = {"routing_key": qu, "payload": "via amq.default", "payload_encoding": "string", "properties": {}}
        assert _c(api, "POST", "/api/exchanges/%2F/amq.default/publish", pub) == (200, {"routed": True})
        status, got = _c(api, "GET", f"/api/bindings/%2F/e/amq.default/q/{qu}")
        assert status == 200 and [(b["source"], b["routing_key"]) for b in got] == [("", qu)]
        status, got = _c(api, "POST", f"/api/queues/%2F/{qu}/get",
                         {"count": 1, "ackmode": "ack_requeue_false", "encoding": "auto"})
        assert [m["payload"] for m in got] == ["via amq.default"]
    finally:
        call(api, "DELETE", f"/api/queues/%2F/{qu}")


@pytest.mark.parametrize("method, path, body, expected", [
    ("PUT", "/api/queues/mgmt-no-such-vhost/q", {}, (404, {"error": "not_found", "reason": "vhost_not_found"})),
    ("DELETE", "/api/exchanges/%2F/amq.direct", None, (401, {"error": "not_authorised", "reason": "Access refused."})),
    ("POST", "/api/exchanges/%2F/mgmt-no-such-x/publish",
     {"routing_key": "", "payload": "", "payload_encoding": "string", "properties": {}},
     (400, {"error": "bad_request", "reason": "404 NOT_FOUND - no exchange 'mgmt-no-such-x' in vhost '/'"})),
    ("GET", "/api/queues/%2F/mgmt-no-such-q", None, (404, {"error": "Object Not Found", "reason": "Not Found"})),
    ("GET", "/api/connections/nope", None, (404, {"error": "Object Not Found", "reason": "Not Found"})),
    ("GET", "/api/channels/nope", None, (404, {"error": "Object Not Found", "reason": "Not Found"})),
])
def test_errors(api, method, path, body, expected):
    assert _c(api, method, path, body) == expected


def test_delete_connection_closes_it_with_the_reason(api, broker_url):
    params = pika.URLParameters(broker_url)
    tag = f"mgmt-close-{uuid.uuid4().hex[:8]}"
    params.client_properties = {"connection_name": tag}
    conn = pika.BlockingConnection(params)
    try:
        name = None
        for _ in range(60):
            conn.process_data_events(0.5)
            _, _, conns = call(api, "GET", "/api/connections")
            found = [c["name"] for c in conns if c.get("user_provided_name") == tag]
            if found:
                name = found[0]
                break
        assert name is not None
        assert _c(api, "DELETE", f"/api/connections/{q(name)}", headers={"X-Reason": "tested"})[0] == 204
        with pytest.raises(pika.exceptions.ConnectionClosedByBroker) as e:
            for _ in range(60):
                conn.process_data_events(0.5)
        assert (e.value.reply_code, e.value.reply_text) == (320, "CONNECTION_FORCED - tested")
    finally:
        if conn.is_open:
            conn.close()


def test_deprecated_node_healthcheck(api):
    """``/api/healthchecks/node[/{node}]`` (rabbit_mgmt_wm_healthchecks, deprecated in 3.10 but
    served; amqpstorm's ``healthchecks.get`` calls it): ok for this node, 404 for another name,
    401 without credentials."""
    status, _, overview = call(api, "GET", "/api/overview")
    assert status == 200
    node = overview["node"]
    assert call(api, "GET", "/api/healthchecks/node")[::2] == (200, {"status": "ok"})
    assert call(api, "GET", f"/api/healthchecks/node/{node}")[::2] == (200, {"status": "ok"})
    assert call(api, "GET", f"/api/healthchecks/node/{node}x")[::2] == (
        404, {"error": "Object Not Found", "reason": "Not Found"})
    assert call(api, "GET", "/api/healthchecks/node", auth=False)[0] == 401


@pytest.mark.leveret_only
def test_deprecated_node_healthcheck_fails_while_an_alarm_is_in_effect(leveret_server):
    """rabbit_health_check:local fails on alarms: 503, ``resource alarm(s) in effect:`` and the
    alarm list as Erlang's ``~p`` prints rabbit:alarms()."""
    server = leveret_server("--vm-memory-high-watermark", "1MB")     # below what the process uses
    api = server.management_url.split("@")[-1].replace("http://", "")
    node = call(api, "GET", "/api/overview")[2]["node"]
    status, _, body = call(api, "GET", "/api/healthchecks/node")
    assert (status, body) == (503, {"status": "failed", "reason": "resource alarm(s) in effect:"
                                    f"[{{{{resource_limit,memory,'{node}'}},[]}}]"})


@pytest.mark.parametrize("path, status", [
    ("/api/overview/", 200), ("/api/queues/%2F/", 200), ("/api/users/without-permissions/", 200),
    ("/api/healthchecks/node/", 200), ("/api/overview//", 404), ("/api//overview", 404),
])
def test_one_trailing_slash_is_the_same_path(api, path, status):
    """cowboy's router drops one trailing slash; a second one, or an empty segment inside, is a
    path of its own (404). amqpstorm's ``healthchecks.get()`` asks for /api/healthchecks/node/."""
    got, _, body = call(api, "GET", path)
    assert got == status
    if status == 200:       # the same resource (the type of its answer; statistics move)
        assert type(body) is type(call(api, "GET", path[:-1])[2])
    else:
        assert body == {"error": "Object Not Found", "reason": "Not Found"}
