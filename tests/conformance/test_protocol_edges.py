"""Protocol edges: what RabbitMQ 3.10.8 does with odd (but framed) input, byte for byte.

Every test drives a raw socket (``tests/rawamqp.py``). Replies are read undecoded where
pamqp could not decode them (0-8 frames, reply texts that are not UTF-8), and
connection.close frames are parsed by hand (``close_frame``).

Behaviour pinned down here (each section names the RabbitMQ code it follows):

* AMQP 0-8 (headers ``AMQP 1 1 8 0`` and ``AMQP 1 1 9 1``): connection.start 8-0 with an
  empty capabilities table, then a working session in 0-8's method table
  (close (10,60)/(10,61), channel.open-ok without arguments, basic.consume without
  arguments; 0-9-1-only methods drop the socket; 0-8-only methods are 503/504).
* Silent closes: before connection.open-ok every error (bad tune-ok values, undecodable
  start-ok, unexpected methods) drops the socket after 3 s without a frame
  (``rabbit_reader:handle_exception``, SILENT_CLOSE_DELAY); a crash of RabbitMQ's reader
  (unknown method id, an unparsable table in method arguments) drops it at once.
* Content assembly (``rabbit_command_assembler``): more body than announced never
  completes the message; the frames that break the sequence get 505 with the content
  method's class/method ids; content properties that do not decode get 541.
* Connection-class and server-only methods on a channel: 503 "unimplemented method".
* Error texts quote frame payloads as ``rabbit_reader:payload_snippet`` does (``all octets``
  up to 16 bytes, else ``first 16 octets``; Erlang ~p formatting) and undecodable
  arguments with ~w (``cannot decode <<97,98,99>>``).
* Field tables: ``L`` is a signed 64-bit long (its 8 bytes travel unchanged); ``U`` and
  ``Z`` are unknown types.

* basic.publish is checked in ``rabbit_channel``'s order: ``immediate`` (540, once the content
  is complete), the exchange (404), internal (403), then the properties (541 undecodable, 406
  user-id, expiration, CC/BCC, delivery-mode).
* Field tables nest without a depth limit (5000 levels in headers, queue arguments, client
  properties).
* Sockets close with RST (RabbitMQ's ``{linger, {true, 0}}``), never FIN; a fatal frame error
  (bad frame end, frame too large) closes 3 s after connection.close, close-ok or not.
"""
from __future__ import annotations

import socket
import struct
import time
import uuid

import pytest
from pamqp import commands as C
from pamqp import encode
from pamqp import frame as pframe

import rawamqp
from rawamqp import RawConnection, method_payload

HEADER_08 = b"AMQP\x01\x01\x08\x00"
HEADER_08_SITE = b"AMQP\x01\x01\x09\x01"
SILENT_DELAY = (2.5, 5.0)       # RabbitMQ sleeps 3 s before a silent close


# --------------------------------------------------------------------------- helpers
def close_frame(c: RawConnection, timeout: float = 3.0, close_id: int = 50) -> tuple[int, bytes, int, int]:
    """Read the next frame, which must be connection.close (10, ``close_id``: 50 in 0-9-1, 60
    in 0-8) on channel 0 -> (reply_code, reply_text as bytes, class_id, method_id)."""
    while True:
        ftype, ch, payload = c.read_raw_frame(timeout)
        if ftype != rawamqp.FRAME_HEARTBEAT:
            break
    assert (ftype, ch, payload[:4]) == (1, 0, struct.pack(">HH", 10, close_id)), (ftype, ch, payload)
    code, n = struct.unpack_from(">HB", payload, 4)
    text = payload[7:7 + n]
    cid, mid = struct.unpack_from(">HH", payload, 7 + n)
    assert 7 + n + 4 == len(payload)
    return code, text, cid, mid


def expect_close(c: RawConnection, code: int, text: str | bytes, cid: int = 0, mid: int = 0,
                 close_id: int = 50) -> None:
    """connection.close(code, text, cid, mid) arrives; after our close-ok the socket closes."""
    want = text.encode() if isinstance(text, str) else text
    assert close_frame(c, close_id=close_id) == (code, want, cid, mid)
    c.send_frame(1, 0, method_payload(10, close_id + 1))
    assert c.wait_closed(3.0)


def expect_dropped_at_once(c: RawConnection) -> None:
    """The socket closes within a second, without a single frame (RabbitMQ's reader crashed)."""
    t0 = time.monotonic()
    assert c.wait_closed(2.0)
    assert c.received == []
    assert time.monotonic() - t0 < 1.0


def expect_silent_close(c: RawConnection) -> None:
    """No frame; the socket closes after about 3 s (rabbit_reader's SILENT_CLOSE_DELAY)."""
    t0 = time.monotonic()
    assert c.wait_closed(6.0)
    assert c.received == []
    assert SILENT_DELAY[0] <= time.monotonic() - t0 <= SILENT_DELAY[1]


def expect_nothing(c: RawConnection, seconds: float = 0.7) -> None:
    with pytest.raises(socket.timeout):
        c.read_frame(seconds)


def header_payload(size: int, class_id: int = 60, weight: int = 0, props: bytes = b"\x00\x00") -> bytes:
    return struct.pack(">HHQ", class_id, weight, size) + props


def table(*entries: tuple[str, bytes]) -> bytes:
    """A field table from (key, type octet + encoded value) pairs."""
    body = b"".join(encode.short_string(k) + v for k, v in entries)
    return struct.pack(">I", len(body)) + body


def queue_declare_args(q: str, args: bytes, exclusive: bool = True) -> bytes:
    """queue.declare payload with a raw arguments table."""
    return method_payload(50, 10, struct.pack(">H", 0) + encode.short_string(q)
                          + bytes([0b00100 if exclusive else 0]) + args)


def declare_queue(c: RawConnection, channel: int = 1) -> str:
    c.send_method(channel, C.Queue.Declare(queue="", exclusive=True))
    return c.expect(C.Queue.DeclareOk, channel).queue


def publish_raw(c: RawConnection, channel: int, routing_key: str, body: bytes, props: bytes = b"\x00\x00") -> None:
    c.send_method(channel, C.Basic.Publish(exchange="", routing_key=routing_key))
    c.send_frame(rawamqp.FRAME_HEADER, channel, header_payload(len(body), props=props))
    if body:
        c.send_frame(rawamqp.FRAME_BODY, channel, body)


def message_count(c: RawConnection, channel: int, q: str) -> int:
    c.send_method(channel, C.Queue.Declare(queue=q, passive=True))
    return c.expect(C.Queue.DeclareOk, channel).message_count


