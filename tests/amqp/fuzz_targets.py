"""Fuzz targets for the protocol layer, shared by the CI run (``test_fuzz_targets.py``) and the
long runs (``fuzz/fuzz.py``): one harness, five targets.

Every target takes one input (``bytes``) and checks that the code under test has only two
allowed outcomes -- success, or the protocol's own error (an
:class:`~leveret.amqp.errors.AMQPError` from a decoder; a ``connection.close`` /
``channel.close`` frame or a dropped socket from a connection) -- and that every call returns
within :data:`CALL_LIMIT` (a SIGALRM guard turns a hang into :class:`Hang`). Any other exception,
a hang, or output a client could not parse is a failure (``AssertionError``, ``Hang`` or the
exception itself).

* ``tables`` -- ``decode_table`` / ``decode_table_typed``: both give the same verdict; what
  decodes re-encodes (``encode_table``) to bytes that decode equal, and re-encoding that is a
  fixed point; every truncation (each byte boundary) is an error, never a crash.
* ``properties`` -- ``BasicProperties.decode`` and ``check_properties`` give the same verdict
  (the connection checks with one and consumers decode with the other); what decodes
  re-encodes to a fixed point and ``peek_delivery_mode_priority`` agrees with it; every
  prefix is decoded too.
* ``frames`` -- the frame reader (``ProtocolConnection.receive_data``) on a bare protocol
  connection whose hooks accept everything: fed whole, byte by byte and in random chunks, the
  output, the hook calls and the final state are identical, and the output is well-formed.
* ``connection`` -- the state machine (``BrokerConnection`` on a real ``Broker``): sequences of
  well-formed but out-of-order methods (any method of the spec, the handshake's and the
  server's own included) and content frames across channels 0-3. Fed whole, byte by byte and
  in random chunks, the invariants of ``test_connection_fuzz.Driver.check`` hold (RabbitMQ's
  hard/soft reply codes, nothing after connection.close but close-ok, no exception inside the
  broker) and the three deliveries answer with the same methods and reply codes.
* ``session`` -- mutated valid sessions (``fuzz/fuzz_frames.py``'s generator; only under
  ``fuzz/fuzz.py``, since it lives there).

``generate(rnd)`` makes one input (mutated valid encodings, well-formed sequences, or random
bytes); ``check(data)`` runs it. Inputs are plain bytes, so atheris can drive ``check`` too.
"""
from __future__ import annotations

import inspect
import math
import random
import struct
import zlib
from decimal import Decimal

from test_connection_fuzz import (
    CALL_LIMIT, Driver, _BUGS, content, frame, handshake, mframe, parse_output, wall_clock,
)

from leveret.amqp import connection as pc
from leveret.amqp import spec
from leveret.amqp.codec import (
    BasicProperties, Typed, check_properties, decode_table, decode_table_typed, encode_table,
    peek_delivery_mode_priority,
)
from leveret.amqp.errors import AMQPError
from leveret.amqp.frames import HEARTBEAT

__all__ = ["TARGETS", "mutate", "CALL_LIMIT"]


# ------------------------------------------------------------------ shared pieces


def mutate(rnd: random.Random, data: bytes, rounds: int | None = None) -> bytes:
    """Byte-level mutations: bit flips, interesting bytes, insertions, deletions, truncation,
    duplication."""
    buf = bytearray(data)
    for _ in range(rounds if rounds is not None else rnd.randint(1, 8)):
        op = rnd.random()
        i = rnd.randrange(len(buf)) if buf else 0
        if op < 0.35 and buf:
            buf[i] ^= 1 << rnd.randrange(8)
        elif op < 0.5 and buf:
            buf[i] = rnd.choice([0, 1, 2, 3, 8, 0x7F, 0x80, 0xCE, 0xFF])
        elif op < 0.65:
            buf[i:i] = rnd.randbytes(rnd.randint(1, 16))
        elif op < 0.8 and buf:
            del buf[i:i + rnd.randint(1, 32)]
        elif op < 0.9:
            del buf[max(i, 3):]
        elif buf:
            j = min(len(buf), i + rnd.randint(1, 64))
            buf[j:j] = buf[i:j]
    return bytes(buf)


def attempt(fn, *args):
    """``("ok", result)`` or ``("error", exception type)`` for an AMQPError; anything else
    propagates (a failure)."""
    try:
        return "ok", fn(*args)
    except AMQPError as e:
        return "error", type(e)


