"""Fuzz the sans-I/O connection (``BrokerConnection`` on a real ``Broker``, no sockets).

Inputs are arbitrary bytes and *mutated valid streams* (protocol header, the
start-ok/tune-ok/open handshake, channel opens, declares, publishes with content
frames, consumes, acks, ... then random byte flips, truncations, insertions,
deletions and duplications), fed whole and byte-at-a-time, with clock ticks in
between. Invariants, checked after every input:

* no exception escapes ``receive_data`` / ``data_to_send`` / ``tick`` and every
  call returns promptly (a SIGALRM wall-clock guard turns a hang into a failure);
* the output is either exactly the protocol header (bad header, socket closed)
  or a sequence of well-formed frames: type 1/2/3/8, end octet 0xCE, size within
  the negotiated frame_max, method frames decodable, heartbeats on channel 0;
* the first frame is connection.start; a server connection.close carries a hard
  error code (320 402 501-506 530 540, and 541 with RabbitMQ's bare text
  "INTERNAL_ERROR" for what RabbitMQ itself fails on: content properties that do
  not decode, an undecodable method on channel 0); nothing but close-ok follows
  it; a server channel.close carries a soft code on a non-zero channel;
* no exception inside the broker (the connection logs one before answering 541:
  that is a bug and fails the test);
* the connection is still serving, or CLOSING after its connection.close, or
  CLOSED (socket closed without a frame -- RabbitMQ drops the socket on a bad
  header, an unknown method or bad tune-ok values -- or after close-ok).

The deterministic cases at the end pin the codes RabbitMQ 3.10.8 sends (checked
against the real broker with a raw socket).
"""
from __future__ import annotations

import contextlib
import logging
import os
import signal
import struct
import time

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from leveret import Broker
from leveret.amqp import connection as pc
from leveret.amqp import spec
from leveret.amqp.codec import BasicProperties
from leveret.amqp.frames import HEARTBEAT, method_frame
from leveret.broker.connection import BrokerConnection

EXAMPLES = int(os.environ.get("LEVERET_FUZZ_EXAMPLES", "250"))
FUZZ = settings(max_examples=EXAMPLES, deadline=None, derandomize=False,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])

HARD_ERRORS = {320, 402, 501, 502, 503, 504, 505, 506, 530, 540, 541}
SOFT_ERRORS = {311, 312, 313, 403, 404, 405, 406}
ALLOWED_CLOSE = HARD_ERRORS | {403}   # 403: login refused with authentication_failure_close
PEER = ("127.0.0.1", 40123)
CALL_LIMIT = 5.0   # seconds any single call may take before we call it a hang


# ------------------------------------------------------------------ wall-clock guard


class Hang(BaseException):
    """BaseException so that the broker's ``except Exception`` (-> 541) cannot swallow it."""


@contextlib.contextmanager
def wall_clock(seconds: float):
    """Raise Hang in the main thread if the block runs longer than ``seconds``.

    Shares SIGALRM with pytest-timeout: the outer timer is re-armed with its remaining time.
    """
    if not hasattr(signal, "setitimer"):
        yield
        return

    def _alarm(signum, frame):
        raise Hang(f"call did not return within {seconds}s")

    old_handler = signal.signal(signal.SIGALRM, _alarm)
    old_delay, old_interval = signal.setitimer(signal.ITIMER_REAL, seconds)
    t0 = time.monotonic()
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, old_handler)
        if old_delay > 0:
            remaining = old_delay - (time.monotonic() - t0)
            signal.setitimer(signal.ITIMER_REAL, max(remaining, 0.001), old_interval)


# ------------------------------------------------------------------ frame builders


def frame(ftype: int, ch: int, payload: bytes, end: int = 0xCE) -> bytes:
    return struct.pack(">BHI", ftype, ch, len(payload)) + payload + bytes((end,))


def mframe(ch: int, m) -> bytes:
    return method_frame(ch, m)


