"""AMQP 0-8 as RabbitMQ 3.10 serves it (``leveret.amqp.amqp08``), without sockets.

The wire behaviour itself is pinned against RabbitMQ in tests/conformance/test_protocol_edges.py;
these check the codec table and a sans-I/O session on a real Broker.
"""
from __future__ import annotations

import struct

import pytest

from leveret import Broker
from leveret.amqp import amqp08, spec
from leveret.amqp import connection as pc
from leveret.broker.connection import BrokerConnection
from leveret.amqp.frames import method_frame


def frame(ftype: int, ch: int, payload: bytes) -> bytes:
    return struct.pack(">BHI", ftype, ch, len(payload)) + payload + b"\xce"


def frames(data: bytes) -> list[tuple[int, int, bytes]]:
    out, i = [], 0
    while i < len(data):
        t, ch, n = struct.unpack_from(">BHI", data, i)
        out.append((t, ch, data[i + 7:i + 7 + n]))
        i += 8 + n
    return out


def test_method_table():
    """0-8's ids: close (10,60)/(10,61), redirect (10,50); 0-9-1's additions are unknown."""
    m = amqp08.METHODS
    assert m[10 << 16 | 60].INDEX == spec.ConnectionClose.INDEX
    assert m[10 << 16 | 61].INDEX == spec.ConnectionCloseOk.INDEX
    assert m[10 << 16 | 50].NAME == "connection.redirect"
    for cid, mid in [(10, 51), (10, 70), (10, 71), (40, 30), (40, 31), (40, 40), (40, 51), (60, 120),
                     (85, 10), (85, 11)]:
        assert cid << 16 | mid not in m
    assert m[70 << 16 | 50].CONTENT and not m[70 << 16 | 10].CONTENT


def test_consume_without_arguments_and_exact_length():
    """basic.consume has no arguments table in 0-8; extra bytes do not decode."""
    payload = b"\x00\x3c\x00\x14" + b"\x00\x00\x01q\x02ct\x0a"
    m = amqp08.BasicConsume08.decode(payload)
    assert (m.queue, m.consumer_tag, m.no_ack, m.nowait, m.arguments) == ("q", "ct", True, True, {})
    assert m.encode() == payload
    with pytest.raises(struct.error):
        amqp08.BasicConsume08.decode(payload + b"\x00\x00\x00\x00")


def test_generic_08_method_bits_and_tables():
    cls = amqp08.METHODS[70 << 16 | 60]      # file.publish: short, shortstr, shortstr, bit, bit, shortstr
    m = cls.decode(cls._HEAD + b"\x00\x01\x01x\x00\x02\x02id")
    assert m.values == (1, "x", "", False, True, "id")
    assert m.encode() == cls._HEAD + b"\x00\x01\x01x\x00\x02\x02id"


def test_outgoing():
    """The server's close/close-ok/open-ok go out in 0-8's form; 0-9-1-only methods cannot."""
    close = amqp08.outgoing(spec.ConnectionClose(reply_code=504, reply_text="x", class_id=20, method_id=10))
    assert close.encode() == b"\x00\x0a\x00\x3c" + struct.pack(">H", 504) + b"\x01x" + struct.pack(">HH", 20, 10)
    assert amqp08.outgoing(spec.ConnectionCloseOk()).encode() == b"\x00\x0a\x00\x3d"
    assert amqp08.outgoing(spec.ChannelOpenOk()).encode() == b"\x00\x14\x00\x0b"
    assert amqp08.outgoing(spec.ConnectionBlocked(reason="x")) is None
    q = spec.QueueDeclareOk(queue="q", message_count=0, consumer_count=0)
    assert amqp08.outgoing(q) is q


@pytest.mark.parametrize("header", amqp08.HEADERS)
def test_sans_io_session(header):
    """0-8 header -> start 8-0 without capabilities; handshake, channel, close in 0-8 ids."""
    c = BrokerConnection(Broker(), ("127.0.0.1", 40000))
    c.receive_data(header)
    (t, ch, p), = frames(c.data_to_send())
    start = spec.ConnectionStart.decode(p)
    assert (start.version_major, start.version_minor, start.server_properties["capabilities"]) == (8, 0, {})
    c.receive_data(method_frame(0, spec.ConnectionStartOk(client_properties={}, mechanism="PLAIN",
                                                          response="\0guest\0guest", locale="en_US"))
                   + method_frame(0, spec.ConnectionTuneOk(channel_max=10, frame_max=131072, heartbeat=0))
                   + method_frame(0, spec.ConnectionOpen(virtual_host="/"))
                   + method_frame(1, spec.ChannelOpen()))
    out = frames(c.data_to_send())
    assert out[-1] == (1, 1, b"\x00\x14\x00\x0b")
    c.receive_data(frame(1, 1, b"\x00\x14\x00\x0a\x00"))          # a second channel.open
    (t, ch, p), = frames(c.data_to_send())
    assert p[:4] == b"\x00\x0a\x00\x3c" and p.endswith(struct.pack(">HH", 20, 10))
    c.receive_data(frame(1, 0, b"\x00\x0a\x00\x3d"))               # close-ok, 0-8's
    assert c.state == pc.CLOSED