def same(a, b) -> bool:
    """Deep equality of decoded values: types and tags must match; NaN equals NaN."""
    if isinstance(a, Typed):
        return isinstance(b, Typed) and a.tag == b.tag and same(a.value, b.value)
    if type(a) is not type(b):
        return False
    if isinstance(a, float) and math.isnan(a):
        return math.isnan(b)
    if isinstance(a, dict):
        return list(a) == list(b) and all(same(a[k], b[k]) for k in a)
    if isinstance(a, list):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b))
    return a == b


def _seeded(data: bytes) -> random.Random:
    """A Random derived from the input, so that chunk cuts are reproducible from it alone."""
    return random.Random(zlib.crc32(data))


# ------------------------------------------------------------------ field tables

_NAMES = ["", "a", "x-match", "x-death", "headers", "k\xe9y", "\udcff"]


def rand_value(rnd: random.Random, depth: int = 0) -> Typed:
    tag = rnd.choice("tbBsuIilLfdDSxTVFA" if depth < 4 else "tbBsuIilLfdDSxTV")
    if tag == "t":
        v = rnd.random() < 0.5
    elif tag in "bBsuIilLT":
        bits = {"b": (8, True), "B": (8, False), "s": (16, True), "u": (16, False), "I": (32, True),
                "i": (32, False), "l": (64, True), "L": (64, True), "T": (64, False)}[tag]
        lo, hi = (-(1 << (bits[0] - 1)), (1 << (bits[0] - 1)) - 1) if bits[1] else (0, (1 << bits[0]) - 1)
        v = rnd.choice([lo, hi, 0, 1, -1 if lo else 2, rnd.randint(lo, hi)])
    elif tag == "f":
        v = struct.unpack(">f", struct.pack(">f", rnd.choice([0.0, -1.5, 3.25, float("inf")])))[0]
    elif tag == "d":
        v = rnd.choice([0.0, -0.0, 1e308, 5e-324, float("inf"), float("nan"), rnd.random()])
    elif tag == "D":
        v = Decimal(rnd.choice([0, 1, 12345, 0xFFFFFFFF])).scaleb(-rnd.choice([0, 1, 2, 10, 255]))
    elif tag in "Sx":
        v = rnd.choice([b"", b"abc", b"\xff\xfe", "caf\xe9".encode(), rnd.randbytes(rnd.randint(0, 40))])
    elif tag == "V":
        v = None
    elif tag == "F":
        v = rand_table(rnd, depth + 1)
    else:
        v = [rand_value(rnd, depth + 1) for _ in range(rnd.randint(0, 4))]
    return Typed(tag, v)


def rand_table(rnd: random.Random, depth: int = 0) -> dict:
    return {rnd.choice(_NAMES) + str(i): rand_value(rnd, depth) for i in range(rnd.randint(0, 5 if depth < 2 else 2))}


def deep_table(depth: int, tag: str = "F") -> bytes:
    """A table nested ``depth`` levels deep (tables or arrays): RabbitMQ's parser takes any depth."""
    inner = b""
    for _ in range(depth):
        head = b"\x01kF" if tag == "F" else b"A"      # an entry holding a table / an array holding one
        inner = head + struct.pack(">I", len(inner)) + inner
    if tag == "A":
        inner = b"\x01k" + inner
    return struct.pack(">I", len(inner)) + inner


class _Mutating:
    """Inputs: 10% odd ones (``odd``), 20% a fresh valid encoding (``fresh``), 70% mutants of
    the last fresh one (generating valid encodings costs more than mutating them)."""

    _base = b""

    def generate(self, rnd: random.Random) -> bytes:
        r = rnd.random()
        if r < 0.1:
            return self.odd(rnd, r)
        if r < 0.3:
            self._base = self.fresh(rnd)
            return self._base
        return mutate(rnd, self._base)