def content(ch: int, body: bytes, props: BasicProperties | None = None, chunk: int = 4088) -> bytes:
    raw = (props or BasicProperties()).encode()
    out = [frame(2, ch, struct.pack(">HHQ", 60, 0, len(body)) + raw)]
    for i in range(0, len(body), chunk):
        out.append(frame(3, ch, body[i:i + chunk]))
    return b"".join(out)


def plain(user="guest", pw="guest") -> str:
    return f"\0{user}\0{pw}"


def handshake(frame_max=131072, heartbeat=0, channel_max=2047, caps=True) -> list[bytes]:
    props = {"product": "fuzz", "capabilities": {"authentication_failure_close": True,
                                                   "publisher_confirms": True}} if caps else {}
    return [
        spec.PROTOCOL_HEADER,
        mframe(0, spec.ConnectionStartOk(client_properties=props, mechanism="PLAIN",
                                         response=plain(), locale="en_US")),
        mframe(0, spec.ConnectionTuneOk(channel_max=channel_max, frame_max=frame_max, heartbeat=heartbeat)),
        mframe(0, spec.ConnectionOpen(virtual_host="/")),
    ]


QUEUES = ["q1", "q1", "q2", "q2", "amq.gen-x", ""]
EXCHANGES = ["", "", "amq.direct", "amq.fanout", "amq.topic", "amq.headers", "ex1", "ex2"]
EXCHANGE_TYPES = {"ex1": "fanout", "ex2": "headers"}
names = st.sampled_from(QUEUES)
exchanges = st.sampled_from(EXCHANGES)
rarely = st.integers(0, 9).map(lambda n: n == 0)      # a flag that is usually False
small_table = st.dictionaries(st.sampled_from(["x-max-length", "x-message-ttl", "x-match", "a", "x-expires",
                                               "x-queue-type", "x-dead-letter-exchange", "x-max-priority"]),
                              st.one_of(st.integers(-5, 70000), st.sampled_from(["all", "any", "classic", "ex1"]),
                                        st.booleans(), st.none()), max_size=3)
args_st = st.one_of(st.just({}), st.just({}), small_table)
props_st = st.builds(
    BasicProperties,
    content_type=st.none() | st.just("text/plain"),
    headers=st.none() | small_table,
    delivery_mode=st.none() | st.sampled_from([1, 2]),
    priority=st.none() | st.integers(0, 12),
    expiration=st.none() | st.none() | st.none() | st.sampled_from(["0", "100000", "-1", "abc"]),
    user_id=st.none() | st.none() | st.sampled_from(["guest", "guest", "guest", "mallory"]),
)


KINDS = (["publish"] * 8 + ["get"] * 4 + ["consume"] * 2 + ["qos"] * 2 + ["confirm"] * 2 + [
    "qdeclare", "edeclare", "bind", "ack", "nack", "reject", "tx", "purge", "qdelete", "cancel",
    "recover", "flow", "heartbeat", "chclose", "unbind", "edelete"])


def channel_setup(ch: int) -> list[bytes]:
    """Queues and bindings most later operations can use without a channel error."""
    return [mframe(ch, spec.QueueDeclare(queue="q1")), mframe(ch, spec.QueueDeclare(queue="q2")),
            mframe(ch, spec.ExchangeDeclare(exchange="ex1", type="fanout")),
            mframe(ch, spec.QueueBind(queue="q2", exchange="amq.topic", routing_key="#")),
            mframe(ch, spec.QueueBind(queue="q1", exchange="ex1"))]


