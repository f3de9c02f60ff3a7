"""A frame that arrives a byte at a time is read as the same frame arriving whole.

The reader keeps a partial frame and appends each piece without parsing again until the frame
is complete (linear cost; ``bench/trickle.py`` measures it); these tests feed both ways, at the
largest frame ``frame_max`` allows and one byte over it, and compare what the connection saw
and sent. (RabbitMQ's reader takes a payload of up to ``frame_max`` bytes, not ``frame_max`` - 8:
``rabbit_reader``'s size check adds the empty frame's 8 bytes back; its error text names
``frame_max`` - 8.)"""
from __future__ import annotations

from pamqp import commands as C
from pamqp import frame as F
from pamqp.body import ContentBody
from pamqp.header import ContentHeader

from leveret.amqp.connection import ProtocolConnection

FRAME_MAX = 131072
OPENING = (b"AMQP\x00\x00\x09\x01"
           + F.marshal(C.Connection.StartOk(client_properties={}, mechanism="PLAIN", response="\0guest\0guest"), 0)
           + F.marshal(C.Connection.TuneOk(channel_max=10, frame_max=FRAME_MAX, heartbeat=0), 0)
           + F.marshal(C.Connection.Open(virtual_host="/"), 0)
           + F.marshal(C.Channel.Open(), 1))


class Recorder(ProtocolConnection):
    def __init__(self):
        super().__init__(0.0)
        self.seen: list = []

    def on_method(self, ch, method):
        self.seen.append((ch, method.NAME))

    def on_publish(self, ch, method, header, body):
        self.seen.append((ch, method.NAME, bytes(header), bytes(body)))


def run(data: bytes, by_byte: bool) -> tuple[list, bytes, str]:
    conn = Recorder()
    conn.receive_data(OPENING)
    if by_byte:
        for i in range(len(data)):
            conn.receive_data(data[i:i + 1])
    else:
        conn.receive_data(data)
    return conn.seen, conn.data_to_send(), conn.state


def publish(body_size: int) -> bytes:
    body = bytes(range(256)) * (body_size // 256) + bytes(body_size % 256)
    return (F.marshal(C.Basic.Publish(exchange="", routing_key="q"), 1)
            + F.marshal(ContentHeader(0, len(body)), 1) + F.marshal(ContentBody(body), 1)
            + F.marshal(C.Basic.Qos(prefetch_count=1), 1))


def test_the_largest_frame_a_byte_at_a_time_is_the_same_frame():
    data = publish(FRAME_MAX)               # the body frame's payload is frame_max
    whole = run(data, by_byte=False)
    assert [s[:2] for s in whole[0]] == [(1, "basic.publish"), (1, "basic.qos")]
    assert len(whole[0][0][3]) == FRAME_MAX
    assert run(data, by_byte=True) == whole


def test_a_frame_over_frame_max_a_byte_at_a_time_is_refused_the_same():
    data = publish(FRAME_MAX + 1)           # one byte over: a frame error, as when whole
    whole = run(data, by_byte=False)
    assert b"FRAME_ERROR" in whole[1]
    assert run(data, by_byte=True) == whole
