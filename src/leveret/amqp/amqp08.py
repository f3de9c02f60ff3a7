"""AMQP 0-8 as RabbitMQ 3.10 speaks it, on top of the 0-9-1 codecs.

RabbitMQ answers the protocol headers ``AMQP 1 1 8 0`` (what most 0-8 clients send:
the 0-8 spec calls its version "8-0") and ``AMQP 1 1 9 1`` (the header printed in the
0-8 spec on the AMQP site, sent by e.g. py-amqplib) with ``connection.start``
version 8-0 and from then on speaks ``rabbit_framing_amqp_0_8``: the handshake,
channels, queues, publishing and consuming work as in 0-9-1, and the same broker
code serves them. Framing, content headers, basic properties and field tables are
the same; what differs is the method table:

* ``connection.close`` / ``close-ok`` are (10, 60) / (10, 61) -- in 0-9-1 those ids
  are ``connection.blocked`` / ``unblocked``; (10, 50) is ``connection.redirect``
  (server to client: sent by a client it is an unexpected method);
* ``channel.open-ok`` has no arguments; ``basic.consume`` has no arguments table;
* 0-9-1's additions are unknown ids in 0-8 -- ``connection.update-secret``,
  ``exchange.bind``/``unbind``, ``basic.nack``, ``confirm.select`` and their -oks --
  so RabbitMQ's reader crashes on them: the socket drops without a frame;
* 0-8's own ``channel.alert`` and the ``file``, ``stream``, ``dtx``, ``tunnel`` and
  ``test`` classes decode (strictly: extra bytes are "cannot decode") and are then
  refused like any method RabbitMQ's channel has no clause for (503 "unimplemented
  method" on a channel, 504 "unexpected method" on channel 0); their content-bearing
  methods first collect their content, whose header must carry their own class id;
* ``connection.start`` announces an empty ``capabilities`` table.

Methods keep the 0-9-1 ``INDEX`` they stand for (a 0-8 ``connection.close`` *is* a
close to the state machine), while ``CLASS_ID``/``METHOD_ID`` and the encoded head
are 0-8's, so error replies quote the ids the client sent. 0-8-only methods get an
``INDEX`` above 32 bits that no 0-9-1 method uses.
"""
from __future__ import annotations

import struct

from . import spec
from .codec import dec_longstr_bytes, dec_shortstr, decode_table_typed, enc_longstr, enc_shortstr, encode_table
from .errors import ConnectionError_, erl_binary

HEADERS = (b"AMQP\x01\x01\x08\x00", b"AMQP\x01\x01\x09\x01")

_H = struct.Struct(">H")
_I = struct.Struct(">I")
_Q = struct.Struct(">Q")


class ConnectionClose08(spec.ConnectionClose):
    """connection.close, 0-8's (10, 60)."""
    __slots__ = ()
    METHOD_ID = 60
    _HEAD = b"\x00\x0a\x00\x3c"


class ConnectionCloseOk08(spec.ConnectionCloseOk):
    """connection.close-ok, 0-8's (10, 61)."""
    __slots__ = ()
    METHOD_ID = 61
    _HEAD = b"\x00\x0a\x00\x3d"


class ChannelOpenOk08(spec.ChannelOpenOk):
    """channel.open-ok without 0-9-1's reserved ``channel-id`` longstr."""
    __slots__ = ()

    def encode(self) -> bytes:
        return self._HEAD

    @classmethod
    def decode(cls, buf, off: int = 4):
        _exact(buf, off)
        self = cls.__new__(cls)
        self.channel_id = ""
        return self


class BasicConsume08(spec.BasicConsume):
    """basic.consume without 0-9-1's ``arguments`` table (decoded as an empty one)."""
    __slots__ = ()

    def encode(self) -> bytes:
        return self._HEAD + _encode_fields("short,shortstr,shortstr,bit,bit,bit,bit", (
            self.ticket, self.queue, self.consumer_tag, self.no_local, self.no_ack,
            self.exclusive, self.nowait))

    @classmethod
    def decode(cls, buf, off: int = 4):
        vals = _decode_fields(buf, off, "short,shortstr,shortstr,bit,bit,bit,bit")
        self = cls.__new__(cls)
        (self.ticket, self.queue, self.consumer_tag, self.no_local, self.no_ack,
         self.exclusive, self.nowait) = vals
        self.arguments = {}
        return self