def wait_message_count(c: RawConnection, channel: int, q: str, expected: int, timeout: float = 2.0) -> int:
    """Poll message_count until it is ``expected`` (RabbitMQ enqueues a publish asynchronously)."""
    deadline = time.monotonic() + timeout
    while (n := message_count(c, channel, q)) != expected and time.monotonic() < deadline:
        time.sleep(0.02)
    return n


def opened(rawc, *channels: int) -> RawConnection:
    c = rawc()
    for n in channels or (1,):
        c.open_channel(n)
    return c


# --------------------------------------------------------------------------- 1. AMQP 0-8
def handshake_08(raw, header: bytes = HEADER_08) -> tuple[RawConnection, C.Connection.Start]:
    c = raw()
    start = c.start(header)
    c.start_ok()
    c.expect(C.Connection.Tune, 0)
    c.tune_ok()
    assert isinstance(c.open(), C.Connection.OpenOk)
    return c, start


def open_channel_08(c: RawConnection, channel: int = 1) -> None:
    """0-8's channel.open-ok has no arguments (0-9-1's carries an empty longstr)."""
    c.send_method(channel, C.Channel.Open())
    assert c.read_raw_frame() == (1, channel, method_payload(20, 11))


@pytest.mark.parametrize("header", [HEADER_08, HEADER_08_SITE], ids=["1-1-8-0", "1-1-9-1"])
def test_amqp08_start_is_version_8_0_without_capabilities(raw, header):
    """Both 0-8 headers get connection.start 8-0 whose capabilities table is empty; the
    handshake completes (tune proposal as in 0-9-1, open-ok)."""
    c = raw()
    start = c.start(header)
    assert (start.version_major, start.version_minor) == (8, 0)
    assert start.server_properties["capabilities"] == {}
    assert start.server_properties["product"] and start.locales == "en_US"
    assert set(start.mechanisms.split(" ")) >= {"PLAIN", "AMQPLAIN"}
    c.start_ok()
    tune = c.expect(C.Connection.Tune, 0)
    assert (tune.channel_max, tune.frame_max, tune.heartbeat) == (2047, 131072, 60)
    c.tune_ok()
    assert isinstance(c.open(), C.Connection.OpenOk)


def test_amqp08_session_publish_get_consume_close(raw):
    """A 0-8 session: channel.open-ok (20,11) without arguments, queue.declare, publish,
    basic.get, 0-8 basic.consume (no arguments table), delivery, and connection.close as
    0-8's (10,60) answered by close-ok (10,61)."""
    c, _ = handshake_08(raw)
    open_channel_08(c)
    q = declare_queue(c)
    publish_raw(c, 1, q, b"first")
    c.send_method(1, C.Basic.Get(queue=q, no_ack=True))
    ok = c.expect(C.Basic.GetOk, 1)
    assert ok.routing_key == q
    assert c.read_raw_frame()[0] == rawamqp.FRAME_HEADER
    assert c.read_raw_frame() == (3, 1, b"first")
    consume = struct.pack(">H", 0) + encode.short_string(q) + encode.short_string("ctag-08") + bytes([0b010])
    c.send_frame(1, 1, method_payload(60, 20, consume))
    assert c.expect(C.Basic.ConsumeOk, 1).consumer_tag == "ctag-08"
    publish_raw(c, 1, q, b"second")
    d = c.expect(C.Basic.Deliver, 1)
    assert (d.consumer_tag, d.routing_key) == ("ctag-08", q)
    c.read_raw_frame()
    assert c.read_raw_frame() == (3, 1, b"second")
    c.send_frame(1, 0, method_payload(10, 60, struct.pack(">H", 200) + encode.short_string("bye")
                                      + struct.pack(">HH", 0, 0)))
    assert c.read_raw_frame() == (1, 0, method_payload(10, 61))


def test_amqp08_errors_use_0_8_close(raw):
    """Errors keep their 0-9-1 codes and texts; a connection error is 0-8's close (10,60), a
    channel error the usual channel.close."""
    c, _ = handshake_08(raw)
    open_channel_08(c)
    c.send_method(1, C.Queue.Declare(queue="no-such-queue-08-" + uuid.uuid4().hex[:6], passive=True))
    f = c.expect(C.Channel.Close, 1)
    assert f.reply_code == 404 and (f.class_id, f.method_id) == (50, 10)
    c.send_method(1, C.Channel.CloseOk())
    open_channel_08(c)
    c.send_method(1, C.Channel.Open())
    expect_close(c, 504, "CHANNEL_ERROR - second 'channel.open' seen", 20, 10, close_id=60)


@pytest.mark.parametrize("channel,cid,mid,args", [
    (0, 10, 70, b"\x00\x00\x00\x05guest\x01r"),            # connection.update-secret
    (1, 40, 30, b"\x00\x00\x01a\x01b\x00\x00\x00\x00\x00\x00"),  # exchange.bind
    (1, 60, 120, b"\x00" * 9),                               # basic.nack
    (1, 85, 10, b"\x00"),                                    # confirm.select
], ids=["update-secret", "exchange.bind", "basic.nack", "confirm.select"])
def test_amqp08_has_no_0_9_1_additions(raw, channel, cid, mid, args):
    """0-9-1's additions are unknown method ids in 0-8: the socket drops at once, no frame."""
    c, _ = handshake_08(raw)
    open_channel_08(c)
    c.send_frame(1, channel, method_payload(cid, mid, args))
    expect_dropped_at_once(c)


def test_amqp08_redirect_from_client_is_unexpected(raw):
    """(10,50) is connection.redirect in 0-8: sent by a client, 504 unexpected method (10,50)."""
    c, _ = handshake_08(raw)
    c.send_frame(1, 0, method_payload(10, 50, encode.short_string("h") + encode.short_string("")))
    expect_close(c, 504, "CHANNEL_ERROR - unexpected method in connection state running", 10, 50, close_id=60)


def test_amqp08_consume_with_0_9_1_arguments_cannot_decode(raw):
    """A 0-9-1 basic.consume (with its arguments table) on a 0-8 connection: 501 cannot decode."""
    c, _ = handshake_08(raw)
    open_channel_08(c)
    args = struct.pack(">H", 0) + encode.short_string("q") + encode.short_string("ct") + b"\x00\x00\x00\x00\x00"
    c.send_frame(1, 1, method_payload(60, 20, args))
    expect_close(c, 501, "FRAME_ERROR - cannot decode <<0,0,1,113,2,99,116,0,0,0,0,0>>", 60, 20, close_id=60)


