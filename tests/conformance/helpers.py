"""Plain helpers shared by the conformance tests (the fixtures are in ``conftest.py``).

Test modules import them with ``from .helpers import ...``. The raw-socket client is
``tests/rawamqp.py`` (``import rawamqp``: pytest puts ``tests/`` on ``sys.path``).
"""
from __future__ import annotations

import asyncio
import re
import struct
import time

import pika
import pika.exceptions
import pytest
import rawamqp
from pamqp import commands as C
from pamqp import encode


# --------------------------------------------------------------------------- the broker under test
def _server_property(conn, key: str) -> str | None:
    """server_properties[key] of a pika BlockingConnection or an aio-pika connection."""
    if isinstance(conn, pika.BlockingConnection):
        props = conn._impl.server_properties
    else:
        props = conn.transport.connection.server_properties
    p = props.get(key)
    return p.decode() if isinstance(p, bytes) else p


def product(conn) -> str | None:
    """server_properties['product'] of a pika BlockingConnection or an aio-pika connection."""
    return _server_property(conn, "product")


def is_leveret(conn) -> bool:
    """True when the broker under test is Leveret (its product is RabbitMQ's by default, so
    clients branch as they do on RabbitMQ; its platform says Python, RabbitMQ's Erlang/OTP)."""
    return (_server_property(conn, "platform") or "").startswith("Python")


def is_rabbitmq(conn) -> bool:
    """True when the broker under test is RabbitMQ."""
    return not is_leveret(conn)


# --------------------------------------------------------------------------- broker errors
def channel_error(fn, *args, **kw) -> tuple[int, str]:
    """Call ``fn``; it must fail with a channel error. Returns (reply_code, reply_text)."""
    with pytest.raises(pika.exceptions.ChannelClosedByBroker) as ei:
        fn(*args, **kw)
    return ei.value.reply_code, ei.value.reply_text


def connection_error(fn, *args, **kw) -> tuple[int, str]:
    """Call ``fn``; it must fail with a connection error. Returns (reply_code, reply_text)."""
    with pytest.raises(pika.exceptions.ConnectionClosedByBroker) as ei:
        fn(*args, **kw)
    return ei.value.reply_code, ei.value.reply_text


def closed_with(excinfo, code: int, text: str) -> None:
    """The exception caught by ``pytest.raises`` carries exactly this reply code and text."""
    assert excinfo.value.reply_code == code
    assert excinfo.value.reply_text == text


def invalid_arg(key: str, q: str, why: str) -> str:
    """RabbitMQ's 406 text for queue ``q`` (vhost '/') refusing the value of argument ``key``."""
    return f"PRECONDITION_FAILED - invalid arg '{key}' for queue '{q}' in vhost '/': {why}"


def timeout_text(channel: int, ms: int) -> str:
    """RabbitMQ's 406 text for a delivery left unacknowledged past the consumer timeout."""
    return (f"PRECONDITION_FAILED - delivery acknowledgement on channel {channel} timed out. "
            f"Timeout value used: {ms} ms. This timeout value can be configured, "
            "see consumers doc guide to learn more")


# --------------------------------------------------------------------------- declaring and publishing
def safe(name: str) -> str:
    """aio-pika/pamqp only accept [a-zA-Z0-9-_.:] in names; parametrized test ids have more."""
    return re.sub(r"[^a-zA-Z0-9_.:-]", "_", name)


def confirm_channel(conn):
    """A channel in confirm mode: basic_publish returns after the ack, raises NackError on nack."""
    ch = conn.channel()
    ch.confirm_delivery()
    return ch


def declare(ch, name: str, exclusive: bool = True, **args) -> str:
    """Declare queue ``name`` (exclusive unless told) with ``args`` as its arguments; returns the name."""
    ch.queue_declare(name, exclusive=exclusive, arguments=args or None)
    return name


def temp_queue(ch) -> str:
    """A server-named exclusive queue."""
    return ch.queue_declare("", exclusive=True).method.queue


def dlx_to(sink: str, **more) -> dict:
    """Arguments dead-lettering through the default exchange to queue ``sink`` (plus ``more``)."""
    return {"x-dead-letter-exchange": "", "x-dead-letter-routing-key": sink, **more}


