"""Shovels exported from RabbitMQ import into Leveret and work.

On the live RabbitMQ, in a vhost of the test's own: two shovel parameters made through its
management API -- ``local`` (``amqp:///<vhost>`` to ``amqp:///<vhost>``: direct URIs, which
mean "this broker" on whichever node runs them) and ``to-rabbit`` (a direct source, the
RabbitMQ by host as the destination). The definitions RabbitMQ exports (the whole broker's
``/api/definitions`` cut down to that vhost, as one would hand-edit a shared broker's file,
or the vhost's own ``/api/definitions/{vhost}``) are POSTed to a Leveret, whose shovels must
then run: a message published to Leveret's ``in`` arrives in Leveret's ``out``, one published
to Leveret's ``in2`` in RabbitMQ's ``out2``. The vhost (and with it the parameters and
queues) is deleted on RabbitMQ afterwards.
"""
from __future__ import annotations

import pika
import pytest

from .conftest import Node, api, drain, unique, wait_for

VHOST_KEYS = ("permissions", "topic_permissions", "parameters", "policies", "queues", "exchanges", "bindings")


def running(api_host: str, vhost: str, names: set[str]) -> bool:
    status, rows = api(api_host, "GET", f"/api/shovels/{vhost}")
    return status == 200 and {r["name"] for r in rows if r["state"] == "running"} == names


@pytest.mark.parametrize("export", ["broker", "vhost"])
def test_rabbitmq_shovel_definitions_run_on_leveret(rabbit, export):
    r_url, r_api = rabbit
    vhost = unique("zz-shovel-defs")
    n = None
    assert api(r_api, "PUT", f"/api/vhosts/{vhost}")[0] == 201
    try:
        assert api(r_api, "PUT", f"/api/permissions/{vhost}/guest",
                   {"configure": ".*", "write": ".*", "read": ".*"})[0] in (201, 204)
        shovels = {
            "local": {"src-uri": f"amqp:///{vhost}", "src-queue": "in", "dest-uri": f"amqp:///{vhost}",
                      "dest-queue": "out", "dest-add-forward-headers": True, "ack-mode": "on-confirm",
                      "src-prefetch-count": 100, "reconnect-delay": 2},
            "to-rabbit": {"src-uri": f"amqp:///{vhost}", "src-queue": "in2",
                          "dest-uri": f"{r_url.rsplit('/', 1)[0]}/{vhost}", "dest-queue": "out2",
                          "dest-publish-properties": {"delivery_mode": 2}},
        }
        for name, value in shovels.items():
            status, body = api(r_api, "PUT", f"/api/parameters/shovel/{vhost}/{name}", {"value": value})
            assert status == 201, body
        wait_for(lambda: running(r_api, vhost, set(shovels)), "RabbitMQ runs both shovels")

        n = Node()
        if export == "broker":
            status, defs = api(r_api, "GET", "/api/definitions")
            assert status == 200
            defs = {"rabbit_version": defs["rabbit_version"],
                    "vhosts": [v for v in defs["vhosts"] if v["name"] == vhost],
                    **{k: [x for x in defs.get(k, []) if x.get("vhost") == vhost] for k in VHOST_KEYS}}
            path = "/api/definitions"
        else:
            status, defs = api(r_api, "GET", f"/api/definitions/{vhost}")
            assert status == 200
            assert api(n.api, "PUT", f"/api/vhosts/{vhost}")[0] == 201
            path = f"/api/definitions/{vhost}"
        assert sorted(p["name"] for p in defs["parameters"]) == ["local", "to-rabbit"]
        assert {p["component"] for p in defs["parameters"]} == {"shovel"}
        status, body = api(n.api, "POST", path, defs)
        assert status == 204, body
        assert {(p["name"], p["component"]): p["value"] for p in api(n.api, "GET", f"/api/parameters/shovel/{vhost}")[1]} \
            == {(name, "shovel"): value for name, value in shovels.items()}
        wait_for(lambda: running(n.api, vhost, set(shovels)), "Leveret runs both shovels")

        conn = pika.BlockingConnection(pika.URLParameters(n.url.rsplit("/", 1)[0] + f"/{vhost}"))
        ch = conn.channel()
        ch.confirm_delivery()
        for i in range(20):
            ch.basic_publish("", "in", b"l%d" % i)
            ch.basic_publish("", "in2", b"r%d" % i)
        got = drain(ch, "out", 20)
        assert [m[2] for m in got] == [b"l%d" % i for i in range(20)]
        fwd = got[0][1].headers["x-shovelled"][0]
        assert (fwd["shovel-name"], fwd["shovel-vhost"], fwd["src-queue"]) == ("local", vhost, "in")
        conn.close()

        rconn = pika.BlockingConnection(pika.URLParameters(f"{r_url.rsplit('/', 1)[0]}/{vhost}"))
        got = drain(rconn.channel(), "out2", 20)
        assert [m[2] for m in got] == [b"r%d" % i for i in range(20)]
        assert got[0][1].delivery_mode == 2
        rconn.close()
    finally:
        if n is not None:
            n.stop()
        api(r_api, "DELETE", f"/api/vhosts/{vhost}")
        wait_for(lambda: api(r_api, "GET", f"/api/vhosts/{vhost}")[0] == 404, "RabbitMQ vhost gone")


