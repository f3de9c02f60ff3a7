"""An in-process Leveret broker on a background thread, for tests that change it at run time
(resource limits, say) while clients talk to it over a real socket."""
from __future__ import annotations

import asyncio
import concurrent.futures
import threading

from leveret import Broker, Settings


class ThreadedBroker:
    def __init__(self, **settings):
        self.loop = asyncio.new_event_loop()
        self.broker: Broker | None = None
        ready = concurrent.futures.Future()

        def run():
            asyncio.set_event_loop(self.loop)

            async def start():
                self.broker = Broker(Settings(**{"host": "127.0.0.1", "port": 0, **settings}))
                await self.broker.start()

            try:
                self.loop.run_until_complete(start())
            except BaseException as e:      # surface start-up errors to the test
                ready.set_exception(e)
                return
            ready.set_result(None)
            self.loop.run_forever()

        self.thread = threading.Thread(target=run, daemon=True)
        self.thread.start()
        ready.result(20)

    @property
    def url(self) -> str:
        return self.broker.url

    def call(self, fn, *args):
        """Run ``fn(*args)`` on the broker's loop and return its result."""
        fut = concurrent.futures.Future()

        def go():
            try:
                fut.set_result(fn(*args))
            except BaseException as e:
                fut.set_exception(e)
        self.loop.call_soon_threadsafe(go)
        return fut.result(10)

    def stop(self) -> None:
        asyncio.run_coroutine_threadsafe(self.broker.stop(), self.loop).result(20)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)