class Method08(spec.Method):
    """A method that only 0-8 has; ``values`` holds its decoded arguments."""
    __slots__ = ("values",)
    TYPES = ""

    def encode(self) -> bytes:
        return self._HEAD + _encode_fields(self.TYPES, self.values)

    @classmethod
    def decode(cls, buf, off: int = 4):
        self = cls.__new__(cls)
        self.values = _decode_fields(buf, off, cls.TYPES)
        return self

    def __repr__(self):
        return f"{type(self).__name__}{self.values!r}"


# 0-8's methods that 0-9-1 does not have: (class, method) -> (name, argument types, content)
_ONLY_08 = {
    (10, 50): ("connection.redirect", "shortstr,shortstr", False),
    (20, 30): ("channel.alert", "short,shortstr,table", False),
    (70, 10): ("file.qos", "long,short,bit", False),
    (70, 11): ("file.qos-ok", "", False),
    (70, 20): ("file.consume", "short,shortstr,shortstr,bit,bit,bit,bit", False),
    (70, 21): ("file.consume-ok", "shortstr", False),
    (70, 30): ("file.cancel", "shortstr,bit", False),
    (70, 31): ("file.cancel-ok", "shortstr", False),
    (70, 40): ("file.open", "shortstr,longlong", False),
    (70, 41): ("file.open-ok", "longlong", False),
    (70, 50): ("file.stage", "", True),
    (70, 60): ("file.publish", "short,shortstr,shortstr,bit,bit,shortstr", False),
    (70, 70): ("file.return", "short,shortstr,shortstr,shortstr", True),
    (70, 80): ("file.deliver", "shortstr,longlong,bit,shortstr,shortstr,shortstr", False),
    (70, 90): ("file.ack", "longlong,bit", False),
    (70, 100): ("file.reject", "longlong,bit", False),
    (80, 10): ("stream.qos", "long,short,long,bit", False),
    (80, 11): ("stream.qos-ok", "", False),
    (80, 20): ("stream.consume", "short,shortstr,shortstr,bit,bit,bit", False),
    (80, 21): ("stream.consume-ok", "shortstr", False),
    (80, 30): ("stream.cancel", "shortstr,bit", False),
    (80, 31): ("stream.cancel-ok", "shortstr", False),
    (80, 40): ("stream.publish", "short,shortstr,shortstr,bit,bit", True),
    (80, 50): ("stream.return", "short,shortstr,shortstr,shortstr", True),
    (80, 60): ("stream.deliver", "shortstr,longlong,shortstr,shortstr", True),
    (100, 10): ("dtx.select", "", False),
    (100, 11): ("dtx.select-ok", "", False),
    (100, 20): ("dtx.start", "shortstr", False),
    (100, 21): ("dtx.start-ok", "", False),
    (110, 10): ("tunnel.request", "table", True),
    (120, 10): ("test.integer", "octet,short,long,longlong,octet", False),
    (120, 11): ("test.integer-ok", "longlong", False),
    (120, 20): ("test.string", "shortstr,longstr,octet", False),
    (120, 21): ("test.string-ok", "longstr", False),
    (120, 30): ("test.table", "table,octet,octet", False),
    (120, 31): ("test.table-ok", "longlong,longstr", False),
    (120, 40): ("test.content", "", True),
    (120, 41): ("test.content-ok", "long", True),
}

# 0-9-1 methods 0-8 does not have (their ids are unknown to rabbit_framing_amqp_0_8)
_ONLY_091 = (spec.ConnectionClose, spec.ConnectionCloseOk, spec.ConnectionBlocked,
             spec.ConnectionUnblocked, spec.ConnectionUpdateSecret, spec.ConnectionUpdateSecretOk,
             spec.ExchangeBind, spec.ExchangeBindOk, spec.ExchangeUnbind, spec.ExchangeUnbindOk,
             spec.BasicNack, spec.ConfirmSelect, spec.ConfirmSelectOk)


def _method08_class(cid: int, mid: int, name: str, types: str, content: bool) -> type:
    return type("".join(p.capitalize() for p in name.replace("-", ".").split(".")) + "08", (Method08,), {
        "__slots__": (), "CLASS_ID": cid, "METHOD_ID": mid, "INDEX": 1 << 32 | cid << 16 | mid,
        "NAME": name, "CONTENT": content, "TYPES": types, "_HEAD": struct.pack(">HH", cid, mid)})


METHODS = dict(spec.METHODS)
for _cls in _ONLY_091:
    del METHODS[_cls.CLASS_ID << 16 | _cls.METHOD_ID]
for _cls in (ConnectionClose08, ConnectionCloseOk08, ChannelOpenOk08, BasicConsume08):
    METHODS[_cls.CLASS_ID << 16 | _cls.METHOD_ID] = _cls
