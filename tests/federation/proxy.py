"""A TCP proxy the test controls, on a thread of its own: it accepts on a free port, forwards
both ways to a target port, and :meth:`Proxy.cut` aborts every proxied socket (both sides, a
reset) while it keeps accepting new connections."""
from __future__ import annotations

import asyncio
import concurrent.futures
import threading


class Proxy:
    def __init__(self, target_port: int, host: str = "127.0.0.1"):
        self.target = (host, target_port)
        self.loop = asyncio.new_event_loop()
        self.transports: set = set()
        self.accepted = 0
        self.cuts = 0
        ready: concurrent.futures.Future = concurrent.futures.Future()

        def run():
            asyncio.set_event_loop(self.loop)
            try:
                self.server = self.loop.run_until_complete(asyncio.start_server(self._handle, host, 0))
            except BaseException as e:
                ready.set_exception(e)
                return
            ready.set_result(self.server.sockets[0].getsockname()[1])
            self.loop.run_forever()

        self.thread = threading.Thread(target=run, daemon=True)
        self.thread.start()
        self.port: int = ready.result(10)

    async def _handle(self, reader, writer) -> None:
        self.accepted += 1
        try:
            ureader, uwriter = await asyncio.open_connection(*self.target)
        except OSError:
            writer.transport.abort()
            return
        pair = {writer.transport, uwriter.transport}
        self.transports |= pair

        async def pipe(src, dst):
            try:
                while True:
                    data = await src.read(65536)
                    if not data:
                        break
                    dst.write(data)
                    await dst.drain()
            except (OSError, asyncio.IncompleteReadError):
                pass
            finally:
                dst.transport.abort()

        try:
            await asyncio.gather(pipe(reader, uwriter), pipe(ureader, writer))
        finally:
            self.transports -= pair

    def _cut(self) -> None:
        self.cuts += 1
        for t in list(self.transports):
            t.abort()
        self.transports.clear()

    def cut(self) -> None:
        """Abort every proxied connection now (waits until it is done)."""
        done: concurrent.futures.Future = concurrent.futures.Future()

        def go():
            self._cut()
            done.set_result(None)
        self.loop.call_soon_threadsafe(go)
        done.result(10)

    @property
    def open_connections(self) -> int:
        return len(self.transports) // 2

    def close(self) -> None:
        async def stop():
            self._cut()
            self.server.close()
            tasks = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
            for t in tasks:
                t.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
        asyncio.run_coroutine_threadsafe(stop(), self.loop).result(10)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)
        self.loop.close()
