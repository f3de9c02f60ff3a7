"""Sender-selected distribution: CC and BCC headers add routing keys; BCC is not delivered."""
from __future__ import annotations

import pika
import pytest


@pytest.fixture
def chan(broker_url):
    c = pika.BlockingConnection(pika.URLParameters(broker_url))
    yield c.channel()
    c.close()


def _drain(ch, q):
    out = []
    while True:
        m, p, body = ch.basic_get(q, auto_ack=True)
        if m is None:
            return out
        out.append((body, dict(p.headers or {})))


def test_cc_and_bcc_add_routing_keys_and_bcc_is_stripped(chan, uniq):
    """CC/BCC (arrays of longstr) route to more queues; receivers see CC but never BCC."""
    qs = [chan.queue_declare(f"{uniq}.{n}", exclusive=True).method.queue for n in ("main", "cc", "bcc", "none")]
    chan.confirm_delivery()
    chan.basic_publish("", qs[0], b"m", pika.BasicProperties(headers={"CC": [qs[1]], "BCC": [qs[2]], "k": "v"}))
    got = [_drain(chan, q) for q in qs]
    for i in range(3):
        assert [b for b, _ in got[i]] == [b"m"]
        assert got[i][0][1] == {"CC": [qs[1]], "k": "v"}
    assert got[3] == []


def test_cc_duplicates_deliver_once(chan, uniq):
    """A queue named by the routing key and again in CC gets one copy."""
    q = chan.queue_declare(f"{uniq}.q", exclusive=True).method.queue
    chan.confirm_delivery()
    chan.basic_publish("", q, b"once", pika.BasicProperties(headers={"CC": [q, q]}))
    assert [b for b, _ in _drain(chan, q)] == [b"once"]


def test_cc_routes_through_a_direct_exchange(chan, uniq):
    """CC keys are matched by the exchange the message was published to."""
    x = f"{uniq}.x"
    chan.exchange_declare(x, "direct", auto_delete=True)
    a = chan.queue_declare(f"{uniq}.a", exclusive=True).method.queue
    b = chan.queue_declare(f"{uniq}.b", exclusive=True).method.queue
    chan.queue_bind(a, x, "ka")
    chan.queue_bind(b, x, "kb")
    chan.confirm_delivery()
    chan.basic_publish(x, "ka", b"both", pika.BasicProperties(headers={"BCC": ["kb"]}))
    assert [(bd, h) for bd, h in _drain(chan, a)] == [(b"both", {})]
    assert [(bd, h) for bd, h in _drain(chan, b)] == [(b"both", {})]
