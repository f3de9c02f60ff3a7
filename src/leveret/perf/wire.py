"""Blocking AMQP 0-9-1 client plumbing for ``leveret perf``.

URI parsing, the connection handshake (PLAIN auth, tune with heartbeat 0),
synchronous RPCs on channel 1, and a graceful close. Only set-up and tear-down
go through here: once a connection is ready the producer/consumer hot loops in
:mod:`.producer` and :mod:`.consumer` take over its socket (and whatever bytes
are already buffered) and parse frames themselves.

Method frames are encoded and decoded with Leveret's own generated codec
(:mod:`leveret.amqp.spec`). Every failure is raised as :class:`PerfError`, whose
text is meant to be printed as one line, without a traceback.
"""
from __future__ import annotations

import socket
import struct
import urllib.parse
from dataclasses import dataclass

from ..amqp import spec
from ..amqp.errors import AMQPSyntaxError, ConnectionError_, FrameError, SilentClose
from ..amqp.frames import method_frame

FH = struct.Struct(">BHI")          # frame header: type, channel, size
FRAME_END = b"\xce"
CLIENT_FRAME_MAX = 131072           # what we ask for (never more than the broker offers)
CLIENT_CHANNEL_MAX = 2047
DEFAULT_URI = "amqp://guest:guest@localhost:5672/%2F"

CLIENT_PROPERTIES = {
    "product": "leveret perf",
    "platform": "Python",
    "capabilities": {
        "publisher_confirms": True,
        "basic.nack": True,
        "consumer_cancel_notify": True,
        "connection.blocked": True,
        "authentication_failure_close": True,
    },
}


class PerfError(Exception):
    """A failure reported to the user as a single line (exit code 3 during set-up)."""


class BrokerClosed(PerfError):
    """The broker closed the connection or the channel (connection.close / channel.close)."""

    def __init__(self, what: str, code: int, text: str):
        name = spec.REPLY_NAMES.get(code, "")
        if name and not text.startswith(name):
            text = f"{name} - {text}"
        super().__init__(f"{what}: {code} {text}")
        self.code = code
        self.text = text


@dataclass
class Uri:
    host: str
    port: int
    user: str
    password: str
    vhost: str

    def masked(self) -> str:
        vhost = urllib.parse.quote(self.vhost, safe="")
        return f"amqp://{urllib.parse.quote(self.user, safe='')}:***@{self.host}:{self.port}/{vhost}"


def parse_uri(text: str) -> Uri:
    """``amqp://user:pass@host:port/vhost`` (percent-encoded parts; vhost ``%2F`` is ``/``)."""
    try:
        u = urllib.parse.urlsplit(text)
        port = u.port or 5672
    except ValueError as e:
        raise PerfError(f"bad URI {text!r}: {e}") from None
    if u.scheme == "amqps":
        raise PerfError("amqps:// (TLS) is not supported by leveret perf")
    if u.scheme != "amqp":
        raise PerfError(f"bad URI {text!r}: the scheme must be amqp://")
    user = urllib.parse.unquote(u.username) if u.username is not None else "guest"
    password = urllib.parse.unquote(u.password) if u.password is not None else "guest"
    path = u.path
    vhost = "/" if path in ("", "/") else urllib.parse.unquote(path[1:])
    return Uri(u.hostname or "localhost", port, user, password, vhost)


def content_header(size: int, persistent: bool) -> bytes:
    """basic content header payload: class 60, weight 0, body size, properties."""
    if persistent:   # property flags: delivery-mode only
        return struct.pack(">HHQHB", 60, 0, size, 0x1000, 2)
    return struct.pack(">HHQH", 60, 0, size, 0)


def frame(ftype: int, channel: int, payload: bytes) -> bytes:
    return FH.pack(ftype, channel, len(payload)) + payload + FRAME_END


