"""Loss-free federation under faults (ack-mode on-confirm): a federated exchange keeps every
message while its upstream Leveret (a ``leveret serve`` process with a data directory) is
SIGKILLed and restarted mid-transfer, and while the link is cut again and again by a TCP
proxy the test controls (the shovel tests' ``Proxy``), to a Leveret upstream and to the shared
RabbitMQ (a vhost of its own). A publisher with confirms (republishing what was not confirmed when
its connection died) feeds the upstream exchange; every message id must arrive downstream at
least once. Duplicates are possible (messages the link had forwarded but not yet acked
upstream when the connection went are redelivered): they are counted and printed, and for a
cut link bounded by what can be unacknowledged upstream: ``prefetch-count`` per cut. No timing is asserted; waits are generous hang guards."""
from __future__ import annotations

import os
import signal
import threading
import time
from collections import Counter
from urllib.parse import quote, urlsplit

import pika
from conftest import ServerProcess, _free_port

from tests.shovel.conftest import Proxy, restart_gap, wait_for

from .conftest import Node, api
from .test_exchanges import _name

N = 3000
PREFETCH = 100
LIMIT = 180.0       # hang guard for a loaded 2-core machine


class Publisher(threading.Thread):
    """Publishes ids 0..n-1 (persistent, confirmed) to ``exchange`` at ``url``; a publish whose
    confirm did not come (connection lost, nack) is sent again after reconnecting. It goes no
    further than ``allowed`` (the test moves it on)."""

    def __init__(self, url: str, exchange: str, n: int):
        super().__init__(daemon=True)
        self.url, self.exchange, self.n = url, exchange, n
        self.allowed = n
        self.confirmed = 0
        self.reconnects = 0
        self.error: BaseException | None = None
        self.started_at = time.monotonic()

    def run(self) -> None:
        i, ch, conn = 0, None, None
        deadline = time.monotonic() + LIMIT
        while i < self.n:
            if i >= self.allowed:
                time.sleep(0.01)
                continue
            try:
                if ch is None:
                    conn = pika.BlockingConnection(pika.URLParameters(self.url))
                    ch = conn.channel()
                    ch.confirm_delivery()
                ch.basic_publish(self.exchange, "k", str(i).encode(),
                                 pika.BasicProperties(delivery_mode=2, message_id=str(i)))
                i += 1
                self.confirmed = i
            except (pika.exceptions.AMQPError, OSError) as e:
                ch = None
                self.reconnects += 1
                if time.monotonic() > deadline:
                    self.error = e
                    return
                time.sleep(0.2)
        if conn is not None and conn.is_open:
            conn.close()


class Sink:
    """Counts the ids arriving in a downstream queue."""

    def __init__(self, node: Node, queue: str):
        self.conn, self.ch = node.channel()
        self.queue = queue
        self.seen: Counter = Counter()

    def poll(self) -> int:
        while True:
            m = self.ch.basic_get(self.queue, auto_ack=True)
            if m[0] is None:
                return len(self.seen)
            self.seen[int(m[2])] += 1

    def until(self, n: int, what: str) -> None:
        wait_for(lambda: self.poll() >= n, what, LIMIT)

    def report(self, label: str, n: int) -> dict:
        missing = [i for i in range(n) if i not in self.seen]
        dups = sum(c - 1 for c in self.seen.values())
        print(f"\n{label}: {n} ids, {len(self.seen)} distinct arrived, {dups} duplicates, missing {len(missing)}")
        return {"missing": missing, "duplicates": dups}


def _downstream(node: Node, upstream_url: str, delay: int = 1) -> Sink:
    """``fx`` on ``node`` federated (on-confirm, reconnect-delay ``delay`` s) from ``upstream_url``,
    with the durable queue ``sink`` bound to it."""
    _name(node, "lev-fault-down")
    c, ch = node.channel()
    ch.exchange_declare("fx", "direct", durable=True)
    ch.queue_declare("sink", durable=True)
    ch.queue_bind("sink", "fx", "k")
    c.close()
    assert api(node.api, "PUT", "/api/parameters/federation-upstream/%2F/up",
               {"value": {"uri": upstream_url, "ack-mode": "on-confirm", "reconnect-delay": delay,
                          "prefetch-count": PREFETCH}})[0] in (201, 204)
    assert api(node.api, "PUT", "/api/policies/%2F/fed", {"pattern": "^fx$", "apply-to": "exchanges",
                                                         "definition": {"federation-upstream": "up"}})[0] in (201, 204)
    return Sink(node, "sink")


def _running(node: Node):
    return wait_for(lambda: [r for r in api(node.api, "GET", "/api/federation-links")[1] or []
                             if r["status"] == "running"], "the link running", LIMIT)


