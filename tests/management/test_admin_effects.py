"""What the administrative endpoints change is what AMQP clients then meet, on Leveret and on
RabbitMQ: an operator policy caps a user policy and a queue's own argument (the lower value
wins), a vhost's default queue type makes a plain durable declare a quorum queue (and leaves
an exclusive one classic), a vhost limit set through the API refuses the next queue. And
(Leveret) vhost metadata, operator policies and global parameters survive a restart."""
from __future__ import annotations

import urllib.parse
import uuid

import pika
import pytest

from .conftest import call


def _ok(api, method, path, body=None):
    status, _, got = call(api, method, path, body=body)
    assert status in (200, 201, 204), (method, path, status, got)
    return got


@pytest.fixture
def vhost(api):
    name = f"mgmt-eff-{uuid.uuid4().hex[:8]}"
    yield name
    call(api, "DELETE", f"/api/vhosts/{name}")


def _channel(broker_url: str, vhost: str):
    u = urllib.parse.urlparse(broker_url)
    params = pika.URLParameters(f"amqp://guest:guest@{u.hostname}:{u.port or 5672}/{urllib.parse.quote(vhost, safe='')}")
    conn = pika.BlockingConnection(params)
    return conn, conn.channel()


def test_operator_policy_caps_policy_and_argument(api, broker_url, vhost):
    _ok(api, "PUT", f"/api/vhosts/{vhost}", {})
    _ok(api, "PUT", f"/api/policies/{vhost}/user", {"pattern": "^op\\.", "definition": {"max-length": 5}})
    _ok(api, "PUT", f"/api/operator-policies/{vhost}/cap", {"pattern": "^op\\.", "definition": {"max-length": 2},
                                                           "apply-to": "queues"})
    conn, ch = _channel(broker_url, vhost)
    try:
        ch.confirm_delivery()
        ch.queue_declare("op.q", arguments={"x-max-length": 3})
        for i in range(6):
            ch.basic_publish("", "op.q", b"%d" % i)
        assert ch.queue_declare("op.q", passive=True).method.message_count == 2     # min(5, 2, 3)
        # without the operator policy the user policy and the argument decide: min(5, 3)
        _ok(api, "DELETE", f"/api/operator-policies/{vhost}/cap")
        for i in range(6):
            ch.basic_publish("", "op.q", b"%d" % i)
        assert ch.queue_declare("op.q", passive=True).method.message_count == 3
    finally:
        conn.close()


def test_default_queue_type(api, broker_url, vhost):
    status, _, _ = call(api, "PUT", f"/api/vhosts/{vhost}", body={"defaultqueuetype": "quorum"})
    assert status == 201
    assert _ok(api, "GET", f"/api/vhosts/{vhost}")["default_queue_type"] == "quorum"
    conn, ch = _channel(broker_url, vhost)
    try:
        ch.queue_declare("dq.durable", durable=True)
        # it is a quorum queue: redeclaring it as an explicit classic one is refused
        with pytest.raises(pika.exceptions.ChannelClosedByBroker) as e:
            ch.queue_declare("dq.durable", durable=True, arguments={"x-queue-type": "classic"})
        assert e.value.reply_code == 406 and "x-queue-type" in e.value.reply_text
        ch = conn.channel()
        ch.queue_declare("dq.excl", exclusive=True)           # not quorum-compatible: stays classic
        ch.queue_declare("dq.excl", exclusive=True, arguments={"x-queue-type": "classic"})
    finally:
        conn.close()


def test_vhost_limit_through_the_api(api, broker_url, vhost):
    _ok(api, "PUT", f"/api/vhosts/{vhost}", {})
    _ok(api, "PUT", f"/api/vhost-limits/{vhost}/max-queues", {"value": 1})
    conn, ch = _channel(broker_url, vhost)
    try:
        ch.queue_declare("lim.1")
        with pytest.raises(pika.exceptions.ChannelClosedByBroker) as e:
            ch.queue_declare("lim.2")
        assert e.value.reply_code == 406 and "queue limit in vhost" in e.value.reply_text
    finally:
        conn.close()


@pytest.mark.leveret_only
def test_admin_state_survives_a_restart(leveret_server, tmp_path):
    s = leveret_server()
    api = s.management_url.replace("http://", "")
    _ok(api, "PUT", "/api/vhosts/kept", {"description": "d", "tags": "a,b", "defaultqueuetype": "quorum"})
    _ok(api, "PUT", "/api/operator-policies/kept/cap", {"pattern": ".", "definition": {"message-ttl": 1000}})
    _ok(api, "PUT", "/api/global-parameters/cluster_name", {"value": "kept-cluster"})
    _ok(api, "PUT", "/api/global-parameters/other", {"value": {"x": [1, 2]}})
    s.stop()
    s = leveret_server(data_dir=s.data_dir)
    api = s.management_url.replace("http://", "")
    got = _ok(api, "GET", "/api/vhosts/kept")
    assert (got["description"], got["tags"], got["default_queue_type"]) == ("d", ["a", "b"], "quorum")
    assert _ok(api, "GET", "/api/operator-policies/kept/cap")["definition"] == {"message-ttl": 1000}
    assert _ok(api, "GET", "/api/cluster-name") == {"name": "kept-cluster"}
    assert _ok(api, "GET", "/api/global-parameters/other")["value"] == {"x": [1, 2]}
    conn = pika.BlockingConnection(pika.URLParameters(s.url))
    assert conn._impl.server_properties["cluster_name"] == b"kept-cluster" or \
        conn._impl.server_properties["cluster_name"] == "kept-cluster"
    conn.close()