@pytest.mark.parametrize("channel,cid,mid,args,code,text", [
    (1, 20, 30, b"\x00\xc8\x01x\x00\x00\x00\x00", 503, "COMMAND_INVALID - unimplemented method"),  # channel.alert
    (1, 70, 10, b"\x00" * 7, 503, "COMMAND_INVALID - unimplemented method"),                    # file.qos
    (1, 120, 10, b"\x00" * 16, 503, "COMMAND_INVALID - unimplemented method"),                  # test.integer
    (1, 100, 10, b"", 503, "COMMAND_INVALID - unimplemented method"),                           # dtx.select
    (0, 100, 10, b"", 504, "CHANNEL_ERROR - unexpected method in connection state running"),
], ids=["channel.alert", "file.qos", "test.integer", "dtx.select", "dtx.select-ch0"])
def test_amqp08_only_methods_are_refused(raw, channel, cid, mid, args, code, text):
    """0-8's own methods decode, then are refused like any method RabbitMQ does not implement."""
    c, _ = handshake_08(raw)
    open_channel_08(c)
    c.send_frame(1, channel, method_payload(cid, mid, args))
    expect_close(c, code, text, cid, mid, close_id=60)


# --------------------------------------------------------------------------- 2. tune-ok and frame sizes
@pytest.mark.parametrize("frame_max", [0, 4095])
def test_tune_ok_frame_max_zero_or_below_minimum_is_refused_silently(raw, frame_max):
    """tune-ok frame_max 0 ("no limit": above the server's 131072) or below 4096: nothing is
    sent, not even after connection.open; the socket closes after ~3 s."""
    c = raw()
    c.start()
    c.start_ok()
    c.expect(C.Connection.Tune, 0)
    c.tune_ok(frame_max=frame_max)
    c.send_method(0, C.Connection.Open(virtual_host="/"))
    expect_silent_close(c)


def test_frame_of_exactly_frame_max_payload_is_accepted(rawc):
    """RabbitMQ lets a frame's payload reach frame_max itself (FRAME_SIZE_FUDGE of 8 octets):
    with frame_max 4096 a 4096-byte body frame is fine, 4097 is frame_too_large (quoting 4088)."""
    c = rawc(frame_max=4096)
    c.open_channel(1)
    q = declare_queue(c)
    publish_raw(c, 1, q, b"y" * 4096)
    assert wait_message_count(c, 1, q, 1) == 1
    publish_raw(c, 1, q, b"z" * 4097)
    assert close_frame(c) == (501, b"FRAME_ERROR - type 3, all octets = <<>>: {frame_too_large,4097,4088}", 0, 0)


CLIENT_CLOSE = pframe.marshal(C.Connection.Close(reply_code=200, reply_text="bye", class_id=0, method_id=0), 0)


def test_reader_reads_on_closing_after_an_error(rawc):
    """After a (non-fatal) connection error the reader goes on reading, closing: a
    connection.close that came in the same segment as the bad frame gets its close-ok."""
    c = rawc()
    c.send_raw(struct.pack(">BHI", 8, 1, 0) + b"\xce" + CLIENT_CLOSE)
    assert close_frame(c) == (505, b"UNEXPECTED_FRAME - type 8, all octets = <<>>", 0, 0)
    assert isinstance(c.read_frame(3.0)[1], C.Connection.CloseOk)


@pytest.mark.parametrize("bad", [struct.pack(">BHI", 1, 1, 200000) + b"\x00" * 10,
                                 struct.pack(">BHI", 1, 1, 4) + b"\x00\x14\x00\x28\xcd"],
                         ids=["frame-too-large", "bad-end-octet"])
def test_fatal_frame_error_reads_nothing_more(rawc, bad):
    """rabbit_reader:fatal_frame_error: after connection.close 501 nothing more is read (the
    connection.close right behind the bad frame gets no close-ok) and the socket is dropped
    after 3 s."""
    c = rawc()
    t0 = time.monotonic()
    c.send_raw(bad + CLIENT_CLOSE)
    assert close_frame(c)[0] == 501
    assert c.wait_closed(6.0)
    assert SILENT_DELAY[0] <= time.monotonic() - t0 <= SILENT_DELAY[1]
    assert [f for f in c.received if isinstance(f[1], C.Connection.CloseOk)] == []


# --------------------------------------------------------------------------- 3. content assembly
def test_body_larger_than_declared_never_completes(rawc):
    """A body frame larger than the size in the content header: no reply and no message; further
    body frames are swallowed; other channels carry on; the next method on the channel is
    505 UNEXPECTED_FRAME 'expected content body' with basic.publish's ids (60, 40)."""
    c = opened(rawc, 1, 2)
    q = declare_queue(c, 2)
    c.send_method(1, C.Basic.Publish(exchange="", routing_key=q))
    c.send_frame(rawamqp.FRAME_HEADER, 1, header_payload(3))
    c.send_frame(rawamqp.FRAME_BODY, 1, b"abcdef")
    c.send_frame(rawamqp.FRAME_BODY, 1, b"more")
    expect_nothing(c)
    assert message_count(c, 2, q) == 0
    c.send_method(1, C.Basic.Qos(prefetch_count=1))
    expect_close(c, 505, "UNEXPECTED_FRAME - expected content body, got non content body frame instead", 60, 40)


def test_body_overflow_across_frames_then_header(rawc):
    """Overflow on the second body frame (5 announced, 3 + 4 sent), then a content header on the
    same channel: 505 'expected content body' (60, 40)."""
    c = opened(rawc)
    c.send_method(1, C.Basic.Publish(exchange="", routing_key="nowhere"))
    c.send_frame(rawamqp.FRAME_HEADER, 1, header_payload(5))
    c.send_frame(rawamqp.FRAME_BODY, 1, b"abc")
    c.send_frame(rawamqp.FRAME_BODY, 1, b"defg")
    expect_nothing(c, 0.5)
    c.send_frame(rawamqp.FRAME_HEADER, 1, header_payload(3))
    expect_close(c, 505, "UNEXPECTED_FRAME - expected content body, got non content body frame instead", 60, 40)


HDR, BODY, METHOD = rawamqp.FRAME_HEADER, rawamqp.FRAME_BODY, rawamqp.FRAME_METHOD