def _bound_upstream(api_host: str, vhost_q: str = "%2F"):
    """Wait until the upstream exchange ``fx`` is bound to the link's internal exchange."""
    def ok():
        rows = api(api_host, "GET", f"/api/bindings/{vhost_q}")[1] or []
        return any(b["source"] == "fx" and b["destination"].startswith("federation: fx -> ") for b in rows)
    wait_for(ok, "fx bound upstream", LIMIT)


def test_upstream_sigkilled_mid_transfer(node, tmp_path):
    port = _free_port()
    (tmp_path / "up").mkdir()
    up = ServerProcess(str(tmp_path / "up"), "--no-prometheus", port=port)
    try:
        c = pika.BlockingConnection(pika.URLParameters(up.url))
        c.channel().exchange_declare("fx", "direct", durable=True)
        c.close()
        sink = _downstream(node, up.url)
        _running(node)
        _bound_upstream(up.management_url.removeprefix("http://"))
        pub = Publisher(up.url, "fx", N)
        pub.start()
        sink.until(N // 4, "a quarter of the messages downstream")
        assert sink.poll() < N, "the transfer finished before the kill: nothing was tested"
        os.kill(up.proc.pid, signal.SIGKILL)
        up.proc.wait(30)
        up.stop()
        up = ServerProcess(str(tmp_path / "up"), "--no-prometheus", port=port)
        pub.join(LIMIT)
        assert pub.error is None and pub.confirmed == N, (pub.error, pub.confirmed)
        sink.until(N, f"all {N} ids downstream")
        r = sink.report(f"upstream SIGKILLed (publisher reconnects {pub.reconnects})", N)
        assert r["missing"] == []
        sink.conn.close()
    finally:
        up.stop()


def _cut_four_times(proxy: Proxy, pub_url: str, sink: Sink, label: str) -> None:
    """Publish N ids to ``fx`` at ``pub_url`` in five batches, cutting the link in the middle
    of the first four; every id must arrive, with at most ``prefetch-count`` duplicates a cut."""
    pub = Publisher(pub_url, "fx", N)
    pub.allowed = 0
    pub.start()
    step = N // 5
    cuts = 0
    for k in range(4):
        # a cut in the middle of a batch: the publisher is publishing, the link forwarding
        wait_for(lambda: len(proxy.transports) > 0, "the link connected through the proxy", LIMIT)
        pub.allowed = (k + 1) * step
        wait_for(lambda k=k: pub.confirmed >= k * step + step // 2, "half a batch published", LIMIT)
        proxy.cut()
        cuts += 1
    pub.allowed = N
    pub.join(LIMIT)
    assert pub.error is None and pub.confirmed == N, (pub.error, pub.confirmed)
    sink.until(N, f"all {N} ids downstream")
    r = sink.report(f"{label}: link cut {cuts} times (proxy accepted {proxy.connections} connections)", N)
    assert r["missing"] == []
    assert r["duplicates"] <= cuts * PREFETCH
    assert proxy.connections > cuts
    sink.conn.close()


def test_link_cut_by_proxy(node, node2):
    up = node2
    proxy = Proxy("127.0.0.1", int(up.url.rsplit(":", 1)[1].split("/")[0]))
    try:
        c, ch = up.channel()
        ch.exchange_declare("fx", "direct", durable=True)
        c.close()
        sink = _downstream(node, proxy.url())
        _running(node)
        _bound_upstream(up.api)
        _cut_four_times(proxy, up.url, sink, "Leveret upstream")
    finally:
        proxy.close()


def test_link_to_rabbitmq_cut_by_proxy(node, rabbit_vhost):
    """The upstream is the shared RabbitMQ (a vhost of the test's own) behind the proxy."""
    url, rapi, v = rabbit_vhost
    vq = quote(v, safe="")
    proxy = Proxy("127.0.0.1", urlsplit(url).port or 5672)
    try:
        c = pika.BlockingConnection(pika.URLParameters(url))
        c.channel().exchange_declare("fx", "direct", durable=True)
        c.close()
        sink = _downstream(node, proxy.url(vq))
        _running(node)
        _bound_upstream(rapi, vq)
        _cut_four_times(proxy, url, sink, "RabbitMQ upstream")
    finally:
        proxy.close()


def test_reconnect_delay_is_kept(node, node2):
    """After a cut the link shows ``error`` for ``reconnect-delay`` seconds (2 here) before it
    starts again (a lower bound only: no upper timing bound)."""
    proxy = Proxy("127.0.0.1", node2.broker.port)
    try:
        c, ch = node2.channel()
        ch.exchange_declare("fx", "direct", durable=True)
        c.close()
        _downstream(node, proxy.url(), delay=2).conn.close()
        _running(node)
        _bound_upstream(node2.api)

        def status():
            rows = api(node.api, "GET", "/api/federation-links")[1] or []
            return rows[0]["status"] if len(rows) == 1 else None
        for _ in range(2):
            gap = restart_gap(proxy, status, "error", LIMIT)
            print(f"\nreconnect-delay 2: back after {gap:.2f} s")
            assert gap >= 2
            _running(node)
    finally:
        proxy.close()
