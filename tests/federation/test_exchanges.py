"""Federated exchanges over real sockets: Leveret <-> Leveret, a Leveret exchange
federated from a RabbitMQ upstream, and a RabbitMQ exchange federated from a Leveret upstream
(the shared RabbitMQ, in a vhost of its own), the RabbitMQ ones in each ack-mode; queues in
test_queues.py."""
from __future__ import annotations

from urllib.parse import quote

import pika
import pytest

from tests.shovel.conftest import drain, wait_for

from .conftest import api


def _federate(host, vhost_q, upstream_uri, pattern, extra=None, apply_to="exchanges", name="up"):
    assert api(host, "PUT", f"/api/parameters/federation-upstream/{vhost_q}/{name}",
               {"value": {"uri": upstream_uri, **(extra or {})}})[0] in (201, 204)
    assert api(host, "PUT", f"/api/policies/{vhost_q}/fed-{name}",
               {"pattern": pattern, "definition": {"federation-upstream": name}, "apply-to": apply_to})[0] in (201, 204)


def _running(host, vhost_q, n=1):
    def ok():
        rows = api(host, "GET", f"/api/federation-links/{vhost_q}")[1] or []
        return rows if len(rows) >= n and all(r["status"] == "running" for r in rows) else None
    return wait_for(ok, f"{n} running federation links on {host}")


def _bound(host, vhost_q, key, present=True):
    def ok():
        rows = api(host, "GET", f"/api/bindings/{vhost_q}")[1] or []
        return any(b["routing_key"] == key and b["destination"].startswith("federation: ") for b in rows) == present
    wait_for(ok, f"binding {key} {'on' if present else 'gone from'} {host}")


def _name(node, name):
    assert api(node.api, "PUT", "/api/cluster-name", {"name": name})[0] in (200, 204)


def test_leveret_to_leveret_exchange(node, node2):
    _name(node, "lev-up")
    _name(node2, "lev-down")
    ca, cha = node.channel()
    cb, chb = node2.channel()
    cha.exchange_declare("fx", "topic")
    chb.exchange_declare("fx", "topic")
    _federate(node2.api, "%2F", node.url, "^fx$")
    q = chb.queue_declare("", exclusive=True).method.queue
    chb.queue_bind(q, "fx", "a.*")
    rows = _running(node2.api, "%2F")
    assert rows[0]["exchange"] == "fx" and rows[0]["upstream"] == "up" and rows[0]["type"] == "exchange"
    assert rows[0]["local_connection"] == "Federation link (upstream: up, policy: fed-up)"
    assert "guest" not in rows[0]["uri"]
    _bound(node.api, "%2F", "a.*")
    xs = {x["name"]: x for x in api(node.api, "GET", "/api/exchanges/%2F")[1]}
    internal = [x for n, x in xs.items() if n.startswith("federation: fx -> lev-down ")]
    assert len(internal) == 1 and internal[0]["type"] == "x-federation-upstream" and internal[0]["internal"]
    assert internal[0]["arguments"]["x-downstream-name"] == "lev-down"
    assert api(node.api, "GET", "/api/queues/%2F/" + quote("federation: fx -> lev-down", safe=""))[0] == 200
    cha.basic_publish("fx", "a.b", b"hello", pika.BasicProperties(headers={"h": "v"}))
    cha.basic_publish("fx", "c.b", b"unbound")
    (m,) = drain(chb, q, 1)
    assert m[2] == b"hello" and m[0].routing_key == "a.b"
    (hop,) = m[1].headers["x-received-from"]
    assert hop["exchange"] == "fx" and hop["cluster-name"] == "lev-up" and hop["vhost"] == "/"
    assert hop["redelivered"] is False and m[1].headers["h"] == "v"
    # unbinding downstream unbinds upstream
    chb.queue_unbind(q, "fx", "a.*")
    _bound(node.api, "%2F", "a.*", present=False)
    # the policy cleared: the link stops and its upstream queue goes
    api(node2.api, "DELETE", "/api/policies/%2F/fed-up")
    wait_for(lambda: api(node.api, "GET", "/api/queues/%2F/" + quote("federation: fx -> lev-down", safe=""))[0] == 404,
             "upstream queue deleted")
    assert api(node2.api, "GET", "/api/federation-links")[1] == []
    ca.close()
    cb.close()


