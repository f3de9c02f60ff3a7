"""Federated queues over real sockets: the link follows the local queue's consumers and credit
(told by the queue, not polling), each ack-mode, and RabbitMQ at either end (the shared
RabbitMQ, in a vhost of its own)."""
from __future__ import annotations

from urllib.parse import quote

import pika
import pytest

from tests.shovel.conftest import wait_for

from .conftest import api
from .test_exchanges import _federate, _name, _running


def _consume(conn, ch, queue, n, got, ack=True):
    """Consume until ``got`` holds ``n`` messages (bodies)."""
    def cb(c, m, p, body):
        got.append((p, body))
        if ack:
            c.basic_ack(m.delivery_tag)
    tag = ch.basic_consume(queue, cb)
    wait_for(lambda: conn.process_data_events(0.05) or len(got) >= n, f"{n} messages from {queue} (have {len(got)})")
    return tag


def _q(host, vq, name):
    return api(host, "GET", f"/api/queues/{vq}/{quote(name, safe='')}")[1]


def _pair(node, node2, n_up=0, n_local=0):
    """``fq`` on both nodes (cluster names lev-qa, lev-qb), ``n_up`` / ``n_local`` messages in them."""
    _name(node, "lev-qa")
    _name(node2, "lev-qb")
    ca, cha = node.channel()
    cb, chb = node2.channel()
    cha.queue_declare("fq")
    chb.queue_declare("fq")
    for i in range(n_up):
        cha.basic_publish("", "fq", f"up{i}".encode())
    for i in range(n_local):
        chb.basic_publish("", "fq", f"local{i}".encode())
    return ca, cha, cb, chb


def test_federated_queue_moves_only_to_consumers(node, node2):
    ca, cha, cb, chb = _pair(node, node2, 5)
    _federate(node2.api, "%2F", node.url, "^fq$", apply_to="queues")
    rows = _running(node2.api, "%2F")
    assert rows[0]["queue"] == "fq" and rows[0]["consumer_tag"] == "federation-link-up"
    # no local consumer: nothing moves
    assert api(node.api, "GET", "/api/queues/%2F/fq")[1]["consumers"] == 0
    got = []
    chb.basic_consume("fq", lambda ch, m, p, body: (got.append((p, body)), ch.basic_ack(m.delivery_tag)))
    wait_for(lambda: cb.process_data_events(0.05) or len(got) == 5, "5 federated messages")
    assert [b for _, b in got] == [f"up{i}".encode() for i in range(5)]
    hop = got[0][0].headers["x-received-from"][0]
    assert hop["queue"] == "fq" and hop["visit-count"] == 1
    assert got[0][0].headers["x-original-routing-key"] == "fq"
    ca.close()
    cb.close()


def test_link_pauses_while_local_consumers_are_full_and_resumes_on_ack(node, node2):
    """RabbitMQ's ``consumer_state_changed``: the link consumes upstream while the local queue is
    empty and a consumer can take a message, and cancels when its consumers' windows are full."""
    ca, cha, cb, chb = _pair(node, node2, 20)
    _federate(node2.api, "%2F", node.url, "^fq$", {"prefetch-count": 1}, apply_to="queues")
    _running(node2.api, "%2F")
    chb.basic_qos(prefetch_count=2)
    got: list = []
    deliveries: list = []

    def hold(c, m, p, body):
        got.append(body)
        deliveries.append(m.delivery_tag)
    chb.basic_consume("fq", hold)
    wait_for(lambda: cb.process_data_events(0.05) or len(got) == 2, "2 messages to the local consumer")
    # its window is full: the link cancels its upstream consumer, the rest stays upstream
    wait_for(lambda: _q(node.api, "%2F", "fq")["consumers"] == 0, "the upstream consumer cancelled")
    cb.process_data_events(0.2)
    assert len(got) == 2
    left = _q(node.api, "%2F", "fq")["messages"]
    assert left >= 20 - 2 - 2     # at most one in flight per prefetch-count when it paused
    # acks open the window: the link consumes again, and everything arrives
    for t in deliveries:
        chb.basic_ack(t)
    deliveries.clear()

    def more():
        cb.process_data_events(0.05)
        for t in deliveries:
            chb.basic_ack(t)
        deliveries.clear()
        return len(got) >= 20
    wait_for(more, "all 20 messages")
    assert sorted(got, key=lambda b: int(b[2:])) == [f"up{i}".encode() for i in range(20)]
    assert len(set(got)) == 20
    wait_for(lambda: _q(node.api, "%2F", "fq")["messages"] == 0, "upstream queue empty")
    # no local consumer: the link stops consuming upstream
    chb.close()
    wait_for(lambda: _q(node.api, "%2F", "fq")["consumers"] == 0, "upstream consumer cancelled")
    cha.basic_publish("", "fq", b"stays")
    chb = cb.channel()
    assert _q(node.api, "%2F", "fq")["consumers"] == 0
    wait_for(lambda: _q(node.api, "%2F", "fq")["messages"] == 1, "the message kept upstream")
    got2: list = []
    _consume(cb, chb, "fq", 1, got2)
    assert got2[0][1] == b"stays"
    ca.close()
    cb.close()


