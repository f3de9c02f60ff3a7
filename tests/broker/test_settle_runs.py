"""Settlements in one read go channel by channel (``BrokerConnection``, RabbitMQ's usual schedule).

The tracker's backlog split, driven through a sans-I/O connection so that what one read holds
is exact: six messages, consumer "a" on channel 1 and "b" on channel 2 at prefetch 2 holding
"0", "1" and "2", "3", then acks. RabbitMQ's outcomes vary with its scheduling (see
tests/conformance/test_divergences_channel.py, test_backlog_split_with_the_acks_in_one_write);
Leveret gives the dominant one every time, and these pin it and the run's edges.
"""
from __future__ import annotations

import struct

from pamqp import commands as C

from leveret import Broker
from leveret.amqp import spec
from leveret.amqp.codec import BasicProperties
from leveret.amqp.frames import method_frame
from leveret.broker.connection import BrokerConnection

from broker_harness import opening_frames, wire_frames


def frame(ftype: int, ch: int, payload: bytes) -> bytes:
    return struct.pack(">BHI", ftype, ch, len(payload)) + payload + b"\xce"


def ack(ch: int, tag: int) -> bytes:
    return method_frame(ch, spec.BasicAck(delivery_tag=tag))


class Split:
    """The connection after the opening: "a" holds tags 1, 2 of channel 1, "b" of channel 2."""

    def __init__(self):
        self.broker = Broker()
        self.conn = BrokerConnection(self.broker, ("127.0.0.1", 40000))
        parts = [opening_frames((1, 2, 3))]
        parts.append(method_frame(3, spec.QueueDeclare(queue="q")))
        for i in range(6):
            body = str(i).encode()
            parts += [method_frame(3, spec.BasicPublish(exchange="", routing_key="q")),
                      frame(2, 3, struct.pack(">HHQ", 60, 0, 1) + BasicProperties().encode()),
                      frame(3, 3, body)]
        for ch, tag in ((1, "a"), (2, "b")):
            parts += [method_frame(ch, spec.BasicQos(prefetch_count=2)),
                      method_frame(ch, spec.BasicConsume(queue="q", consumer_tag=tag))]
        self.conn.receive_data(b"".join(parts))
        assert self.deliveries() == {1: ["0", "1"], 2: ["2", "3"]}

    def out(self) -> list:
        """(channel-less) frames sent since the last call, content headers left out."""
        return [f for f in wire_frames(self.conn.data_to_send()) if type(f).__name__ != "ContentHeader"]

    def deliveries(self, fs: list | None = None) -> dict:
        """Bodies delivered per channel (consumer tag "a" is channel 1, "b" channel 2)."""
        got: dict[int, list] = {1: [], 2: []}
        ch = None
        for f in self.out() if fs is None else fs:
            if isinstance(f, C.Basic.Deliver):
                ch = 1 if f.consumer_tag == "a" else 2
            elif type(f).__name__ == "ContentBody":
                got[ch].append(f.value.decode())
        return got

    def ready(self) -> int:
        return len(self.broker.vhosts["/"].queues["q"].ready)


def test_acks_of_two_channels_in_one_read_go_channel_by_channel():
    """a, b, a, b in one read: channel 1's two acks first, so "a" gets both remaining: 4/2."""
    s = Split()
    s.conn.receive_data(ack(1, 1) + ack(2, 1) + ack(1, 2) + ack(2, 2))
    assert s.deliveries() == {1: ["4", "5"], 2: []}


def test_the_channel_of_the_first_settlement_goes_first():
    """b, a, b, a: channel 2 first, "b" gets both: 2/4."""
    s = Split()
    s.conn.receive_data(ack(2, 1) + ack(1, 1) + ack(2, 2) + ack(1, 2))
    assert s.deliveries() == {1: [], 2: ["4", "5"]}


def test_acks_in_separate_reads_keep_their_order():
    """The same acks one read each: a, b, a, b as they come, 3/3."""
    s = Split()
    for data in (ack(1, 1), ack(2, 1), ack(1, 2), ack(2, 2)):
        s.conn.receive_data(data)
    assert s.deliveries() == {1: ["4"], 2: ["5"]}


def test_another_frame_ends_the_run():
    """A frame that is no settlement (a qos on channel 3) ends the run: the held ack of
    channel 2 is applied before it, and the acks after it form a new run: 3/3."""
    s = Split()
    s.conn.receive_data(ack(1, 1) + ack(2, 1) + method_frame(3, spec.BasicQos(prefetch_count=5))
                        + ack(1, 2) + ack(2, 2))
    fs = s.out()
    assert s.deliveries(fs) == {1: ["4"], 2: ["5"]}
    assert [type(f).__name__ for f in fs if not type(f).__name__.startswith("Content")] == \
        ["Deliver", "Deliver", "QosOk"]


def test_a_held_ack_that_fails_closes_only_its_channel_after_the_first_channel_went():
    """A held ack with an unknown delivery tag: channel 2 closes (406) once channel 1's acks
    were applied and "a" got both messages; channel 2's later ack is ignored (closing)."""
    s = Split()
    s.conn.receive_data(ack(1, 1) + ack(2, 9) + ack(1, 2) + ack(2, 2))
    fs = s.out()
    assert s.deliveries(fs) == {1: ["4", "5"], 2: []}
    close = fs[-1]
    assert isinstance(close, C.Channel.Close)
    assert (close.reply_code, close.reply_text) == (406, "PRECONDITION_FAILED - unknown delivery tag 9")
    # channel 2 went: its two unacked messages are back
    assert s.ready() == 2


def test_connection_close_in_the_same_read_applies_the_held_acks():
    """connection.close right after the acks: channel 2's held acks are applied (acked, not
    requeued); only "a"'s new messages "4" and "5" go back to the queue."""
    s = Split()
    s.conn.receive_data(ack(1, 1) + ack(2, 1) + ack(1, 2) + ack(2, 2)
                        + method_frame(0, spec.ConnectionClose(reply_code=200, reply_text="bye",
                                                               class_id=0, method_id=0)))
    assert s.ready() == 2
