"""The hand-built frame encoders of ``leveret.amqp.frames``, pinned to the generated codec.

``deliver_frames``, ``get_ok_frames``, ``return_frames`` and ``ack_frame`` run
once per delivered, fetched, returned or confirmed message, so they skip the
generated method classes: one ``struct.pack`` for the frame header, pre-encoded
consumer tag and exchange/routing-key shortstrs spliced in, the content header
forwarded as the publisher sent it, and (deliver) the three frames of a
one-frame body built in a single join. Nothing but these tests says they still
encode what the specification-generated ``spec.BasicDeliver`` & co. encode.

So for arbitrary channels, consumer tags, delivery tags (the whole 64 bits),
flags, exchange and routing-key strings (non-ASCII, arbitrary bytes, 255-byte
ones), message counts, reply codes and texts, real content headers and bodies
(empty, small, exactly ``frame_max - 8``, one byte over, several frames) at
``frame_max`` from 4096 to 131072, the hand-built bytes must equal
``method_frame(ch, spec.X(...))`` + a header frame + body frames cut every
``frame_max - 8`` bytes, built here independently. pamqp, a client codec that
shares no code with Leveret, decodes the same bytes as a second oracle
(whenever the strings are UTF-8, which is all pamqp reads).
"""
from __future__ import annotations

import struct

from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from pamqp import commands as pc
from pamqp import frame as pf
from pamqp.body import ContentBody
from pamqp.header import ContentHeader

from leveret.amqp import spec
from leveret.amqp.codec import BasicProperties, enc_shortstr
from leveret.amqp.frames import ack_frame, deliver_frames, get_ok_frames, method_frame, return_frames

