"""A broker for a synchronous program: :class:`BackgroundBroker` runs a :class:`leveret.Broker`
on an event loop of its own, in a background thread.

An asyncio program embeds :class:`leveret.Broker` directly (``async with Broker(...)``: the
broker runs in the program's own loop). A synchronous program -- a pika script, a Flask app, a
test suite -- has no loop to lend it, so this module gives the broker a thread::

    from leveret import BackgroundBroker

    with BackgroundBroker(port=0) as broker:      # port 0: a free port
        url = broker.url                           # amqp://guest:guest@127.0.0.1:<port>/%2F
        ...                                        # pika.BlockingConnection(pika.URLParameters(url))

Clients talk to it over a real socket, exactly as to RabbitMQ. ``stop()`` (or leaving the
``with``) disconnects clients as RabbitMQ does at shutdown (``connection.close`` 320
CONNECTION_FORCED), stops the broker, closes the loop and joins the thread: nothing is left
running. Code that must touch the broker object itself (administration: ``add_vhost``,
``set_permissions``, ...) runs on the broker's loop through :meth:`BackgroundBroker.call`, since
the broker is not thread-safe.
"""
from __future__ import annotations

import asyncio
import concurrent.futures
import dataclasses
import threading
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

from .node import Node
from .settings import Settings

T = TypeVar("T")


class BackgroundBroker:
    """A :class:`~leveret.node.Node` running in a daemon thread with its own event loop.

    ``BackgroundBroker(settings, **overrides)``: ``settings`` defaults to ``Settings(port=0)``
    (a free loopback port, nothing on disk); keyword arguments replace single fields, so
    ``BackgroundBroker(port=0, data_dir="/tmp/x")`` works too. The broker starts in
    :meth:`start` (or on entering ``with``); a start-up error (a port in use, a bad setting, a
    data directory it cannot read) is raised there, in the calling thread.
    """

    def __init__(self, settings: Settings | None = None, /, **overrides: Any) -> None:
        base = settings if settings is not None else Settings(port=0)
        self.settings = dataclasses.replace(base, **overrides) if overrides else base
        self.broker: Node | None = None
        self.loop: asyncio.AbstractEventLoop | None = None
        self.thread: threading.Thread | None = None

    # ------------------------------------------------------------ lifecycle

    def start(self, timeout: float = 60.0) -> BackgroundBroker:
        """Start the thread and the broker in it; return once it listens."""
        if self.thread is not None:
            raise RuntimeError("this BackgroundBroker was already started")
        loop = self.loop = asyncio.new_event_loop()
        started: concurrent.futures.Future = concurrent.futures.Future()
        self.thread = threading.Thread(target=self._run, args=(loop, started),
                                       name=f"leveret-broker-{id(self):x}", daemon=True)
        self.thread.start()
        try:
            self.broker = started.result(timeout)
        except BaseException:
            self.thread.join(timeout)
            self.thread = None
            raise
        return self

    def _run(self, loop: asyncio.AbstractEventLoop, started: concurrent.futures.Future) -> None:
        asyncio.set_event_loop(loop)
        try:
            broker = Node(self.settings)
            loop.run_until_complete(broker.start())
        except BaseException as e:      # hand start-up errors to the thread that called start()
            _close_loop(loop)
            started.set_exception(e)
            return
        started.set_result(broker)
        try:
            loop.run_forever()
        finally:
            _close_loop(loop)

    def stop(self, timeout: float = 60.0) -> None:
        """Disconnect the clients (320 CONNECTION_FORCED), stop the broker (a durable one
        writes what it must), close the loop and join the thread. Safe to call twice."""
        if self.thread is None or self.loop is None or self.broker is None:
            return
        try:
            if self.thread.is_alive():
                asyncio.run_coroutine_threadsafe(self.broker.stop(), self.loop).result(timeout)
                self.loop.call_soon_threadsafe(self.loop.stop)
            self.thread.join(timeout)
        finally:
            self.thread = None

    def __enter__(self) -> BackgroundBroker:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def running(self) -> bool:
        return self.thread is not None and self.thread.is_alive()

    # ------------------------------------------------------------ where clients connect

    @property
    def url(self) -> str:
        """An AMQP URL for the default user and vhost (``amqp://guest:guest@127.0.0.1:PORT/%2F``)."""
        return self._started().url

    @property
    def port(self) -> int | None:
        return self._started().port

    @property
    def management_port(self) -> int | None:
        return self._started().management_port

    @property
    def prometheus_port(self) -> int | None:
        return self._started().prometheus_port

    # ------------------------------------------------------------ reaching the broker object

    def call(self, fn: Callable[..., T], *args: Any, timeout: float = 60.0, **kwargs: Any) -> T:
        """Run ``fn(*args, **kwargs)`` on the broker's loop and return its result (or raise its
        exception) here: ``broker.call(broker.broker.add_vhost, "test")``."""
        loop = self._loop()
        result: concurrent.futures.Future = concurrent.futures.Future()

        def run() -> None:
            try:
                result.set_result(fn(*args, **kwargs))
            except BaseException as e:
                result.set_exception(e)
        loop.call_soon_threadsafe(run)
        return result.result(timeout)

    def run(self, coro: Coroutine[Any, Any, T], timeout: float = 60.0) -> T:
        """Run a coroutine on the broker's loop and return its result here."""
        return asyncio.run_coroutine_threadsafe(coro, self._loop()).result(timeout)

    def _started(self) -> Node:
        if self.broker is None:
            raise RuntimeError("the BackgroundBroker is not started (call start() or use `with`)")
        return self.broker

    def _loop(self) -> asyncio.AbstractEventLoop:
        if not self.running or self.loop is None:
            raise RuntimeError("the BackgroundBroker is not running")
        return self.loop


def _close_loop(loop: asyncio.AbstractEventLoop) -> None:
    """Cancel what is left on the loop (a client's half-finished handshake, say), let the
    cancellations run, then close the loop and its default executor."""
    pending = [t for t in asyncio.all_tasks(loop) if not t.done()]
    for t in pending:
        t.cancel()
    if pending:
        loop.run_until_complete(asyncio.gather(*pending, return_exceptions=True))
    loop.run_until_complete(loop.shutdown_asyncgens())
    loop.run_until_complete(loop.shutdown_default_executor())
    loop.close()
