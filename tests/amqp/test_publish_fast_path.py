"""The publish hot path of ``ProtocolConnection._parse_frames``, pinned to the general path.

A repeated basic.publish whose header and single body frame are complete in the
same read is handled in one step: ``on_publish`` is called straight from the
frame loop, without ``_on_method_frame`` / ``_on_header_frame`` /
``_on_body_frame``. Every check those make (channel open, not closing and not
mid-content, frame sizes, header class, body size, ``max_message_size``,
resource alarms) must therefore either be repeated by the hot path or make it
fall through. When one was missing, an oversized message was accepted whenever
it arrived in the same read as a repeat of the previous publish (RabbitMQ
closes the channel with 406).

So the same byte stream goes into fresh brokers: in one read, where the hot
path takes every repeated publish it can; byte by byte, where no read ever holds
three frames and only the general path runs; and cut at random points, mixing
both. The bytes sent back and the resulting state (queue contents, channel and
connection state) must be identical, before and after any resource alarm
clears. The streams mix bursts of repeated publishes, other exchanges and keys,
empty, frame-sized, multi-frame and oversized bodies, unknown exchanges,
refused properties, publishes on a closed channel, content interleaved across
channels, confirms, alarms raised between reads or by a publish itself, and a
final framing error right after a publish the hot path could repeat. Wrappers
count which path each publish took, so the comparison cannot pass with the hot
path never run.
"""
from __future__ import annotations

import struct

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from leveret import Broker
from leveret.amqp import spec
from leveret.amqp.codec import BasicProperties
from leveret.amqp.connection import RUNNING
from leveret.amqp.frames import method_frame
from leveret.broker.broker import Settings
from leveret.broker.connection import BrokerConnection

PEER = ("127.0.0.1", 40000)
CAPS = {"capabilities": {"connection.blocked": True, "publisher_confirms": True}}
ALARM = BasicProperties(app_id="alarm")     # a publish with these properties raises an alarm (Run)
ALARM_RAW = ALARM.encode()
EXAMPLES = settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def frame(ftype: int, ch: int, payload: bytes) -> bytes:
    return struct.pack(">BHI", ftype, ch, len(payload)) + payload + b"\xce"


def content(ch: int, body: bytes, props: BasicProperties, chunk: int, class_id: int = 60) -> bytes:
    """A content header frame and the body frames (``chunk`` bytes each)."""
    parts = [frame(2, ch, struct.pack(">HHQ", class_id, 0, len(body)) + props.encode())]
    parts += [frame(3, ch, body[i:i + chunk]) for i in range(0, len(body), chunk)]
    return b"".join(parts)


def publish(ch: int, exchange: str, key: str, body: bytes, props: BasicProperties | None = None,
            chunk: int = 4088, mandatory: bool = False) -> bytes:
    return (method_frame(ch, spec.BasicPublish(exchange=exchange, routing_key=key, mandatory=mandatory))
            + content(ch, body, props or BasicProperties(), chunk))


def opening(frame_max: int) -> bytes:
    """Protocol header, handshake, channels 1 and 2, queues q1 (default exchange, ex1) and
    q2 (amq.topic ``#``)."""
    return b"".join([
        spec.PROTOCOL_HEADER,
        method_frame(0, spec.ConnectionStartOk(client_properties=CAPS, mechanism="PLAIN",
                                               response="\0guest\0guest", locale="en_US")),
        method_frame(0, spec.ConnectionTuneOk(channel_max=16, frame_max=frame_max, heartbeat=0)),
        method_frame(0, spec.ConnectionOpen(virtual_host="/")),
        method_frame(1, spec.ChannelOpen()), method_frame(2, spec.ChannelOpen()),
        method_frame(1, spec.QueueDeclare(queue="q1")), method_frame(1, spec.QueueDeclare(queue="q2")),
        method_frame(1, spec.ExchangeDeclare(exchange="ex1", type="fanout")),
        method_frame(1, spec.QueueBind(queue="q1", exchange="ex1")),
        method_frame(1, spec.QueueBind(queue="q2", exchange="amq.topic", routing_key="#")),
    ])


