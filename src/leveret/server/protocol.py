"""The thin asyncio layer: one ``asyncio.BufferedProtocol`` per client socket.

Bytes from the socket (read into the listener's one shared buffer, at most
``Settings.read_size`` per read) go straight into the sans-I/O connection
(``receive_data``); output the connection produces is flushed with one
``transport.writelines`` per event-loop turn (``wakeup`` schedules the flush), so a
burst of deliveries becomes one gathering write (``writev``) without first being
joined into one big buffer. ``pause_writing``/``resume_writing`` from the transport
tell the connection when the peer stops reading, and the connection stops taking
deliveries until the buffer drains.

Closing never waits on a peer that does not read: a socket whose write buffer is over the
high-water mark is aborted (its unsent bytes dropped, as RabbitMQ's ``{linger, {true, 0}}``
sockets are), and any other is aborted ``close_linger`` seconds after ``close()`` if it has
not finished flushing by then. So a never-reading consumer closed for missed heartbeats
gives back its socket and its buffered deliveries.

The socket is read unless one of three says no: this loop turn's fair share was
used (``fair_read_bytes``), the peer is not reading what we send (its requests would
only pile up more replies), or the connection does not want input
(``conn.reading``: a resource alarm, or publisher flow control).

A connection on the TLS listener is the same protocol over asyncio's TLS transport
(``tls=True``): the handshake is done before ``connection_made``, which hands the
connection ``tls=True`` and the client's verified certificate (DER), for EXTERNAL logins.

Sockets close the way RabbitMQ's do: with ``SO_LINGER`` 0 (RabbitMQ's default
``tcp_listen_options``), so the peer sees a reset (RST) rather than a FIN, once the last
output has been written.

This layer sees the broker through ``BrokerConnection``'s small I/O interface only
(see its module docstring): it never touches queues or channels.
"""
from __future__ import annotations

import asyncio
import logging
import socket
import struct
import time

from ..amqp.connection import RUNNING
from ..broker.connection import BrokerConnection
from .tls import peer_certificate

_monotonic = time.monotonic
_LINGER_0 = struct.pack("ii", 1, 0)          # struct linger {l_onoff = 1, l_linger = 0}

# struct tcp_info (linux/tcp.h): tcpi_bytes_acked, tcpi_bytes_received (u64 at 120, 128),
# tcpi_segs_out, tcpi_segs_in (u32 at 136, 140) -- Linux 4.2 and later
_TCP_INFO = struct.Struct("=QQII")
_TCP_INFO_AT = 120


def socket_stats(sock, transport) -> dict | None:
    """RabbitMQ's ``recv_oct``/``send_oct``/``recv_cnt``/``send_cnt``/``send_pend`` (which it
    reads with ``inet:getstat``), read from the kernel's TCP_INFO when asked: counting
    costs the I/O path nothing. ``send_oct`` is what the peer has acknowledged; ``*_cnt``
    are TCP segments. None where TCP_INFO lacks these fields."""
    tcp_info = getattr(socket, "TCP_INFO", None)
    if tcp_info is None or sock.fileno() < 0:
        return None
    raw = sock.getsockopt(socket.IPPROTO_TCP, tcp_info, 256)
    if len(raw) < _TCP_INFO_AT + _TCP_INFO.size:
        return None
    sent, received, segs_out, segs_in = _TCP_INFO.unpack_from(raw, _TCP_INFO_AT)
    return {"recv_oct": received, "send_oct": sent, "recv_cnt": segs_in, "send_cnt": segs_out,
            "send_pend": transport.get_write_buffer_size() if not transport.is_closing() else 0}
log = logging.getLogger("leveret.server")


_LINGER_0 = struct.pack("ii", 1, 0)


def drop(transport) -> None:
    """Close at once, unsent bytes discarded (SO_LINGER 0: a reset, not a FIN the kernel would
    keep retrying behind megabytes the peer does not read). Only for a transport whose
    connection is not lost yet (a closed socket's descriptor may already be another's)."""
    sock = transport.get_extra_info("socket")
    if sock is not None:
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, _LINGER_0)
        except OSError:
            pass
    transport.abort()