def _body(body: bytes | str) -> bytes:
    return body.encode() if isinstance(body, str) else body


def publish(ch, q: str, *messages: bytes | str) -> None:
    """Publish each message body to queue ``q`` through the default exchange."""
    for m in messages:
        ch.basic_publish("", q, _body(m))


def published(ch, key: str, body: bytes | str, props=None, exchange: str = "") -> bool:
    """Publish on a confirm channel (to queue ``key`` through the default exchange unless
    ``exchange`` is given): True if acked, False if nacked."""
    try:
        ch.basic_publish(exchange, key, _body(body), props)
        return True
    except pika.exceptions.NackError:
        return False


# --------------------------------------------------------------------------- queue contents
def count(chan, q: str) -> int:
    """message_count of ``q`` from a passive queue.declare."""
    return chan.queue_declare(q, passive=True).method.message_count


def wait_count(chan, q: str, expected: int, timeout: float = 1.0) -> int:
    """Poll queue.declare(passive) until message_count == expected (publishes are async)."""
    deadline = time.monotonic() + timeout
    while True:
        n = count(chan, q)
        if n == expected or time.monotonic() > deadline:
            return n
        time.sleep(0.02)


def drain_get(chan, q: str) -> list[tuple[bytes, bool]]:
    """All messages in ``q`` as (body, redelivered), by basic.get with auto-ack, in order."""
    out = []
    while True:
        m, _, body = chan.basic_get(q, auto_ack=True)
        if m is None:
            return out
        out.append((body, m.redelivered))


def bodies(chan, q: str) -> list[bytes]:
    """The bodies of all messages in ``q``, by basic.get with auto-ack, in order."""
    return [body for body, _ in drain_get(chan, q)]


def wait_message(chan, q: str, timeout: float = 2.0, auto_ack: bool = True, interval: float = 0.005):
    """Poll basic.get until a message arrives -> (method, properties, body)."""
    deadline = time.monotonic() + timeout
    while True:
        m, p, body = chan.basic_get(q, auto_ack=auto_ack)
        if m is not None:
            return m, p, body
        if time.monotonic() > deadline:
            raise AssertionError(f"no message arrived in {q!r} within {timeout}s")
        time.sleep(interval)


async def aio_wait_get(queue, timeout: float = 2.0, no_ack: bool = True):
    """aio-pika: poll queue.get until a message arrives."""
    deadline = time.monotonic() + timeout
    while (m := await queue.get(no_ack=no_ack, fail=False)) is None:
        assert time.monotonic() < deadline, f"no message in {queue.name!r} within {timeout}s"
        await asyncio.sleep(0.01)
    return m


# --------------------------------------------------------------------------- pika I/O
def pump(conn: pika.BlockingConnection, until, timeout: float = 1.0) -> None:
    """Process pika I/O until until() is true or timeout elapses."""
    deadline = time.monotonic() + timeout
    while not until() and time.monotonic() < deadline:
        conn.process_data_events(0.02)


