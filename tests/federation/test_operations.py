"""Operating federation: ``leveret ctl federation_status [--only-down]`` and
``restart_federation_link`` over the control socket, the management API's restart route,
upstream sets and ``federation-upstream-pattern`` resolved end to end, the exchange link's
``no-ack`` and ``on-publish`` ack-modes, and federation definitions exported from the live
RabbitMQ (a vhost of its own, deleted afterwards) imported into Leveret and working."""
from __future__ import annotations

import json
import subprocess
import sys
from urllib.parse import quote

import pika
import pytest

from tests.shovel.conftest import drain, wait_for

from .conftest import Node, api
from .test_exchanges import _federate, _name, _running

# the columns of rabbitmqctl 3.10.8's ``federation_status --formatter json`` (a live run)
CTL_COLUMNS = {"error", "exchange", "id", "last_changed", "local_connection", "queue", "status", "type",
               "upstream", "upstream_exchange", "upstream_queue", "uri", "vhost"}


def _links(host, vq="%2F"):
    return api(host, "GET", f"/api/federation-links/{vq}")[1] or []


def _internal_suffix(host, exchange):
    """The A/B suffix of the link's internal exchange on the upstream."""
    names = [x["name"] for x in api(host, "GET", "/api/exchanges/%2F")[1]
             if x["name"].startswith(f"federation: {exchange} -> ")]
    return names[0][-1] if len(names) == 1 else None


def _links_up(host, good: int, bad: int = 0):
    def ok():
        rows = _links(host)
        if (sum(r["status"] == "running" for r in rows), sum(r["status"] == "error" for r in rows)) == (good, bad):
            return rows
        return None
    return wait_for(ok, f"{good} running and {bad} failed links on {host}")


@pytest.fixture
def ctl_node(tmp_path):
    n = Node(data_dir=str(tmp_path))
    n.data_dir = str(tmp_path)
    yield n
    n.stop()


def _ctl(n, *args):
    return subprocess.run([sys.executable, "-m", "leveret", "ctl", "--data-dir", n.data_dir, *args],
                          capture_output=True, text=True, timeout=60)


def test_ctl_status_only_down_restart(ctl_node, node2):
    n, up = ctl_node, node2
    _name(n, "lev-ctl-down")
    c, ch = n.channel()
    cu, chu = up.channel()
    for x in ("fx", "bx"):
        ch.exchange_declare(x, "fanout")
    chu.exchange_declare("fx", "fanout")
    _federate(n.api, "%2F", up.url, "^fx$", name="good")
    _federate(n.api, "%2F", "amqp://127.0.0.1:1", "^bx$", name="bad")
    ch.queue_bind(ch.queue_declare("", exclusive=True).method.queue, "fx")
    _links_up(n.api, 1, 1)
    r = _ctl(n, "federation_status", "--formatter", "json")
    assert r.returncode == 0, r.stderr
    rows = {x["upstream"]: x for x in json.loads(r.stdout)}
    assert set(rows) == {"good", "bad"}
    assert set(rows["good"]) == set(rows["bad"]) == CTL_COLUMNS
    good, bad = rows["good"], rows["bad"]
    assert (good["status"], good["exchange"], good["type"], good["queue"], good["error"]) == \
        ("running", "fx", "exchange", "", "")
    assert good["local_connection"] == "Federation link (upstream: good, policy: fed-good)"
    assert (bad["status"], bad["error"], bad["uri"], bad["local_connection"]) == \
        ("error", "econnrefused", "amqp://127.0.0.1:1", "")
    r = _ctl(n, "federation_status", "--only-down", "--formatter", "json")
    assert r.returncode == 0, r.stderr
    assert [x["upstream"] for x in json.loads(r.stdout)] == ["bad"]
    r = _ctl(n, "federation_status", "--only-down")
    assert r.stdout.startswith("Listing federation links which are down on node ") and "econnrefused" in r.stdout
    assert "fed-good" not in r.stdout
    # restart: the link starts again, with the other internal exchange suffix upstream
    before = _internal_suffix(up.api, "fx")
    assert before in ("A", "B")
    r = _ctl(n, "restart_federation_link", good["id"])
    assert r.returncode == 0, r.stderr
    assert r.stdout.startswith(f"Restarting federation link {good['id']} on node ")
    wait_for(lambda: _internal_suffix(up.api, "fx") not in (None, before), "the link restarted")
    _links_up(n.api, 1, 1)
    r = _ctl(n, "restart_federation_link", "nope")
    assert (r.returncode, r.stderr) == (69, "Error:\nLink with the given ID was not found\n")
    # and the management API's route
    node_name = _links(n.api)[0]["node"]
    assert node_name == n.broker.node_name
    before = _internal_suffix(up.api, "fx")
    assert api(n.api, "DELETE", f"/api/federation-links/vhost/%2F/{good['id']}/{quote(node_name)}/restart")[0] == 204
    wait_for(lambda: _internal_suffix(up.api, "fx") not in (None, before), "the link restarted (API)")
    assert api(n.api, "DELETE", f"/api/federation-links/vhost/%2F/nope/{quote(node_name)}/restart")[0] == 404
    assert api(n.api, "DELETE", f"/api/federation-links/vhost/nowhere/{good['id']}/x/restart")[0] == 404
    # still federating after both restarts
    _links_up(n.api, 1, 1)
    q = ch.queue_declare("", exclusive=True).method.queue
    ch.queue_bind(q, "fx")
    wait_for(lambda: any(b["source"] == "fx" for b in api(up.api, "GET", "/api/bindings/%2F")[1]), "bound upstream")
    chu.basic_publish("fx", "", b"after-restart")
    assert drain(ch, q, 1)[0][2] == b"after-restart"
    c.close()
    cu.close()


