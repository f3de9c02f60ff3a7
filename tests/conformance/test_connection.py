"""Connection- and channel-level conformance: what RabbitMQ 3.10 puts on the wire.

Most tests drive a raw socket through ``tests/rawamqp.py`` (pamqp frames) because
clients hide these details; the rest use pika (blocking and asyncio adapters).

Notes on RabbitMQ's behaviour pinned down here:
* RabbitMQ closes sockets with SO_LINGER 0, so a close is seen as EOF *or* RST;
  ``rawamqp`` reports both as ``ConnectionClosedError``.
* Handshake errors that are not access-refused/not-allowed are "silent": RabbitMQ
  waits 3 s (SILENT_CLOSE_DELAY) and drops the socket without a frame.
"""
from __future__ import annotations

import asyncio
import socket
import time
import uuid

import pika
import pika.exceptions
import pytest
from pamqp import body as pbody
from pamqp import commands as C
from pamqp import frame as pframe
from pamqp import header as pheader
from pamqp import heartbeat as pheartbeat

import rawamqp
from rawamqp import RawConnection, method_payload

AMQP_091 = b"AMQP\x00\x00\x09\x01"


# --------------------------------------------------------------------------- helpers
def fields(f) -> dict:
    return {k: getattr(f, k) for k in f.__slots__}


def expect_connection_close(c: RawConnection, code: int, text: str, class_id: int, method_id: int,
                            timeout: float = 3.0) -> None:
    """Next non-heartbeat frame is connection.close(code, text, class, method) on channel 0."""
    ch, f = c.read_frame_skip_heartbeats(timeout)
    assert isinstance(f, C.Connection.Close), f"expected Connection.Close, got {f!r} on {ch}"
    assert ch == 0
    assert (f.reply_code, f.reply_text, f.class_id, f.method_id) == (code, text, class_id, method_id)


def expect_close_and_socket_shut(c: RawConnection, code: int, text: str, class_id: int,
                                 method_id: int) -> None:
    """connection.close arrives; after our close-ok the broker closes the socket."""
    expect_connection_close(c, code, text, class_id, method_id)
    c.send_method(0, C.Connection.CloseOk())
    assert c.wait_closed(3.0)


# --------------------------------------------------------------------------- protocol header
@pytest.mark.parametrize("header", [
    b"AMQP\x00\x00\x09\x02",       # unsupported revision
    b"AMQP\x00\x00\x08\x00",       # AMQP 0-8
    b"AMQP\x00\x01\x00\x00",       # AMQP 1.0 (plugin not enabled)
    b"HTTP/1.1",
    b"GET / HTTP/1.1\r\n\r\n",
])
def test_bad_protocol_header_gets_091_header_and_close(raw, header):
    """A wrong protocol header is answered with AMQP 0-9-1's header, then the socket closes."""
    c = raw()
    c.send_raw(header)
    assert c.read_until_closed(3.0) == AMQP_091


def test_incomplete_header_is_not_answered_quickly(raw):
    """Only 4 bytes of header: RabbitMQ waits for the rest (no immediate reply, socket stays open)."""
    c = raw()
    c.send_raw(b"AMQP")
    with pytest.raises(socket.timeout):
        c.read_raw(1.0)


# --------------------------------------------------------------------------- connection.start
def test_connection_start_contents(raw):
    """connection.start: version 0-9, mechanisms PLAIN and AMQPLAIN, en_US,
    product/version/platform, capabilities.

    RabbitMQ lists the mechanisms in its registry's order, which is an ETS set's iteration
    order and so depends on what else the node registered: one 3.10.8 node sent "PLAIN AMQPLAIN",
    a fresh one booted with the management and Prometheus plugins "AMQPLAIN PLAIN". Leveret always sends "PLAIN AMQPLAIN"; the test asks for the set."""
    c = raw()
    start = c.start()
    assert (start.version_major, start.version_minor) == (0, 9)
    assert sorted(start.mechanisms.split(" ")) == ["AMQPLAIN", "PLAIN"]
    assert start.locales == "en_US"
    props = start.server_properties
    for key in ("product", "version", "platform"):
        assert isinstance(props[key], str) and props[key]
    caps = props["capabilities"]
    for cap in ("publisher_confirms", "exchange_exchange_bindings", "basic.nack",
                "consumer_cancel_notify", "connection.blocked", "consumer_priorities",
                "authentication_failure_close", "per_consumer_qos", "direct_reply_to"):
        assert caps.get(cap) is True, cap