def test_local_messages_first(node, node2):
    """A local backlog is consumed before the link takes anything from upstream."""
    ca, cha, cb, chb = _pair(node, node2, 3, 3)
    _federate(node2.api, "%2F", node.url, "^fq$", apply_to="queues")
    _running(node2.api, "%2F")
    assert _q(node.api, "%2F", "fq")["consumers"] == 0
    got: list = []
    _consume(cb, chb, "fq", 6, got)
    assert [b for _, b in got][:3] == [b"local0", b"local1", b"local2"]
    assert sorted(b for _, b in got[3:]) == [b"up0", b"up1", b"up2"]
    ca.close()
    cb.close()


@pytest.mark.parametrize("ack_mode", ["on-confirm", "on-publish", "no-ack"])
def test_rabbitmq_upstream_queue_leveret_downstream(node, rabbit_vhost, ack_mode):
    url, rapi, v = rabbit_vhost
    rc = pika.BlockingConnection(pika.URLParameters(url))
    rch = rc.channel()
    rch.queue_declare("rq", durable=True)
    for i in range(10):
        rch.basic_publish("", "rq", f"r{i}".encode(), pika.BasicProperties(headers={"n": i}, delivery_mode=2))
    c, ch = node.channel()
    ch.queue_declare("rq")
    _federate(node.api, "%2F", url, "^rq$", {"ack-mode": ack_mode}, apply_to="queues")
    rows = _running(node.api, "%2F")
    assert rows[0]["type"] == "queue" and rows[0]["upstream_queue"] == "rq"
    got: list = []
    _consume(c, ch, "rq", 10, got)
    assert sorted(b for _, b in got) == sorted(f"r{i}".encode() for i in range(10))
    p = next(p for p, b in got if b == b"r3")
    assert p.headers["n"] == 3 and p.headers["x-original-routing-key"] == "rq"
    hop = p.headers["x-received-from"][0]
    assert hop["queue"] == "rq" and hop["visit-count"] == 1 and "guest" not in hop["uri"]
    # everything left RabbitMQ's queue for good (acked upstream in every mode)
    vq = quote(v, safe="")
    wait_for(lambda: (_q(rapi, vq, "rq") or {}).get("messages") == 0, "RabbitMQ's queue empty")
    rc.close()
    c.close()


@pytest.mark.parametrize("ack_mode", ["on-confirm", "on-publish", "no-ack"])
def test_leveret_upstream_queue_rabbitmq_downstream(node, rabbit_vhost, ack_mode):
    """RabbitMQ's queue link consuming from a Leveret queue (Leveret announces consumer
    priorities, which RabbitMQ's link requires)."""
    url, rapi, v = rabbit_vhost
    vq = quote(v, safe="")
    c, ch = node.channel()
    ch.queue_declare("lq")
    for i in range(10):
        ch.basic_publish("", "lq", f"l{i}".encode())
    rc = pika.BlockingConnection(pika.URLParameters(url))
    rch = rc.channel()
    rch.queue_declare("lq", durable=True)
    _federate(rapi, vq, node.url, "^lq$", {"ack-mode": ack_mode}, apply_to="queues")
    rows = _running(rapi, vq)
    assert rows[0]["type"] == "queue"
    # RabbitMQ's link consumes only once it has a consumer
    assert _q(node.api, "%2F", "lq")["consumers"] == 0
    got: list = []
    _consume(rc, rch, "lq", 10, got)
    assert sorted(b for _, b in got) == sorted(f"l{i}".encode() for i in range(10))
    hop = got[0][0].headers["x-received-from"][0]
    assert hop["queue"] == "lq" and hop["visit-count"] == 1
    wait_for(lambda: _q(node.api, "%2F", "lq")["messages"] == 0, "Leveret's queue empty")
    rch.close()
    wait_for(lambda: _q(node.api, "%2F", "lq")["consumers"] == 0, "RabbitMQ's link paused")
    rc.close()
    c.close()
