"""The listening socket, the clock, and orderly shutdown.

Starts an asyncio server for :class:`~leveret.server.protocol.AMQPProtocol`,
drives every connection's clock once a second (heartbeats, handshake and
close timeouts) with a single timer — not one timer per connection — and on
shutdown sends connection.close 320 CONNECTION_FORCED to each client, waits
briefly for close-ok, then closes the sockets.
"""
from __future__ import annotations

import asyncio
import time

from .protocol import AMQPProtocol

TICK = 0.1   # the listener's clock; each connection asks to be ticked only as often as it needs


class Listener:
    def __init__(self, broker):
        self.broker = broker
        self.loop = None
        self.server = None
        self.protocols: set[AMQPProtocol] = set()
        self._ticker = None
        self.port = broker.settings.port

    async def start(self) -> None:
        self.loop = asyncio.get_running_loop()
        s = self.broker.settings
        self.server = await self.loop.create_server(
            lambda: AMQPProtocol(self), s.host, s.port, reuse_address=True, backlog=1024)
        self.port = self.server.sockets[0].getsockname()[1]
        self._ticker = self.loop.create_task(self._tick_loop())

    async def _tick_loop(self) -> None:
        while True:
            await asyncio.sleep(TICK)
            now = time.monotonic()
            for p in list(self.protocols):
                try:
                    p.tick(now)
                except Exception:  # one broken connection must not stop the clock
                    import logging
                    logging.getLogger("leveret.server").exception("tick failed")

    async def stop(self, grace: float = 2.0) -> None:
        if self.server is not None:
            self.server.close()
        for p in list(self.protocols):
            if p.conn is not None:
                p.conn.close(320, "CONNECTION_FORCED - broker forced connection closure with reason 'shutdown'")
                p._flush()
        deadline = time.monotonic() + grace
        while self.protocols and time.monotonic() < deadline:
            await asyncio.sleep(0.02)
        for p in list(self.protocols):
            if p.transport is not None:
                p.transport.close()
        if self._ticker is not None:
            self._ticker.cancel()
        if self.server is not None:
            await self.server.wait_closed()