@pytest.mark.parametrize("frames,text", [
    ([(HDR, header_payload(3, class_id=50))], "expected content header for class 60, got one for class 50 instead"),
    ([(HDR, header_payload(0, class_id=61))], "expected content header for class 60, got one for class 61 instead"),
    ([(HDR, header_payload(0, weight=1))], "expected content header for class 60, got non content header frame instead"),
    ([(HDR, header_payload(3)), (HDR, header_payload(3))], "expected content body, got non content body frame instead"),
    ([(HDR, header_payload(3)), (BODY, b"a"), (METHOD, method_payload(60, 10, b"\x00" * 7))],
     "expected content body, got non content body frame instead"),
], ids=["class-50", "class-61", "weight-1", "second-header", "method-mid-body"])
def test_content_sequence_errors_carry_publish_ids(rawc, frames, text):
    """Frames that break basic.publish's content sequence: 505 with class/method 60/40."""
    c = opened(rawc)
    c.send_method(1, C.Basic.Publish(exchange="", routing_key="nowhere"))
    for ftype, payload in frames:
        c.send_frame(ftype, 1, payload)
    expect_close(c, 505, "UNEXPECTED_FRAME - " + text, 60, 40)


def test_short_content_header_is_unknown_frame(rawc):
    """A header frame too short for class, weight and body size: 501 '... unknown_frame'."""
    c = opened(rawc)
    c.send_method(1, C.Basic.Publish(exchange="", routing_key="nowhere"))
    c.send_frame(rawamqp.FRAME_HEADER, 1, b"\x00\x3c\x00")
    expect_close(c, 501, "FRAME_ERROR - type 2, all octets = <<0,60,0>>: unknown_frame")


@pytest.mark.parametrize("props", [b"", b"\x80\x00\x05ab", b"\x10\x00\x02\x00"],
                         ids=["no-flags", "shortstr-overrun", "extra-byte"])
def test_undecodable_properties_are_internal_error(rawc, props):
    """Content properties that do not decode (flags missing, a shortstr running out, a byte too
    many): 541 INTERNAL_ERROR (0, 0) once the message is complete."""
    c = opened(rawc)
    q = declare_queue(c)
    publish_raw(c, 1, q, b"x", props=props)
    expect_close(c, 541, "INTERNAL_ERROR")


def test_properties_are_checked_only_once_the_message_is_complete(rawc):
    """Undecodable properties go unnoticed while the body is missing, and for good when the body
    overflows (the message never completes); a repeated publish in one write is no different."""
    c = opened(rawc)
    q = declare_queue(c)
    publish_raw(c, 1, q, b"ok")                              # the same publish method again below
    bad = b"\x20\x00" + struct.pack(">I", 3) + b"\x01hU"    # a 'U' without its value
    c.send_raw(frame_bytes(1, 1, C.Basic.Publish(exchange="", routing_key=q))
               + frame_bytes(2, 1, header_payload(3, props=bad)))
    expect_nothing(c, 0.5)
    c.send_frame(rawamqp.FRAME_BODY, 1, b"abcdef")
    expect_nothing(c, 0.5)
    c.send_raw(frame_bytes(1, 1, C.Basic.Publish(exchange="", routing_key=q))
               + frame_bytes(2, 1, header_payload(3, props=bad)) + frame_bytes(3, 1, b"abcd"))
    expect_close(c, 505, "UNEXPECTED_FRAME - expected content body, got non content body frame instead", 60, 40)


def frame_bytes(ftype: int, channel: int, payload) -> bytes:
    if not isinstance(payload, bytes):
        return pframe.marshal(payload, channel)
    return struct.pack(">BHI", ftype, channel, len(payload)) + payload + b"\xce"


@pytest.mark.parametrize("ftype,payload,text", [
    (2, header_payload(0), "UNEXPECTED_FRAME - type 2, all octets = <<0,60,0,0,0,0,0,0,0,0,0,0,0,0>>"),
    (3, b"abc", 'UNEXPECTED_FRAME - type 3, all octets = <<"abc">>'),
    (3, b"abcdefghijklmnopqrstuvwxyz", 'UNEXPECTED_FRAME - type 3, first 16 octets = <<"abcdefghijklmnop">>'),
], ids=["header", "body", "long-body"])
def test_content_frames_on_channel_zero(rawc, ftype, payload, text):
    """Content header/body frames on channel 0: 505 quoting the frame."""
    c = rawc()
    c.send_frame(ftype, 0, payload)
    expect_close(c, 505, text)


# --------------------------------------------------------------------------- 4. methods on the wrong channel
CONNECTION_METHODS = {
    "start": (10, b"\x00\x09\x00\x00\x00\x00\x00\x00\x00\x05PLAIN\x00\x00\x00\x05en_US"),
    "start-ok": (11, b"\x00\x00\x00\x00\x05PLAIN\x00\x00\x00\x0c\x00guest\x00guest\x05en_US"),
    "secure": (20, b"\x00\x00\x00\x00"),
    "secure-ok": (21, b"\x00\x00\x00\x00"),
    "tune": (30, b"\x07\xff\x00\x02\x00\x00\x00\x3c"),
    "tune-ok": (31, b"\x07\xff\x00\x02\x00\x00\x00\x3c"),
    "open": (40, b"\x01/\x00\x00"),
    "open-ok": (41, b"\x00"),
    "close": (50, b"\x00\xc8\x00\x00\x00\x00\x00"),
    "close-ok": (51, b""),
    "blocked": (60, b"\x00"),
    "unblocked": (61, b""),
    "update-secret": (70, b"\x00\x00\x00\x05guest\x00"),
    "update-secret-ok": (71, b""),
}


@pytest.mark.parametrize("name", list(CONNECTION_METHODS))
def test_connection_method_on_open_channel_is_unimplemented(rawc, name):
    """Any connection-class method on an open channel: 503 'unimplemented method' (10, id)."""
    mid, args = CONNECTION_METHODS[name]
    c = opened(rawc)
    c.send_frame(1, 1, method_payload(10, mid, args))
    expect_close(c, 503, "COMMAND_INVALID - unimplemented method", 10, mid)


@pytest.mark.parametrize("name", ["tune-ok", "close", "update-secret"])
def test_connection_method_on_unopened_channel(rawc, name):
    """On a channel never opened it is the usual 504 "expected 'channel.open'" (10, id)."""
    mid, args = CONNECTION_METHODS[name]
    c = rawc()
    c.send_frame(1, 3, method_payload(10, mid, args))
    expect_close(c, 504, "CHANNEL_ERROR - expected 'channel.open'", 10, mid)