@st.composite
def channel_ops(draw, ch: int) -> list[bytes]:
    """A few methods/content on one open channel, drawn from what clients really send."""
    ops = channel_setup(ch) if draw(st.integers(0, 4)) else []
    for _ in range(draw(st.integers(1, 14))):
        kind = draw(st.sampled_from(KINDS))
        q, ex = draw(names), draw(exchanges)
        if kind == "qdeclare":
            ops.append(mframe(ch, spec.QueueDeclare(queue=q, durable=draw(rarely), exclusive=draw(rarely),
                                                    auto_delete=draw(rarely), passive=draw(rarely),
                                                    arguments=draw(args_st))))
        elif kind == "edeclare":
            ex = draw(st.sampled_from(["ex1", "ex2", "amq.topic"]))
            typ = EXCHANGE_TYPES.get(ex, "topic") if not draw(rarely) else draw(st.sampled_from(["direct", "bogus"]))
            ops.append(mframe(ch, spec.ExchangeDeclare(exchange=ex, type=typ, passive=draw(rarely),
                                                       durable=ex.startswith("amq."), arguments=draw(args_st))))
        elif kind == "edelete":
            ops.append(mframe(ch, spec.ExchangeDelete(exchange=draw(st.sampled_from(["ex1", "ex2"])))))
        elif kind == "bind":
            ops.append(mframe(ch, spec.QueueBind(queue=q, exchange=ex or "amq.direct",
                                                 routing_key=draw(st.sampled_from(["q1", "#", "a.*", ""])),
                                                 arguments=draw(args_st))))
        elif kind == "unbind":
            ops.append(mframe(ch, spec.QueueUnbind(queue=q, exchange=ex or "amq.direct", routing_key="q1")))
        elif kind == "publish":
            body = draw(st.binary(max_size=64)) if draw(st.integers(0, 3)) else b"x" * draw(st.integers(0, 9000))
            ex = draw(st.sampled_from(["", "", "", "amq.topic", "ex1", "amq.fanout", "amq.direct", "nope"]))
            ops.append(mframe(ch, spec.BasicPublish(exchange=ex, routing_key=draw(st.sampled_from(QUEUES + ["a.b"])),
                                                    mandatory=draw(st.booleans()))))
            ops.append(content(ch, body, draw(props_st)))
        elif kind == "consume":
            ops.append(mframe(ch, spec.BasicConsume(queue=q, consumer_tag=draw(st.sampled_from(["", "c1", "c2"])),
                                                    no_ack=draw(st.booleans()), exclusive=draw(rarely))))
        elif kind == "cancel":
            ops.append(mframe(ch, spec.BasicCancel(consumer_tag=draw(st.sampled_from(["c1", "c2", "zz"])))))
        elif kind == "get":
            ops.append(mframe(ch, spec.BasicGet(queue=q, no_ack=draw(st.booleans()))))
        elif kind == "ack":
            ops.append(mframe(ch, spec.BasicAck(delivery_tag=draw(st.integers(0, 2)), multiple=draw(st.booleans()))))
        elif kind == "nack":
            ops.append(mframe(ch, spec.BasicNack(delivery_tag=draw(st.integers(0, 3)), multiple=draw(st.booleans()),
                                                 requeue=draw(st.booleans()))))
        elif kind == "reject":
            ops.append(mframe(ch, spec.BasicReject(delivery_tag=draw(st.integers(1, 3)), requeue=draw(st.booleans()))))
        elif kind == "recover":
            ops.append(mframe(ch, spec.BasicRecover(requeue=True)))
        elif kind == "qos":
            ops.append(mframe(ch, spec.BasicQos(prefetch_count=draw(st.integers(0, 3)))))
        elif kind == "confirm":
            ops.append(mframe(ch, spec.ConfirmSelect(nowait=draw(rarely))))
        elif kind == "tx":
            ops.append(mframe(ch, draw(st.sampled_from([spec.TxSelect(), spec.TxCommit(), spec.TxRollback()]))))
        elif kind == "purge":
            ops.append(mframe(ch, spec.QueuePurge(queue=q)))
        elif kind == "qdelete":
            ops.append(mframe(ch, spec.QueueDelete(queue=q, if_empty=draw(rarely))))
        elif kind == "flow":
            ops.append(mframe(ch, spec.ChannelFlow(active=True)))
        elif kind == "heartbeat":
            ops.append(HEARTBEAT)
        elif kind == "chclose":
            ops.append(mframe(ch, spec.ChannelClose(reply_code=200, reply_text="bye")))
            ops.append(mframe(ch, spec.ChannelOpen()))
    return ops


