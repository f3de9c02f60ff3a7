"""A tiny raw-socket AMQP 0-9-1 client for wire-level conformance tests.

Built on ``pamqp`` (frame marshal/unmarshal and the method classes), it lets a
test do exactly what real clients hide: send a wrong protocol header, log in
with AMQPLAIN, negotiate odd tune values, stay silent to trip heartbeats, or
write arbitrary bytes.

Typical use::

    from rawamqp import RawConnection, connect
    from pamqp import commands as C

    with connect(broker_url) as c:              # header + start/tune/open done
        c.open_channel(1)
        c.send_method(1, C.Queue.Declare(queue="q", passive=True))
        ch, frame = c.read_frame()            # -> (1, Channel.Close(...))

    c = RawConnection(host, port)             # step by step
    c.send_header()
    start = c.expect(C.Connection.Start)
    ...

API summary (all reads take an optional ``timeout`` in seconds):

* ``RawConnection(host, port, timeout=5.0)``    -- open the TCP socket
* ``send_raw(data)``                              -- write bytes as they are
* ``send_header(data=AMQP_HEADER)``               -- write a protocol header
* ``send_method(channel, method)``                -- write one pamqp method frame
* ``send_frame(frame_type, channel, payload)``    -- write a frame with any type/payload
* ``send_heartbeat()``                            -- write a heartbeat frame
* ``publish(channel, exchange, routing_key, body, properties=None)``
* ``read_frame(timeout=None)``                    -> ``(channel, frame)``; raises
  ``ConnectionClosedError`` on EOF and ``socket.timeout`` when nothing arrives
* ``read_raw_frame(timeout=None)``                -> ``(frame_type, channel, payload)``, undecoded
* ``read_frame_skip_heartbeats(timeout=None)``    -- same as ``read_frame``, but ignore heartbeats
* ``expect(cls, channel=None, timeout=None)``     -- read (skipping heartbeats)
  and assert the frame type (and channel), return the frame
* ``read_raw(timeout=None)``                      -- whatever bytes are available
* ``read_until_closed(timeout=None)``             -> all bytes received until EOF
  (raises ``socket.timeout`` if the peer keeps the socket open)
* ``read_until_end(timeout=None)``                -> ``("FIN" | "RST", bytes received)``: how
  the peer ended the connection (raises ``socket.timeout`` if it does not)
* ``wait_closed(timeout)``                        -> True if the peer closed the
  socket within ``timeout`` (frames read meanwhile land in ``self.received``)
* ``handshake(...)``                              -- header, start-ok, tune-ok, open;
  returns ``HandshakeResult(start, tune, open_ok)``; the individual steps are
  ``start()``, ``start_ok()``, ``tune_ok()``, ``open()``
* ``open_channel(n)`` / ``close_channel(n)`` / ``close()`` (orderly, with close-ok)
* ``shutdown()``                                  -- just drop the socket

Helpers: ``plain_response(user, pw)``, ``amqplain_response(user, pw)``,
``method_payload(class_id, method_id, args)``, ``parse_url(url)``, ``connect(url, ...)``.
"""
from __future__ import annotations

import dataclasses
import socket
import struct
import time
import urllib.parse
from typing import Any

from pamqp import body as pbody
from pamqp import commands as C
from pamqp import constants, encode, frame
from pamqp import header as pheader
from pamqp import heartbeat as pheartbeat

AMQP_HEADER = b"AMQP\x00\x00\x09\x01"

FRAME_METHOD = constants.FRAME_METHOD  # 1
FRAME_HEADER = constants.FRAME_HEADER  # 2
FRAME_BODY = constants.FRAME_BODY  # 3
FRAME_HEARTBEAT = constants.FRAME_HEARTBEAT  # 8
FRAME_END = constants.FRAME_END  # 0xCE

# Client capabilities a modern client announces (pika/aio-pika send the same set).
DEFAULT_CAPABILITIES = {
    "authentication_failure_close": True,
    "basic.nack": True,
    "connection.blocked": True,
    "consumer_cancel_notify": True,
    "publisher_confirms": True,
}


class ConnectionClosedError(Exception):
    """The peer closed the TCP connection (EOF) while we were reading."""