class AMQPProtocol(asyncio.BufferedProtocol):
    __slots__ = ("listener", "loop", "transport", "conn", "_flush_scheduled", "_rbuf", "_fair",
                 "_read_paused", "_write_blocked", "_reading", "_next_tick", "tls", "_lost", "login")

    def __init__(self, listener, tls: bool = False, login=None):
        self.listener = listener
        self.tls = tls
        self.login = login          # a direct connection's user (Listener.open_direct)
        self.loop = listener.loop
        self.transport = None
        self.conn: BrokerConnection | None = None
        self._flush_scheduled = False
        self._rbuf = listener.rbuf
        self._fair = listener.broker.settings.fair_read_bytes
        self._read_paused = False
        self._write_blocked = False
        self._reading = True
        self._next_tick = 0.0
        self._lost = False

    def connection_made(self, transport) -> None:
        self.transport = transport
        if not self.listener.admit(self):
            # over connection_max: like a connection ranch has not accepted yet, it is not
            # read (no handshake timer runs) until another connection of its listener closes
            transport.pause_reading()
            self._reading = False
            return
        self.start()

    def start(self) -> None:
        """Serve the connection (at once, or when connection_max lets it in)."""
        transport = self.transport
        sock = transport.get_extra_info("socket")
        if sock is not None:
            try:
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                # RabbitMQ's tcp_listen_options have {linger, {true, 0}}: closing a socket
                # (once what was written has been handed to the kernel) resets it, RST not FIN
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, _LINGER_0)
            except OSError:
                pass
        s = self.listener.broker.settings
        transport.set_write_buffer_limits(high=s.write_buffer_high, low=s.write_buffer_low)
        peer = transport.get_extra_info("peername")
        local = transport.get_extra_info("sockname")
        if self.tls:
            self.conn = BrokerConnection(self.listener.broker, peer, time.monotonic(), tls=True,
                                         peer_cert=peer_certificate(transport), local=local)
        else:
            self.conn = BrokerConnection(self.listener.broker, peer, time.monotonic(), local=local)
        if self.login is not None:
            self.conn.peer = None
            self.conn.name = self.conn.display_name = "direct"
            self.conn.login_as = self.login
        elif sock is not None:
            self.conn.socket_stats = lambda: socket_stats(sock, transport)
        self.conn.wakeup = self._wakeup
        self.conn.flush_now = self.flush
        self.conn.on_reading_change = self._set_reading    # alarm blocked/unblocked, flow held
        self.listener.protocols.add(self)
        if not self._reading:
            self._reading = True
            transport.resume_reading()

    def get_buffer(self, sizehint: int):
        return self._rbuf

    def buffer_updated(self, nbytes: int) -> None:
        self.data_received(self._rbuf[:nbytes].tobytes())

    def data_received(self, data: bytes) -> None:
        conn = self.conn
        conn.last_recv = _monotonic()
        conn.receive_data(data)
        if conn.close_socket:
            self.flush()
            return
        if len(data) >= self._fair and not self._read_paused:
            # Fairness: libuv reads a busy socket up to 32 times per loop iteration. Yield the
            # rest of this iteration to other connections (a consumer's acks, say) by pausing
            # this socket until the next turn of the loop.
            self._read_paused = True
            self._set_reading()
            self.loop.call_soon(self._resume_reading)

    def _resume_reading(self) -> None:
        self._read_paused = False
        self._set_reading()

    def _set_reading(self) -> None:
        t = self.transport
        if t is None or t.is_closing():
            return
        want = not self._read_paused and not self._write_blocked and self.conn.reading
        if want != self._reading:
            self._reading = want
            if want:
                t.resume_reading()
            else:
                t.pause_reading()

    def _wakeup(self) -> None:
        if not self._flush_scheduled:
            self._flush_scheduled = True
            self.loop.call_soon(self.flush)

    def flush(self) -> None:
        """Write everything the connection has pending (and close the socket if it asks)."""
        self._flush_scheduled = False
        conn = self.conn
        t = self.transport
        if t is None:
            return
        parts = conn.output_parts()
        if parts:
            conn.last_send = _monotonic()
            t.writelines(parts)
        if conn.close_socket:
            if self._write_blocked:
                # The peer does not read (a consumer that never reads, closed for missed
                # heartbeats, say): close() would wait for ever to flush megabytes it will not
                # take, keeping the socket and the buffer. RabbitMQ's sockets linger 0: dropped.
                drop(t)
            else:
                t.close()      # flushes what is pending (the close frame) first ...
                # ... but not for ever: a peer that stopped reading below the high-water mark
                self.loop.call_later(self.listener.broker.settings.close_linger, self._drop_if_open, t)
            self.transport = None

    def _drop_if_open(self, t) -> None:
        if not self._lost:
            drop(t)

    def pause_writing(self) -> None:
        self._write_blocked = True
        self._set_reading()
        self.conn.set_writable(False)

    def resume_writing(self) -> None:
        self._write_blocked = False
        self._set_reading()
        self.conn.set_writable(True)

    def connection_lost(self, exc) -> None:
        self._lost = True
        self.transport = None
        self.listener.protocols.discard(self)
        self.listener.gone(self)
        if self.conn is not None:
            self.conn.connection_lost()

    def tick(self, now: float) -> None:
        if now < self._next_tick:
            return
        conn = self.conn
        conn.tick(now, False, False)       # traffic times are recorded as it happens
        if conn.close_socket or conn.has_output():
            self.flush()
        # idle connections without heartbeats need no clock; heartbeats need about hb/4
        hb = conn.heartbeat
        # (slack so a tick due "now" is not missed by the listener's clock jitter)
        self._next_tick = now + (min(hb / 4, 5.0) if hb else 5.0) - 0.05 if conn.state == RUNNING else now