@pytest.mark.parametrize("cid,mid,args", [
    (20, 11, b"\x00\x00\x00\x00"),     # channel.open-ok
    (20, 21, b"\x01"),                 # channel.flow-ok
    (20, 41, b""),                     # channel.close-ok on a channel that is not closing
    (50, 11, b"\x01q" + b"\x00" * 8),  # queue.declare-ok
    (60, 11, b""),                     # basic.qos-ok
    (60, 31, b"\x01c"),                # basic.cancel-ok
    (60, 72, b"\x00"),                 # basic.get-empty
    (85, 11, b""),                     # confirm.select-ok
    (30, 11, b"\x00\x01"),             # access.request-ok
], ids=["channel.open-ok", "channel.flow-ok", "channel.close-ok", "queue.declare-ok", "basic.qos-ok",
        "basic.cancel-ok", "basic.get-empty", "confirm.select-ok", "access.request-ok"])
def test_server_methods_from_client_are_unimplemented(rawc, cid, mid, args):
    """Methods RabbitMQ's channel has no clause for: 503 'unimplemented method' with their ids."""
    c = opened(rawc)
    c.send_frame(1, 1, method_payload(cid, mid, args))
    expect_close(c, 503, "COMMAND_INVALID - unimplemented method", cid, mid)


CONTENT_METHODS = {
    "deliver": (60, b"\x01c" + b"\x00" * 8 + b"\x00" + b"\x00\x01q"),
    "get-ok": (71, b"\x00" * 8 + b"\x00" + b"\x00\x01q" + b"\x00\x00\x00\x00"),
    "return": (50, b"\x00\xc8\x00\x00\x01q"),
}


@pytest.mark.parametrize("name", list(CONTENT_METHODS))
def test_server_content_methods_wait_for_content(rawc, name):
    """basic.deliver/get-ok/return from a client: its content is collected first (nothing
    before it), then 503 'unimplemented method' (60, id)."""
    mid, args = CONTENT_METHODS[name]
    c = opened(rawc)
    c.send_frame(1, 1, method_payload(60, mid, args))
    expect_nothing(c, 0.5)
    c.send_frame(rawamqp.FRAME_HEADER, 1, header_payload(2))
    c.send_frame(rawamqp.FRAME_BODY, 1, b"ab")
    expect_close(c, 503, "COMMAND_INVALID - unimplemented method", 60, mid)


def test_server_content_method_then_method_is_unexpected(rawc):
    """basic.deliver then a method instead of its content header: 505 with deliver's ids (60, 60)."""
    mid, args = CONTENT_METHODS["deliver"]
    c = opened(rawc)
    c.send_frame(1, 1, method_payload(60, mid, args))
    c.send_method(1, C.Basic.Qos(prefetch_count=1))
    expect_close(c, 505, "UNEXPECTED_FRAME - expected content header for class 60, "
                         "got non content header frame instead", 60, 60)


# --------------------------------------------------------------------------- 5. how payloads are quoted
@pytest.mark.parametrize("payload,quoted", [
    (b"", b"all octets = <<>>"),
    (b"a" * 16, b'all octets = <<"aaaaaaaaaaaaaaaa">>'),
    (b"a" * 17, b'first 16 octets = <<"aaaaaaaaaaaaaaaa">>'),
    (b"b" * 300, b'first 16 octets = <<"bbbbbbbbbbbbbbbb">>'),
    (b"\xff" * 16, b'all octets = <<"' + b"\xff" * 16 + b'">>'),
    (bytes(range(10)), b"all octets = <<0,1,2,3,4,5,6,7,8,9>>"),
    (bytes(range(17))[-2:], b"all octets = <<15,16>>"),
    (b"ab\ncd\t\"\\", b'all octets = <<"ab\\ncd\\t\\"\\\\">>'),
    (b"\x1b\x08\x0b\x0c\r", b'all octets = <<"\\e\\b\\v\\f\\r">>'),
    (b"caf\xe9 \xa0", b'all octets = <<"caf\xe9 \xa0">>'),
    ("café".encode(), b'all octets = <<"caf\xc3\xa9">>'),
    (b"a\x7fb", b"all octets = <<97,127,98>>"),
    (b"a\x9fb", b"all octets = <<97,159,98>>"),
    (b"a\x00b", b"all octets = <<97,0,98>>"),
], ids=["empty", "16", "17", "300", "latin1-16", "bytes-10", "bytes-2", "escapes", "more-escapes",
        "latin1", "utf8", "del", "c1", "nul"])
def test_bad_frame_end_quotes_payload_like_rabbitmq(rawc, payload, quoted):
    """Frame end octet != 0xCE: 501 quoting at most 16 payload octets, printed as Erlang's ~p
    prints a binary (a string when all are printable Latin-1, raw bytes kept)."""
    c = rawc()
    c.send_frame(1, 0, payload, end=0)
    assert close_frame(c) == (501, b"FRAME_ERROR - type 1, " + quoted + b": {invalid_frame_end_marker,0}", 0, 0)


@pytest.mark.parametrize("ftype,channel,payload,text", [
    (9, 0, b"x" * 20, 'FRAME_ERROR - type 9, first 16 octets = <<"xxxxxxxxxxxxxxxx">>: unknown_frame'),
    (8, 0, b"xy", 'FRAME_ERROR - type 8, all octets = <<"xy">>: unknown_frame'),
    (8, 1, b"x" * 20, 'FRAME_ERROR - type 8, first 16 octets = <<"xxxxxxxxxxxxxxxx">>: unknown_frame'),
    (1, 0, b"\x00\x0a", "FRAME_ERROR - type 1, all octets = <<0,10>>: unknown_frame"),
    (1, 1, b"\x00", "FRAME_ERROR - type 1, all octets = <<0>>: unknown_frame"),
], ids=["type-9", "heartbeat-payload-ch0", "heartbeat-payload-ch1", "method-2-bytes", "method-1-byte"])
def test_unknown_frames(rawc, ftype, channel, payload, text):
    """Frames RabbitMQ's analyze_frame has no clause for: 501 unknown_frame quoting the payload."""
    c = rawc()
    c.send_frame(ftype, channel, payload)
    expect_close(c, 501, text)


@pytest.mark.parametrize("args,quoted", [
    (b"abc", "<<97,98,99>>"),
    (b"\x00\x00\x00\x00\x00\x01\x00\x07", "<<0,0,0,0,0,1,0,7>>"),
], ids=["printable", "extra-byte"])
def test_cannot_decode_quotes_arguments_as_bytes(rawc, args, quoted):
    """Undecodable arguments (too few bytes, or one too many): 501 'cannot decode' with the
    arguments printed by ~w, always as numbers."""
    c = opened(rawc)
    cid, mid = (50, 10) if args == b"abc" else (60, 10)
    c.send_frame(1, 1, method_payload(cid, mid, args))
    expect_close(c, 501, f"FRAME_ERROR - cannot decode {quoted}", cid, mid)