class TablesTarget(_Mutating):
    name = "tables"

    def odd(self, rnd: random.Random, r: float) -> bytes:
        if r < 0.02:
            return deep_table(rnd.choice([10, 100, 101, 300, 2000]), rnd.choice("FA"))
        n = rnd.randint(0, 60)
        return struct.pack(">I", n) + rnd.randbytes(n)

    def fresh(self, rnd: random.Random) -> bytes:
        return encode_table(rand_table(rnd))

    def check(self, data: bytes) -> None:
        with wall_clock(CALL_LIMIT):
            self._check(data)

    def _check(self, data: bytes) -> None:
        plain = attempt(decode_table, data)
        typed = attempt(decode_table_typed, data)
        assert plain[0] == typed[0], (plain, typed)
        if plain[0] == "error":
            assert plain[1] is typed[1], (plain, typed)
        else:
            (t, end), (p, end2) = typed[1], plain[1]
            assert end == end2 and 4 <= end <= len(data)
            # lossless: the typed table re-encodes to bytes that decode equal, and that is a fixed point
            enc = encode_table(t)
            t2, end3 = decode_table_typed(enc)
            assert end3 == len(enc) and same(t, t2), (t, t2)
            assert encode_table(t2) == enc
            # the plain decoding of the re-encoded bytes is the plain decoding of the input
            assert same(decode_table(enc)[0], p)
            # as a memoryview and at an offset, the same
            assert same(decode_table_typed(memoryview(b"\x00" + data), 1)[0], t)
        # split at byte boundaries: a table cut short is an error (its length says more is to come) ...
        declared = 4 + struct.unpack_from(">I", data)[0] if len(data) >= 4 else 0
        for cut in _some_cuts(data[:declared]):
            assert attempt(decode_table_typed, data[:cut])[0] == "error", cut
            # ... and a table cut anywhere whose length is then fixed up decodes or is an error,
            # the same for both decoders
            body = data[4:cut]
            reframed = struct.pack(">I", len(body)) + body
            a, b = attempt(decode_table_typed, reframed), attempt(decode_table, reframed)
            assert a[0] == b[0], (cut, a, b)

    def seeds(self) -> list[bytes]:
        rnd = random.Random(7)
        return [encode_table(rand_table(rnd)) for _ in range(32)] + [deep_table(50), deep_table(50, "A")]


# ------------------------------------------------------------------ content properties

_SHORT = ["", "text/plain", "gzip", "amq.rabbitmq.reply-to", "guest", "100", "0", "-1", "abc", "\udcff" * 3]


def rand_properties(rnd: random.Random) -> BasicProperties:
    kw = {}
    for name in BasicProperties.__slots__:
        if rnd.random() < 0.4:
            continue
        if name == "headers":
            kw[name] = rand_table(rnd, 2)
        elif name in ("delivery_mode", "priority"):
            kw[name] = rnd.choice([0, 1, 2, 9, 255])
        elif name == "timestamp":
            kw[name] = rnd.choice([0, 1 << 63, (1 << 64) - 1, 1700000000])
        else:
            kw[name] = rnd.choice(_SHORT)
    return BasicProperties(**kw)


def _props_fields(p: BasicProperties) -> list:
    return [getattr(p, n) for n in BasicProperties.__slots__]


class PropertiesTarget(_Mutating):
    name = "properties"

    def odd(self, rnd: random.Random, r: float) -> bytes:
        return rnd.randbytes(rnd.randint(0, 40))

    def fresh(self, rnd: random.Random) -> bytes:
        return rand_properties(rnd).encode()

    def check(self, data: bytes) -> None:
        with wall_clock(CALL_LIMIT):
            self._check_one(data)
            for cut in _some_cuts(data, 0):                  # split at byte boundaries
                self._check_one(data[:cut])

    def _check_one(self, raw: bytes) -> None:
        fast = attempt(check_properties, raw)
        full = attempt(BasicProperties.decode, raw)
        assert fast[0] == full[0], (raw, fast, full)
        plain = attempt(BasicProperties.decode, raw, False)
        assert plain[0] == full[0], (raw, plain, full)
        if full[0] == "error":
            return
        p = full[1]
        enc = p.encode()
        p2 = BasicProperties.decode(enc)
        assert same(_props_fields(p), _props_fields(p2)), (p, p2)
        assert p2.encode() == enc
        assert peek_delivery_mode_priority(raw) == (p.delivery_mode or 0, p.priority or 0)

    def seeds(self) -> list[bytes]:
        rnd = random.Random(8)
        return [rand_properties(rnd).encode() for _ in range(32)]


# ------------------------------------------------------------------ well-formed methods


def _defaults(cls) -> dict:
    sig = inspect.signature(cls.__init__)
    return {n: p.default for n, p in sig.parameters.items() if n != "self"}


_FIELDS = {cls: _defaults(cls) for cls in spec.METHODS.values()}
_METHODS = list(spec.METHODS.values())
# what clients commonly send, weighted up so that sequences reach deep states
_COMMON = [spec.ChannelOpen, spec.ChannelClose, spec.ChannelCloseOk, spec.QueueDeclare, spec.ExchangeDeclare,
           spec.QueueBind, spec.BasicPublish, spec.BasicPublish, spec.BasicConsume, spec.BasicGet, spec.BasicAck,
           spec.BasicNack, spec.BasicReject, spec.BasicQos, spec.BasicCancel, spec.BasicRecover, spec.ConfirmSelect,
           spec.TxSelect, spec.TxCommit, spec.TxRollback, spec.QueuePurge, spec.QueueDelete, spec.ExchangeDelete,
           spec.ChannelFlow, spec.ConnectionClose, spec.ConnectionCloseOk]