def settle(conn: pika.BlockingConnection, seconds: float = 0.15) -> None:
    """Process pika I/O for a fixed time (used to show that nothing more arrives)."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        conn.process_data_events(0.02)


# --------------------------------------------------------------------------- existence checks
def _exists(c: pika.BlockingConnection, passive_declare) -> bool:
    """True if ``passive_declare(channel)`` succeeds, False if it fails with 404; closes ``c``."""
    try:
        chan = c.channel()
        try:
            passive_declare(chan)
            return True
        except pika.exceptions.ChannelClosedByBroker as e:
            assert e.reply_code == 404
            return False
    finally:
        c.close()


def queue_exists(connect, name: str) -> bool:
    """Does queue ``name`` exist? Checked on a new connection from the ``connect`` fixture."""
    return _exists(connect(), lambda chan: chan.queue_declare(name, passive=True))


def exchange_exists(broker_url, name: str) -> bool:
    """Does exchange ``name`` exist? Checked on a new connection."""
    return _exists(pika.BlockingConnection(pika.URLParameters(broker_url)),
                   lambda chan: chan.exchange_declare(name, passive=True))


# --------------------------------------------------------------------------- raw wire (rawamqp)
def declare_raw_arg(c, channel: int, q: str, key: str, field: bytes):
    """queue.declare(exclusive) whose arguments table holds ``key`` with the raw encoded ``field``
    (type octet + value); returns the reply frame."""
    entry = encode.short_string(key) + field
    args = (struct.pack(">H", 0) + encode.short_string(q) + bytes([0b00100])  # bit 2: exclusive
            + struct.pack(">I", len(entry)) + entry)
    c.send_frame(rawamqp.FRAME_METHOD, channel, rawamqp.method_payload(50, 10, args))
    return c.read_frame_skip_heartbeats()[1]


def raw_wait_get(c, channel: int, q: str, timeout: float = 2.0) -> C.Basic.GetOk:
    """basic.get (no-ack) on an open raw channel, polling until a message is there; returns the
    GetOk (its content frames follow: ``read_content``)."""
    deadline = time.monotonic() + timeout
    while True:
        c.send_method(channel, C.Basic.Get(queue=q, no_ack=True))
        reply = c.read_frame_skip_heartbeats()[1]
        if isinstance(reply, C.Basic.GetOk):
            return reply
        assert isinstance(reply, C.Basic.GetEmpty), reply
        assert time.monotonic() < deadline, f"no message in {q!r}"
        time.sleep(0.01)


def read_content(c) -> tuple[dict, bytes]:
    """After a Deliver/GetOk method frame: read the header and body frames -> (decoded properties, body)."""
    ftype, _ch, payload = c.read_raw_frame()
    assert ftype == 2
    size = struct.unpack_from(">Q", payload, 4)[0]
    body = b""
    while len(body) < size:
        body += c.read_raw_frame()[2]
    return decode_properties(payload), body


# ---- typed AMQP field-table decoder: values come back as (type-octet, value), keys in wire order

def _shortstr(b: bytes, i: int):
    n = b[i]
    return b[i + 1:i + 1 + n].decode(), i + 1 + n


def _value(b: bytes, i: int):
    t = chr(b[i])
    i += 1
    fixed = {"t": ">B", "b": ">b", "B": ">B", "s": ">h", "u": ">H", "I": ">i", "i": ">I",
             "l": ">q", "f": ">f", "d": ">d", "T": ">Q"}
    if t in fixed:
        (v,) = struct.unpack_from(fixed[t], b, i)
        return t, v, i + struct.calcsize(fixed[t])
    if t == "D":
        return t, (b[i], struct.unpack_from(">i", b, i + 1)[0]), i + 5
    if t in "Sx":
        (n,) = struct.unpack_from(">I", b, i)
        return t, b[i + 4:i + 4 + n], i + 4 + n
    if t == "V":
        return t, None, i
    if t == "F":
        v, i = _table(b, i)
        return t, v, i
    if t == "A":
        (n,) = struct.unpack_from(">I", b, i)
        i += 4
        end, out = i + n, []
        while i < end:
            tt, v, i = _value(b, i)
            out.append((tt, v))
        return t, out, i
    raise AssertionError(f"unknown field type {t!r}")


def _table(b: bytes, i: int):
    (n,) = struct.unpack_from(">I", b, i)
    i += 4
    end, out = i + n, []
    while i < end:
        k, i = _shortstr(b, i)
        t, v, i = _value(b, i)
        out.append((k, t, v))
    return out, i


_PROPS = ["content_type", "content_encoding", "headers", "delivery_mode", "priority", "correlation_id",
          "reply_to", "expiration", "message_id", "timestamp", "type", "user_id", "app_id", "cluster_id"]


def decode_properties(payload: bytes) -> dict:
    """Content-header frame payload -> {property: value}; headers as a typed, ordered list of
    (key, type-octet, value)."""
    _cls, _weight, _size, flags = struct.unpack_from(">HHQH", payload, 0)
    i, out = 14, {}
    for n, name in enumerate(_PROPS):
        if not flags & (1 << (15 - n)):
            continue
        if name == "headers":
            out[name], i = _table(payload, i)
        elif name in ("delivery_mode", "priority"):
            out[name], i = payload[i], i + 1
        elif name == "timestamp":
            out[name], i = struct.unpack_from(">Q", payload, i)[0], i + 8
        else:
            out[name], i = _shortstr(payload, i)
    return out