# The error text is io_lib:format("type ~p, ~s octets = ~p: ~p", ...): each ~p is laid out by
# io_lib_pretty from the column it starts at, within 80 columns. A byte list that does not fit
# is filled onto lines indented under its first byte; a tuple that does not fit keeps
# "{tag," and puts the rest on the next line, one column past its brace.
@pytest.mark.parametrize("ftype,payload,end,text", [
    (1, bytes(range(16)), 0,
     b"type 1, all octets = <<0,1,2,3,4,5,6,7,8,9,10,11,12,13,14,15>>: {invalid_frame_end_marker,\n"
     + b" " * 65 + b"0}"),
    (1, bytes(range(17)), 255,
     b"type 1, first 16 octets = <<0,1,2,3,4,5,6,7,8,9,10,11,12,13,14,15>>: {invalid_frame_end_marker,\n"
     + b" " * 70 + b"255}"),
    (3, bytes([150]) * 14, 0,
     b"type 3, all octets = <<" + b"150," * 13 + b"150>>: {invalid_frame_end_marker,\n" + b" " * 83 + b"0}"),
    (1, bytes([150]) * 15, 0,
     b"type 1, all octets = <<" + b"150," * 14 + b"\n" + b" " * 23 + b"150>>: {invalid_frame_end_marker,0}"),
    (2, bytes([150]) * 20, 7,
     b"type 2, first 16 octets = <<" + b"150," * 12 + b"\n" + b" " * 28 + b"150,150,150,150>>: "
     b"{invalid_frame_end_marker,7}"),
    (9, b"\x00\x3c" + bytes([150]) * 14, None,
     b"type 9, all octets = <<0,60," + b"150," * 12 + b"\n" + b" " * 23 + b"150,150>>: unknown_frame"),
], ids=["tuple-wraps", "tuple-wraps-first-16", "tuple-wraps-far-right", "bytes-wrap", "bytes-wrap-first-16",
        "bytes-wrap-unknown-frame"])
def test_long_error_texts_wrap_like_erlang(rawc, ftype, payload, end, text):
    """FRAME_ERROR texts keep the line breaks Erlang's ~p puts in them (the reply text carries
    them as they are)."""
    c = rawc()
    if end is None:
        c.send_frame(ftype, 0, payload)
    else:
        c.send_frame(ftype, 0, payload, end=end)
    assert close_frame(c) == (501, b"FRAME_ERROR - " + text, 0, 0)


# --------------------------------------------------------------------------- 6. field tables
BIG_L = b"L\x80\x00\x00\x00\x00\x00\x00\x01"     # 2^63 + 1 as unsigned, sent as 'L'


@pytest.mark.parametrize("value", [b"U\x00\x05", b"Z\x00\x05", b"F" + table(("k", b"U\x00\x05")),
                                   b"A\x00\x00\x00\x03Z\x00\x05"],
                         ids=["U", "Z", "U-in-table", "Z-in-array"])
def test_unknown_field_type_in_queue_arguments_drops_connection(rawc, value):
    """queue.declare whose arguments hold a 'U' or 'Z' value (RabbitMQ has no clause for either;
    'u' is its unsigned short): its reader crashes, the socket drops without a frame."""
    c = opened(rawc)
    c.send_frame(1, 1, queue_declare_args("t.args." + uuid.uuid4().hex[:8], table(("x-foo", value))))
    expect_dropped_at_once(c)


@pytest.mark.parametrize("value", [b"L\xff\xff\xff\xff\xff\xff\xff\xfe", BIG_L, b"u\xff\xfe", b"s\xff\xfe"],
                         ids=["L-negative", "L-above-2^63", "u", "s"])
def test_known_integer_types_in_queue_arguments(rawc, value):
    """'L' (read as a signed long, so any 8 bytes), 'u' and 's' arguments are accepted."""
    c = opened(rawc)
    q = "t.args." + uuid.uuid4().hex[:8]
    c.send_frame(1, 1, queue_declare_args(q, table(("x-foo", value))))
    assert c.expect(C.Queue.DeclareOk, 1).queue == q


@pytest.mark.parametrize("value", [b"U\x00\x05", b"Z\x00\x05", b"F" + table(("k", b"Z\x00\x05")),
                                   b"A\x00\x00\x00\x03U\x00\x05"],
                         ids=["U", "Z", "Z-in-table", "U-in-array"])
def test_unknown_field_type_in_message_headers_is_internal_error(rawc, uniq, value):
    """A published message whose headers hold a 'U' or 'Z' value: 541 INTERNAL_ERROR (0, 0) when
    the message arrives; it is not enqueued (checked on another connection)."""
    q = uniq + ".q"
    c = opened(rawc)
    c.send_method(1, C.Queue.Declare(queue=q, auto_delete=False))
    c.expect(C.Queue.DeclareOk, 1)
    try:
        publish_raw(c, 1, q, b"hi", props=b"\x20\x00" + table(("h", value)))
        expect_close(c, 541, "INTERNAL_ERROR")
        other = opened(rawc)
        assert message_count(other, 1, q) == 0
    finally:
        d = opened(rawc)
        d.send_method(1, C.Queue.Delete(queue=q))
        d.expect(C.Queue.DeleteOk, 1)


@pytest.mark.parametrize("value", [b"L\xff\xff\xff\xff\xff\xff\xff\xfe", BIG_L, b"u\xff\xfe"],
                         ids=["L-negative", "L-above-2^63", "u"])
def test_integer_headers_round_trip_byte_exact(rawc, value):
    """'L' headers (above 2^63 too) and 'u' come back to a consumer in the very bytes sent."""
    c = opened(rawc)
    q = declare_queue(c)
    props = b"\x20\x00" + table(("h", value), ("s", b"S\x00\x00\x00\x01x"))
    publish_raw(c, 1, q, b"hi", props=props)
    c.send_method(1, C.Basic.Get(queue=q, no_ack=True))
    c.expect(C.Basic.GetOk, 1)
    ftype, _, payload = c.read_raw_frame()
    assert ftype == rawamqp.FRAME_HEADER and payload[12:] == props
    assert c.read_raw_frame() == (3, 1, b"hi")


def start_ok_with(c: RawConnection, value: bytes) -> None:
    """connection.start-ok whose client_properties hold ``product`` = ``value`` (raw)."""
    resp = rawamqp.plain_response("guest", "guest")
    args = (table(("product", value)) + encode.short_string("PLAIN")
            + struct.pack(">I", len(resp)) + resp + encode.short_string("en_US"))
    c.send_frame(1, 0, method_payload(10, 11, args))


