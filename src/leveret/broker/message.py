"""The message: one immutable publish, shared by every queue it was routed to.

A message keeps the content header *exactly as the publisher sent it*
(``header``: class, weight, body size, property flags and list) and forwards
it byte for byte on delivery, as RabbitMQ forwards ``properties_bin``. The few
properties the broker must read are decoded on demand (:attr:`properties`).

``id`` is a broker-wide sequence number taken when the message enters its
queues (at publish, or at ``tx.commit`` for a transactional publish). Because one
event loop does all enqueueing in order, ``id`` order is enqueue order in every
queue, so a queue can put requeued messages back in their original position by
``id`` — anything that holds a message back before enqueueing it must re-stamp it.
"""
from __future__ import annotations

from ..amqp.codec import BasicProperties, Typed, peek_delivery_mode_priority


class Message:
    __slots__ = ("id", "exchange", "routing_key", "ex_rk", "header", "body",
                 "persistent", "priority", "_props", "size", "flags", "bcc")

    def __init__(self, mid: int, exchange: str, routing_key: str, ex_rk: bytes, header: bytes, body: bytes):
        self.id = mid
        self.exchange = exchange
        self.routing_key = routing_key
        self.ex_rk = ex_rk            # pre-encoded exchange + routing key shortstrs for deliver
        self.header = header
        self.body = body
        self.size = len(body)
        flags = self.flags = (header[12] << 8) | header[13]
        self._props = None
        if flags & 0x1800:
            if flags & 0xE000:
                # a field before them must be decoded anyway: keep the result
                p = self._props = BasicProperties.decode(header[12:])
                dm, pr = p.delivery_mode or 0, p.priority or 0
            else:
                dm, pr = peek_delivery_mode_priority(header[12:])
        else:
            dm = pr = 0
        self.persistent = dm == 2
        self.priority = pr
        self.bcc = None               # BCC routing keys (removed from the headers at publish)

    @classmethod
    def from_record(cls, mid: int, ex_rk: bytes, header: bytes, body: bytes) -> "Message":
        """A message read back from the store (``ex_rk`` is the two encoded shortstrs)."""
        n = ex_rk[0]
        exchange = ex_rk[1:1 + n].decode("utf-8", "surrogateescape")
        routing_key = ex_rk[2 + n:].decode("utf-8", "surrogateescape")
        return cls(mid, exchange, routing_key, ex_rk, header, body)

    @property
    def properties(self) -> BasicProperties:
        p = self._props
        if p is None:
            p = self._props = BasicProperties.decode(self.header[12:])
        return p

    def set_properties(self, props: BasicProperties) -> None:
        """Replace the content properties (re-encoded; the header frame is rebuilt)."""
        raw = props.encode()
        self.header = self.header[:12] + raw
        self.flags = (raw[0] << 8) | raw[1]
        self._props = props

    def ttl_ms(self) -> int | None:
        """The ``expiration`` property as milliseconds (validated at publish)."""
        exp = self.properties.expiration
        if exp is None:
            return None
        try:
            return max(0, int(exp))
        except ValueError:
            return None

    def copy(self) -> "Message":
        m = Message.__new__(Message)
        for k in Message.__slots__:
            setattr(m, k, getattr(self, k))
        return m

    def with_header(self, name: str, tag: str, value) -> "Message":
        """A copy (same id) whose headers carry ``name`` (e.g. quorum's ``x-delivery-count``)."""
        props = BasicProperties.decode(self.header[12:])
        headers = props.headers or {}
        headers[name] = Typed(tag, value)
        # RabbitMQ re-sorts the table (bytewise by key) when it adds a header
        props.headers = {k: headers[k] for k in sorted(headers, key=lambda k: k.encode("utf-8", "surrogateescape"))}
        m = self.copy()
        m.set_properties(props)
        return m

    def without_header(self, name: str) -> "Message":
        if name not in self.headers:
            return self
        props = BasicProperties.decode(self.header[12:])
        del props.headers[name]
        m = self.copy()
        m.set_properties(props)
        return m

    @property
    def headers(self) -> dict:
        return self.properties.headers or {}

    def __repr__(self):
        return f"<Message {self.id} {self.exchange!r}/{self.routing_key!r} {self.size}B>"