def test_connection_start_is_on_channel_zero_after_header(raw):
    """The first bytes back after a correct header are a method frame on channel 0 (no header echo)."""
    c = raw()
    c.send_header()
    data = b""
    while len(data) < 7:
        data += c.read_raw(3.0)
    assert data[0] == 1 and data[1:3] == b"\x00\x00"


# --------------------------------------------------------------------------- authentication
@pytest.mark.parametrize("mechanism", ["PLAIN", "AMQPLAIN"])
def test_login_mechanisms(raw, mechanism):
    """PLAIN and AMQPLAIN logins with guest/guest reach connection.open-ok."""
    c = raw()
    res = c.handshake(mechanism=mechanism)
    assert isinstance(res.open_ok, C.Connection.OpenOk)
    assert res.open_ok.known_hosts == ""
    c.open_channel(1)
    c.close()


@pytest.mark.parametrize("mechanism", ["PLAIN", "AMQPLAIN"])
@pytest.mark.parametrize("user,password", [("guest", "wrong"), ("no-such-user-xyz", "guest")])
def test_bad_credentials_with_auth_failure_close_capability(raw, mechanism, user, password):
    """Bad login + client capability authentication_failure_close: connection.close 403 ACCESS_REFUSED."""
    c = raw()
    c.start()
    c.start_ok(user=user, password=password, mechanism=mechanism)
    expect_close_and_socket_shut(
        c, 403,
        f"ACCESS_REFUSED - Login was refused using authentication mechanism {mechanism}. "
        "For details see the broker logfile.", 0, 0)


def test_bad_credentials_without_capability_closes_silently(raw):
    """Bad login without authentication_failure_close: no frame at all, the socket is just closed (~3 s)."""
    c = raw()
    c.start()
    c.start_ok(password="wrong", capabilities={})
    assert c.wait_closed(5.0)
    assert c.received == []


def test_bad_credentials_pika(broker_addr):
    """pika sees the 403 close as ProbableAuthenticationError/AuthenticationError with RabbitMQ's text."""
    host, port = broker_addr
    params = pika.ConnectionParameters(host, port, "/", pika.PlainCredentials("guest", "wrong"),
                                       connection_attempts=1)
    with pytest.raises(pika.exceptions.ProbableAuthenticationError) as ei:
        pika.BlockingConnection(params)
    assert "ACCESS_REFUSED - Login was refused using authentication mechanism PLAIN" in str(ei.value)


def test_unknown_vhost_not_allowed(raw):
    """connection.open on a missing vhost: connection.close 530 NOT_ALLOWED 'vhost X not found' (10, 40)."""
    c = raw()
    c.start()
    c.start_ok()
    c.expect(C.Connection.Tune, 0)
    c.tune_ok()
    reply = c.open("no-such-vhost-xyz")
    assert isinstance(reply, C.Connection.Close)
    assert fields(reply) == {"reply_code": 530, "reply_text": "NOT_ALLOWED - vhost no-such-vhost-xyz not found",
                             "class_id": 10, "method_id": 40}
    c.send_method(0, C.Connection.CloseOk())
    assert c.wait_closed(3.0)


# --------------------------------------------------------------------------- tune
def test_tune_proposal(raw):
    """connection.tune proposes channel_max 2047, frame_max 131072, heartbeat 60."""
    c = raw()
    c.start()
    c.start_ok()
    tune = c.expect(C.Connection.Tune, 0)
    assert (tune.channel_max, tune.frame_max, tune.heartbeat) == (2047, 131072, 60)


def test_lower_channel_max_wins(rawc):
    """With tune-ok channel_max=3 a 4th open channel fails: 530 NOT_ALLOWED, channel numbers themselves are not limited."""
    c = rawc(channel_max=3)
    c.open_channel(1)
    c.open_channel(2)
    c.open_channel(60000)  # RabbitMQ counts channels, it does not bound channel numbers
    c.send_method(4, C.Channel.Open())
    expect_close_and_socket_shut(
        c, 530, "NOT_ALLOWED - number of channels opened (3) has reached the negotiated channel_max (3)", 0, 0)