def _loop(node, node2, max_hops):
    _name(node, "lev-a")
    _name(node2, "lev-b")
    chans = []
    for n, other in ((node, node2), (node2, node)):
        c, ch = n.channel()
        ch.exchange_declare("ring", "fanout")
        q = ch.queue_declare("", exclusive=True).method.queue
        ch.queue_bind(q, "ring")
        _federate(n.api, "%2F", other.url, "^ring$", {"max-hops": max_hops})
        chans.append((c, ch, q))
    for n in (node, node2):
        _running(n.api, "%2F")
    _bound(node.api, "%2F", "")
    _bound(node2.api, "%2F", "")
    (ca, cha, qa), (cb, chb, qb) = chans
    cha.basic_publish("ring", "", b"from-a")
    (mb,) = drain(chb, qb, 1)
    (ma,) = drain(cha, qa, 1)
    assert ma[2] == mb[2] == b"from-a"
    # a marker published after it: once it is through, nothing else came back around
    chb.basic_publish("ring", "", b"marker")
    drain(chb, qb, 1)
    (m2,) = drain(cha, qa, 1)
    assert m2[2] == b"marker"
    assert cha.basic_get(qa, auto_ack=True)[0] is None
    assert chb.basic_get(qb, auto_ack=True)[0] is None
    return mb


def test_loop_broken_by_max_hops(node, node2):
    mb = _loop(node, node2, 1)
    assert len(mb[1].headers["x-received-from"]) == 1


def test_loop_broken_by_cluster_name(node, node2):
    """With max-hops 5 the message would go round; the internal exchange drops what came from
    its own downstream."""
    _loop(node, node2, 5)


@pytest.mark.parametrize("ack_mode", ["on-confirm", "on-publish", "no-ack"])
def test_rabbitmq_upstream_leveret_downstream(node, rabbit_vhost, ack_mode):
    """Leveret's link in ``ack_mode``; nothing faults, so every mode delivers what was sent."""
    url, rapi, v = rabbit_vhost
    rc = pika.BlockingConnection(pika.URLParameters(url))
    rch = rc.channel()
    rch.exchange_declare("rx", "direct")
    c, ch = node.channel()
    ch.exchange_declare("rx", "direct")
    _federate(node.api, "%2F", url, "^rx$", {"max-hops": 2, "ack-mode": ack_mode})
    q = ch.queue_declare("", exclusive=True).method.queue
    ch.queue_bind(q, "rx", "k1")
    _running(node.api, "%2F")
    _bound(rapi, quote(v, safe=""), "k1")
    xs = {x["name"]: x for x in api(rapi, "GET", f"/api/exchanges/{quote(v, safe='')}")[1]}
    internal = [x for n, x in xs.items() if n.startswith("federation: rx -> ")]
    assert internal and internal[0]["type"] == "x-federation-upstream"
    assert internal[0]["arguments"]["x-max-hops"] == 2
    for i in range(20):
        rch.basic_publish("rx", "k1", b"from-rabbit-%d" % i)
    got = drain(ch, q, 20)
    assert [m[2] for m in got] == [b"from-rabbit-%d" % i for i in range(20)]
    (hop,) = got[0][1].headers["x-received-from"]
    assert hop["vhost"] == v and hop["cluster-name"].startswith("rabbit@")
    rc.close()
    c.close()


@pytest.mark.parametrize("ack_mode", ["on-confirm", "on-publish", "no-ack"])
def test_leveret_upstream_rabbitmq_downstream(node, rabbit_vhost, ack_mode):
    """RabbitMQ's link in ``ack_mode`` consuming from Leveret; every mode delivers what was sent."""
    url, rapi, v = rabbit_vhost
    vq = quote(v, safe="")
    c, ch = node.channel()
    ch.exchange_declare("lx", "topic")
    rc = pika.BlockingConnection(pika.URLParameters(url))
    rch = rc.channel()
    rch.exchange_declare("lx", "topic")
    q = rch.queue_declare("", exclusive=True).method.queue
    rch.queue_bind(q, "lx", "t.#")
    _federate(rapi, vq, node.url, "^lx$", {"ack-mode": ack_mode})
    _running(rapi, vq)
    _bound(node.api, "%2F", "t.#")
    xs = {x["name"]: x for x in api(node.api, "GET", "/api/exchanges/%2F")[1]}
    internal = [x for n, x in xs.items() if n.startswith("federation: lx -> ")]
    assert internal and internal[0]["type"] == "x-federation-upstream"
    for i in range(20):
        ch.basic_publish("lx", "t.x.y", b"from-leveret-%d" % i)
    got = drain(rch, q, 20)
    assert [m[2] for m in got] == [b"from-leveret-%d" % i for i in range(20)]
    hop = got[0][1].headers["x-received-from"][0]
    assert hop["exchange"] == "lx" and hop["cluster-name"] == node.broker.cluster_name
    rc.close()
    c.close()