EXAMPLES = settings(max_examples=150, deadline=None,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
PATTERN = bytes(range(256)) * 1540        # bodies are slices of this: up to 255 + 3 * (131072 - 8) bytes
U64 = 2 ** 64                              # pamqp reads a delivery tag as *signed* 64-bit: compared mod 2**64


def frame(ftype: int, ch: int, payload: bytes) -> bytes:
    return struct.pack(">BHI", ftype, ch, len(payload)) + payload + b"\xce"


def expected(ch: int, method: spec.Method, header: bytes, body: bytes, frame_max: int) -> bytes:
    """The general encoding: method frame, header frame, body frames of at most frame_max - 8."""
    chunk = frame_max - 8
    return (method_frame(ch, method) + frame(2, ch, header)
            + b"".join(frame(3, ch, body[i:i + chunk]) for i in range(0, len(body), chunk)))


def built(fn, *args) -> bytes:
    """Call a hand-built encoder; it must append to ``parts``, leaving what was there."""
    parts = [b"before"]
    fn(*args, parts)
    assert parts[0] == b"before"
    return b"".join(parts[1:])


def unmarshal(data: bytes) -> list:
    """pamqp's reading of ``data``: [(channel, frame)], every byte accounted for."""
    frames = []
    while data:
        n, ch, f = pf.unmarshal(data)
        frames.append((ch, f))
        data = data[n:]
    return frames


def utf8(*strings: str) -> bool:
    try:
        for s in strings:
            s.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


# ------------------------------------------------------------------ strategies

channels = st.integers(0, 65535)
tags = st.one_of(st.integers(0, 2 ** 64 - 1), st.sampled_from([0, 1, 2 ** 32, 2 ** 63, 2 ** 64 - 1]))


def _fits(s: str) -> bool:
    return len(s.encode("utf-8", "surrogateescape")) <= 255


shortstrs = st.one_of(
    st.text(max_size=40).filter(_fits),                                    # any Unicode, as UTF-8
    st.binary(max_size=255).map(lambda b: b.decode("utf-8", "surrogateescape")),   # any bytes
    st.sampled_from(["", "amq.direct", "a" * 255, "é" * 127 + "x", "\u20ac" * 85, "\U0001f407" * 63 + "abc"]),
)
utf8_text = st.text(st.characters(blacklist_categories=("Cs",)), max_size=20)
properties = st.builds(
    BasicProperties,
    content_type=st.none() | utf8_text,
    headers=st.none() | st.dictionaries(st.text("abcxyz", min_size=1, max_size=5),
                                        st.integers(-2 ** 31, 2 ** 31 - 1) | utf8_text, max_size=4),
    delivery_mode=st.none() | st.sampled_from([1, 2]),
    priority=st.none() | st.integers(0, 255),
    correlation_id=st.none() | utf8_text,
    message_id=st.none() | utf8_text,
    app_id=st.none() | utf8_text,
)


@st.composite
def contents(draw):
    """(header, body, frame_max): a real content header and a body at or around the frame limit."""
    frame_max = draw(st.sampled_from([4096, 4097, 8192, 65536, 131072]) | st.integers(4096, 131072))
    chunk = frame_max - 8
    size = draw(st.sampled_from([0, 1, chunk - 1, chunk, chunk + 1, 2 * chunk, 2 * chunk + 1])
                | st.integers(0, 64) | st.integers(0, 3 * chunk))
    start = draw(st.integers(0, 255))
    body = PATTERN[start:start + size]
    props = draw(properties)
    header = struct.pack(">HHQ", 60, draw(st.integers(0, 65535)), len(body)) + props.encode()
    return header, body, frame_max, props


def check_content(frames: list, ch: int, header: bytes, body: bytes, props: BasicProperties, frame_max: int):
    """pamqp's header and body frames agree with what was encoded."""
    (hch, h), *rest = frames
    assert hch == ch and isinstance(h, ContentHeader) and h.body_size == len(body)
    for name in ("content_type", "delivery_mode", "priority", "correlation_id", "message_id", "app_id"):
        assert getattr(h.properties, name) == getattr(props, name)
    assert (h.properties.headers or None) == (props.headers or None)
    assert all(c == ch and isinstance(b, ContentBody) and len(b.value) <= frame_max - 8 for c, b in rest)
    assert b"".join(b.value for _, b in rest) == body


# ------------------------------------------------------------------ the encoders


@EXAMPLES
@given(channels, shortstrs, tags, st.booleans(), shortstrs, shortstrs, contents())
@example(1, "amq.ctag-x", 2 ** 64 - 1, True, "", "q", (struct.pack(">HHQ", 60, 0, 4088) + b"\x00\x00",
                                                       PATTERN[:4088], 4096, BasicProperties()))
def test_deliver_frames(ch, ctag, tag, redelivered, exchange, key, content):
    header, body, frame_max, props = content
    method = spec.BasicDeliver(consumer_tag=ctag, delivery_tag=tag, redelivered=redelivered,
                               exchange=exchange, routing_key=key)
    data = built(deliver_frames, ch, enc_shortstr(ctag), tag, redelivered,
                 enc_shortstr(exchange) + enc_shortstr(key), header, body, frame_max)
    assert data == expected(ch, method, header, body, frame_max)
    if utf8(ctag, exchange, key):
        (mch, m), *rest = unmarshal(data)
        assert mch == ch and isinstance(m, pc.Basic.Deliver)
        assert (m.consumer_tag, m.delivery_tag % U64, m.redelivered, m.exchange, m.routing_key) == \
            (ctag, tag, redelivered, exchange, key)
        check_content(rest, ch, header, body, props, frame_max)


@EXAMPLES
@given(channels, tags, st.booleans(), shortstrs, shortstrs, st.integers(0, 2 ** 32 - 1), contents())
def test_get_ok_frames(ch, tag, redelivered, exchange, key, count, content):
    header, body, frame_max, props = content
    method = spec.BasicGetOk(delivery_tag=tag, redelivered=redelivered, exchange=exchange, routing_key=key,
                             message_count=count)
    data = built(get_ok_frames, ch, tag, redelivered, enc_shortstr(exchange) + enc_shortstr(key), count,
                 header, body, frame_max)
    assert data == expected(ch, method, header, body, frame_max)
    if utf8(exchange, key):
        (mch, m), *rest = unmarshal(data)
        assert mch == ch and isinstance(m, pc.Basic.GetOk)
        assert (m.delivery_tag % U64, m.redelivered, m.exchange, m.routing_key, m.message_count) == \
            (tag, redelivered, exchange, key, count)
        check_content(rest, ch, header, body, props, frame_max)


@EXAMPLES
@given(channels, st.integers(0, 65535), shortstrs, shortstrs, shortstrs, contents())
def test_return_frames(ch, code, text, exchange, key, content):
    header, body, frame_max, props = content
    method = spec.BasicReturn(reply_code=code, reply_text=text, exchange=exchange, routing_key=key)
    data = built(return_frames, ch, code, text, enc_shortstr(exchange) + enc_shortstr(key), header, body, frame_max)
    assert data == expected(ch, method, header, body, frame_max)
    if utf8(text, exchange, key):
        (mch, m), *rest = unmarshal(data)
        assert mch == ch and isinstance(m, pc.Basic.Return)
        assert (m.reply_code, m.reply_text, m.exchange, m.routing_key) == (code, text, exchange, key)
        check_content(rest, ch, header, body, props, frame_max)


@settings(max_examples=300, deadline=None)
@given(channels, tags, st.booleans())
def test_ack_frame(ch, tag, multiple):
    data = ack_frame(ch, tag, multiple)
    assert data == method_frame(ch, spec.BasicAck(delivery_tag=tag, multiple=multiple))
    [(mch, m)] = unmarshal(data)
    assert mch == ch and isinstance(m, pc.Basic.Ack) and (m.delivery_tag % U64, m.multiple) == (tag, multiple)