def test_closed_channel_frees_a_slot(rawc):
    """Closing a channel frees its slot under channel_max."""
    c = rawc(channel_max=2)
    c.open_channel(1)
    c.open_channel(2)
    c.close_channel(1)
    c.open_channel(3)
    c.close()


def test_lower_frame_max_wins(rawc):
    """With tune-ok frame_max=4096 a 5012-byte frame is 501 FRAME_ERROR frame_too_large (limit 4096-8)."""
    c = rawc(frame_max=4096)
    c.open_channel(1)
    c.send_frame(rawamqp.FRAME_METHOD, 1, method_payload(50, 10) + b"\x00" * 5000)
    # RabbitMQ does not parse further after this error, so it never sees our close-ok.
    expect_connection_close(c, 501, "FRAME_ERROR - type 1, all octets = <<>>: {frame_too_large,5004,4088}", 0, 0)


def test_frame_at_exact_frame_max_is_accepted(rawc):
    """A frame of exactly frame_max bytes (payload frame_max-8) is accepted."""
    c = rawc(frame_max=4096)
    c.open_channel(1)
    body = b"y" * 4088
    c.send_method(1, C.Queue.Declare(queue="", exclusive=True))
    q = c.expect(C.Queue.DeclareOk, 1).queue
    c.send_raw(pframe.marshal(C.Basic.Publish(exchange="", routing_key=q), 1)
               + pframe.marshal(pheader.ContentHeader(0, len(body), C.Basic.Properties()), 1)
               + pframe.marshal(pbody.ContentBody(body), 1))
    c.send_method(1, C.Basic.Get(queue=q, no_ack=True))
    ok = c.expect(C.Basic.GetOk, 1)
    assert ok.message_count == 0
    c.expect(pheader.ContentHeader, 1)
    got = b""
    while len(got) < len(body):
        got += c.expect(pbody.ContentBody, 1).value
    assert got == body
    c.close()


def test_oversized_body_frame_is_frame_error(rawc):
    """A body frame larger than frame_max: 501 FRAME_ERROR 'type 3 ... {frame_too_large,10000,4088}'."""
    c = rawc(frame_max=4096)
    c.open_channel(1)
    c.send_method(1, C.Basic.Publish(exchange="", routing_key="nowhere"))
    c.send_raw(pframe.marshal(pheader.ContentHeader(0, 10000, C.Basic.Properties()), 1))
    c.send_frame(rawamqp.FRAME_BODY, 1, b"x" * 10000)
    expect_connection_close(c, 501, "FRAME_ERROR - type 3, all octets = <<>>: {frame_too_large,10000,4088}", 0, 0)


@pytest.mark.parametrize("channel_max,frame_max", [(0, 131072), (2047, 131073)])
def test_tune_ok_above_server_limits_is_refused_silently(raw, channel_max, frame_max):
    """tune-ok channel_max 0 ("no limit") or frame_max > 131072: no open-ok, the socket is dropped after ~3 s."""
    c = raw()
    c.start()
    c.start_ok()
    c.expect(C.Connection.Tune, 0)
    c.tune_ok(channel_max=channel_max, frame_max=frame_max)
    c.send_method(0, C.Connection.Open(virtual_host="/"))
    assert c.wait_closed(5.0)
    assert c.received == []


# --------------------------------------------------------------------------- heartbeats
def test_broker_sends_heartbeats_at_half_interval(rawc):
    """heartbeat=1: the broker sends heartbeat frames on channel 0 (RabbitMQ: every interval/2)."""
    c = rawc(heartbeat=1)
    beats = 0
    # 1.8 s: every 0.5 s gives 3 beats, every 1 s at most 1; >= 2 tells them apart with room
    # for a loaded machine (1.3 s was flaky on 2 busy cores)
    deadline = time.monotonic() + 1.8
    while time.monotonic() < deadline:
        c.send_heartbeat()  # keep the broker from dropping us
        try:
            ch, f = c.read_frame(max(0.05, min(0.3, deadline - time.monotonic())))
        except socket.timeout:
            continue
        assert isinstance(f, pheartbeat.Heartbeat) and ch == 0
        beats += 1
    assert beats >= 2
    c.close()