class Run:
    """A fresh broker and connection; counts the publishes each path delivered."""

    def __init__(self, config: Settings):
        self.broker = Broker(config)
        self.conn = c = BrokerConnection(self.broker, PEER)
        self.out = bytearray()
        self.fast = self.general = 0
        self._content = 0          # > 0 while the general path handles a header or body frame
        on_publish = c.on_publish

        def counted(ch, method, header, body):
            if self._content:
                self.general += 1
            else:
                self.fast += 1
            on_publish(ch, method, header, body)
            if header[12:] == ALARM_RAW:
                # as if this publish pushed memory over the watermark
                self.broker.set_alarm("memory")

        def general(fn):
            def wrapped(ch, payload):
                self._content += 1
                try:
                    fn(ch, payload)
                finally:
                    self._content -= 1
            return wrapped

        c.on_publish = counted
        c._on_header_frame = general(c._on_header_frame)
        c._on_body_frame = general(c._on_body_frame)

    def feed(self, data: bytes, cuts=(), alarms=()) -> Run:
        """Feed ``data`` in reads cut at ``cuts`` (and at ``alarms``, where a resource alarm is
        raised before the next read), then collect the output."""
        bounds = sorted({0, len(data), *cuts, *alarms})
        for a, b in zip(bounds, bounds[1:]):
            if a in alarms:
                self.broker.set_alarm("memory")
            self.conn.receive_data(data[a:b])
        self.out += self.conn.data_to_send()
        return self

    def unblock(self) -> None:
        self.broker.set_alarm(None)
        self.out += self.conn.data_to_send()

    def state(self) -> dict:
        c = self.conn
        v = self.broker.vhosts["/"]
        return {
            "out": bytes(self.out),
            "queues": {name: [(m.id, m.exchange, m.routing_key, m.header, m.body) for m in q.ready]
                       for name, q in v.queues.items()},
            "counts": {name: q.message_count for name, q in v.queues.items()},
            # content assembly (``received`` only means something while a header is held)
            "channels": {n: (cs.closing, cs.pending is not None, cs.header, cs.header and cs.received)
                         for n, cs in c.channels.items()},
            "confirms": {n: (s.publish_seq, s.confirm_sent) for n, s in c.sessions.items()},
            # input held back (once closing, framing is lost: what is left depends on the cuts)
            "conn": (c.state, c.blocked, bytes(c._buf) if c.state == RUNNING else None),
        }


def outcomes(data: bytes, config: Settings, cuts=(), alarms=()) -> tuple:
    """Feed ``data`` in one read, byte by byte and cut at ``cuts``; assert all three end the
    same, then again once any alarm has cleared. Returns the one-read run's hot-path count
    before the clear and its final state."""
    whole = Run(config).feed(data, (), alarms)
    split = Run(config).feed(data, range(len(data)), alarms)
    assert split.fast == 0, "a byte-by-byte feed must never take the hot path"
    fast = whole.fast
    runs = [whole, split, Run(config).feed(data, cuts, alarms)]
    for _ in range(2):
        ref = whole.state()
        for r in runs[1:]:
            assert r.state() == ref
        for r in runs:
            r.unblock()
    return fast, ref


# ------------------------------------------------------------------ stream endings

P3 = method_frame(3, spec.BasicPublish(exchange="", routing_key="q1"))


def endings(chunk: int) -> dict:
    """How a stream may end, on channel 3 right after a publish that makes ``P3`` a repeat: a
    framing error that closes the connection, or a resource alarm (``|``: a read boundary where
    the alarm is raised) and frames that must wait for it to clear. Each is something the hot
    path must see and fall through on."""
    def header(size: int, class_id: int = 60, props: BasicProperties = BasicProperties()) -> bytes:
        return struct.pack(">HHQ", class_id, 0, size) + props.encode()

    qos = method_frame(3, spec.BasicQos(prefetch_count=1))
    big = BasicProperties(headers={"x": "a" * (chunk - 24)})             # a header frame 1 over frame_max
    later = method_frame(3, spec.QueueDeclare(queue="q3")) + P3 + content(3, b"", BasicProperties(), chunk)
    return {
        "class 50": [P3 + content(3, b"x", BasicProperties(), chunk, class_id=50)],
        "class 316": [P3 + content(3, b"x", BasicProperties(), chunk, class_id=316)],
        "header too short": [P3 + frame(2, 3, header(1)[:13]) + frame(3, 3, b"x")],
        "header over frame_max": [P3 + frame(2, 3, header(1, props=big)) + frame(3, 3, b"x")],
        "body over frame_max": [P3 + content(3, b"x" * (chunk + 1), BasicProperties(), chunk + 1)],
        "body frame too long": [P3 + frame(2, 3, header(1)) + frame(3, 3, b"xy")],
        "header end octet": [P3 + frame(2, 3, header(1))[:-1] + b"\x00" + frame(3, 3, b"x")],
        "body end octet": [P3 + frame(2, 3, header(1)) + frame(3, 3, b"x")[:-1] + b"\xcd"],
        "body in two frames": [P3 + content(3, b"x" * 10, BasicProperties(), 7)],
        "method instead of body": [P3 + frame(2, 3, header(len(qos) - 8)) + qos],
        "body on another channel": [P3 + frame(2, 3, header(1)) + frame(3, 1, b"x")],
        "content on another channel": [P3 + content(1, b"x", BasicProperties(), chunk)],
        "empty content on another channel": [P3 + content(1, b"", BasicProperties(), chunk)],
        "publish twice": [P3 + P3 + content(3, b"x", BasicProperties(), chunk)],
        "alarm between reads": ["|", P3 + content(3, b"held", BasicProperties(), chunk) + later],
        "alarm by a publish": [P3 + content(3, b"x", ALARM, chunk) + later],
        "alarm by an empty publish": [P3 + content(3, b"", ALARM, chunk) + later],
    }


