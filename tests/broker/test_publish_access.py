"""The publish permission cache is a specialisation of the full check: a repeated publish (the
same method object, the amqp layer's hot path) must be refused exactly when a fresh one would be.

Each case publishes the same frames twice through a sans-I/O connection -- once to warm the
channel's cache, once after an access change -- and compares the result with a fresh channel
that never published before.
"""
from __future__ import annotations

import pytest
from pamqp import commands as C
from pamqp import frame as F
from pamqp import header as H
from pamqp import body as B

from leveret import Broker
from leveret.broker.connection import BrokerConnection

from broker_harness import wire_frames as frames


def open_conn(b: Broker, user: str) -> BrokerConnection:
    c = BrokerConnection(b, ("127.0.0.1", 1))
    c.receive_data(b"AMQP\x00\x00\x09\x01")
    c.receive_data(F.marshal(C.Connection.StartOk(client_properties={}, mechanism="PLAIN",
                                                  response=f"\0{user}\0pw"), 0))
    c.receive_data(F.marshal(C.Connection.TuneOk(channel_max=2047, frame_max=131072, heartbeat=0), 0))
    c.receive_data(F.marshal(C.Connection.Open(virtual_host="/"), 0))
    c.data_to_send()
    return c


def publish_frames(ch: int, exchange: str, rk: str) -> bytes:
    body = b"hello"
    return (F.marshal(C.Basic.Publish(exchange=exchange, routing_key=rk), ch)
            + F.marshal(H.ContentHeader(0, len(body), C.Basic.Properties()), ch)
            + F.marshal(B.ContentBody(body), ch))


def publish(c: BrokerConnection, ch: int, exchange: str, rk: str):
    """Publish on channel ``ch`` (opened if needed, in confirm mode); the outcome: 'ack' or the
    channel.close (code, text)."""
    if ch not in c.sessions:
        c.receive_data(F.marshal(C.Channel.Open(), ch) + F.marshal(C.Confirm.Select(), ch))
        c.data_to_send()
    c.receive_data(publish_frames(ch, exchange, rk))
    c.before_flush()
    out = frames(c.data_to_send())
    for f in out:
        if isinstance(f, C.Channel.Close):
            c.receive_data(F.marshal(C.Channel.CloseOk(), ch))
            return (f.reply_code, f.reply_text)
        if isinstance(f, C.Basic.Ack):
            return "ack"
    return out


CHANGES = {
    "write revoked": lambda b: b.set_permissions("u", "/", ".*", "^nothing$", ".*"),
    "write still granted": lambda b: b.set_permissions("u", "/", "", ".*", ""),
    "topic permission added": lambda b: b.set_topic_permissions("u", "/", "t", "^other$", ".*"),
    "user got impersonator tag": lambda b: b.set_user_tags("u", ["impersonator"]),
    "exchange redeclared as topic with a topic permission": lambda b: (
        b.vhosts["/"].delete_exchange(b.vhosts["/"].exchanges["d"], False),
        b.vhosts["/"].declare_exchange("d", "topic", False, False, False, {}),
        b.set_topic_permissions("u", "/", "d", "^other$", ".*")),
}


@pytest.mark.parametrize("exchange", ["t", "d"])
@pytest.mark.parametrize("change", list(CHANGES))
def test_a_repeated_publish_is_checked_as_a_fresh_one(change, exchange):
    b = Broker()
    b.add_user("u", "pw")
    b.set_permissions("u", "/", ".*", ".*", ".*")
    v = b.vhosts["/"]
    v.declare_exchange("t", "topic", False, False, False, {})
    v.declare_exchange("d", "direct", False, False, False, {})
    c = open_conn(b, "u")
    assert publish(c, 1, exchange, "rk") == "ack"
    assert publish(c, 1, exchange, "rk") == "ack"       # the cached path, warm
    CHANGES[change](b)
    cached = publish(c, 1, exchange, "rk")
    fresh = publish(open_conn(b, "u"), 1, exchange, "rk")
    assert cached == fresh


def test_a_refused_publish_is_not_cached():
    b = Broker()
    b.add_user("u", "pw")
    b.set_permissions("u", "/", ".*", "^allowed$", ".*")
    b.vhosts["/"].declare_exchange("allowed", "direct", False, False, False, {})
    c = open_conn(b, "u")
    assert publish(c, 1, "other", "rk")[0] == 403
    assert publish(c, 2, "other", "rk")[0] == 403
    assert publish(c, 3, "allowed", "rk") == "ack"