def test_heartbeat_zero_disables_heartbeats(rawc):
    """heartbeat=0 in tune-ok: the broker sends no heartbeat frames."""
    c = rawc(heartbeat=0)
    with pytest.raises(socket.timeout):
        c.read_frame(1.2)
    c.close()


def test_silent_client_is_disconnected(rawc):
    """heartbeat=1 and a silent client: the socket is closed (no connection.close) after 2-3 intervals."""
    c = rawc(heartbeat=1)
    t0 = time.monotonic()
    assert c.wait_closed(6.0)
    elapsed = time.monotonic() - t0
    assert 1.5 <= elapsed <= 4.5, elapsed
    assert c.received and all(isinstance(f, pheartbeat.Heartbeat) for _, f in c.received)


def test_client_heartbeats_keep_connection_alive(rawc):
    """heartbeat=1 and a client sending heartbeats: still usable after 3.5 s."""
    c = rawc(heartbeat=1)
    t0 = time.monotonic()
    while time.monotonic() - t0 < 3.5:
        c.send_heartbeat()
        try:
            c.read_frame(0.3)
        except socket.timeout:
            pass
    c.open_channel(1)
    c.close()


# --------------------------------------------------------------------------- close
def test_client_close_gets_close_ok(rawc):
    """Client connection.close (with an open channel): close-ok on channel 0; later frames get no reply."""
    c = rawc()
    c.open_channel(1)
    c.send_method(0, C.Connection.Close(reply_code=200, reply_text="bye", class_id=0, method_id=0))
    c.expect(C.Connection.CloseOk, 0)
    # RabbitMQ leaves closing the socket to the client (it would drop it itself after 30 s);
    # the connection is dead though: nothing sent after close-ok is answered.
    c.send_method(2, C.Channel.Open())
    with pytest.raises(socket.timeout):
        c.read_frame(0.5)


@pytest.mark.parametrize("who", ["broker", "client"])
def test_a_closed_connection_waits_the_heartbeat_interval_for_the_peer(rawc, who):
    """After connection.close -- the broker's, for a connection error, or the client's, answered
    with close-ok -- the broker leaves the socket to the peer for the negotiated heartbeat
    interval (when one is negotiated and is under 30 s; else 30 s, rabbit_reader's
    ?CLOSING_TIMEOUT), then drops it. Heartbeat 2 here: not within 1 s, but within a few."""
    c = rawc(heartbeat=2)
    if who == "broker":
        c.send_method(0, C.Channel.Open())          # a channel method on channel 0: 504
        ch, f = c.read_frame_skip_heartbeats(3.0)
        assert (ch, type(f), f.reply_code) == (0, C.Connection.Close, 504)
    else:
        c.send_method(0, C.Connection.Close(reply_code=200, reply_text="bye", class_id=0, method_id=0))
        c.expect(C.Connection.CloseOk, 0)
    assert not c.wait_closed(1.0)
    assert c.wait_closed(5.0)


def test_connection_update_secret(rawc):
    """connection.update-secret is answered with update-secret-ok (RabbitMQ 3.10, internal backend, any secret)."""
    c = rawc()
    c.send_method(0, C.Connection.UpdateSecret(new_secret="guest", reason="rotation"))
    c.expect(C.Connection.UpdateSecretOk, 0)
    c.open_channel(1)
    c.close()


# --------------------------------------------------------------------------- channels
def test_open_all_2047_channels_then_one_more_fails(rawc):
    """2047 channels open on one connection; the 2048th channel.open gets 530 NOT_ALLOWED."""
    c = rawc()
    c.send_raw(b"".join(pframe.marshal(C.Channel.Open(), n) for n in range(1, 2048)))
    opened = set()
    for _ in range(2047):
        ch, f = c.read_frame(10.0)  # replies may interleave across channels
        assert isinstance(f, C.Channel.OpenOk)
        opened.add(ch)
    assert opened == set(range(1, 2048))
    c.send_method(2048, C.Channel.Open())
    expect_close_and_socket_shut(
        c, 530, "NOT_ALLOWED - number of channels opened (2047) has reached the negotiated channel_max (2047)",
        0, 0)


