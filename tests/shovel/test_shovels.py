"""Shovels that move messages: Leveret -> Leveret, Leveret -> RabbitMQ, RabbitMQ -> Leveret, each
ack-mode, delete-after, forward headers, status through the API and ctl, restart after a
broker restart."""
from __future__ import annotations

import pika
import pytest

from .conftest import Node, api, drain, unique, wait_for


def put_shovel(n: Node, name: str, value: dict, vhost: str = "%2F"):
    status, body = api(n.api, "PUT", f"/api/parameters/shovel/{vhost}/{name}", {"value": value})
    assert status == 201, body


def running(n: Node, name: str):
    return wait_for(lambda: [s for s in api(n.api, "GET", "/api/shovels")[1]
                             if s["name"] == name and s["state"] == "running"], f"shovel {name} running")[0]


def publish(ch, queue: str, n: int, **props):
    for i in range(n):
        ch.basic_publish("", queue, b"m%d" % i, pika.BasicProperties(delivery_mode=2, **props))


@pytest.mark.parametrize("ack_mode", ["on-confirm", "on-publish", "no-ack"])
def test_leveret_to_leveret(node, ack_mode):
    conn, ch = node.channel()
    ch.queue_declare("src", durable=True)
    publish(ch, "src", 50, headers={"h": 1}, message_id=None)
    put_shovel(node, "s", {"src-uri": "amqp://", "src-queue": "src", "dest-uri": node.url, "dest-queue": "dst",
                           "ack-mode": ack_mode, "dest-add-forward-headers": True,
                           "dest-add-timestamp-header": True, "dest-publish-properties": {"app_id": "shovelled"}})
    st = running(node, "s")
    assert {k: st[k] for k in ("type", "src_uri", "src_protocol", "dest_protocol", "src_queue", "dest_queue")} == \
        {"type": "dynamic", "src_uri": "amqp://", "src_protocol": "amqp091", "dest_protocol": "amqp091",
         "src_queue": "src", "dest_queue": "dst"}
    assert "guest" not in st["dest_uri"]
    got = drain(ch, "dst", 50)
    assert [m[2] for m in got] == [b"m%d" % i for i in range(50)]
    props = got[0][1]
    assert props.message_id is None and props.app_id == "shovelled" and props.delivery_mode == 2
    assert props.headers["h"] == 1 and isinstance(props.headers["x-shovelled-timestamp"], int)
    fwd = props.headers["x-shovelled"][0]
    assert {k: fwd[k] for k in ("shovel-name", "shovel-type", "shovel-vhost", "src-uri", "src-queue", "dest-queue")} \
        == {"shovel-name": "s", "shovel-type": "dynamic", "shovel-vhost": "/", "src-uri": "amqp://",
            "src-queue": "src", "dest-queue": "dst"}
    wait_for(lambda: ch.queue_declare("src", passive=True).method.message_count == 0, "source drained")
    # nothing left unacked on the source either: a new consumer gets nothing back after the shovel goes
    assert api(node.api, "DELETE", "/api/parameters/shovel/%2F/s")[0] == 204
    wait_for(lambda: api(node.api, "GET", "/api/shovels")[1] == [], "shovel gone")
    assert ch.queue_declare("src", passive=True).method.message_count == 0
    conn.close()


def test_delete_after_queue_length(node):
    conn, ch = node.channel()
    ch.queue_declare("src")
    ch.queue_declare("dst", durable=True)
    publish(ch, "src", 20)
    put_shovel(node, "once", {"src-uri": "amqp://", "src-queue": "src", "dest-uri": "amqp://",
                              "dest-queue": "dst", "src-delete-after": "queue-length"})
    drain(ch, "dst", 20)
    wait_for(lambda: api(node.api, "GET", "/api/parameters/shovel/%2F/once")[0] == 404, "parameter deleted itself")
    publish(ch, "src", 3)
    assert ch.queue_declare("src", passive=True).method.message_count == 3
    conn.close()