def ending(name: str, chunk: int, parts: list) -> list:
    """Append channel 3's opening, its first publish and the ending ``name`` to ``parts``;
    returns the alarm points."""
    parts += [method_frame(3, spec.ChannelOpen()), P3 + content(3, b"ok", BasicProperties(), chunk)]
    alarms = []
    for part in endings(chunk)[name]:
        if part == "|":
            alarms.append(len(b"".join(parts)))
        else:
            parts.append(part)
    return alarms


# ------------------------------------------------------------------ deterministic cases


def test_oversized_repeated_publish_closes_the_channel():
    """max_message_size 1000: two 10-byte then three 2000-byte publishes to one queue, in one read.

    RabbitMQ closes the channel at the first oversized message (406, class 60 method 40) and
    keeps the two small ones; the hot path used to enqueue all five.
    """
    data = opening(131072) + b"".join(publish(1, "", "q1", bytes([i]) * n)
                                      for i, n in enumerate((10, 10, 2000, 2000, 2000)))
    fast, ref = outcomes(data, Settings(max_message_size=1000), cuts=range(0, len(data), 50))
    assert fast == 1                  # the second 10-byte publish took the hot path
    assert [m[4] for m in ref["queues"]["q1"]] == [b"\x00" * 10, b"\x01" * 10]
    assert ref["channels"][1][0]      # closing, waiting for close-ok
    close = method_frame(1, spec.ChannelClose(
        reply_code=406, reply_text="PRECONDITION_FAILED - message size 2000 is larger than configured max size 1000",
        class_id=60, method_id=40))
    assert ref["out"].endswith(close)
    assert ref["out"].count(b"PRECONDITION_FAILED") == 1


def test_alarm_raised_by_a_publish_blocks_before_the_next_frame():
    """A publish that raises a resource alarm blocks the connection right after it, on either
    path: the queue.declare behind it waits for the alarm to clear."""
    data = (opening(131072) + publish(1, "", "q1", b"a") + publish(1, "", "q1", b"b", ALARM)
            + method_frame(1, spec.QueueDeclare(queue="q3")) + publish(1, "", "q1", b""))
    whole = Run(Settings()).feed(data)
    split = Run(Settings()).feed(data, range(len(data)))
    assert (whole.fast, whole.general) == (1, 1)
    assert whole.state() == split.state()
    assert whole.conn.blocked and whole.out.endswith(method_frame(0, spec.ConnectionBlocked(reason="memory")))
    assert "q3" not in whole.broker.vhosts["/"].queues
    whole.unblock()
    split.unblock()
    assert whole.state() == split.state()
    assert "q3" in whole.broker.vhosts["/"].queues and whole.state()["counts"]["q1"] == 3


@pytest.mark.parametrize("max_size", [100, 134217728])
@pytest.mark.parametrize("name", sorted(endings(4088)))
def test_endings(name, max_size):
    """Each ending, after a publish and its repeat, fed in one read, byte by byte and in 13-byte
    reads."""
    parts = [opening(4096), publish(1, "", "q1", b""), publish(1, "", "q1", b"")]
    alarms = ending(name, 4088, parts)
    data = b"".join(parts)
    fast, _ = outcomes(data, Settings(max_message_size=max_size), range(0, len(data), 13), alarms)
    assert fast >= 2