@pytest.mark.parametrize("value", [b"U\x00\x05", b"Z\x00\x05"], ids=["U", "Z"])
def test_unknown_field_type_in_client_properties_closes_silently(raw, value):
    """start-ok whose client_properties hold a 'U'/'Z' value: no tune, the socket closes ~3 s later."""
    c = raw()
    c.start()
    start_ok_with(c, value)
    expect_silent_close(c)


def test_l_in_client_properties_is_accepted(raw):
    """An 'L' client property above 2^63: the handshake goes on (connection.tune)."""
    c = raw()
    c.start()
    start_ok_with(c, BIG_L)
    c.expect(C.Connection.Tune, 0)


@pytest.mark.parametrize("value", [b"U\x00\x05", b"S\x00\x00\x00\x09ab"], ids=["U", "truncated"])
def test_undecodable_method_on_channel_zero_when_running_is_internal_error(rawc, value):
    """An undecodable connection method once the connection runs (here a second start-ok) is
    541 INTERNAL_ERROR (0, 0): RabbitMQ's handle_method0 catches the decoder's crash."""
    c = rawc()
    start_ok_with(c, value)
    expect_close(c, 541, "INTERNAL_ERROR")


def test_truncated_close_on_channel_zero_is_internal_error(rawc):
    """connection.close cut short while running: 541 INTERNAL_ERROR (0, 0), not 501."""
    c = rawc()
    c.send_frame(1, 0, method_payload(10, 50, b"\x00"))
    expect_close(c, 541, "INTERNAL_ERROR")


# --------------------------------------------------------------------------- handshake states
def tuning(raw) -> RawConnection:
    c = raw()
    c.start()
    c.start_ok()
    c.expect(C.Connection.Tune, 0)
    return c


def test_connection_close_before_tune_ok_is_not_answered(raw):
    """connection.close while the server waits for tune-ok: no close-ok; a silent close (~3 s)."""
    c = tuning(raw)
    c.send_method(0, C.Connection.Close(reply_code=200, reply_text="bye", class_id=0, method_id=0))
    expect_silent_close(c)


def test_connection_close_while_opening_is_unexpected(raw):
    """connection.close after tune-ok but before open: 504 'unexpected method in connection state
    opening' (10, 50), not close-ok."""
    c = tuning(raw)
    c.tune_ok()
    c.send_method(0, C.Connection.Close(reply_code=200, reply_text="bye", class_id=0, method_id=0))
    expect_close(c, 504, "CHANNEL_ERROR - unexpected method in connection state opening", 10, 50)


def test_channel_frame_while_opening_is_unexpected_frame(raw):
    """channel.open before connection.open: 505 'UNEXPECTED_FRAME - type 1, all octets = ...'."""
    c = tuning(raw)
    c.tune_ok()
    c.send_frame(1, 1, method_payload(20, 10, b"\x00"))
    expect_close(c, 505, "UNEXPECTED_FRAME - type 1, all octets = <<0,20,0,10,0>>")


def test_incomplete_non_amqp_header_waits(raw):
    """4 bytes that are not 'AMQP': RabbitMQ waits for all 8 before it answers."""
    c = raw()
    c.send_raw(b"HTTP")
    with pytest.raises(socket.timeout):
        c.read_raw(1.0)
    c.send_raw(b"/1.1")
    assert c.read_until_closed(3.0) == rawamqp.AMQP_HEADER


# --------------------------------------------------------------------------- basic.publish: order of checks
DM0 = b"\x10\x00\x00"                                                   # delivery-mode 0
CC_NOT_ARRAY = b"\x20\x00" + encode.field_table({"CC": "key"})         # CC as a longstr
UNDECODABLE = b"\x80\x00\x05ab"                                         # content-type overruns
BAD_EXPIRATION = b"\x01\x00" + encode.short_string("soon")
BAD_USER_ID = b"\x00\x10" + encode.short_string("nobody-" + uuid.uuid4().hex[:6])
INVALID_PROPERTIES = [DM0, CC_NOT_ARRAY, UNDECODABLE, BAD_EXPIRATION, BAD_USER_ID]
INVALID_IDS = ["delivery-mode-0", "cc-not-array", "undecodable", "bad-expiration", "bad-user-id"]


def publish_to(c: RawConnection, channel: int, exchange: str, props: bytes, body: bytes = b"x",
               immediate: bool = False) -> None:
    c.send_method(channel, C.Basic.Publish(exchange=exchange, routing_key="rk", immediate=immediate))
    c.send_frame(rawamqp.FRAME_HEADER, channel, header_payload(len(body), props=props))
    if body:
        c.send_frame(rawamqp.FRAME_BODY, channel, body)


def expect_channel_close(c: RawConnection, channel: int, code: int, text: str, cid: int = 60, mid: int = 40) -> None:
    f = c.expect(C.Channel.Close, channel)
    assert (f.reply_code, f.reply_text, f.class_id, f.method_id) == (code, text, cid, mid)


@pytest.mark.parametrize("props", INVALID_PROPERTIES, ids=INVALID_IDS)
def test_missing_exchange_is_checked_before_the_properties(rawc, uniq, props):
    """rabbit_channel looks the exchange up (404) before it decodes the properties (541) and
    checks user-id, expiration, CC and delivery-mode (406)."""
    c = opened(rawc)
    publish_to(c, 1, uniq + ".none", props)
    expect_channel_close(c, 1, 404, f"NOT_FOUND - no exchange '{uniq}.none' in vhost '/'")


@pytest.mark.parametrize("props", INVALID_PROPERTIES, ids=INVALID_IDS)
def test_internal_exchange_is_checked_before_the_properties(rawc, uniq, props):
    """An internal exchange is refused (403) before the properties are looked at."""
    c = opened(rawc, 1, 2)
    c.send_method(1, C.Exchange.Declare(exchange=uniq, exchange_type="fanout", internal=True,
                                        auto_delete=False))
    c.expect(C.Exchange.DeclareOk, 1)
    try:
        publish_to(c, 2, uniq, props)
        expect_channel_close(c, 2, 403, f"ACCESS_REFUSED - cannot publish to internal exchange "
                                        f"'{uniq}' in vhost '/'")
    finally:
        c.send_method(1, C.Exchange.Delete(exchange=uniq))
        c.expect(C.Exchange.DeleteOk, 1)