def test_upstream_set_and_pattern(node, node2):
    """A set naming two upstreams (one entry overriding the upstream's exchange), then the
    pattern key, then the set ``all``: the links follow, the ones no longer named are cleaned
    up upstream."""
    up, down = node, node2
    _name(up, "lev-set-up")
    _name(down, "lev-set-down")
    cu, chu = up.channel()
    cd, chd = down.channel()
    for x in ("src1", "src2", "src3"):
        chu.exchange_declare(x, "fanout")
    chd.exchange_declare("agg", "fanout")
    q = chd.queue_declare("", exclusive=True).method.queue
    chd.queue_bind(q, "agg")
    for name, x in (("u1", "src1"), ("u2", "src2")):
        assert api(down.api, "PUT", f"/api/parameters/federation-upstream/%2F/{name}",
                   {"value": {"uri": up.url, "exchange": x}})[0] in (201, 204)
    assert api(down.api, "PUT", "/api/parameters/federation-upstream-set/%2F/both",
               {"value": [{"upstream": "u1"}, {"upstream": "u2", "exchange": "src3"}]})[0] in (201, 204)

    def policy(definition):
        assert api(down.api, "PUT", "/api/policies/%2F/agg",
                   {"pattern": "^agg$", "definition": definition, "apply-to": "exchanges"})[0] in (201, 204)

    def links(want):
        return wait_for(lambda: sorted((r["upstream"], r["upstream_exchange"]) for r in _links(down.api)
                                       if r["status"] == "running") == want and _links(down.api), f"links {want}")

    def through(*sources):
        for s in sources:
            wait_for(lambda s=s: any(b["source"] == s for b in api(up.api, "GET", "/api/bindings/%2F")[1]),
                     f"{s} bound upstream")
            chu.basic_publish(s, "", s.encode())
        assert sorted(m[2] for m in drain(chd, q, len(sources))) == sorted(s.encode() for s in sources)

    policy({"federation-upstream-set": "both"})
    links([("u1", "src1"), ("u2", "src3")])
    through("src1", "src3")
    policy({"federation-upstream-pattern": "^u2$"})
    links([("u2", "src2")])
    # u1's link stopped for good: its upstream queue went
    wait_for(lambda: not [x for x in api(up.api, "GET", "/api/queues/%2F")[1]
                          if x["name"].startswith("federation: src1 ")], "u1's upstream queue deleted")
    through("src2")
    policy({"federation-upstream-set": "all"})
    links([("u1", "src1"), ("u2", "src2")])
    through("src1", "src2")
    cu.close()
    cd.close()