@dataclasses.dataclass
class HandshakeResult:
    start: C.Connection.Start
    tune: C.Connection.Tune
    open_ok: C.Connection.OpenOk


def plain_response(user: str, password: str) -> bytes:
    """SASL PLAIN response: ``\\0user\\0password``."""
    return b"\x00" + user.encode() + b"\x00" + password.encode()


def amqplain_response(user: str, password: str) -> bytes:
    """AMQPLAIN response: a field table *without* its 4-byte length prefix."""
    return encode.field_table({"LOGIN": user, "PASSWORD": password})[4:]


def method_payload(class_id: int, method_id: int, args: bytes = b"") -> bytes:
    """Payload of a method frame from raw class/method ids and encoded arguments."""
    return struct.pack(">HH", class_id, method_id) + args


def parse_url(url: str) -> tuple[str, int, str, str, str]:
    """``amqp://user:pw@host:port/vhost`` -> (host, port, user, password, vhost)."""
    u = urllib.parse.urlparse(url)
    vhost = urllib.parse.unquote(u.path[1:]) if len(u.path) > 1 else "/"
    return (u.hostname or "127.0.0.1", u.port or 5672,
            urllib.parse.unquote(u.username or "guest"),
            urllib.parse.unquote(u.password or "guest"), vhost)