@st.composite
def valid_stream(draw) -> list[bytes]:
    """Header + handshake + one or two channels of activity (+ sometimes an orderly close)."""
    frame_max = draw(st.sampled_from([4096, 131072]))
    parts = handshake(frame_max=frame_max, heartbeat=draw(st.sampled_from([0, 0, 5])))
    parts.append(mframe(1, spec.ChannelOpen()))
    parts += draw(channel_ops(1))
    if draw(st.booleans()):
        parts.append(mframe(2, spec.ChannelOpen()))
        parts += draw(channel_ops(2))
        parts += draw(channel_ops(1))
    if draw(st.booleans()):
        parts.append(mframe(0, spec.ConnectionClose(reply_code=200, reply_text="bye")))
    return parts


@st.composite
def mutated_stream(draw) -> bytes:
    buf = bytearray(b"".join(draw(valid_stream())))
    for _ in range(draw(st.integers(1, 6))):
        op = draw(st.sampled_from(["flip", "flip", "set", "insert", "delete", "truncate", "dup"]))
        i = draw(st.integers(0, max(len(buf) - 1, 0)))
        if op == "flip" and buf:
            buf[i] ^= 1 << draw(st.integers(0, 7))
        elif op == "set" and buf:
            buf[i] = draw(st.sampled_from([0, 1, 2, 3, 8, 0x7F, 0xCE, 0xFF]))
        elif op == "insert":
            buf[i:i] = draw(st.binary(min_size=1, max_size=16))
        elif op == "delete" and buf:
            del buf[i:i + draw(st.integers(1, 16))]
        elif op == "truncate":
            del buf[i:]
        elif op == "dup" and buf:
            j = draw(st.integers(i, min(len(buf), i + 64)))
            buf[j:j] = buf[i:j]
    return bytes(buf)


# ------------------------------------------------------------------ output checker


def parse_output(data: bytes):
    """Split server output into frames, asserting each is well-formed. Returns [(type, ch, payload)]."""
    frames = []
    pos = 0
    while pos < len(data):
        assert len(data) - pos >= 8, f"truncated frame at {pos}: {data[pos:pos + 16]!r}"
        ftype, ch, size = struct.unpack_from(">BHI", data, pos)
        assert ftype in (1, 2, 3, 8), f"bad frame type {ftype} at {pos}"
        end = pos + 7 + size
        assert end < len(data), f"frame at {pos} overruns the output"
        assert data[end] == 0xCE, f"frame at {pos} has end octet {data[end]:#x}"
        frames.append((ftype, ch, data[pos + 7:end]))
        pos = end + 1
    return frames


class _Bugs(logging.Handler):
    """Collects the exceptions the connection logs before it answers 541 (bugs)."""

    def __init__(self):
        super().__init__(logging.ERROR)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        if record.exc_info:
            self.records.append(record)


_BUGS = _Bugs()
logging.getLogger("leveret.connection").addHandler(_BUGS)