@pytest.mark.parametrize("ack_mode", ["no-ack", "on-publish"])
def test_exchange_ack_modes(node, node2, ack_mode):
    _name(node, "lev-am-up")
    _name(node2, "lev-am-down")
    cu, chu = node.channel()
    cd, chd = node2.channel()
    chu.exchange_declare("ax", "direct")
    chd.exchange_declare("ax", "direct")
    q = chd.queue_declare("", exclusive=True).method.queue
    chd.queue_bind(q, "ax", "k")
    _federate(node2.api, "%2F", node.url, "^ax$", {"ack-mode": ack_mode})
    _running(node2.api, "%2F")
    fq = quote("federation: ax -> lev-am-down", safe="")
    wait_for(lambda: any(b["source"] == "ax" for b in api(node.api, "GET", "/api/bindings/%2F")[1]), "bound")
    for i in range(50):
        chu.basic_publish("ax", "k", f"m{i}".encode())
    got = drain(chd, q, 50)
    assert sorted(m[2] for m in got) == sorted(f"m{i}".encode() for i in range(50))
    # nothing left unacknowledged upstream, whatever the mode
    wait_for(lambda: (api(node.api, "GET", f"/api/queues/%2F/{fq}")[1] or {}).get("messages") == 0,
             "upstream queue empty")
    consumers = api(node.api, "GET", "/api/consumers/%2F")[1]
    (link,) = [x for x in consumers if x["queue"]["name"] == "federation: ax -> lev-am-down"]
    assert link["ack_required"] is (ack_mode != "no-ack")
    cu.close()
    cd.close()


def test_definitions_exported_from_rabbitmq(node, rabbit_vhost):
    """Upstreams, an upstream set and federation policies made on RabbitMQ, exported from its
    vhost (GET /api/definitions/{vhost}) and imported into Leveret: a Leveret exchange and a
    Leveret queue federated from RabbitMQ."""
    url, rapi, v = rabbit_vhost
    vq = quote(v, safe="")
    put = [
        (f"/api/exchanges/{vq}/srcx", {"type": "fanout", "durable": True}),
        (f"/api/queues/{vq}/srcq", {"durable": True}),
        (f"/api/parameters/federation-upstream/{vq}/rx", {"value": {"uri": url, "exchange": "srcx",
                                                                    "max-hops": 1, "ack-mode": "on-confirm"}}),
        (f"/api/parameters/federation-upstream/{vq}/rq", {"value": {"uri": url, "queue": "srcq",
                                                                    "prefetch-count": 10}}),
        (f"/api/parameters/federation-upstream-set/{vq}/qs", {"value": [{"upstream": "rq"}]}),
        (f"/api/exchanges/{vq}/dx", {"type": "fanout", "durable": True}),
        (f"/api/queues/{vq}/dxq", {"durable": True}),
        (f"/api/bindings/{vq}/e/dx/q/dxq", {"routing_key": ""}),
        (f"/api/queues/{vq}/dq", {"durable": True}),
        # (RabbitMQ federates its own dx and dq from srcx / srcq too: harmless, dq has no consumer)
        (f"/api/policies/{vq}/fedx", {"pattern": "^dx$", "apply-to": "exchanges",
                                      "definition": {"federation-upstream": "rx"}}),
        (f"/api/policies/{vq}/fedq", {"pattern": "^dq$", "apply-to": "queues",
                                      "definition": {"federation-upstream-set": "qs"}}),
    ]
    for path, body in put:
        method = "POST" if "/bindings/" in path else "PUT"
        assert api(rapi, method, path, body)[0] in (201, 204), path
    status, defs = api(rapi, "GET", f"/api/definitions/{vq}")
    assert status == 200
    assert {p["component"] for p in defs["parameters"]} == {"federation-upstream", "federation-upstream-set"}
    assert api(node.api, "POST", "/api/definitions/%2F", defs)[0] in (200, 201, 204)
    assert {(p["component"], p["name"]) for p in api(node.api, "GET", "/api/parameters")[1]} == \
        {("federation-upstream", "rx"), ("federation-upstream", "rq"), ("federation-upstream-set", "qs")}
    rows = wait_for(lambda: [r for r in _links(node.api) if r["status"] == "running"]
                    if len([r for r in _links(node.api) if r["status"] == "running"]) == 2 else None,
                    "2 running links on Leveret")
    assert sorted((r["type"], r["upstream"]) for r in rows) == [("exchange", "rx"), ("queue", "rq")]
    rc = pika.BlockingConnection(pika.URLParameters(url))
    rch = rc.channel()
    wait_for(lambda: any(b["source"] == "srcx" and b["destination"].startswith("federation: srcx -> ")
                         for b in api(rapi, "GET", f"/api/bindings/{vq}")[1]), "Leveret's binding on RabbitMQ")
    rch.basic_publish("srcx", "", b"via-exchange")
    rch.basic_publish("", "srcq", b"via-queue")
    c, ch = node.channel()
    assert drain(ch, "dxq", 1)[0][2] == b"via-exchange"
    got = []
    ch.basic_consume("dq", lambda c_, m, p, body: (got.append(body), c_.basic_ack(m.delivery_tag)))
    wait_for(lambda: c.process_data_events(0.05) or got == [b"via-queue"], "the queue's message on Leveret")
    rc.close()
    c.close()
