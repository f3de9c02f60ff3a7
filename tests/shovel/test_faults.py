"""Shovels lose nothing under faults (ack-mode on-confirm): a link cut by a TCP proxy the test
controls (Leveret -> Leveret, Leveret -> RabbitMQ, RabbitMQ -> Leveret) and a SIGKILLed ``leveret serve`` (the
source, the destination, the node the shovel runs on), each restarted on its data directory.

A feeder publishes persistent messages numbered 0..N-1 with confirms into the source while
the shovel runs, reconnecting and republishing what was not confirmed when its broker dies.
Faults strike at a third and two thirds of the feed, so deliveries are in flight. After each
fault the shovel's status must show the failure (``terminated``) and then ``running`` again
(its reconnect-delay; no timing is asserted). At the end, once the source holds nothing
(ready or unacknowledged), the destination is drained: every number must be there at least
once. Duplicates are allowed (a message the destination stored but whose confirm the failure
lost is sent again); their count is printed (``pytest -s``) and documented in docs/scale-out.md.
For a cut link it is bounded: at most the shovel's prefetch (the unacknowledged deliveries the
source requeues) per fault.
"""
from __future__ import annotations

import collections
import threading
import time
from urllib.parse import urlsplit

import pika
import pytest

from .conftest import Node, Proxy, api, restart_gap, unique, wait_for

N = 2000
PREFETCH = 50
DELAY = 2              # reconnect-delay of the delay test, seconds
LIMIT = 120.0          # a hang guard for each wait on a loaded machine, never a timing assertion
PERSISTENT = pika.BasicProperties(delivery_mode=2)

pytestmark = pytest.mark.timeout(600)


class Feeder(threading.Thread):
    """Publishes ``n`` numbered persistent messages to ``queue`` with confirms (one at a time:
    ``confirmed`` is exact); after a connection failure it reconnects and publishes the
    unconfirmed one again."""

    def __init__(self, url: str, queue: str, n: int = N):
        super().__init__(daemon=True)
        self.url, self.queue, self.n = url, queue, n
        self.confirmed = 0
        self.reconnects = 0
        self.error: BaseException | None = None

    def run(self) -> None:
        deadline = time.monotonic() + 4 * LIMIT
        while self.confirmed < self.n:
            try:
                conn = pika.BlockingConnection(pika.URLParameters(self.url))
                try:
                    ch = conn.channel()
                    ch.confirm_delivery()
                    while self.confirmed < self.n:
                        ch.basic_publish("", self.queue, b"%d" % self.confirmed, PERSISTENT)
                        self.confirmed += 1
                finally:
                    if conn.is_open:
                        conn.close()
            except pika.exceptions.AMQPError as e:
                if time.monotonic() > deadline:
                    self.error = e
                    return
                self.reconnects += 1
                time.sleep(0.2)

    def reached(self, k: int) -> bool:
        if self.error is not None:
            raise AssertionError(f"feeder failed: {self.error!r}")
        return self.confirmed >= k


def state(api_host: str, name: str) -> str | None:
    try:
        status, rows = api(api_host, "GET", "/api/shovels")
    except OSError:            # (the node is being restarted)
        return None
    if status != 200 or not isinstance(rows, list):
        return None
    return next((r.get("state") for r in rows if isinstance(r, dict) and r.get("name") == name), None)


def wait_state(api_host: str, name: str, want: str) -> None:
    wait_for(lambda: state(api_host, name) == want,
             f"shovel {name} {want}", LIMIT)


def put_shovel(api_host: str, name: str, value: dict) -> None:
    status, body = api(api_host, "PUT", f"/api/parameters/shovel/%2F/{name}",
                       {"value": {"ack-mode": "on-confirm", "reconnect-delay": 1, "src-prefetch-count": PREFETCH,
                                  **value}})
    assert status == 201, body


def source_settled(api_host: str, queue: str) -> bool:
    """Nothing left in the source queue, ready or unacknowledged."""
    try:
        status, q = api(api_host, "GET", f"/api/queues/%2F/{queue}")
    except OSError:
        return False
    return status == 200 and isinstance(q, dict) and q.get("messages") == 0


def collect(url: str, queue: str, got: collections.Counter | None = None) -> collections.Counter:
    """Every message left in ``queue`` (a Counter of their numbers, added to ``got``)."""
    got = collections.Counter() if got is None else got
    conn = pika.BlockingConnection(pika.URLParameters(url))
    try:
        ch = conn.channel()
        while True:
            m = ch.basic_get(queue, auto_ack=True)
            if m[0] is None:
                return got
            got[int(m[2])] += 1
    finally:
        conn.close()