def test_open_ok_fields(rawc):
    """channel.open-ok carries an empty channel_id long string."""
    c = rawc()
    c.send_method(1, C.Channel.Open())
    ok = c.expect(C.Channel.OpenOk, 1)
    assert ok.channel_id == ""
    c.close()


@pytest.mark.parametrize("method,cls_meth", [
    (C.Queue.Declare(queue="", exclusive=True), (50, 10)),
    (C.Channel.Close(reply_code=200, reply_text="x", class_id=0, method_id=0), (20, 40)),
    (C.Channel.CloseOk(), (20, 41)),
    (C.Connection.Open(virtual_host="/"), (10, 40)),
])
def test_method_on_unopened_channel(rawc, method, cls_meth):
    """Any method on a never-opened channel: connection.close 504 CHANNEL_ERROR "expected 'channel.open'"."""
    c = rawc()
    c.send_method(5, method)
    expect_close_and_socket_shut(c, 504, "CHANNEL_ERROR - expected 'channel.open'", *cls_meth)


def test_second_channel_open(rawc):
    """channel.open on an already open channel: connection.close 504 "second 'channel.open' seen"."""
    c = rawc()
    c.open_channel(1)
    c.send_method(1, C.Channel.Open())
    expect_close_and_socket_shut(c, 504, "CHANNEL_ERROR - second 'channel.open' seen", 20, 10)


def test_channel_close_and_reopen(rawc):
    """channel.close -> close-ok; the same number can be opened again."""
    c = rawc()
    c.open_channel(1)
    c.send_method(1, C.Channel.Close(reply_code=200, reply_text="bye", class_id=0, method_id=0))
    c.expect(C.Channel.CloseOk, 1)
    c.open_channel(1)
    c.send_method(1, C.Queue.Declare(queue="", exclusive=True))
    c.expect(C.Queue.DeclareOk, 1)
    c.close()


def test_channel_flow_active_true(rawc):
    """channel.flow(active=true) -> flow-ok(active=true)."""
    c = rawc()
    c.open_channel(1)
    c.send_method(1, C.Channel.Flow(active=True))
    assert c.expect(C.Channel.FlowOk, 1).active is True
    c.close()


def test_channel_flow_active_false_not_implemented(rawc):
    """channel.flow(active=false): RabbitMQ 3.10 closes the connection 540 NOT_IMPLEMENTED 'active=false'."""
    c = rawc()
    c.open_channel(1)
    c.send_method(1, C.Channel.Flow(active=False))
    expect_close_and_socket_shut(c, 540, "NOT_IMPLEMENTED - active=false", 20, 20)


def test_channel_method_on_channel_zero(rawc):
    """queue.declare / channel.open on channel 0: 504 'unexpected method in connection state running'."""
    c = rawc()
    c.send_method(0, C.Queue.Declare(queue="", exclusive=True))
    expect_close_and_socket_shut(c, 504, "CHANNEL_ERROR - unexpected method in connection state running", 50, 10)


def test_start_ok_after_open_is_channel_error(rawc):
    """A second connection.start-ok after open: 504 'unexpected method in connection state running' (10, 11)."""
    c = rawc()
    c.start_ok()
    expect_close_and_socket_shut(c, 504, "CHANNEL_ERROR - unexpected method in connection state running", 10, 11)


def test_channel_error_closes_only_that_channel_raw(rawc):
    """Passive declare of a missing queue: channel.close 404; frames before close-ok are ignored; connection lives."""
    c = rawc()
    c.open_channel(1)
    c.open_channel(2)
    c.send_method(1, C.Queue.Declare(queue="no-such-queue-xyz-raw", passive=True))
    f = c.expect(C.Channel.Close, 1)
    assert fields(f) == {"reply_code": 404, "reply_text": "NOT_FOUND - no queue 'no-such-queue-xyz-raw' in vhost '/'",
                         "class_id": 50, "method_id": 10}
    # Until we send close-ok the broker discards everything else on that channel.
    c.send_method(1, C.Queue.Declare(queue="", exclusive=True))
    with pytest.raises(socket.timeout):
        c.read_frame(0.5)
    c.send_method(1, C.Channel.CloseOk())
    c.send_method(2, C.Queue.Declare(queue="", exclusive=True))
    c.expect(C.Queue.DeclareOk, 2)
    c.open_channel(1)
    c.close()