class Connection:
    """One blocking AMQP connection with channel 1 open.

    After construction: ``frame_max``, ``server_properties``, ``sock`` (blocking,
    with the connect timeout still set) and ``buf`` (bytes read past the last
    frame handed out).
    """

    def __init__(self, uri: Uri, timeout: float = 10.0):
        self.uri = uri
        self.buf = bytearray()
        self.blocked: str | None = None
        self.closed = False
        self.channel_open = False
        where = f"{uri.host}:{uri.port}"
        try:
            self.sock = socket.create_connection((uri.host, uri.port), timeout=timeout)
        except socket.gaierror as e:
            raise PerfError(f"cannot resolve host {uri.host!r}: {e.strerror}") from None
        except socket.timeout:
            raise PerfError(f"cannot connect to {where}: timed out after {timeout:g} s") from None
        except OSError as e:
            raise PerfError(f"cannot connect to {where}: {e.strerror or e}") from None
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        try:
            self._handshake()
        except socket.timeout:
            self.sock.close()
            raise PerfError(f"{where}: no answer from the broker within {timeout:g} s "
                            "during the AMQP handshake") from None
        except PerfError:
            self.sock.close()
            raise
        except OSError as e:
            self.sock.close()
            raise PerfError(f"{where}: connection lost during the AMQP handshake: {e.strerror or e}") from None

    # ------------------------------------------------------------------ frames
    def read_frame(self, during: str = "") -> tuple[int, int, bytes]:
        buf = self.buf
        while True:
            if len(buf) >= 7:
                if buf[:4] == b"AMQP" and len(buf) >= 8:
                    raise PerfError(f"the broker does not speak AMQP 0-9-1 "
                                    f"(it answered with protocol header {bytes(buf[4:8]).hex()})")
                ftype, ch, size = FH.unpack_from(buf, 0)
                n = 8 + size
                if len(buf) >= n:
                    if buf[n - 1] != 0xCE:
                        raise PerfError("framing error: the broker sent a frame without the end octet")
                    payload = bytes(buf[7:7 + size])
                    del buf[:n]
                    return ftype, ch, payload
            data = self.sock.recv(65536)
            if not data:
                self.closed = True
                raise PerfError(f"the broker closed the connection{during}")
            buf += data

    def send_method(self, channel: int, method: spec.Method) -> None:
        self.sock.sendall(method_frame(channel, method))

    def read_method(self, during: str = "") -> tuple[int, spec.Method]:
        """Next method frame, answering heartbeats and raising on close."""
        while True:
            ftype, ch, payload = self.read_frame(during)
            if ftype == 8:
                self.sock.sendall(b"\x08\x00\x00\x00\x00\x00\x00\xce")
                continue
            if ftype != 1:
                continue              # stray content (a delivery during set-up): skip
            try:
                m = spec.decode_method(payload)
            except (AMQPSyntaxError, ConnectionError_, FrameError, SilentClose) as e:
                raise PerfError(f"cannot decode a method from the broker: {e}") from None
            if isinstance(m, spec.ConnectionClose):
                try:
                    self.send_method(0, spec.ConnectionCloseOk())
                except OSError:
                    pass
                self.closed = True
                raise BrokerClosed("the broker closed the connection", m.reply_code, m.reply_text)
            if isinstance(m, spec.ChannelClose):
                try:
                    self.send_method(ch, spec.ChannelCloseOk())
                except OSError:
                    pass
                self.channel_open = False
                raise BrokerClosed("the broker closed the channel", m.reply_code, m.reply_text)
            if isinstance(m, spec.ConnectionBlocked):
                self.blocked = m.reason or "blocked"
                continue
            if isinstance(m, spec.ConnectionUnblocked):
                self.blocked = None
                continue
            return ch, m

    def rpc(self, method: spec.Method, reply: type, channel: int = 1):
        self.send_method(channel, method)
        while True:
            _, m = self.read_method()
            if isinstance(m, reply):
                return m

    # --------------------------------------------------------------- handshake
    def _handshake(self) -> None:
        uri = self.uri
        self.sock.sendall(spec.PROTOCOL_HEADER)
        _, start = self.read_method(" before sending connection.start")
        if not isinstance(start, spec.ConnectionStart):
            raise PerfError(f"expected connection.start, got {start.NAME}")
        self.server_properties = start.server_properties or {}
        mechanisms = str(start.mechanisms).split()
        if "PLAIN" not in mechanisms:
            raise PerfError(f"the broker does not offer PLAIN authentication (offers {' '.join(mechanisms)})")
        response = b"\x00" + uri.user.encode() + b"\x00" + uri.password.encode()
        self.send_method(0, spec.ConnectionStartOk(client_properties=CLIENT_PROPERTIES, mechanism="PLAIN",
                                                   response=response, locale="en_US"))
        login = f" (login refused for user {uri.user!r}?)"
        try:
            _, tune = self.read_method(login)
        except BrokerClosed as e:
            raise PerfError(f"login refused for user {uri.user!r}: {e.code} {e.text}") from None
        if isinstance(tune, spec.ConnectionSecure):
            raise PerfError("the broker asked for a SASL challenge, which PLAIN does not support")
        if not isinstance(tune, spec.ConnectionTune):
            raise PerfError(f"expected connection.tune, got {tune.NAME}")
        fm = tune.frame_max or CLIENT_FRAME_MAX
        self.frame_max = min(fm, CLIENT_FRAME_MAX)
        cm = tune.channel_max or CLIENT_CHANNEL_MAX
        self.send_method(0, spec.ConnectionTuneOk(channel_max=min(cm, CLIENT_CHANNEL_MAX),
                                                  frame_max=self.frame_max, heartbeat=0))
        self.send_method(0, spec.ConnectionOpen(virtual_host=uri.vhost))
        try:
            _, ok = self.read_method(f" on connection.open of vhost {uri.vhost!r}")
        except BrokerClosed as e:
            raise PerfError(f"cannot open vhost {uri.vhost!r}: {e.code} {e.text}") from None
        if not isinstance(ok, spec.ConnectionOpenOk):
            raise PerfError(f"expected connection.open-ok, got {ok.NAME}")
        self.rpc(spec.ChannelOpen(), spec.ChannelOpenOk)
        self.channel_open = True

    def server_name(self) -> str:
        p = self.server_properties
        name = p.get("product") or "unknown broker"
        version = p.get("version") or ""
        if isinstance(name, bytes):
            name = name.decode(errors="replace")
        if isinstance(version, bytes):
            version = version.decode(errors="replace")
        return f"{name} {version}".strip()

    # ------------------------------------------------------------------- close
    def close(self, timeout: float = 5.0) -> bool:
        """connection.close, wait for close-ok (bounded), then close the socket.

        True when close-ok arrived: the broker has then processed everything
        sent before the close (closing the socket earlier can drop publishes the
        broker has not read yet).
        """
        if self.closed:
            self.sock.close()
            return False
        self.closed = True
        try:
            self.sock.settimeout(timeout)
            self.send_method(0, spec.ConnectionClose(reply_code=200, reply_text="Goodbye"))
            while True:
                ftype, _, payload = self.read_frame()
                if ftype == 1 and payload[:4] == b"\x00\x0a\x00\x33":       # close-ok
                    return True
                if ftype == 1 and payload[:4] == b"\x00\x0a\x00\x32":       # crossing close
                    self.send_method(0, spec.ConnectionCloseOk())
                    return True
        except (OSError, PerfError):
            return False
        finally:
            self.sock.close()


def start_worker(ctl, make, assignments):
    """The start of a producer or consumer worker process: open one connection per assignment
    (``make(*assignment)``), tell the parent ``ready`` (or the error), then wait for ``go``.
    Returns ``(objects, go message)``, or None if the run is off (connections closed)."""
    objs: list = []
    try:
        for a in assignments:
            objs.append(make(*a))
    except PerfError as e:
        ctl.send(("error", str(e)))
        for o in objs:
            o.conn.close(1.0)
        return None
    ctl.send(("ready", None))
    msg = ctl.recv()
    if msg[0] != "go":
        for o in objs:
            o.conn.close(1.0)
        return None
    return objs, msg


def stop_requested(ctl) -> bool:
    """Read one control message from the parent: True if it says stop (or the pipe closed)."""
    try:
        return ctl.recv()[0] == "stop"
    except EOFError:
        return True
