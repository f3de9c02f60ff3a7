"""Exchanges, bindings and connections listings: a paged, sorted (filtered) listing is exactly
the slice of the full listing, whether the sort key is one Leveret reads off the objects
before building any item (name, type, routing key, properties_key, channels...) or one only a
built item has (``message_stats``, ``arguments``, ``client_properties``...). Runs against
Leveret and, with ``LEVERET_TEST_MGMT_URL`` and ``LEVERET_TEST_URL``, against RabbitMQ 3.10.8."""
from __future__ import annotations

import os
import time
import urllib.parse
import uuid

import pika
import pytest

from .conftest import call
from .test_listing import query

ON_RABBITMQ = bool(os.environ.get("LEVERET_TEST_URL"))

@pytest.fixture(scope="module")
def objects(api, broker_url):
    """(vhost path segment, tag): exchanges, bindings, and four connections in a vhost of their own."""
    tag = f"mgmt-objs-{uuid.uuid4().hex[:8]}"
    vhost = urllib.parse.quote(tag, safe="")
    assert call(api, "PUT", f"/api/vhosts/{vhost}", body={})[0] == 201
    conns = []
    try:
        call(api, "PUT", f"/api/permissions/{vhost}/guest", body={"configure": ".*", "write": ".*", "read": ".*"})
        u = urllib.parse.urlparse(broker_url)
        for i, name in enumerate(["conn-c", "conn-a", "conn-d", "conn-b"]):
            params = pika.ConnectionParameters(host=u.hostname, port=u.port, virtual_host=tag,
                                               credentials=pika.PlainCredentials("guest", "guest"),
                                               client_properties={"connection_name": f"{tag}-{name}"})
            c = pika.BlockingConnection(params)
            for _ in range(i % 3):
                c.channel()
            conns.append(c)
        ch = conns[0].channel()
        for name, typ, durable, args in [("x-echo", "topic", False, None), ("x-alpha", "direct", True, None),
                                         ("x-delta", "fanout", False, {"alternate-exchange": "x-alpha"}),
                                         ("x-bravo", "headers", True, None), ("x-charlie", "direct", False, None)]:
            ch.exchange_declare(f"{tag}-{name}", typ, durable=durable, arguments=args)
        for name in ("q1", "q2", "q3"):
            ch.queue_declare(f"{tag}-{name}", durable=False)
        for x, qn, rk, args in [("x-echo", "q2", "b.#", None), ("x-alpha", "q1", "zz", None),
                                ("x-alpha", "q3", "aa", {"k": 3}), ("x-bravo", "q1", "", {"x-match": "all", "k": 1}),
                                ("x-echo", "q1", "a.*", {"k": 2}), ("x-charlie", "q2", "m", None)]:
            ch.queue_bind(f"{tag}-{qn}", f"{tag}-{x}", routing_key=rk, arguments=args)
        ch.exchange_bind(f"{tag}-x-charlie", f"{tag}-x-alpha", routing_key="e2e")
        ch.confirm_delivery()
        for _ in range(3):
            ch.basic_publish(f"{tag}-x-alpha", "zz", b"m")
        ch.basic_publish(f"{tag}-x-echo", "a.b", b"m")
        deadline = time.monotonic() + 30
        while len(call(api, "GET", f"/api/vhosts/{vhost}/connections")[2]) < 4:   # (RabbitMQ: stats lag)
            assert time.monotonic() < deadline, "the connections never showed"
            time.sleep(0.5)
        yield vhost, tag
    finally:
        for c in conns:
            if c.is_open:
                c.close()
        call(api, "DELETE", f"/api/vhosts/{vhost}")


PATHS = {"exchanges": "/api/exchanges/{vhost}", "bindings": "/api/bindings/{vhost}",
         "connections": "/api/connections"}   # (per vhost, RabbitMQ takes no pagination)
CASES = [
    ("exchanges", None, None), ("exchanges", "name", None), ("exchanges", "type", None),
    ("exchanges", "durable,name", "name,type"), ("exchanges", "arguments.alternate-exchange", None),
    ("exchanges", "message_stats.publish_in", "name,message_stats"), ("exchanges", "no_such_field", None),
    ("bindings", None, None), ("bindings", "routing_key", None), ("bindings", "destination,routing_key", None),
    ("bindings", "properties_key", "properties_key,source"), ("bindings", "arguments.k", None),
    ("bindings", "source", "destination"),
    ("connections", None, None), ("connections", "user_provided_name", None), ("connections", "channels", None),
    ("connections", "peer_port", "name,channels"), ("connections", "client_properties.connection_name", None),
]