def test_delete_after_number_leaves_the_rest(node):
    conn, ch = node.channel()
    ch.queue_declare("src")
    ch.queue_declare("dst", durable=True)
    publish(ch, "src", 10)
    put_shovel(node, "n", {"src-uri": "amqp://", "src-queue": "src", "dest-uri": "amqp://", "dest-queue": "dst",
                           "src-delete-after": 4, "src-prefetch-count": 10})
    wait_for(lambda: api(node.api, "GET", "/api/parameters/shovel/%2F/n")[0] == 404, "parameter deleted itself")
    wait_for(lambda: ch.queue_declare("src", passive=True).method.message_count == 6, "6 back in the source")
    assert ch.queue_declare("dst", passive=True).method.message_count == 4
    conn.close()


def test_exchange_source_and_queue_args(node):
    conn, ch = node.channel()
    put_shovel(node, "x", {"src-uri": "amqp://", "src-exchange": "amq.topic", "src-exchange-key": "a.#",
                           "dest-uri": "amqp://", "dest-queue": "qq", "dest-queue-args": {"x-max-length": 100}})
    st = running(node, "x")
    assert st["src_exchange"] == "amq.topic" and st["src_exchange_key"] == "a.#"
    q = api(node.api, "GET", "/api/queues/%2F/qq")[1]
    assert q["durable"] is True and q["arguments"] == {"x-max-length": 100}
    for i in range(5):
        ch.basic_publish("amq.topic", "a.b", b"t%d" % i)
    ch.basic_publish("amq.topic", "b.b", b"no")
    assert [m[2] for m in drain(ch, "qq", 5)] == [b"t%d" % i for i in range(5)]
    conn.close()


def test_unreachable_destination_is_terminated_with_reason(node):
    put_shovel(node, "bad", {"src-uri": "amqp://", "src-queue": "src", "dest-uri": "amqp://127.0.0.1:1",
                             "reconnect-delay": 0})
    st = wait_for(lambda: [s for s in api(node.api, "GET", "/api/shovels/%2F")[1] if s["state"] == "terminated"],
                  "terminated")[0]
    assert "failed_to_connect_using_provided_uris" in st["reason"]
    assert api(node.api, "DELETE", "/api/shovels/vhost/%2F/bad/restart")[0] == 204
    assert api(node.api, "DELETE", "/api/shovels/vhost/%2F/nope/restart")[0] == 404


@pytest.mark.parametrize("ack_mode", ["on-confirm", "on-publish", "no-ack"])
def test_leveret_to_rabbitmq_and_back(node, rabbit, ack_mode):
    """Both shovels in ``ack_mode``; nothing faults, so every mode delivers what was sent."""
    r_url, r_api = rabbit
    q_out, q_back, name = unique("zz-shovel-out"), unique("zz-shovel-back"), unique("zz-shovel")
    rconn = pika.BlockingConnection(pika.URLParameters(r_url))
    rch = rconn.channel()
    conn, ch = node.channel()
    try:
        ch.queue_declare("src")
        ch.queue_declare(q_back, durable=True)
        rch.queue_declare(q_out)
        publish(ch, "src", 30)
        put_shovel(node, "out", {"src-uri": "amqp://", "src-queue": "src", "dest-uri": r_url, "dest-queue": q_out,
                                 "ack-mode": ack_mode})
        wait_for(lambda: rch.queue_declare(q_out, passive=True).method.message_count == 30, "30 in RabbitMQ")
        # RabbitMQ's own shovel sends them back to Leveret
        status, body = api(r_api, "PUT", f"/api/parameters/shovel/%2F/{name}",
                           {"value": {"src-uri": "amqp://", "src-queue": q_out, "dest-uri": node.url,
                                      "dest-queue": q_back, "dest-add-forward-headers": True,
                                      "ack-mode": ack_mode}})
        assert status == 201, body
        got = drain(ch, q_back, 30)
        assert sorted(m[2] for m in got) == sorted(b"m%d" % i for i in range(30))
        assert got[0][1].headers["x-shovelled"][0]["shovel-name"] == name
    finally:
        api(r_api, "DELETE", f"/api/parameters/shovel/%2F/{name}")
        wait_for(lambda: not [s for s in api(r_api, "GET", "/api/shovels")[1] if s["name"] == name], "gone")
        rch.queue_delete(q_out)
        rconn.close()
        conn.close()


