"""A direct connection: AMQP from inside the broker, for the management API's write operations.

RabbitMQ's management plugin declares, deletes, binds, purges, publishes and gets through
the broker's own channel code, as the user who made the HTTP request: ``queue.declare`` &
co. go through ``rabbit_channel:handle_method`` (``rabbit_mgmt_util:direct_request``), and
``/get`` and ``/publish`` open an Erlang-client *direct* connection (``with_channel``). So
every permission check, equivalence rule and reply text is the channel's. Leveret does the
same: a :class:`DirectClient` runs a sans-I/O :class:`BrokerConnection` logged in as that
user (no password: the HTTP layer has authenticated it; RabbitMQ's direct connections skip
the SASL exchange too), feeds it method frames and reads the frames it answers with. It lives
for one request, within one event-loop turn, so no listing ever shows it.

Errors come back as :class:`~leveret.amqp.errors.AMQPError` with the channel's code and text.
"""
from __future__ import annotations

import struct

from ..amqp import spec
from ..amqp.codec import BasicProperties
from ..amqp.errors import AMQPError, ChannelError, ConnectionError_
from ..amqp.frames import content_frames, method_frame
from .connection import BrokerConnection

_FH = struct.Struct(">BHI")
_CONTENT = struct.Struct(">HHQ")
FRAME_MAX = 131072


class DirectConnection(BrokerConnection):
    """A connection whose login is the given user (its name shows as RabbitMQ's direct
    connections' do: ``<rabbit@host.1.2.3>`` there, ``direct`` here)."""

    def __init__(self, broker, user):
        super().__init__(broker, None)
        self._login = user
        self.name = "direct"

    def on_start_ok(self, m) -> None:
        self.user = self._login


class Delivery:
    """A basic.get-ok (or return) with its content."""

    __slots__ = ("method", "properties", "body")

    def __init__(self, method, properties: BasicProperties, body: bytes):
        self.method, self.properties, self.body = method, properties, body


class DirectClient:
    """One direct connection with channel 1 open (raises AMQPError if the vhost refuses)."""

    def __init__(self, broker, user, vhost: str):
        self.conn = c = DirectConnection(broker, user)
        self.closed = False
        c.receive_data(b"AMQP\x00\x00\x09\x01")
        self._send(0, spec.ConnectionStartOk(client_properties={"product": "management"}, mechanism="PLAIN",
                                             response="", locale="en_US"))
        self._send(0, spec.ConnectionTuneOk(channel_max=1, frame_max=FRAME_MAX, heartbeat=0))
        self._send(0, spec.ConnectionOpen(virtual_host=vhost))
        self._send(1, spec.ChannelOpen())
        self._read()
        if self.conn.vhost is None:     # (a refusal before open-ok closes without a frame)
            self.closed = True
            raise ConnectionError_(530, f"NOT_ALLOWED - access to vhost '{vhost}' refused")

    def _send(self, ch: int, method) -> None:
        self.conn.receive_data(method_frame(ch, method))

    def _read(self) -> list:
        """The frames the broker sent: methods and deliveries; a close raises."""
        data = self.conn.data_to_send()
        out: list = []
        pos, n = 0, len(data)
        pending = None          # [method, properties, body, size]
        while pos + 7 <= n:
            ftype, ch, size = _FH.unpack_from(data, pos)
            payload = data[pos + 7:pos + 7 + size]
            pos += 8 + size
            if ftype == 1:
                m = spec.decode_method(payload)
                if isinstance(m, spec.ConnectionClose):
                    self.closed = True
                    raise ConnectionError_(m.reply_code, m.reply_text, m.class_id, m.method_id)
                if isinstance(m, spec.ChannelClose):
                    self._send(ch, spec.ChannelCloseOk())
                    self.close()
                    raise ChannelError(m.reply_code, m.reply_text, m.class_id, m.method_id)
                if m.CONTENT:
                    pending = [m, None, [], 0]
                else:
                    out.append(m)
            elif ftype == 2 and pending is not None:
                _, _, pending[3] = _CONTENT.unpack_from(payload, 0)
                pending[1] = BasicProperties.decode(payload[12:])
                if pending[3] == 0:
                    out.append(Delivery(pending[0], pending[1], b""))
                    pending = None
            elif ftype == 3 and pending is not None:
                pending[2].append(payload)
                body = b"".join(pending[2])
                if len(body) >= pending[3]:
                    out.append(Delivery(pending[0], pending[1], body))
                    pending = None
        return out

    def call(self, method) -> list:
        """Send ``method`` on channel 1: the frames that answered it (AMQPError on a close)."""
        self._send(1, method)
        return self._read()

    def publish(self, exchange: str, routing_key: str, properties: BasicProperties, body: bytes,
                mandatory: bool = False) -> list:
        parts = [method_frame(1, spec.BasicPublish(exchange=exchange, routing_key=routing_key,
                                                   mandatory=mandatory))]
        raw = properties.encode()
        content_frames(1, _CONTENT.pack(60, 0, len(body)) + raw, body, FRAME_MAX, parts)
        self.conn.receive_data(b"".join(parts))
        return self._read()

    def close(self) -> None:
        """Close the connection (what it holds unacked goes back to its queues)."""
        if self.closed:
            return
        self.closed = True
        try:
            self._send(0, spec.ConnectionClose(reply_code=200, reply_text="Goodbye", class_id=0, method_id=0))
        except AMQPError:
            pass
        if self.conn.vhost is not None or self.conn in self.conn.broker.connections:
            self.conn.connection_lost()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
