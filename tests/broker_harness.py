"""In-process pieces for unit tests of the broker's own modules (no sockets, no event loop).

A real :class:`~leveret.broker.broker.Broker` (memory store unless a data directory is
given) supplies vhosts, message ids and flow control; :class:`FakeChannel` stands in for a
channel where a queue delivers, recording what it was handed.
"""
from __future__ import annotations

import struct

from pamqp import frame

from leveret.amqp import spec
from leveret.amqp.codec import BasicProperties, Typed, enc_shortstr
from leveret.amqp.frames import method_frame
from leveret.broker.broker import Broker
from leveret.broker.message import Message
from leveret.broker.queue import Consumer, new_queue
from leveret.settings import Settings


def wire_frames(data: bytes) -> list:
    """The frames (pamqp objects) in bytes a sans-I/O connection sent."""
    out = []
    while data:
        n, _ch, f = frame.unmarshal(data)
        out.append(f)
        data = data[n:]
    return out


def opening_frames(channels=(1, 2, 3)) -> bytes:
    """What a client sends to log in as guest to vhost "/" (heartbeats off) and open ``channels``,
    for a sans-I/O :class:`~leveret.broker.connection.BrokerConnection`."""
    parts = [
        spec.PROTOCOL_HEADER,
        method_frame(0, spec.ConnectionStartOk(client_properties={}, mechanism="PLAIN",
                                               response="\0guest\0guest", locale="en_US")),
        method_frame(0, spec.ConnectionTuneOk(channel_max=16, frame_max=131072, heartbeat=0)),
        method_frame(0, spec.ConnectionOpen(virtual_host="/")),
    ]
    parts += [method_frame(ch, spec.ChannelOpen()) for ch in channels]
    return b"".join(parts)


def make_broker(**settings) -> Broker:
    return Broker(Settings(port=0, **settings))


def message(broker, body: bytes = b"x", exchange: str = "", routing_key: str = "q", **props) -> Message:
    raw = BasicProperties(**props).encode()
    header = struct.pack(">HHQ", 60, 0, len(body)) + raw
    ex_rk = enc_shortstr(exchange) + enc_shortstr(routing_key)
    return Message(broker.new_message_id(), exchange, routing_key, ex_rk, header, body)


def typed(**args) -> dict:
    """x-arguments as a client's declare carries them (``Typed`` values)."""
    out = {}
    for k, v in args.items():
        k = k.replace("_", "-")
        if isinstance(v, bool):
            out[k] = Typed("t", v)
        elif isinstance(v, int):
            out[k] = Typed("l", v)
        else:
            out[k] = Typed("S", v.encode())
    return out


def queue(broker, name: str = "q", vhost: str = "/", **kwargs):
    v = broker.vhosts[vhost]
    q = new_queue(name, v, store=broker.store, **kwargs)
    v.add_queue(q)
    return q


class FakeChannel:
    """What a queue needs of a channel: credit flags, and ``deliver`` (recorded)."""

    def __init__(self, name: str = "ch"):
        self.name = name
        self.deliverable = True
        self.closed = False
        self.global_prefetch = 0
        self.unacked_count = 0
        self.stat_redeliver = 0             # (a queue counts redeliveries on the channel too)
        self.delivered: list = []           # (consumer tag, message, redelivered)

    def deliver(self, c, q, msg, redelivered: bool) -> None:
        if not c.no_ack:
            c.unacked += 1
            self.unacked_count += 1
        self.delivered.append((c.tag, msg, redelivered))

    def global_credit(self, c) -> bool:
        """The channel-wide window (the real channel's also suspends the queue)."""
        return self.unacked_count < self.global_prefetch

    def settle(self, c, q, msg) -> None:
        """The client acked ``msg`` (credit back, the queue forgets it)."""
        c.unacked -= 1
        self.unacked_count -= 1
        q.ack(msg)


def consumer(q, tag: str, channel: FakeChannel | None = None, prefetch: int = 0, no_ack: bool = False,
             priority: int = 0, add: bool = True) -> Consumer:
    c = Consumer(tag, enc_shortstr(tag), channel or FakeChannel(), q, no_ack, False, prefetch, None, priority)
    if add:
        q.add_consumer(c)
    return c


def bodies(msgs) -> list[bytes]:
    return [m.body for m in msgs]