_STRS = ["", "q1", "q2", "ex1", "amq.direct", "amq.topic", "amq.gen-x", "c1", "/", "fanout", "direct",
         "PLAIN", "en_US", "#", "amq.rabbitmq.reply-to"]
_INTS = {"reply_code": [200, 320, 404, 541], "delivery_tag": [0, 1, 2, 3, 7], "prefetch_count": [0, 1, 2, 100],
         "channel_max": [0, 1, 2047, 4000], "frame_max": [0, 4095, 4096, 131072, 200000], "heartbeat": [0, 1, 60],
         "prefetch_size": [0, 0, 1], "class_id": [0, 60], "method_id": [0, 40]}


def rand_method(rnd: random.Random):
    cls = rnd.choice(_COMMON) if rnd.random() < 0.7 else rnd.choice(_METHODS)
    kw = {}
    for name, default in _FIELDS[cls].items():
        if rnd.random() < 0.5:
            continue
        if isinstance(default, bool):
            kw[name] = rnd.random() < 0.3
        elif isinstance(default, int):
            kw[name] = rnd.choice(_INTS.get(name, [0, 1, 2]))
        elif isinstance(default, str):
            if name == "response":
                kw[name] = rnd.choice(["\0guest\0guest", "\0guest\0bad", ""])
            else:
                kw[name] = rnd.choice(_STRS)
        elif isinstance(default, bytes):
            kw[name] = rnd.choice([b"", b"PLAIN", b"\0guest\0guest"])
        elif default is None:
            kw[name] = rnd.choice([{}, {}, {"x-max-length": 1}, {"x-queue-type": "quorum"}, {"x-match": "any"},
                                   {"x-expires": 0}, {"x-message-ttl": -1}])
    return cls(**kw)


def rand_frames(rnd: random.Random, channels=(0, 1, 2, 3), n: int | None = None) -> list[bytes]:
    """Well-formed frames in no particular order: methods, content, heartbeats."""
    out = []
    for _ in range(n if n is not None else rnd.randint(1, 25)):
        ch = rnd.choice(channels)
        r = rnd.random()
        if r < 0.7:
            m = rand_method(rnd)
            if ch == 0 and m.CLASS_ID != 10 and rnd.random() < 0.7:
                ch = rnd.choice(channels[1:])
            out.append(mframe(ch, m))
            if m.CONTENT and rnd.random() < 0.8:
                body = rnd.choice([b"", b"x", rnd.randbytes(rnd.randint(0, 300))])
                out.append(content(ch, body, rand_properties(rnd) if rnd.random() < 0.3 else None,
                                   chunk=rnd.choice([1, 100, 4088])))
        elif r < 0.8:
            out.append(content(ch, rnd.randbytes(rnd.randint(0, 20))))
        elif r < 0.85:
            out.append(frame(3, ch, rnd.randbytes(rnd.randint(0, 20))))
        elif r < 0.9:
            out.append(HEARTBEAT if rnd.random() < 0.8 else frame(8, ch, b""))
        else:
            out.append(mframe(ch, spec.ChannelOpen()))
    return out


def rand_prefix(rnd: random.Random) -> bytes:
    r = rnd.random()
    hs = handshake(frame_max=rnd.choice([4096, 131072]))
    if r < 0.75:
        return b"".join(hs)
    if r < 0.9:
        return b"".join(hs[:rnd.randint(1, 3)])      # stop somewhere in the handshake
    return b""


# ------------------------------------------------------------------ the frame reader


class FrameSink(pc.ProtocolConnection):
    """A bare protocol connection whose hooks accept everything and record what they saw."""

    def __init__(self, now: float):
        super().__init__(now)
        self.seen: list = []

    def on_method(self, ch, method):
        self.seen.append((ch, method.NAME))

    def on_publish(self, ch, method, header, body):
        self.seen.append((ch, method.NAME, bytes(header), bytes(body)))

    def on_channel_close(self, ch):
        self.seen.append((ch, "closed"))


class SinkDriver(Driver):
    def __init__(self):
        _BUGS.records.clear()
        self.now = 1000.0
        self.conn = FrameSink(self.now)
        self.out = bytearray()


# How many byte boundaries a decoder target splits each input at: every one of a short input
# (up to SPLIT_EVERY bytes), else a reproducible sample of SPLIT_SAMPLE. Long runs lower both
# (fuzz/fuzz.py --fast-splits): over millions of inputs the samples cover every position.
SPLIT_EVERY, SPLIT_SAMPLE = 24, 8