def test_edge_user_with_write_on_the_exchange_only(rabbit):
    """docs/scale-out.md's edge walkthrough: a shovel to ``dest-exchange`` declares nothing on
    the cluster, so a RabbitMQ user with only ``write`` on that exchange is enough."""
    r_url, r_api = rabbit
    vhost, user = unique("zz-shovel-edge"), unique("zz-shovel-edge-user")
    n = None
    assert api(r_api, "PUT", f"/api/vhosts/{vhost}")[0] == 201
    try:
        assert api(r_api, "PUT", f"/api/permissions/{vhost}/guest",
                   {"configure": ".*", "write": ".*", "read": ".*"})[0] in (201, 204)
        assert api(r_api, "PUT", f"/api/users/{user}", {"password": "s3cret", "tags": ""})[0] == 201
        assert api(r_api, "PUT", f"/api/permissions/{vhost}/{user}",
                   {"configure": "^$", "write": "^events$", "read": "^$"})[0] in (201, 204)
        assert api(r_api, "PUT", f"/api/exchanges/{vhost}/events", {"type": "topic", "durable": True})[0] == 201
        assert api(r_api, "PUT", f"/api/queues/{vhost}/central", {"durable": True})[0] == 201
        assert api(r_api, "POST", f"/api/bindings/{vhost}/e/events/q/central", {"routing_key": "#"})[0] == 201
        n = Node()
        conn, ch = n.channel()
        ch.queue_declare("outbox", durable=True)
        ch.confirm_delivery()
        for i in range(10):
            ch.basic_publish("", "outbox", b"e%d" % i, pika.BasicProperties(delivery_mode=2))
        host = r_url.split("@", 1)[1].rsplit("/", 1)[0]
        status, body = api(n.api, "PUT", "/api/parameters/shovel/%2F/to-central", {"value": {
            "src-uri": "amqp://", "src-queue": "outbox", "dest-uri": [f"amqp://{user}:s3cret@{host}/{vhost}"],
            "dest-exchange": "events", "dest-add-forward-headers": True}})
        assert status == 201, body
        rconn = pika.BlockingConnection(pika.URLParameters(f"{r_url.rsplit('/', 1)[0]}/{vhost}"))
        got = drain(rconn.channel(), "central", 10)
        assert [m[2] for m in got] == [b"e%d" % i for i in range(10)]
        assert got[0][0].routing_key == "outbox"         # the routing key the message had
        rconn.close()
        wait_for(lambda: ch.queue_declare("outbox", passive=True).method.message_count == 0, "outbox drained")
        conn.close()
    finally:
        if n is not None:
            n.stop()
        api(r_api, "DELETE", f"/api/vhosts/{vhost}")
        api(r_api, "DELETE", f"/api/users/{user}")
