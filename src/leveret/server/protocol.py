"""The thin asyncio layer: one ``asyncio.BufferedProtocol`` per client socket.

Bytes from the socket (read into one shared buffer, at most ``READ_SIZE`` per
read) go straight into the sans-I/O connection (:meth:`receive_data`); output
the connection produces is flushed with one ``transport.writelines`` per event-loop turn
(``wakeup`` schedules the flush), so a burst of deliveries becomes one gathering write
(``writev``) without first being joined into one big buffer. ``pause_writing``/``resume_writing``
from the transport tell the connection when the peer stops reading, and the
connection stops taking deliveries until the buffer drains.
"""
from __future__ import annotations

import asyncio
import logging
import time

_monotonic = time.monotonic

from ..amqp.connection import RUNNING
from ..broker.connection import BrokerConnection

log = logging.getLogger("leveret.server")

# Bytes taken from a socket per read. uvloop would read up to 256 KB at once: ~230 publishes of
# 1 KB, ~2 ms of work during which a consumer's acks wait. 64 KiB keeps that wait short.
READ_SIZE = 64 * 1024
FAIR_READ_BYTES = 32 * 1024   # a read this large suggests more is waiting: yield after it
_rbuf = memoryview(bytearray(READ_SIZE))   # one read buffer for every socket (reads never overlap)
FLOW_MAX_PAUSE = 1.0          # publisher flow control never holds a connection longer than this


class AMQPProtocol(asyncio.BufferedProtocol):
    __slots__ = ("listener", "loop", "transport", "conn", "_flush_scheduled",
                 "_read_paused", "_write_blocked", "_reading", "_next_tick", "_flow_paused",
                 "_flow_timer")

    def __init__(self, listener):
        self.listener = listener
        self.loop = listener.loop
        self.transport = None
        self.conn: BrokerConnection | None = None
        self._flush_scheduled = False
        self._read_paused = False
        self._write_blocked = False
        self._reading = True
        self._next_tick = 0.0
        self._flow_paused = False
        self._flow_timer = None

    def connection_made(self, transport) -> None:
        self.transport = transport
        sock = transport.get_extra_info("socket")
        if sock is not None:
            try:
                import socket
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            except OSError:
                pass
        transport.set_write_buffer_limits(high=4 * 1024 * 1024, low=1024 * 1024)
        peer = transport.get_extra_info("peername")
        self.conn = BrokerConnection(self.listener.broker, peer, time.monotonic())
        self.conn.wakeup = self._wakeup
        self.conn.flush_now = self._flush
        self.conn.io_blocked_change = self._set_reading     # resource alarm blocked/unblocked
        self.listener.protocols.add(self)

    def get_buffer(self, sizehint: int):
        return _rbuf

    def buffer_updated(self, nbytes: int) -> None:
        self.data_received(_rbuf[:nbytes].tobytes())

    def data_received(self, data: bytes) -> None:
        conn = self.conn
        conn.last_recv = _monotonic()
        conn.receive_data(data)
        if conn.close_socket:
            self._flush()
            return
        fq = conn.flow_queue
        if fq is not None:
            conn.flow_queue = None
            self._hold_for(fq)
        if len(data) >= FAIR_READ_BYTES and not self._read_paused:
            # Fairness: libuv reads a busy socket up to 32 times per loop iteration. Yield the
            # rest of this iteration to other connections (a consumer's acks, say) by pausing
            # this socket until the next turn of the loop.
            self._read_paused = True
            self._set_reading()
            self.loop.call_soon(self._resume_reading)

    def _hold_for(self, q) -> None:
        """Publisher flow control: stop reading until ``q`` drains (or FLOW_MAX_PAUSE passes)."""
        if self._flow_paused or q.deleted or not q.consumers:
            return
        self._flow_paused = True
        self._set_reading()
        q.flow_waiters.append(self._flow_resume)
        self._flow_timer = self.loop.call_later(FLOW_MAX_PAUSE, self._flow_resume)

    def _flow_resume(self) -> None:
        if self._flow_paused:
            self._flow_paused = False
            if self._flow_timer is not None:
                self._flow_timer.cancel()
                self._flow_timer = None
            self._set_reading()

    def _resume_reading(self) -> None:
        self._read_paused = False
        self._set_reading()

    def _set_reading(self) -> None:
        """Read from the socket unless yielding this loop turn, or unless the peer is not
        reading what we send (then its requests would only pile up more replies)."""
        t = self.transport
        if t is None or t.is_closing():
            return
        want = not self._read_paused and not self._write_blocked and not self._flow_paused \
            and not self.conn.blocked
        if want != self._reading:
            self._reading = want
            if want:
                t.resume_reading()
            else:
                t.pause_reading()

    def _wakeup(self) -> None:
        if not self._flush_scheduled:
            self._flush_scheduled = True
            self.loop.call_soon(self._flush)

    def _flush(self) -> None:
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
            t.close()
            self.transport = None

    def pause_writing(self) -> None:
        self._write_blocked = True
        self._set_reading()
        self.conn.set_writable(False)

    def resume_writing(self) -> None:
        self._write_blocked = False
        self._set_reading()
        self.conn.set_writable(True)

    def connection_lost(self, exc) -> None:
        self.transport = None
        if self._flow_timer is not None:
            self._flow_timer.cancel()
        self.listener.protocols.discard(self)
        if self.conn is not None:
            self.conn.connection_lost()

    def tick(self, now: float) -> None:
        if now < self._next_tick:
            return
        conn = self.conn
        conn.tick(now, False, False)       # traffic times are recorded as it happens
        if conn.close_socket or conn._out:
            self._flush()
        # idle connections without heartbeats need no clock; heartbeats need about hb/4
        hb = conn.heartbeat
        # (slack so a tick due "now" is not missed by the listener's clock jitter)
        self._next_tick = now + (min(hb / 4, 5.0) if hb else 5.0) - 0.05 if conn.state == RUNNING else now