@pytest.mark.parametrize("reverse", [False, True])
@pytest.mark.parametrize("kind,sort,columns", CASES)
def test_page_is_the_slice_of_the_full_listing(api, objects, kind, sort, reverse, columns):
    vhost, tag = objects
    path = PATHS[kind].format(vhost=vhost)
    # exchanges: only the test's (not the vhost's amq.* ones), by the name filter
    name = tag if kind == "exchanges" else None

    def listing(**extra):
        status, _, body = call(api, "GET", path + "?" + query(sort=sort, sort_reverse=str(reverse).lower(),
                                                               columns=columns, **extra))
        assert status == 200
        return body

    for _attempt in range(5):       # (RabbitMQ's statistics may change between two requests)
        before = [it for it in listing() if name is None or tag in it.get("name", "")]
        page = listing(page=2, page_size=2, name=name)
        after = [it for it in listing() if name is None or tag in it.get("name", "")]
        if before == after:
            break
    else:
        pytest.fail("the listing never stayed the same over three requests")
    assert len(before) >= 4
    if kind == "bindings":      # RabbitMQ's binding listings take no pagination (reply_list)
        assert page == before
        return
    assert page["items"] == before[2:4]
    assert (page["filtered_count"], page["item_count"], page["page"]) == (len(before), 2, 2)
    if columns:
        want = {c.split(".")[0] for c in columns.split(",")}
        assert all(set(it) <= want for it in page["items"])


def test_listings_hold_the_objects(api, objects):
    vhost, tag = objects
    _, _, xs = call(api, "GET", f"/api/exchanges/{vhost}?sort=name")
    assert [x["name"] for x in xs if tag in x["name"]] == [f"{tag}-x-{n}" for n in
                                                           ("alpha", "bravo", "charlie", "delta", "echo")]
    _, _, bs = call(api, "GET", f"/api/bindings/{vhost}?sort=routing_key&columns=routing_key")
    assert [b["routing_key"] for b in bs] == sorted(b["routing_key"] for b in bs)
    assert len(bs) == 3 + 7
    _, _, cs = call(api, "GET", f"/api/vhosts/{vhost}/connections?sort=user_provided_name&sort_reverse=true")
    assert [c["user_provided_name"] for c in cs] == [f"{tag}-conn-{n}" for n in "dcba"]


def test_bindings_come_in_rabbitmqs_order(api, objects):
    """Binding listings are sorted by vhost, source, destination, routing key and properties
    key: RabbitMQ's sort also names ``type``, a field binding rows do not have, so a queue and an
    exchange bound from one source interleave by name. An explicit ``sort`` keeps that order
    among ties."""
    vhost, tag = objects
    x = urllib.parse.quote(tag, safe="")

    def rows(path):
        status, _, body = call(api, "GET", path)
        assert status == 200
        return [(b["source"].replace(tag, "T"), b["destination"].replace(tag, "T"), b["routing_key"].replace(tag, "T"))
                for b in body]

    assert rows(f"/api/bindings/{vhost}") == [
        ("", "T-q1", "T-q1"), ("", "T-q2", "T-q2"), ("", "T-q3", "T-q3"),
        ("T-x-alpha", "T-q1", "zz"), ("T-x-alpha", "T-q3", "aa"), ("T-x-alpha", "T-x-charlie", "e2e"),
        ("T-x-bravo", "T-q1", ""), ("T-x-charlie", "T-q2", "m"),
        ("T-x-echo", "T-q1", "a.*"), ("T-x-echo", "T-q2", "b.#")]
    assert rows(f"/api/bindings/{vhost}?sort=destination") == [
        ("", "T-q1", "T-q1"), ("T-x-alpha", "T-q1", "zz"), ("T-x-bravo", "T-q1", ""), ("T-x-echo", "T-q1", "a.*"),
        ("", "T-q2", "T-q2"), ("T-x-charlie", "T-q2", "m"), ("T-x-echo", "T-q2", "b.#"),
        ("", "T-q3", "T-q3"), ("T-x-alpha", "T-q3", "aa"), ("T-x-alpha", "T-x-charlie", "e2e")]
    assert rows(f"/api/queues/{vhost}/{x}-q1/bindings") == [
        ("", "T-q1", "T-q1"), ("T-x-alpha", "T-q1", "zz"), ("T-x-bravo", "T-q1", ""), ("T-x-echo", "T-q1", "a.*")]
    assert rows(f"/api/exchanges/{vhost}/{x}-x-alpha/bindings/source") == [
        ("T-x-alpha", "T-q1", "zz"), ("T-x-alpha", "T-q3", "aa"), ("T-x-alpha", "T-x-charlie", "e2e")]
