"""The listening socket, the clock, and orderly shutdown.

:class:`Listener` is handed a broker (``leveret.broker.Broker``) and serves it:
it starts an asyncio server for :class:`~leveret.server.protocol.AMQPProtocol` --
the plain listener (``Settings.port``, unless ``tcp_listener`` is False, RabbitMQ's
``listeners.tcp = none``) and, when ``ssl_port`` is set, the TLS one (RabbitMQ's
``listeners.ssl.default``, conventionally 5671) serving the same protocol over asyncio's
(or uvloop's) TLS transport with the context :mod:`leveret.server.tls` builds --,
drives every connection's clock with a single timer every
``Settings.tick_interval`` (0.1 s; each connection asks to be ticked only as often
as its heartbeat needs) -- not one timer per connection -- and on shutdown sends
connection.close 320 CONNECTION_FORCED to each client, waits briefly for close-ok,
then closes the sockets. The broker never imports this package.

``connection_max`` (RabbitMQ's ranch ``max_connections``, per listener): at the limit a
listener stops accepting, so a new client's TCP connection waits unanswered -- it sends its
protocol header and hears nothing, no handshake timer running -- until another connection of
that listener closes. Leveret accepts the socket but neither reads it nor starts its AMQP
connection until then, which a client cannot tell apart.
"""
from __future__ import annotations

import asyncio
import socket
import logging
import time

from .protocol import AMQPProtocol
from .tls import build_context

log = logging.getLogger("leveret.server")


class Listener:
    def __init__(self, broker):
        self.broker = broker
        self.loop = None
        self.server = None
        self.ssl_server = None
        self.protocols: set[AMQPProtocol] = set()
        self.active = {False: 0, True: 0}           # connections served, per listener (tls or not)
        self.waiting = {False: {}, True: {}}         # ... and held back by connection_max, in order
        self._ticker = None
        s = broker.settings
        self.port = s.port
        self.ssl_port = s.ssl_port
        # one read buffer for every socket (reads never overlap: one event loop)
        self.rbuf = memoryview(bytearray(s.read_size))

    async def start(self) -> None:
        self.loop = asyncio.get_running_loop()
        s = self.broker.settings
        ctx = build_context(s) if s.ssl_port is not None else None   # TLSConfigError before binding
        if s.tcp_listener:
            self.server = await self.loop.create_server(
                lambda: AMQPProtocol(self), s.host, s.port, reuse_address=True, backlog=1024)
            self.port = self.server.sockets[0].getsockname()[1]
        else:
            self.port = None
        if ctx is not None:
            try:
                self.ssl_server = await self.loop.create_server(
                    lambda: AMQPProtocol(self, tls=True), s.ssl_host or s.host, s.ssl_port, ssl=ctx,
                    reuse_address=True, backlog=1024, ssl_handshake_timeout=s.handshake_timeout)
            except BaseException:
                if self.server is not None:
                    self.server.close()
                raise
            self.ssl_port = self.ssl_server.sockets[0].getsockname()[1]
        self._ticker = self.loop.create_task(self._tick_loop())

    async def open_direct(self, user) -> socket.socket:
        """A direct connection to this broker, logged in as ``user`` without SASL (as RabbitMQ's
        Erlang-client direct connections of its plugins): one end of a Unix socket pair is
        served as a client connection, the other is returned for an AMQP client to speak over.
        It needs no listening port and no password, and is listed nowhere (no peer)."""
        ours, theirs = socket.socketpair()
        try:
            await self.loop.connect_accepted_socket(lambda: AMQPProtocol(self, login=user), ours)
        except BaseException:
            ours.close()
            theirs.close()
            raise
        return theirs

    def admit(self, p: AMQPProtocol) -> bool:
        """May a new connection be served now (else it waits its turn)?"""
        limit = self.broker.settings.connection_max
        if limit is not None and self.active[p.tls] >= limit:
            self.waiting[p.tls][p] = None
            return False
        self.active[p.tls] += 1
        return True

    def gone(self, p: AMQPProtocol) -> None:
        """A connection closed: a waiting one of its listener takes its place."""
        waiting = self.waiting[p.tls]
        if p in waiting:
            del waiting[p]
            return
        self.active[p.tls] -= 1
        while waiting:
            nxt = next(iter(waiting))
            del waiting[nxt]
            if nxt.transport is not None and not nxt.transport.is_closing():
                self.active[p.tls] += 1
                nxt.start()
                return

    async def _tick_loop(self) -> None:
        interval = self.broker.settings.tick_interval
        while True:
            await asyncio.sleep(interval)
            now = time.monotonic()
            for p in list(self.protocols):
                try:
                    p.tick(now)
                except Exception:  # one broken connection must not stop the clock
                    log.exception("tick failed")

    async def stop(self, grace: float = 2.0) -> None:
        servers = [x for x in (self.server, self.ssl_server) if x is not None]
        for x in servers:
            x.close()
        for p in list(self.protocols):
            if p.conn is not None:
                p.conn.close(320, "CONNECTION_FORCED - broker forced connection closure with reason 'shutdown'")
                p.flush()
        deadline = time.monotonic() + grace
        while self.protocols and time.monotonic() < deadline:
            await asyncio.sleep(0.02)
        for p in list(self.protocols) + [p for w in self.waiting.values() for p in w]:
            if p.transport is not None:
                p.transport.close()
        if self._ticker is not None:
            self._ticker.cancel()
        for x in servers:
            await x.wait_closed()