for (_cid, _mid), (_name, _types, _content) in _ONLY_08.items():
    METHODS[_cid << 16 | _mid] = _method08_class(_cid, _mid, _name, _types, _content)

# what RabbitMQ's channel has no clause for (refused once decoded / once their content is in)
ONLY_08_INDEXES = frozenset(1 << 32 | k for k in (c << 16 | m for c, m in _ONLY_08))

# 0-9-1 methods the server sends, as 0-8 encodes them (None: 0-8 cannot say it)
_OUTGOING = {
    spec.ConnectionClose: lambda m: _recast(m, ConnectionClose08),
    spec.ConnectionCloseOk: lambda m: ConnectionCloseOk08(),
    spec.ChannelOpenOk: lambda m: ChannelOpenOk08(),
    spec.ConnectionBlocked: lambda m: None,
    spec.ConnectionUnblocked: lambda m: None,
    spec.ConnectionUpdateSecretOk: lambda m: None,
    spec.BasicNack: lambda m: None,
    spec.ConfirmSelectOk: lambda m: None,
    spec.ExchangeBindOk: lambda m: None,
    spec.ExchangeUnbindOk: lambda m: None,
}


def outgoing(method: spec.Method) -> spec.Method | None:
    """``method`` as a 0-8 peer must receive it, or None when 0-8 has no such method
    (RabbitMQ's writer would crash encoding it)."""
    f = _OUTGOING.get(type(method))
    return method if f is None else f(method)


def _recast(m: spec.Method, cls: type) -> spec.Method:
    out = cls.__new__(cls)
    for f in m.FIELDS:
        setattr(out, f, getattr(m, f))
    return out


def server_properties(props: dict) -> dict:
    """connection.start's server properties for 0-8: ``capabilities`` is an empty table
    (``rabbit_reader:server_capabilities/1`` has none for 0-8)."""
    return {k: ({} if k == "capabilities" else v) for k, v in props.items()}


# ------------------------------------------------------------------ argument lists

def _exact(buf, off: int) -> None:
    if off != len(buf):
        raise struct.error("extra bytes after the arguments")


def _decode_fields(buf, off: int, types: str) -> tuple:
    """Decode an argument list exactly as RabbitMQ's generated binary pattern matches
    it: bits packed low bit first into shared octets, nothing left over."""
    out = []
    bit = 8
    octet = 0
    for t in types.split(",") if types else ():
        if t == "bit":
            if bit == 8:
                octet = buf[off]
                off += 1
                bit = 0
            out.append(bool(octet >> bit & 1))
            bit += 1
            continue
        bit = 8
        if t == "shortstr":
            v, off = dec_shortstr(buf, off)
        elif t == "longstr":
            v, off = dec_longstr_bytes(buf, off)
        elif t == "octet":
            v = buf[off]
            off += 1
        elif t == "short":
            (v,) = _H.unpack_from(buf, off)
            off += 2
        elif t == "long":
            (v,) = _I.unpack_from(buf, off)
            off += 4
        elif t in ("longlong", "timestamp"):
            (v,) = _Q.unpack_from(buf, off)
            off += 8
        else:  # table
            v, off = decode_table_typed(buf, off)
        out.append(v)
    _exact(buf, off)
    return tuple(out)


def _encode_fields(types: str, values) -> bytes:
    parts = []
    bits = nbits = 0
    for t, v in zip(types.split(",") if types else (), values):
        if t == "bit":
            bits |= (1 if v else 0) << nbits
            nbits += 1
            if nbits == 8:
                parts.append(bytes((bits,)))
                bits = nbits = 0
            continue
        if nbits:
            parts.append(bytes((bits,)))
            bits = nbits = 0
        if t == "shortstr":
            parts.append(enc_shortstr(v))
        elif t == "longstr":
            parts.append(enc_longstr(v))
        elif t == "octet":
            parts.append(bytes((v,)))
        elif t == "short":
            parts.append(_H.pack(v))
        elif t == "long":
            parts.append(_I.pack(v))
        elif t in ("longlong", "timestamp"):
            parts.append(_Q.pack(v))
        else:
            parts.append(encode_table(v))
    if nbits:
        parts.append(bytes((bits,)))
    return b"".join(parts)


def cannot_decode(cls, payload) -> ConnectionError_:
    """501 "cannot decode <<args>>" for ``cls`` (``rabbit_misc:frame_error``)."""
    return ConnectionError_(501, f"FRAME_ERROR - cannot decode {erl_binary(payload[4:])}",
                            cls.CLASS_ID, cls.METHOD_ID)