def check(got: collections.Counter, what: str, feeder: Feeder, max_dups: int | None = None) -> None:
    missing = sorted(set(range(N)) - set(got))
    assert not missing, f"{len(missing)} lost, first {missing[:10]}"
    assert set(got) == set(range(N)), sorted(set(got) - set(range(N)))[:10]
    dups = sum(got.values()) - N
    print(f"\n{what}: {N} messages, all delivered, {dups} duplicates, feeder reconnects {feeder.reconnects}")
    if max_dups is not None:
        assert dups <= max_dups, f"{dups} duplicates, more than the {max_dups} in flight at the faults"


def feed_through(url: str, faults, queue: str = "src") -> Feeder:
    """Feed ``queue`` at ``url``, calling each fault at the next third of the feed."""
    feeder = Feeder(url, queue)
    feeder.start()
    for k, fault in enumerate(faults, 1):
        wait_for(lambda: feeder.reached(k * N // (len(faults) + 1)), f"{k}/{len(faults) + 1} fed", LIMIT)
        fault()
    feeder.join(4 * LIMIT)
    assert feeder.confirmed == N, feeder.error
    return feeder


def cut(proxy: Proxy, api_host: str, name: str):
    """A fault: the proxied link goes down (the shovel terminates) and comes back (it runs)."""
    def fault():
        assert proxy.down() > 0, "the link was not up when cut"
        wait_state(api_host, name, "terminated")
        proxy.up()
        wait_state(api_host, name, "running")
    return fault


def declare_source(url: str, queue: str = "src") -> None:
    conn = pika.BlockingConnection(pika.URLParameters(url))
    conn.channel().queue_declare(queue, durable=True)
    conn.close()


# ------------------------------------------------------------------ a link cut by the proxy

def test_cut_links_leveret_to_leveret():
    """The shovel on node A reads A through one proxy and writes B through another; each link
    is cut and held down mid-transfer, then restored."""
    a, b = Node(), Node()
    src_proxy = Proxy("127.0.0.1", a.broker.port)
    dest_proxy = Proxy("127.0.0.1", b.broker.port)
    try:
        declare_source(a.url)
        put_shovel(a.api, "cut", {"src-uri": src_proxy.url(), "src-queue": "src",
                                  "dest-uri": dest_proxy.url(), "dest-queue": "dst"})
        wait_state(a.api, "cut", "running")
        feeder = feed_through(a.url, [cut(src_proxy, a.api, "cut"), cut(dest_proxy, a.api, "cut")])
        wait_for(lambda: source_settled(a.api, "src"), "source settled", LIMIT)
        check(collect(b.url, "dst"), "Leveret -> Leveret, 2 cuts", feeder, 2 * PREFETCH)
        assert src_proxy.connections >= 2 and dest_proxy.connections >= 2
    finally:
        api(a.api, "DELETE", "/api/parameters/shovel/%2F/cut")
        src_proxy.close()
        dest_proxy.close()
        a.stop()
        b.stop()


@pytest.mark.parametrize("direction", ["leveret-to-rabbitmq", "rabbitmq-to-leveret"])
def test_cut_link_with_rabbitmq(rabbit, direction):
    """A Leveret shovel writes to (or reads from) the live RabbitMQ through the proxy, its other
    end its own node; the link is cut twice. RabbitMQ's queue statistics lag, so the test waits
    for every number at the destination, then for the source to show nothing left, then takes
    the rest."""
    r_url, r_api = rabbit
    host, port = urlsplit(r_url).hostname, urlsplit(r_url).port or 5672
    q = unique("zz-shovel-faults")
    a = Node()
    proxy = Proxy(host, port)
    if direction == "leveret-to-rabbitmq":
        (src_url, src_api, src_q), (dest_url, dest_q) = (a.url, a.api, "src"), (r_url, q)
        ends = {"src-uri": "amqp://", "src-queue": "src", "dest-uri": proxy.url(), "dest-queue": q}
    else:
        (src_url, src_api, src_q), (dest_url, dest_q) = (r_url, r_api, q), (a.url, "dst")
        ends = {"src-uri": proxy.url(), "src-queue": q, "dest-uri": "amqp://", "dest-queue": "dst"}
    try:
        declare_source(src_url, src_q)
        put_shovel(a.api, "rabbit", ends)
        wait_state(a.api, "rabbit", "running")
        feeder = feed_through(src_url, [cut(proxy, a.api, "rabbit")] * 2, src_q)
        got: collections.Counter = collections.Counter()
        wait_for(lambda: len(collect(dest_url, dest_q, got)) >= N, "every number at the destination", LIMIT)
        wait_for(lambda: source_settled(src_api, src_q), "source settled", LIMIT)
        check(collect(dest_url, dest_q, got), f"{direction}, 2 cuts", feeder, 2 * PREFETCH)
        assert proxy.connections >= 3
    finally:
        api(a.api, "DELETE", "/api/parameters/shovel/%2F/rabbit")
        wait_for(lambda: state(a.api, "rabbit") is None, "shovel gone")
        proxy.close()
        a.stop()
        api(r_api, "DELETE", f"/api/queues/%2F/{q}")


# ------------------------------------------------------------------ reconnect-delay

def test_reconnect_delay_is_kept():
    """After a cut the shovel stays ``terminated`` for ``reconnect-delay`` seconds before it
    starts again (a lower bound only: no upper timing bound)."""
    a = Node()
    proxy = Proxy("127.0.0.1", a.broker.port)
    try:
        declare_source(a.url)
        put_shovel(a.api, "slow", {"src-uri": "amqp://", "src-queue": "src", "dest-uri": proxy.url(),
                                   "dest-queue": "dst", "reconnect-delay": DELAY})
        wait_state(a.api, "slow", "running")
        for _ in range(2):
            gap = restart_gap(proxy, lambda: state(a.api, "slow"), "terminated", LIMIT)
            print(f"\nreconnect-delay {DELAY}: back after {gap:.2f} s")
            assert gap >= DELAY
            wait_state(a.api, "slow", "running")
    finally:
        api(a.api, "DELETE", "/api/parameters/shovel/%2F/slow")
        proxy.close()
        a.stop()


# ------------------------------------------------------------------ a broker SIGKILLed

class Victim:
    """A ``leveret serve`` (the ``leveret_server`` fixture's) that a fault SIGKILLs and restarts
    on the same port and data directory."""

    def __init__(self, leveret_server):
        self.start = leveret_server
        self.s = leveret_server()

    @property
    def url(self) -> str:
        return self.s.url

    @property
    def api(self) -> str:
        return urlsplit(self.s.management_url).netloc

    def kill(self, api_host: str | None = None, name: str | None = None):
        """A fault: SIGKILL; the shovel (on ``api_host``, when it is another node) is seen
        terminated; restart; the shovel runs again."""
        def fault():
            self.s.proc.kill()
            self.s.proc.wait(30)
            if api_host is not None:
                wait_state(api_host, name, "terminated")
            self.s = self.start(port=self.s.port, data_dir=self.s.data_dir)
            wait_state(api_host or self.api, name, "running")
        return fault


def test_sigkill_source(leveret_server):
    """The source is a ``leveret serve`` SIGKILLed twice mid-transfer; the shovel runs on the
    destination node, fails (terminated) while the source is down and comes back."""
    v, d = Victim(leveret_server), Node()
    try:
        declare_source(v.url)
        put_shovel(d.api, "pull", {"src-uri": v.url, "src-queue": "src", "dest-uri": "amqp://", "dest-queue": "dst"})
        wait_state(d.api, "pull", "running")
        feeder = feed_through(v.url, [v.kill(d.api, "pull")] * 2)
        wait_for(lambda: source_settled(v.api, "src"), "source settled", LIMIT)
        check(collect(d.url, "dst"), "source Leveret SIGKILLed twice", feeder)
    finally:
        api(d.api, "DELETE", "/api/parameters/shovel/%2F/pull")
        d.stop()


def test_sigkill_destination(leveret_server):
    """The destination is a ``leveret serve`` SIGKILLed twice mid-transfer; what it confirmed
    is on its disk when it comes back, the rest is sent again."""
    v, a = Victim(leveret_server), Node()
    try:
        declare_source(a.url)
        put_shovel(a.api, "push", {"src-uri": "amqp://", "src-queue": "src", "dest-uri": v.url, "dest-queue": "dst"})
        wait_state(a.api, "push", "running")
        feeder = feed_through(a.url, [v.kill(a.api, "push")] * 2)
        wait_for(lambda: source_settled(a.api, "src"), "source settled", LIMIT)
        check(collect(v.url, "dst"), "destination Leveret SIGKILLed twice", feeder)
    finally:
        api(a.api, "DELETE", "/api/parameters/shovel/%2F/push")
        a.stop()


def test_sigkill_the_shovels_node(leveret_server):
    """The shovel runs on the source ``leveret serve``, which is SIGKILLed twice: the shovel
    comes back with the node (a durable parameter) and the unacknowledged deliveries with the
    queue."""
    v, d = Victim(leveret_server), Node()
    try:
        declare_source(v.url)
        put_shovel(v.api, "own", {"src-uri": "amqp://", "src-queue": "src", "dest-uri": d.url, "dest-queue": "dst"})
        wait_state(v.api, "own", "running")
        feeder = feed_through(v.url, [v.kill(name="own")] * 2)
        wait_for(lambda: source_settled(v.api, "src"), "source settled", LIMIT)
        check(collect(d.url, "dst"), "the shovel's own node SIGKILLed twice", feeder)
    finally:
        d.stop()