@pytest.mark.parametrize("props, text", [
    (b"\x01\x10" + encode.short_string("soon") + BAD_USER_ID[2:],
     "PRECONDITION_FAILED - user_id property set to '%s' but authenticated user was 'guest'"),
    (b"\x21\x00" + encode.field_table({"CC": "key"}) + encode.short_string("soon"),
     "PRECONDITION_FAILED - invalid expiration 'soon': no_integer"),
    (b"\x30\x00" + encode.field_table({"CC": "key"}) + b"\x00",
     'PRECONDITION_FAILED - invalid message: {unacceptable_type_in_header,"CC",longstr}'),
], ids=["user-id-before-expiration", "expiration-before-cc", "cc-before-delivery-mode"])
def test_property_checks_come_in_rabbitmq_order(rawc, props, text):
    """user-id, then expiration, then the CC/BCC types, then delivery-mode."""
    c = opened(rawc)
    publish_to(c, 1, "amq.direct", props)
    if "%s" in text:
        text %= BAD_USER_ID[3:].decode()
    expect_channel_close(c, 1, 406, text)


@pytest.mark.parametrize("exchange, props", [("amq.direct", b"\x00\x00"), ("no-such-exchange", UNDECODABLE)],
                         ids=["plain", "missing-exchange-undecodable"])
def test_immediate_is_refused_once_the_content_is_complete(rawc, exchange, props):
    """basic.publish with immediate=true: nothing happens until its content is complete
    (RabbitMQ's channel gets the method with its content), then 540 NOT_IMPLEMENTED closes the
    connection, before any other check of the publish."""
    c = opened(rawc)
    c.send_method(1, C.Basic.Publish(exchange=exchange, routing_key="rk", immediate=True))
    c.send_frame(rawamqp.FRAME_HEADER, 1, header_payload(3, props=props))
    c.send_frame(rawamqp.FRAME_BODY, 1, b"ab")
    expect_nothing(c, 0.5)
    c.send_frame(rawamqp.FRAME_BODY, 1, b"c")
    expect_close(c, 540, "NOT_IMPLEMENTED - immediate=true", 60, 40)


# --------------------------------------------------------------------------- deeply nested tables
def nested_value(depth: int, kind: str) -> bytes:
    """A field value (type octet included) nesting ``depth`` tables (``F``) or arrays (``A``)."""
    v = b"V"
    for _ in range(depth):
        v = b"F" + table(("a", v)) if kind == "F" else b"A" + struct.pack(">I", len(v)) + v
    return v


@pytest.mark.parametrize("kind", ["F", "A"])
def test_headers_nested_5000_deep_travel_unchanged(rawc, kind):
    """RabbitMQ's table parser has no depth limit: headers nested 5000 levels deep are taken and
    delivered byte for byte."""
    c = opened(rawc)
    q = declare_queue(c)
    props = b"\x20\x00" + table(("h", nested_value(5000, kind)))
    publish_raw(c, 1, q, b"x", props=props)
    assert wait_message_count(c, 1, q, 1) == 1
    c.send_method(1, C.Basic.Get(queue=q, no_ack=True))
    c.expect(C.Basic.GetOk, 1)
    ftype, ch, payload = c.read_raw_frame()
    assert (ftype, ch, payload[12:]) == (rawamqp.FRAME_HEADER, 1, props)


@pytest.mark.parametrize("kind", ["F", "A"])
def test_queue_argument_nested_5000_deep_is_accepted(rawc, uniq, kind):
    """An (unknown) queue argument nested 5000 deep: declare-ok, and the same declare again too."""
    c = opened(rawc)
    args = queue_declare_args(uniq, table(("x-deep", nested_value(5000, kind))))
    for _ in range(2):
        c.send_frame(rawamqp.FRAME_METHOD, 1, args)
        assert c.expect(C.Queue.DeclareOk, 1).queue == uniq


def test_client_properties_nested_deep_are_accepted(raw):
    """Client properties nested as deep as the handshake's 4 KiB frames allow: connection.tune."""
    c = raw()
    c.start()
    start_ok_with(c, nested_value(500, "F"))
    c.expect(C.Connection.Tune, 0)


# --------------------------------------------------------------------------- how sockets close
def test_bad_protocol_header_then_reset(raw):
    """A wrong protocol header: RabbitMQ's header, then the socket is reset (SO_LINGER 0)."""
    c = raw()
    c.send_header(b"AMQP\x00\x00\x09\x05")
    assert c.read_until_end(3.0) == ("RST", rawamqp.AMQP_HEADER)


def test_close_after_close_ok_is_a_reset(rawc):
    """A connection error: connection.close; after the client's close-ok the socket is reset."""
    c = opened(rawc)
    c.send_frame(rawamqp.FRAME_BODY, 1, b"xx")
    assert close_frame(c)[0] == 505
    c.send_frame(1, 0, method_payload(10, 51))
    assert c.read_until_end(3.0) == ("RST", b"")


def test_client_hang_up_after_close_ok_is_answered_with_a_reset(rawc):
    """The client closes the connection and, after close-ok, shuts its side: reset."""
    c = rawc()
    c.send_method(0, C.Connection.Close(reply_code=200, reply_text="bye", class_id=0, method_id=0))
    c.expect(C.Connection.CloseOk, 0)
    c.sock.shutdown(socket.SHUT_WR)
    assert c.read_until_end(3.0) == ("RST", b"")


def test_silent_close_is_a_reset(raw):
    """A refused login without authentication_failure_close: no frame, a reset 3 s later."""
    c = raw()
    c.start()
    c.start_ok(password="wrong-" + uuid.uuid4().hex[:6], capabilities={})
    t0 = time.monotonic()
    assert c.read_until_end(6.0) == ("RST", b"")
    assert SILENT_DELAY[0] <= time.monotonic() - t0 <= SILENT_DELAY[1]


@pytest.mark.parametrize("frame", [struct.pack(">BHI", 1, 0, 5) + method_payload(10, 50) + b"\x00\x00",
                                   struct.pack(">BHI", 3, 1, 1 << 20) + b"x"],
                         ids=["bad-frame-end", "frame-too-large"])
def test_fatal_frame_error_resets_3s_after_close_regardless_of_close_ok(rawc, frame):
    """After a frame error that loses sync with the stream (rabbit_reader:fatal_frame_error)
    RabbitMQ sends connection.close, reads nothing more -- not even close-ok -- and resets the
    socket 3 s later."""
    c = opened(rawc)
    c.send_raw(frame)
    t0 = time.monotonic()
    assert close_frame(c)[0] == 501
    c.send_frame(1, 0, method_payload(10, 51))
    assert c.read_until_end(6.0) == ("RST", b"")
    assert SILENT_DELAY[0] <= time.monotonic() - t0 <= SILENT_DELAY[1]