def test_channel_error_closes_only_that_channel_pika(conn, uniq):
    """pika: a channel error (404 passive declare) closes that channel; the connection and other channels work."""
    ch1 = conn.channel()
    ch2 = conn.channel()
    with pytest.raises(pika.exceptions.ChannelClosedByBroker) as ei:
        ch1.queue_declare(uniq + ".missing", passive=True)
    assert ei.value.reply_code == 404
    assert ei.value.reply_text == f"NOT_FOUND - no queue '{uniq}.missing' in vhost '/'"
    assert ch1.is_closed and ch2.is_open and conn.is_open
    q = uniq + ".q"
    ch2.queue_declare(q)
    try:
        ch2.basic_publish("", q, b"still-alive")
        m, _, body = ch2.basic_get(q, auto_ack=True)
        assert body == b"still-alive"
        ch3 = conn.channel()
        assert ch3.queue_declare(q, passive=True).method.message_count == 0
    finally:
        ch2.queue_delete(q)


# --------------------------------------------------------------------------- connection-level frame errors
@pytest.mark.parametrize("channel,payload", [
    (1, method_payload(50, 99)),   # unknown method of a known class
    (1, method_payload(99, 10)),   # unknown class
    (0, method_payload(10, 99)),   # unknown connection method
])
def test_unknown_class_or_method_drops_connection(rawc, channel, payload):
    """Unknown class/method id: RabbitMQ 3.10's reader crashes -> socket dropped, no connection.close sent."""
    c = rawc()
    c.open_channel(1)
    c.send_frame(rawamqp.FRAME_METHOD, channel, payload)
    assert c.wait_closed(3.0)
    assert c.received == []


def test_bad_frame_end_is_frame_error(rawc):
    """Frame end octet != 0xCE: 501 FRAME_ERROR with the frame type and payload in the text."""
    c = rawc()
    c.open_channel(1)
    c.send_frame(rawamqp.FRAME_METHOD, 1, method_payload(20, 10, b"\x00"), end=0)
    expect_connection_close(
        c, 501, "FRAME_ERROR - type 1, all octets = <<0,20,0,10,0>>: {invalid_frame_end_marker,0}", 0, 0)


def test_unknown_frame_type_is_frame_error(rawc):
    """Frame type 9: 501 FRAME_ERROR '... unknown_frame'."""
    c = rawc()
    c.send_frame(9, 0, b"abc")
    expect_close_and_socket_shut(c, 501, 'FRAME_ERROR - type 9, all octets = <<"abc">>: unknown_frame', 0, 0)


def test_truncated_method_arguments_is_frame_error(rawc):
    """queue.declare with truncated arguments: 501 FRAME_ERROR 'cannot decode <<0>>' (50, 10)."""
    c = rawc()
    c.open_channel(1)
    c.send_frame(rawamqp.FRAME_METHOD, 1, method_payload(50, 10, b"\x00"))
    expect_close_and_socket_shut(c, 501, "FRAME_ERROR - cannot decode <<0>>", 50, 10)


@pytest.mark.parametrize("kind", ["body", "header"])
def test_content_frame_without_method_is_unexpected(rawc, kind):
    """Content header/body frame with no preceding publish: 505 UNEXPECTED_FRAME."""
    c = rawc()
    c.open_channel(1)
    if kind == "body":
        c.send_frame(rawamqp.FRAME_BODY, 1, b"abc")
    else:
        c.send_raw(pframe.marshal(pheader.ContentHeader(0, 3, C.Basic.Properties()), 1))
    expect_close_and_socket_shut(
        c, 505, "UNEXPECTED_FRAME - expected method frame, got non method frame instead", 0, 0)


