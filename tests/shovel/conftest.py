"""Fixtures of the shovel tests: in-process Leveret nodes (management API on), the shared
RabbitMQ (skipped when it does not answer), helpers that wait for a condition, and a TCP
proxy the fault tests cut."""
from __future__ import annotations

import asyncio
import base64
import json
import os
import socket
import threading
import time
import urllib.error
import urllib.request
import uuid

import pika
import pytest

from tests.inproc import ThreadedBroker

RABBIT_AMQP = os.environ.get("LEVERET_SHOVEL_RABBIT", "amqp://guest:guest@127.0.0.1:5672/%2F")
RABBIT_API = os.environ.get("LEVERET_SHOVEL_RABBIT_API", "127.0.0.1:15672")


def api(host: str, method: str, path: str, body=None, user="guest", password="guest"):
    h = {"content-type": "application/json",
         "Authorization": "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()}
    r = urllib.request.Request(f"http://{host}{path}", data=json.dumps(body).encode() if body is not None else None,
                               method=method, headers=h)
    try:
        with urllib.request.urlopen(r, timeout=30) as resp:
            raw = resp.read()
            return resp.status, json.loads(raw) if raw else None
    except urllib.error.HTTPError as e:
        raw = e.read()
        try:
            return e.code, json.loads(raw) if raw else None
        except ValueError:
            return e.code, raw.decode()


def wait_for(cond, what: str, limit: float = 30.0):
    """Poll ``cond`` until it is truthy (a hang guard, not a timing assertion)."""
    deadline = time.monotonic() + limit
    while True:
        v = cond()
        if v:
            return v
        if time.monotonic() > deadline:
            raise AssertionError(f"never happened: {what}")
        time.sleep(0.05)


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


class Node:
    """A Leveret node on a thread, with its AMQP URL and management host:port."""

    def __init__(self, **settings):
        self.tb = ThreadedBroker(management_enabled=True, management_port=0, management_host="127.0.0.1",
                                 **settings)
        self.broker = self.tb.broker

    @property
    def url(self) -> str:
        return self.tb.url

    @property
    def api(self) -> str:
        return f"127.0.0.1:{self.broker.management_port}"

    def channel(self):
        conn = pika.BlockingConnection(pika.URLParameters(self.url))
        return conn, conn.channel()

    def stop(self):
        self.tb.stop()


@pytest.fixture
def node():
    n = Node()
    yield n
    n.stop()


def _rabbit_up() -> bool:
    try:
        socket.create_connection(("127.0.0.1", 5672), timeout=2).close()
        return api(RABBIT_API, "GET", "/api/overview")[0] == 200
    except OSError:
        return False


@pytest.fixture(scope="session")
def rabbit():
    """The shared RabbitMQ (its AMQP URL and API host:port); skipped when it is not reachable."""
    if not _rabbit_up():
        pytest.skip("RabbitMQ is not reachable on 127.0.0.1:5672/15672")
    return RABBIT_AMQP, RABBIT_API


def drain(ch, queue: str, n: int, limit: float = 30.0) -> list:
    """Get ``n`` messages from ``queue`` (acked), waiting for them to arrive."""
    out = []

    def more():
        while len(out) < n:
            m = ch.basic_get(queue, auto_ack=True)
            if m[0] is None:
                return False
            out.append(m)
        return True
    wait_for(more, f"{n} messages in {queue} (have {len(out)})", limit)
    return out


def restart_gap(proxy: "Proxy", status, failed: str, limit: float = 60.0) -> float:
    """Cut ``proxy`` and time the link's comeback: ``status()`` (polled) must show ``failed``,
    then something else (starting, running). Returns, in seconds, from just before the cut to
    the end of the poll that saw it back: never less than the real gap between the failure
    and the new start (the failure comes after the cut; the start before that poll's end), so
    a lower bound asserted on it holds for a broker that keeps its delay."""
    t0 = time.monotonic()
    assert proxy.cut() > 0, "the link was not up when cut"
    wait_for(lambda: status() == failed, f"the link {failed} after the cut", limit)
    wait_for(lambda: status() not in (failed, None), "the link starting again", limit)
    return time.monotonic() - t0


class Proxy:
    """A TCP proxy (asyncio, on a thread of its own) from ``127.0.0.1:port`` to ``target``.

    ``cut()`` aborts every proxied socket (both halves, as a failed link does) and returns how
    many it closed; after ``down()`` new connections are aborted as soon as they are accepted
    (a link that stays broken) until ``up()``.
    """

    def __init__(self, host: str, port: int):
        self.target = (host, port)
        self.accepting = True
        self.transports: set = set()
        self.connections = 0
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        self.server = self._call(asyncio.start_server(self._handle, "127.0.0.1", 0))
        self.port = self.server.sockets[0].getsockname()[1]

    def url(self, vhost: str = "%2F") -> str:
        return f"amqp://guest:guest@127.0.0.1:{self.port}/{vhost}"

    def _call(self, coro):
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(30)

    async def _handle(self, reader, writer) -> None:
        if not self.accepting:
            writer.transport.abort()
            return
        try:
            up_reader, up_writer = await asyncio.open_connection(*self.target)
        except OSError:
            writer.transport.abort()
            return
        self.connections += 1
        pair = {writer.transport, up_writer.transport}
        self.transports |= pair
        pipes = [asyncio.ensure_future(self._pipe(reader, up_writer)),
                 asyncio.ensure_future(self._pipe(up_reader, writer))]
        try:
            await asyncio.wait(pipes, return_when=asyncio.FIRST_COMPLETED)
        finally:
            self.transports -= pair
            for t in pair:
                t.abort()
            for p in pipes:
                p.cancel()

    @staticmethod
    async def _pipe(reader, writer) -> None:
        try:
            while data := await reader.read(65536):
                writer.write(data)
                await writer.drain()
        except (OSError, asyncio.IncompleteReadError):
            pass

    async def _cut(self) -> int:
        ts, self.transports = list(self.transports), set()
        for t in ts:
            t.abort()
        return len(ts)

    def cut(self) -> int:
        return self._call(self._cut())

    def down(self) -> int:
        """Refuse new connections and cut the live ones."""
        self.accepting = False
        return self.cut()

    def up(self) -> None:
        self.accepting = True

    def close(self) -> None:
        self.server.close()
        self.cut()
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)