class Driver:
    """One BrokerConnection with a fresh Broker; collects everything it sends."""

    def __init__(self):
        _BUGS.records.clear()
        self.broker = Broker()
        self.now = 1000.0
        self.conn = BrokerConnection(self.broker, PEER, self.now)
        self.out = bytearray()

    def feed(self, data: bytes, tick_every: int = 0) -> None:
        with wall_clock(CALL_LIMIT):
            self.conn.receive_data(data)
            self.out += self.conn.data_to_send()
            if tick_every:
                self.now += 0.25
                self.conn.tick(self.now, True, True)
                self.out += self.conn.data_to_send()

    def finish(self) -> None:
        with wall_clock(CALL_LIMIT):
            for dt in (0.5, 3.0, 11.0):
                self.now += dt
                self.conn.tick(self.now, False, False)
                self.out += self.conn.data_to_send()

    def check(self) -> None:
        assert not _BUGS.records, [r.getMessage() + "\n" + logging.Formatter().formatException(r.exc_info)
                                   for r in _BUGS.records]
        c = self.conn
        data = bytes(self.out)
        if data.startswith(b"AMQP"):
            assert data == spec.PROTOCOL_HEADER, data[:40]
            assert c.state == pc.CLOSED and c.close_socket
            return
        frames = parse_output(data)
        if not frames:
            assert c.state in (pc.HEADER, pc.CLOSED), c.state
            return
        limit = max(c.frame_max, spec.FRAME_MIN_SIZE)
        server_close = None
        for idx, (ftype, ch, payload) in enumerate(frames):
            assert len(payload) + 8 <= pc.SERVER_FRAME_MAX
            if ftype == 3:
                assert len(payload) + 8 <= limit, (len(payload), limit)
            if ftype == 8:
                assert ch == 0 and payload == b""
            if ftype == 2:
                assert ch != 0 and len(payload) >= 14
                BasicProperties.decode(payload[12:])          # we only forward what decodes
            if server_close is not None:
                assert ftype == 1, f"frame type {ftype} after connection.close"
                assert spec.decode_method(payload).INDEX == spec.ConnectionCloseOk.INDEX, \
                    f"{spec.decode_method(payload).NAME} after connection.close"
                continue
            if ftype != 1:
                continue
            m = spec.decode_method(payload)                   # whatever we send must decode
            if idx == 0:
                assert ch == 0 and m.INDEX == spec.ConnectionStart.INDEX, m
            if m.INDEX == spec.ConnectionClose.INDEX:
                assert ch == 0
                assert m.reply_code in ALLOWED_CLOSE, f"connection.close {m.reply_code} {m.reply_text!r}"
                assert m.reply_code != 541 or m.reply_text == "INTERNAL_ERROR", m.reply_text
                server_close = m
            elif m.INDEX == spec.ChannelClose.INDEX:
                assert ch != 0
                assert m.reply_code in SOFT_ERRORS, f"channel.close {m.reply_code} {m.reply_text!r}"
            elif ch == 0:
                assert m.CLASS_ID == 10, m
        if server_close is not None:
            assert c.state in (pc.CLOSING, pc.CLOSED), c.state
        if c.state == pc.CLOSING:
            assert server_close is not None, "CLOSING without a connection.close"


def run_whole(data: bytes) -> Driver:
    d = Driver()
    d.feed(data)
    d.check()
    d.finish()
    d.check()
    return d


def run_bytewise(data: bytes) -> Driver:
    d = Driver()
    with wall_clock(CALL_LIMIT * 4):
        for i in range(len(data)):
            d.conn.receive_data(data[i:i + 1])
            if i % 97 == 0:
                d.conn.tick(d.now + 0.25, True, True)
                d.now += 0.25
                d.out += d.conn.data_to_send()
    d.feed(b"")
    d.check()
    d.finish()
    d.check()
    return d


def run_chunked(data: bytes, cuts: list[int]) -> Driver:
    d = Driver()
    prev = 0
    for c in sorted(set(min(x, len(data)) for x in cuts)) + [len(data)]:
        d.feed(data[prev:c], tick_every=1)
        prev = c
    d.check()
    d.finish()
    d.check()
    return d


# ------------------------------------------------------------------ property tests


def test_wall_clock_guard_fires():
    """The hang guard really interrupts a call that does not return (and is not an Exception)."""
    with pytest.raises(Hang):
        with wall_clock(0.2):
            while True:
                pass
    assert not issubclass(Hang, Exception)


def test_valid_stream_sanity():
    """The un-mutated generator output drives a real session (handshake, publish, get) without errors."""
    parts = handshake() + [mframe(1, spec.ChannelOpen()),
                           mframe(1, spec.QueueDeclare(queue="q1")),
                           mframe(1, spec.BasicPublish(exchange="", routing_key="q1")),
                           content(1, b"hello", BasicProperties(delivery_mode=2)),
                           mframe(1, spec.BasicGet(queue="q1", no_ack=True)),
                           mframe(0, spec.ConnectionClose(reply_code=200, reply_text="bye"))]
    d = run_whole(b"".join(parts))
    frames = parse_output(bytes(d.out))
    names = [spec.decode_method(p).NAME for t, _, p in frames if t == 1]
    assert names == ["connection.start", "connection.tune", "connection.open-ok", "channel.open-ok",
                     "queue.declare-ok", "basic.get-ok", "connection.close-ok"]
    assert [p for t, _, p in frames if t == 3] == [b"hello"]