def test_method_instead_of_content_header_is_unexpected(rawc):
    """basic.publish followed by a method frame: 505 'expected content header for class 60 ...' (60, 40)."""
    c = rawc()
    c.open_channel(1)
    c.send_method(1, C.Basic.Publish(exchange="", routing_key="x"))
    c.send_method(1, C.Basic.Qos(prefetch_size=0, prefetch_count=10, global_=False))
    expect_close_and_socket_shut(
        c, 505, "UNEXPECTED_FRAME - expected content header for class 60, got non content header frame instead",
        60, 40)


def test_heartbeat_on_nonzero_channel_is_unexpected(rawc):
    """Heartbeat frame on channel 1: 505 'UNEXPECTED_FRAME - type 8, all octets = <<>>'."""
    c = rawc()
    c.send_frame(rawamqp.FRAME_HEARTBEAT, 1, b"")
    expect_close_and_socket_shut(c, 505, "UNEXPECTED_FRAME - type 8, all octets = <<>>", 0, 0)


def test_connection_error_kills_all_channels_pika(conn):
    """pika: a connection error raised on one channel closes the whole connection (ConnectionClosedByBroker)."""
    ch = conn.channel()
    other = conn.channel()
    # A never-seen type name: RabbitMQ says "invalid" instead of "unknown" for names that are Erlang atoms.
    bogus = "x-no-such-type-" + uuid.uuid4().hex[:8]
    with pytest.raises(pika.exceptions.ConnectionClosedByBroker) as ei:
        ch.exchange_declare("t.conn-error.x", exchange_type=bogus)
    assert ei.value.reply_code == 503
    assert ei.value.reply_text == f"COMMAND_INVALID - unknown exchange type '{bogus}'"
    assert conn.is_closed and other.is_closed


# --------------------------------------------------------------------------- async client
async def test_pika_asyncio_adapter_full_cycle(broker_url, uniq):
    """pika AsyncioConnection: open, declare, publish, consume, ack, cancel, delete, close."""
    from pika.adapters.asyncio_connection import AsyncioConnection

    loop = asyncio.get_running_loop()
    done: asyncio.Future = loop.create_future()
    events: list = []
    q = uniq + ".q"

    def fail(*args):
        if not done.done():
            done.set_exception(AssertionError(f"unexpected failure: {args!r}"))

    def on_open(connection):
        connection.channel(on_open_callback=on_channel)

    def on_channel(ch):
        ch.queue_declare(q, callback=lambda frame: on_declared(ch, frame))

    def on_declared(ch, frame):
        events.append(("declared", frame.method.queue))
        ch.basic_consume(q, lambda *a: on_message(ch, *a), consumer_tag=uniq + ".ctag",
                         callback=lambda f: on_consume_ok(ch, f))

    def on_consume_ok(ch, frame):
        events.append(("consume-ok", frame.method.consumer_tag))
        ch.basic_publish("", q, b"async-hello", pika.BasicProperties(content_type="text/plain"))

    def on_message(ch, _ch, method, props, body):
        events.append(("message", body, props.content_type, method.redelivered))
        ch.basic_ack(method.delivery_tag)
        ch.basic_cancel(method.consumer_tag, callback=lambda f: on_cancel_ok(ch, f))

    def on_cancel_ok(ch, frame):
        events.append(("cancel-ok", frame.method.consumer_tag))
        ch.queue_delete(q, callback=lambda f: on_deleted(ch, f))

    def on_deleted(ch, frame):
        events.append(("deleted", frame.method.message_count))
        ch.connection.close()

    def on_close(connection, reason):
        events.append(("closed", type(reason).__name__))
        if not done.done():
            done.set_result(None)

    AsyncioConnection(pika.URLParameters(broker_url), on_open_callback=on_open,
                      on_open_error_callback=fail, on_close_callback=on_close, custom_ioloop=loop)
    await asyncio.wait_for(done, 10)
    assert events == [
        ("declared", q),
        ("consume-ok", uniq + ".ctag"),
        ("message", b"async-hello", "text/plain", False),
        ("cancel-ok", uniq + ".ctag"),
        ("deleted", 0),
        ("closed", "ConnectionClosedByClient"),
    ]