class RawConnection:
    """One TCP connection speaking raw AMQP frames. See the module docstring."""

    def __init__(self, host: str = "127.0.0.1", port: int = 5672, timeout: float = 5.0):
        self.timeout = timeout
        self.sock = socket.create_connection((host, port), timeout=timeout)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self._buf = b""
        self._eof = False
        self.received: list[tuple[int, Any]] = []  # frames collected by wait_closed()
        self.frame_max = 131072

    # -- context manager -------------------------------------------------
    def __enter__(self) -> "RawConnection":
        return self

    def __exit__(self, *exc) -> None:
        self.shutdown()

    # -- writing ---------------------------------------------------------
    def send_raw(self, data: bytes) -> None:
        """Write bytes exactly as given."""
        self.sock.sendall(data)

    def send_header(self, data: bytes = AMQP_HEADER) -> None:
        """Write a protocol header (default: AMQP 0-9-1)."""
        self.send_raw(data)

    def send_method(self, channel: int, method) -> None:
        """Write one method frame built from a ``pamqp.commands`` instance."""
        self.send_raw(frame.marshal(method, channel))

    def send_frame(self, frame_type: int, channel: int, payload: bytes, end: int = FRAME_END) -> None:
        """Write a frame with arbitrary type, channel, payload and end octet."""
        self.send_raw(struct.pack(">BHI", frame_type, channel, len(payload)) + payload + bytes([end]))

    def send_heartbeat(self) -> None:
        self.send_raw(frame.marshal(pheartbeat.Heartbeat(), 0))

    def publish(self, channel: int, exchange: str, routing_key: str, body: bytes,
                properties: C.Basic.Properties | None = None, mandatory: bool = False) -> None:
        """basic.publish + content header + one body frame (body must fit frame_max)."""
        props = properties or C.Basic.Properties()
        data = frame.marshal(C.Basic.Publish(exchange=exchange, routing_key=routing_key,
                                             mandatory=mandatory), channel)
        data += frame.marshal(pheader.ContentHeader(0, len(body), props), channel)
        if body:
            data += frame.marshal(pbody.ContentBody(body), channel)
        self.send_raw(data)

    # -- reading ---------------------------------------------------------
    def _fill(self, timeout: float | None) -> None:
        if self._eof:
            raise ConnectionClosedError("connection closed by peer")
        self.sock.settimeout(self.timeout if timeout is None else timeout)
        try:
            chunk = self.sock.recv(65536)
        except ConnectionResetError as e:
            self._eof = True
            raise ConnectionClosedError("connection reset by peer") from e
        if not chunk:
            self._eof = True
            raise ConnectionClosedError("connection closed by peer")
        self._buf += chunk

    def read_raw(self, timeout: float | None = None) -> bytes:
        """Return buffered bytes or the next chunk from the socket."""
        if not self._buf:
            self._fill(timeout)
        data, self._buf = self._buf, b""
        return data

    def read_until_closed(self, timeout: float | None = None) -> bytes:
        """Read everything until EOF; raises ``socket.timeout`` if EOF does not come."""
        deadline = time.monotonic() + (self.timeout if timeout is None else timeout)
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise socket.timeout("peer did not close the connection")
            try:
                self._fill(left)
            except ConnectionClosedError:
                data, self._buf = self._buf, b""
                return data

    def read_until_end(self, timeout: float | None = None) -> tuple[str, bytes]:
        """Read until the peer ends the connection -> ("FIN" or "RST", the bytes received
        meanwhile, buffered ones included); raises ``socket.timeout`` if it does not."""
        deadline = time.monotonic() + (self.timeout if timeout is None else timeout)
        data, self._buf = self._buf, b""
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise socket.timeout("peer did not close the connection")
            self.sock.settimeout(left)
            try:
                chunk = self.sock.recv(65536)
            except ConnectionResetError:
                return "RST", data
            if not chunk:
                return "FIN", data
            data += chunk

    def _read_frame_bytes(self, timeout: float | None) -> bytes:
        """One whole frame (or an 8-byte protocol header) from the stream, as sent."""
        deadline = time.monotonic() + (self.timeout if timeout is None else timeout)
        while True:
            size = None
            if self._buf[:4] == b"AMQP" and len(self._buf) >= 8:
                size = 8
            elif len(self._buf) >= 7 and self._buf[:4] != b"AMQP":
                size = 8 + struct.unpack(">I", self._buf[3:7])[0]
            if size is not None and len(self._buf) >= size:
                data, self._buf = self._buf[:size], self._buf[size:]
                return data
            left = deadline - time.monotonic()
            if left <= 0:
                raise socket.timeout("no complete frame received in time")
            self._fill(left)

    def read_frame(self, timeout: float | None = None) -> tuple[int, Any]:
        """Read one frame -> ``(channel, frame)``; protocol headers come back as
        ``pamqp.header.ProtocolHeader`` with channel 0."""
        data = self._read_frame_bytes(timeout)
        if data[:4] == b"AMQP":
            return 0, frame.unmarshal(data)[2]
        _consumed, channel, value = frame.unmarshal(data)
        return channel, value

    def read_raw_frame(self, timeout: float | None = None) -> tuple[int, int, bytes]:
        """Read one frame without decoding it -> ``(frame_type, channel, payload)``."""
        data = self._read_frame_bytes(timeout)
        frame_type, channel = struct.unpack(">BH", data[:3])
        return frame_type, channel, data[7:-1]

    def read_frame_skip_heartbeats(self, timeout: float | None = None) -> tuple[int, Any]:
        while True:
            ch, f = self.read_frame(timeout)
            if not isinstance(f, pheartbeat.Heartbeat):
                return ch, f

    def expect(self, cls, channel: int | None = None, timeout: float | None = None):
        """Read the next non-heartbeat frame and assert its class (and channel)."""
        ch, f = self.read_frame_skip_heartbeats(timeout)
        assert isinstance(f, cls), f"expected {cls.__name__}, got {f!r} on channel {ch}"
        if channel is not None:
            assert ch == channel, f"expected channel {channel}, got {ch} for {f!r}"
        return f

    def wait_closed(self, timeout: float) -> bool:
        """True if the peer closes the socket within ``timeout`` seconds; every
        frame read meanwhile is appended to ``self.received``."""
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                return False
            try:
                self.received.append(self.read_frame(left))
            except ConnectionClosedError:
                return True
            except socket.timeout:
                return False

    # -- handshake steps -------------------------------------------------
    def start(self, header: bytes = AMQP_HEADER) -> C.Connection.Start:
        """Send the protocol header and return connection.start."""
        self.send_header(header)
        return self.expect(C.Connection.Start, 0)

    def start_ok(self, user: str = "guest", password: str = "guest", mechanism: str = "PLAIN",
                 response: bytes | None = None, client_properties: dict | None = None,
                 capabilities: dict | None = None, locale: str = "en_US") -> None:
        """Send connection.start-ok. ``response`` overrides the mechanism's
        response bytes. ``capabilities`` defaults to ``DEFAULT_CAPABILITIES``."""
        if response is None:
            if mechanism == "PLAIN":
                response = plain_response(user, password)
            elif mechanism == "AMQPLAIN":
                response = amqplain_response(user, password)
            else:
                response = b""
        props = {"product": "rawamqp", "platform": "Python",
                 "capabilities": DEFAULT_CAPABILITIES if capabilities is None else capabilities}
        props.update(client_properties or {})
        if not props["capabilities"]:
            del props["capabilities"]
        # Encoded by hand: pamqp wants the response as str, SASL responses are bytes.
        args = (encode.field_table(props) + encode.short_string(mechanism)
                + struct.pack(">I", len(response)) + response + encode.short_string(locale))
        self.send_frame(FRAME_METHOD, 0, method_payload(10, 11, args))

    def tune_ok(self, channel_max: int = 2047, frame_max: int = 131072, heartbeat: int = 0) -> None:
        self.frame_max = frame_max
        self.send_method(0, C.Connection.TuneOk(channel_max=channel_max, frame_max=frame_max,
                                                heartbeat=heartbeat))

    def open(self, vhost: str = "/") -> Any:
        """Send connection.open and return the reply frame (OpenOk or Close)."""
        self.send_method(0, C.Connection.Open(virtual_host=vhost))
        return self.read_frame_skip_heartbeats()[1]

    def handshake(self, user: str = "guest", password: str = "guest", vhost: str = "/",
                  mechanism: str = "PLAIN", heartbeat: int | None = 0,
                  channel_max: int | None = None, frame_max: int | None = None,
                  capabilities: dict | None = None, client_properties: dict | None = None,
                  header: bytes = AMQP_HEADER) -> HandshakeResult:
        """Full connection opening. ``None`` for heartbeat/channel_max/frame_max
        means "accept the server's proposal"; other values are sent as given."""
        start = self.start(header)
        self.start_ok(user, password, mechanism, capabilities=capabilities,
                      client_properties=client_properties)
        tune = self.expect(C.Connection.Tune, 0)
        self.tune_ok(channel_max=tune.channel_max if channel_max is None else channel_max,
                     frame_max=tune.frame_max if frame_max is None else frame_max,
                     heartbeat=tune.heartbeat if heartbeat is None else heartbeat)
        reply = self.open(vhost)
        assert isinstance(reply, C.Connection.OpenOk), f"connection.open failed: {reply!r}"
        return HandshakeResult(start, tune, reply)

    # -- channels / closing ---------------------------------------------
    def open_channel(self, channel: int) -> None:
        self.send_method(channel, C.Channel.Open())
        self.expect(C.Channel.OpenOk, channel)

    def close_channel(self, channel: int) -> None:
        self.send_method(channel, C.Channel.Close(reply_code=200, reply_text="Normal shutdown", class_id=0, method_id=0))
        self.expect(C.Channel.CloseOk, channel)

    def close(self) -> None:
        """Orderly connection.close; waits for close-ok, then drops the socket."""
        try:
            self.send_method(0, C.Connection.Close(reply_code=200, reply_text="Normal shutdown", class_id=0, method_id=0))
            self.expect(C.Connection.CloseOk, 0)
        finally:
            self.shutdown()

    def shutdown(self) -> None:
        """Drop the socket without any AMQP goodbye."""
        try:
            self.sock.close()
        except OSError:
            pass


def connect(url: str, timeout: float = 5.0, **handshake_kwargs) -> RawConnection:
    """Open a raw connection to ``url`` and complete the handshake (kwargs go to
    ``RawConnection.handshake``; user/password/vhost default to the URL's)."""
    host, port, user, password, vhost = parse_url(url)
    c = RawConnection(host, port, timeout)
    handshake_kwargs.setdefault("user", user)
    handshake_kwargs.setdefault("password", password)
    handshake_kwargs.setdefault("vhost", vhost)
    try:
        c.handshake(**handshake_kwargs)
    except BaseException:
        c.shutdown()
        raise
    return c