@pytest.mark.parametrize("ack_mode", ["on-confirm", "on-publish", "no-ack"])
def test_rabbitmq_to_leveret_by_leveret_shovel(node, rabbit, ack_mode):
    """Every mode delivers what was sent (nothing faults). The messages carry ``user_id``: the
    shovel publishes into its own broker as the internal user, which may publish any
    ``user_id`` (RabbitMQ's dummy-backend user may; test_user_id.py has the local case)."""
    r_url, r_api = rabbit
    q = unique("zz-shovel-src")
    rconn = pika.BlockingConnection(pika.URLParameters(r_url))
    rch = rconn.channel()
    conn, ch = node.channel()
    try:
        rch.queue_declare(q)
        ch.queue_declare("in", durable=True)
        publish(rch, q, 40, user_id="guest")
        put_shovel(node, "in", {"src-uri": [r_url], "src-queue": q, "dest-uri": "amqp://", "dest-queue": "in",
                                "ack-mode": ack_mode, "reconnect-delay": 1})
        assert [(m[2], m[1].user_id) for m in drain(ch, "in", 40)] == [(b"m%d" % i, "guest") for i in range(40)]
        wait_for(lambda: rch.queue_declare(q, passive=True).method.message_count == 0, "RabbitMQ queue drained")
        assert api(node.api, "DELETE", "/api/parameters/shovel/%2F/in")[0] == 204
    finally:
        rch.queue_delete(q)
        rconn.close()
        conn.close()


def test_restart_after_broker_restart(tmp_path):
    n = Node(data_dir=str(tmp_path))
    try:
        conn, ch = n.channel()
        ch.queue_declare("src", durable=True)
        put_shovel(n, "durable", {"src-uri": "amqp://", "src-queue": "src", "dest-uri": "amqp://",
                                  "dest-queue": "dst"})
        running(n, "durable")
        conn.close()
    finally:
        n.stop()
    n = Node(data_dir=str(tmp_path))
    try:
        running(n, "durable")
        conn, ch = n.channel()
        ch.queue_declare("dst", durable=True, passive=True)
        publish(ch, "src", 5)
        drain(ch, "dst", 5)
        conn.close()
    finally:
        n.stop()


def test_ctl_status_restart_delete(tmp_path):
    """``leveret ctl shovel_status`` / ``restart_shovel`` / ``delete_shovel`` over the control socket."""
    import json
    import subprocess
    import sys

    n = Node(data_dir=str(tmp_path))
    try:
        def ctl(*args):
            return subprocess.run([sys.executable, "-m", "leveret", "ctl", "--data-dir", str(tmp_path), *args],
                                  capture_output=True, text=True, timeout=60)
        r = ctl("set_parameter", "shovel", "c1", json.dumps({"src-uri": "amqp://", "src-queue": "a",
                                                             "dest-uri": "amqp://", "dest-queue": "b"}))
        assert r.returncode == 0, r.stderr
        running(n, "c1")
        r = ctl("shovel_status", "--formatter", "json")
        assert r.returncode == 0, r.stderr
        rows = json.loads(r.stdout)
        assert [(x["name"], x["vhost"], x["state"], x["source_queue"], x["destination_queue"], x["type"])
                for x in rows] == [("c1", "/", "running", "a", "b", "dynamic")]
        assert ctl("restart_shovel", "c1").returncode == 0
        running(n, "c1")
        r = ctl("restart_shovel", "nope")
        assert r.returncode == 69 and "was not found" in r.stderr
        assert ctl("delete_shovel", "c1").returncode == 0
        assert api(n.api, "GET", "/api/parameters/shovel/%2F/c1")[0] == 404
        wait_for(lambda: api(n.api, "GET", "/api/shovels")[1] == [], "no shovels")
    finally:
        n.stop()