def test_read_ending_inside_a_repeated_publish():
    """A read that ends anywhere inside a repeated publish: the hot path waits for the rest."""
    head = opening(4096) + publish(1, "", "q1", b"first")
    data = head + publish(1, "", "q1", b"second") + publish(1, "", "q1", b"")
    for cut in range(len(head), len(data)):
        assert outcomes(data, Settings(), [cut])[1]["counts"]["q1"] == 3


# ------------------------------------------------------------------ generated streams

TARGETS = [("", "q1"), ("", "q1"), ("", "q2"), ("amq.topic", "a.b"), ("ex1", "x"), ("", "nowhere"),
           ("nope", "q1")]
PROPS = [BasicProperties(), BasicProperties(), BasicProperties(delivery_mode=2, content_type="text/plain"),
         BasicProperties(headers={"k": "v"}, priority=3), BasicProperties(user_id="guest"),
         BasicProperties(expiration="abc"), BasicProperties(user_id="mallory")]
REFUSED_TARGETS = {("nope", "q1")}        # unknown exchange: 404
REFUSED_PROPS = {5, 6}                    # bad expiration, someone else's user_id: 406


@st.composite
def streams(draw):
    """(stream, Settings, cuts, alarms). Starts with a publish and its repeat so the hot path
    runs at least once; tracks which channels the stream closed, to reopen them."""
    frame_max = draw(st.sampled_from([4096, 8192]))
    max_size = draw(st.sampled_from([0, 100, 1000, 5000, 134217728]))
    chunk = frame_max - 8
    sizes = sorted(n for n in {0, 1, 10, 100, 101, 1000, 1001, chunk, chunk + 1, max_size, max_size + 1}
                   if n <= 9000)
    parts = [opening(frame_max), publish(1, "", "q1", b""), publish(1, "", "q1", b"")]
    closing = {1: False, 2: False}
    for i in range(draw(st.integers(1, 8))):
        ch = draw(st.sampled_from([1, 2]))
        kind = draw(st.sampled_from(["burst"] * 4 + ["confirm", "reopen", "interleave", "get"]))
        if kind == "burst":
            t = draw(st.integers(0, len(TARGETS) - 1))
            mandatory = draw(st.booleans())
            for j in range(draw(st.integers(1, 4))):
                n = draw(st.sampled_from(sizes))
                p = draw(st.integers(0, len(PROPS) - 1))
                split = draw(st.sampled_from([chunk, chunk, 7]))       # 7: a body in small frames
                parts.append(publish(ch, *TARGETS[t], bytes([i * 16 + j]) * n, PROPS[p], split, mandatory))
                closing[ch] |= TARGETS[t] in REFUSED_TARGETS or p in REFUSED_PROPS or n > max_size
        elif kind == "confirm":
            parts.append(method_frame(ch, spec.ConfirmSelect()))
        elif kind == "reopen":
            m = spec.ChannelCloseOk() if closing[ch] else spec.ChannelClose(reply_code=200, reply_text="bye")
            parts += [method_frame(ch, m), method_frame(ch, spec.ChannelOpen())]
            closing[ch] = False
        elif kind == "interleave":
            # ch's content held back behind a publish on the other channel (legal AMQP)
            other, m = 3 - ch, spec.BasicPublish(exchange="", routing_key="q1")
            if draw(st.booleans()):
                parts += [method_frame(ch, m), publish(other, "", "q1", b"other"),
                          content(ch, b"late", PROPS[0], chunk)]
            else:
                parts += [method_frame(ch, m), method_frame(other, m), content(ch, b"first", PROPS[0], chunk),
                          content(other, b"second", PROPS[0], chunk)]
        else:
            parts.append(method_frame(ch, spec.BasicGet(queue=draw(st.sampled_from(["q1", "q2"])), no_ack=True)))
    end = draw(st.sampled_from([None, None, *endings(chunk)]))
    alarms = ending(end, chunk, parts) if end is not None else []
    data = b"".join(parts)
    cuts = draw(st.lists(st.integers(0, len(data)), max_size=12))
    return data, Settings(max_message_size=max_size), cuts, alarms


@EXAMPLES
@given(streams())
def test_hot_path_matches_general_path(case):
    """One read, byte-by-byte and randomly cut feeds of the same stream: same bytes out, same state."""
    data, config, cuts, alarms = case
    fast, _ = outcomes(data, config, cuts, alarms)
    assert fast >= 1