def _some_cuts(data: bytes, start: int = 4) -> list[int]:
    """Every byte boundary of a short input; a reproducible sample of a long one's."""
    if len(data) <= SPLIT_EVERY:
        return list(range(start, len(data)))
    return sorted(_seeded(data).sample(range(start, len(data)), SPLIT_SAMPLE))


def _cuts(data: bytes) -> list[int]:
    rnd = _seeded(data)
    n = len(data)
    return sorted(rnd.randrange(n + 1) for _ in range(rnd.randint(1, 12))) if n else []


def _deliver(driver, data: bytes, how: str):
    """Feed ``data`` whole, byte by byte or in random chunks (no clock in between), then check,
    run the clock out and check again."""
    if how == "whole":
        driver.feed(data)
    elif how == "bytes":
        with wall_clock(CALL_LIMIT * 4):
            for i in range(len(data)):
                driver.conn.receive_data(data[i:i + 1])
        driver.feed(b"")
    else:
        prev = 0
        for c in _cuts(data) + [len(data)]:
            driver.feed(data[prev:c])
            prev = c
    driver.check()
    before_clock = bytes(driver.out)
    driver.finish()
    driver.check()
    return before_clock


class FramesTarget:
    name = "frames"
    max_len = 6000

    def generate(self, rnd: random.Random) -> bytes:
        mode = rnd.randrange(4)
        parts = rand_frames(rnd)
        if rnd.random() < 0.3:
            i = rnd.randrange(len(parts) + 1)
            parts.insert(i, rnd.choice([
                struct.pack(">BHI", 3, 1, rnd.choice([4089, 131065, 1 << 31])) + b"x" * 10,   # oversized
                frame(rnd.choice([0, 4, 9, 206]), 1, b"abc"),                                 # bad type
                frame(1, 1, b"\x00\x3c", end=0xCD),                                         # bad end octet
                frame(1, 0, b"\x00"), frame(2, 1, b"\x00\x3c"), frame(8, 0, b"x")]))       # short payloads
        data = bytes((mode,)) + b"".join(parts)
        if rnd.random() < 0.5:
            data = data[:1] + mutate(rnd, data[1:])
        return data[:self.max_len]

    @staticmethod
    def stream(data: bytes) -> bytes:
        if not data:
            return b""
        mode = data[0] & 3
        if mode == 3:
            return data[1:]                       # raw: from the protocol header on
        return b"".join(handshake(frame_max=(4096, 131072, 131072)[mode])) + mframe(1, spec.ChannelOpen()) + data[1:]

    def check(self, data: bytes) -> None:
        stream = self.stream(data[:self.max_len])
        results = []
        for how in ("whole", "bytes", "chunks"):
            d = SinkDriver()
            out = _deliver(d, stream, how)
            results.append((how, out, d.conn.seen, d.conn.state))
        base = results[0]
        for r in results[1:]:
            assert r[1] == base[1], f"output differs fed {r[0]} vs whole"
            assert r[2] == base[2], f"hook calls differ fed {r[0]} vs whole: {r[2]} vs {base[2]}"
            assert r[3] == base[3], f"state differs fed {r[0]} vs whole: {r[3]} vs {base[3]}"

    def seeds(self) -> list[bytes]:
        rnd = random.Random(9)
        return [self.generate(rnd) for _ in range(32)]


# ------------------------------------------------------------------ the connection state machine


def summary(out: bytes) -> list:
    """What a client sees, without the bytes a broker may choose at random (generated names)."""
    if out.startswith(b"AMQP"):
        return ["protocol header"]
    res = []
    for ftype, ch, payload in parse_output(out):
        if ftype == 1:
            m = spec.decode_method(payload)
            res.append((ch, m.NAME, getattr(m, "reply_code", None)))
        else:
            res.append((ch, ftype))
    return res


class ConnectionTarget:
    name = "connection"
    max_len = 8000

    def generate(self, rnd: random.Random) -> bytes:
        data = rand_prefix(rnd) + b"".join(rand_frames(rnd))
        return data[:self.max_len]

    def check(self, data: bytes) -> None:
        data = data[:self.max_len]
        outs = []
        for how in ("whole", "bytes", "chunks"):
            outs.append((how, summary(_deliver(Driver(), data, how))))
        for how, s in outs[1:]:
            assert s == outs[0][1], f"fed {how}: {s}\nfed whole: {outs[0][1]}"

    def seeds(self) -> list[bytes]:
        rnd = random.Random(10)
        return [self.generate(rnd) for _ in range(32)]


TARGETS = {t.name: t for t in (TablesTarget(), PropertiesTarget(), FramesTarget(), ConnectionTarget())}