@FUZZ
@given(valid_stream())
def test_valid_streams_never_break_the_connection(parts):
    """Unmutated streams: all invariants hold, whole and split at every frame boundary."""
    data = b"".join(parts)
    run_whole(data)
    cuts, pos = [], 0
    for p in parts:
        pos += len(p)
        cuts.append(pos)
    run_chunked(data, cuts)


@FUZZ
@given(mutated_stream(), st.lists(st.integers(0, 40000), max_size=6))
def test_mutated_streams(data, cuts):
    """Mutated handshake+traffic streams: invariants hold fed whole and in random chunks."""
    run_whole(data)
    run_chunked(data, cuts)


@settings(max_examples=max(EXAMPLES // 3, 20), deadline=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(mutated_stream())
def test_mutated_streams_byte_at_a_time(data):
    """Byte-at-a-time delivery of a mutated stream ends in the same place as whole delivery."""
    whole = run_whole(data)
    bytewise = run_bytewise(data[:6000])
    if len(data) <= 6000:
        assert bytewise.conn.state == whole.conn.state


@FUZZ
@given(st.binary(max_size=300))
def test_arbitrary_bytes(data):
    """Arbitrary bytes (mostly a bad protocol header): invariants hold."""
    run_whole(data)
    run_bytewise(data[:64])


@FUZZ
@given(st.binary(max_size=400))
def test_arbitrary_bytes_after_handshake(data):
    """Arbitrary bytes after a valid handshake and channel.open: invariants hold."""
    pre = b"".join(handshake()) + mframe(1, spec.ChannelOpen())
    run_whole(pre + data)


@FUZZ
@given(st.lists(st.tuples(st.sampled_from([1, 2, 3, 8, 0, 4, 9, 206]), st.integers(0, 3),
                          st.binary(max_size=40), st.sampled_from([0xCE, 0xCE, 0xCE, 0x00])), max_size=8))
def test_random_frames_after_handshake(frames):
    """Syntactically framed garbage (random type/channel/payload/end) after a handshake."""
    pre = b"".join(handshake()) + mframe(1, spec.ChannelOpen())
    run_whole(pre + b"".join(frame(t, c, p, e) for t, c, p, e in frames))


# ------------------------------------------------------------------ deterministic cases (RabbitMQ 3.10.8)


def _session(*extra: bytes, frame_max: int = 131072) -> Driver:
    d = Driver()
    d.feed(b"".join(handshake(frame_max=frame_max)) + mframe(1, spec.ChannelOpen()))
    d.out.clear()
    for e in extra:
        d.feed(e)
    d.check_tail = parse_output(bytes(d.out))
    return d


def _connection_close(d: Driver, fatal: bool = False):
    """The one connection.close sent. ``fatal``: a fatal frame error, after which nothing more
    is read (close-ok included) and the socket closes 3 s later, not at once."""
    closes = [spec.decode_method(p) for t, ch, p in d.check_tail
              if t == 1 and ch == 0 and spec.decode_method(p).INDEX == spec.ConnectionClose.INDEX]
    assert len(closes) == 1, [spec.decode_method(p).NAME for t, _, p in d.check_tail if t == 1]
    if fatal:
        assert d.conn.state == pc.CLOSED and not d.conn.close_socket
        assert d.conn.close_deadline == d.conn.last_recv + 3.0
    else:
        assert d.conn.state == pc.CLOSING
    return closes[0]


def test_oversized_frame_is_501():
    """A frame larger than the negotiated frame_max: connection.close 501 frame_too_large."""
    d = _session(struct.pack(">BHI", 1, 1, 200000) + b"\x00" * 100)
    m = _connection_close(d, fatal=True)
    assert (m.reply_code, m.reply_text) == (501, "FRAME_ERROR - type 1, all octets = <<>>: "
                                                 "{frame_too_large,200000,131064}")


def test_oversized_frame_small_frame_max_is_501():
    """With frame_max 4096 a 4097-byte payload is too large; RabbitMQ allows frame_max itself
    (FRAME_SIZE_FUDGE of 8) but quotes frame_max - 8 as the limit."""
    d = _session(frame(3, 1, b"x" * 4097), frame_max=4096)
    m = _connection_close(d, fatal=True)
    assert m.reply_code == 501 and "frame_too_large,4097,4088" in m.reply_text
    d = _session(mframe(1, spec.BasicPublish(exchange="", routing_key="nowhere")),
                 frame(2, 1, struct.pack(">HHQ", 60, 0, 4096) + b"\x00\x00"), frame(3, 1, b"x" * 4096),
                 frame_max=4096)
    assert d.check_tail == []


def test_frame_max_applies_right_after_tune_ok_in_the_same_chunk():
    """Frame size is checked against the tuned frame_max even when tune-ok and the big frame arrive together."""
    d = Driver()
    d.feed(b"".join(handshake(frame_max=4096)) + mframe(1, spec.ChannelOpen()) + frame(3, 1, b"x" * 4097))
    closes = [spec.decode_method(p) for t, ch, p in parse_output(bytes(d.out))
              if t == 1 and spec.decode_method(p).INDEX == spec.ConnectionClose.INDEX]
    assert [(m.reply_code, m.reply_text) for m in closes] == [
        (501, "FRAME_ERROR - type 3, all octets = <<>>: {frame_too_large,4097,4088}")]


def test_bad_frame_end_octet_is_501():
    """A frame whose end octet is not 0xCE: connection.close 501 invalid_frame_end_marker."""
    payload = struct.pack(">HH", 60, 70) + b"\x00\x00\x01q\x00"
    d = _session(frame(1, 1, payload, end=0xCD))
    m = _connection_close(d, fatal=True)
    assert (m.reply_code, m.reply_text) == (
        501, "FRAME_ERROR - type 1, all octets = <<0,60,0,70,0,0,1,113,0>>: {invalid_frame_end_marker,205}")


@pytest.mark.parametrize("cid,mid", [(60, 99), (77, 10)])
def test_unknown_method_drops_the_socket(cid, mid):
    """An unknown class/method id: RabbitMQ 3.10 drops the socket without any close frame."""
    d = _session(frame(1, 1, struct.pack(">HH", cid, mid)))
    assert d.check_tail == []
    assert d.conn.state == pc.CLOSED and d.conn.close_socket


def test_truncated_method_is_501():
    """A known method whose arguments are cut short: connection.close 501 'cannot decode'."""
    d = _session(frame(1, 1, struct.pack(">HH", 50, 10) + b"\x00"))
    m = _connection_close(d)
    assert (m.reply_code, m.reply_text, m.class_id, m.method_id) == (
        501, "FRAME_ERROR - cannot decode <<0>>", 50, 10)


def test_content_header_before_publish_is_505():
    """A content header with no basic.publish before it: connection.close 505."""
    d = _session(frame(2, 1, struct.pack(">HHQ", 60, 0, 1) + b"\x00\x00"))
    m = _connection_close(d)
    assert (m.reply_code, m.reply_text) == (505, "UNEXPECTED_FRAME - expected method frame, "
                                                 "got non method frame instead")


def test_body_before_header_is_505():
    """basic.publish followed by a body frame instead of the header: connection.close 505."""
    d = _session(mframe(1, spec.BasicPublish(exchange="", routing_key="q")), frame(3, 1, b"x"))
    m = _connection_close(d)
    assert m.reply_code == 505


def test_heartbeat_on_channel_1_is_505():
    """A heartbeat frame on channel 1: RabbitMQ 3.10 answers 505 UNEXPECTED_FRAME (not 501)."""
    d = _session(frame(8, 1, b""))
    m = _connection_close(d)
    assert (m.reply_code, m.reply_text) == (505, "UNEXPECTED_FRAME - type 8, all octets = <<>>")


def test_unknown_frame_type_is_501():
    """Frame type 9: connection.close 501 unknown_frame."""
    d = _session(frame(9, 1, b""))
    m = _connection_close(d)
    assert (m.reply_code, m.reply_text) == (501, "FRAME_ERROR - type 9, all octets = <<>>: unknown_frame")


def test_bad_protocol_header_gets_our_header_back():
    """A wrong protocol header: the server writes AMQP 0-9-1's header and closes the socket."""
    d = run_whole(b"AMQP\x00\x00\x09\x02")
    assert bytes(d.out) == spec.PROTOCOL_HEADER
    d = run_whole(b"GET / HTTP/1.1\r\n\r\n")
    assert bytes(d.out) == spec.PROTOCOL_HEADER


def test_frames_after_close_are_ignored():
    """After the server's connection.close only close/close-ok matter; other frames are dropped."""
    d = _session(frame(8, 1, b""))
    _connection_close(d)
    d.out.clear()
    d.feed(mframe(1, spec.QueueDeclare(queue="zz")) + frame(3, 1, b"junk") + frame(9, 0, b"\x00" * 50))
    assert parse_output(bytes(d.out)) == []
    d.feed(mframe(0, spec.ConnectionCloseOk()))
    assert d.conn.state == pc.CLOSED


CLIENT_CLOSE = mframe(0, spec.ConnectionClose(reply_code=200, reply_text="bye"))


@pytest.mark.parametrize("how", ["whole", "bytes"])
def test_frames_after_an_error_in_the_same_read_are_read_closing(how):
    """Regression (found by fuzz/fuzz.py's frames target): the bytes that follow a bad frame in
    the same read were dropped, so a pipelined connection.close got its close-ok only when it
    arrived in a later read. RabbitMQ's reader reads on, closing, whatever the segmentation."""
    d = _session()
    data = frame(8, 1, b"") + mframe(1, spec.QueueDeclare(queue="zz")) + CLIENT_CLOSE
    for chunk in ([data] if how == "whole" else [data[i:i + 1] for i in range(len(data))]):
        d.feed(chunk)
    names = [(spec.decode_method(p).NAME, getattr(spec.decode_method(p), "reply_code", None))
             for t, _, p in parse_output(bytes(d.out)) if t == 1]
    assert names == [("connection.close", 505), ("connection.close-ok", None)]


@pytest.mark.parametrize("bad", [struct.pack(">BHI", 1, 1, 200000) + b"\x00" * 10, frame(1, 1, b"\x00\x14\x00\x28", end=0xCD)],
                         ids=["frame-too-large", "bad-end-octet"])
@pytest.mark.parametrize("how", ["whole", "bytes"])
def test_fatal_frame_error_reads_nothing_more(bad, how):
    """A frame larger than frame_max or with a bad end octet (rabbit_reader:fatal_frame_error):
    connection.close 501, then nothing more is read -- a pipelined connection.close is not
    answered -- and the socket is dropped 3 s after the error."""
    d = _session()
    data = bad + CLIENT_CLOSE
    for chunk in ([data] if how == "whole" else [data[i:i + 1] for i in range(len(data))]):
        d.feed(chunk)
    assert [spec.decode_method(p).reply_code for t, _, p in parse_output(bytes(d.out)) if t == 1] == [501]
    assert not d.conn.close_socket
    d.conn.tick(d.conn.last_recv + 2.9)
    assert not d.conn.close_socket
    d.conn.tick(d.conn.last_recv + 3.0)
    assert d.conn.close_socket


def test_fuzz_file_is_fast_enough():
    """Guard: a single big mutated input is processed quickly (no quadratic buffering)."""
    parts = handshake() + [mframe(1, spec.ChannelOpen()), mframe(1, spec.QueueDeclare(queue="q1"))]
    for i in range(300):
        parts.append(mframe(1, spec.BasicPublish(exchange="", routing_key="q1")))
        parts.append(content(1, b"m%d" % i))
    data = b"".join(parts)
    t = time.perf_counter()
    d = run_bytewise(data)
    assert time.perf_counter() - t < 10
    assert d.conn.state == pc.RUNNING
